"""The digits data the default suite runs on offline: scikit-learn's 8x8 digits, upsampled,
split into a source half (pretraining, plasticity reference) and a held-out half (fine-tuned
on, under CIFAR-10-C-style corruptions). The readers of ``digits_source`` and ``digits_c``
(``bench.data.families.digits`` declares them). Torch-free.
"""

from __future__ import annotations

import functools

import numpy as np

CORRUPTIONS = ("none", "gaussian_noise", "impulse_noise", "contrast", "motion_blur")
SIZE = 32  # digits are 8x8; upsampled once to CIFAR's size, like CIFAR-10-C's images


@functools.lru_cache(maxsize=1)
def images() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 1,797 digits as uint8 RGB 32x32, with labels (made once a process)."""
    from PIL import Image
    from sklearn.datasets import load_digits

    d = load_digits()
    small = (d.images / 16.0 * 255.0).round().astype(np.uint8)
    big = np.stack([np.asarray(Image.fromarray(im).resize((SIZE, SIZE), Image.BILINEAR))
                    for im in small])
    return np.repeat(big[..., None], 3, axis=3), d.target.astype(np.int64)


N_IMAGES = 1797  # scikit-learn's digits


def halves() -> tuple[np.ndarray, np.ndarray]:
    """Indices of the source half (pretraining) and the held-out half (downstream)."""
    n = N_IMAGES
    perm = np.random.default_rng(12345).permutation(n)
    return np.sort(perm[: n // 2]), np.sort(perm[n // 2:])


def source() -> tuple[np.ndarray, np.ndarray]:
    """The clean source half: images and labels."""
    x, y = images()
    src, _ = halves()
    return x[src], y[src]


def held_out(corruption: str, severity: int) -> tuple[np.ndarray, np.ndarray]:
    """The held-out half under ``corruption`` at ``severity`` (seeded per corruption)."""
    x, y = images()
    _, held = halves()
    seed = CORRUPTIONS.index(corruption) * 10 + severity
    return corrupt(x[held], corruption, severity, seed), y[held]


# The held-out half's fixed cut into a training pool and a test set. Half of it is test (449
# images; an 80/20 cut would leave 180, whose binomial noise alone is about 3.5 points at 70%
# accuracy): the default suite's verdicts need test images more than training images.
TEST_FRACTION = 0.5
TEST_CUT_SEED = 54321


def test_cut(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Sorted positions of the training pool and of the test set in the held-out half."""
    perm = np.random.default_rng(TEST_CUT_SEED).permutation(n)
    k = n - int(round(TEST_FRACTION * n))
    return np.sort(perm[:k]), np.sort(perm[k:])


def counts(which: str) -> dict[str, int]:
    """Images per reader split of ``digits_source`` or ``digits_c`` (``halves``, ``test_cut``),
    without making them."""
    source = N_IMAGES // 2
    if which == "source":
        return {"train": source, "eval": source}
    held = N_IMAGES - source
    pool = held - int(round(TEST_FRACTION * held))
    return {"train": pool, "test": held - pool}


def corrupt(images: np.ndarray, corruption: str, severity: int, seed: int = 0) -> np.ndarray:
    """CIFAR-10-C-style corruptions (Hendrycks & Dietterich 2019), on uint8 RGB images."""
    if corruption == "none":
        return images
    rng = np.random.default_rng(seed)
    x = images.astype(np.float64) / 255.0
    s = severity - 1
    if corruption == "gaussian_noise":
        c = (0.08, 0.12, 0.18, 0.26, 0.38)[s]
        x = x + rng.normal(size=x.shape[:3])[..., None] * c
    elif corruption == "impulse_noise":
        amount = (0.03, 0.06, 0.09, 0.17, 0.27)[s]
        u = rng.random(size=x.shape[:3])[..., None]
        x = np.where(u < amount / 2, 0.0, np.where(u > 1 - amount / 2, 1.0, x))
    elif corruption == "contrast":
        c = (0.4, 0.3, 0.2, 0.1, 0.05)[s]
        m = x.mean(axis=(1, 2, 3), keepdims=True)
        x = (x - m) * c + m
    elif corruption == "motion_blur":
        from scipy.ndimage import convolve

        length = (3, 5, 7, 9, 11)[s]
        out = np.empty_like(x)
        for i in range(len(x)):
            k = _line_kernel(length, rng.uniform(-45, 45))
            out[i] = convolve(x[i, :, :, 0], k, mode="nearest")[..., None]
        x = out
    else:  # the registry's choices make this unreachable from a suite
        raise ValueError(f"unknown corruption {corruption!r}")
    return (np.clip(x, 0, 1) * 255).round().astype(np.uint8)


def _line_kernel(length: int, angle_deg: float) -> np.ndarray:
    k = np.zeros((length, length))
    c = (length - 1) / 2
    t = np.deg2rad(angle_deg)
    for r in np.linspace(-c, c, 4 * length):
        k[int(round(c + r * np.sin(t))), int(round(c + r * np.cos(t)))] = 1.0
    return k / k.sum()
