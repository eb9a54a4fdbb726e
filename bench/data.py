"""Datasets: one registry of names and parameters, the protocol's splits, and the digits data
that the default suite runs on offline.

Every dataset ends as uint8 arrays (N, H, W, 3) at the model's input size (the evaluation
resize and centre crop done once), split into train / val / test as protocol.md says:
the training split cut 80/20 into train/val by a seeded permutation; CIFAR-10-C, DomainNet
and the held-out digits first cut 80/20 into train/test. Module level is torch-free: suites
validate against this registry without it.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bench.registry import Registry

DIGITS_CORRUPTIONS = ("none", "gaussian_noise", "impulse_noise", "contrast", "motion_blur")
DIGITS_SIZE = 32  # digits are 8x8; upsampled once to CIFAR's size, like CIFAR-10-C's images


@dataclass
class Raw:
    """What a loader returns: (items, labels) per split; items are uint8 arrays or paths."""

    splits: dict[str, tuple[Any, np.ndarray]]
    num_classes: int


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    kind: str  # "target" (fine-tuned on), "source" (pretraining), "reference" (plasticity)
    description: str
    load: Callable[[Path | None, dict], Raw]
    # parameter -> (valid values or None for any, default or None when required)
    params: dict[str, tuple[tuple | None, Any]] = field(default_factory=dict)
    # split cut 80/20 into train/test first (no official test split)
    cut_test: bool = False
    train_split: str = "train"


DATASETS: Registry[DatasetSpec] = Registry("dataset")


def dataset_key(name: str, params: dict) -> str:
    """The display name of a dataset with its parameters: ``cifar10_c/snow/5``."""
    return "/".join([name, *(str(params[k]) for k in sorted(params))])


def data_root(config_root: str | None) -> Path | None:
    root = config_root or os.environ.get("BENCH_DATA")
    return Path(root).expanduser() if root else None


# ---------------------------------------------------------------- digits (offline default)

def _digits_images() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 1,797 digits as uint8 RGB 32x32, with labels."""
    from PIL import Image
    from sklearn.datasets import load_digits

    d = load_digits()
    small = (d.images / 16.0 * 255.0).round().astype(np.uint8)
    big = np.stack([np.asarray(Image.fromarray(im).resize((DIGITS_SIZE, DIGITS_SIZE),
                                                          Image.BILINEAR)) for im in small])
    return np.repeat(big[..., None], 3, axis=3), d.target.astype(np.int64)


def _digits_halves() -> tuple[np.ndarray, np.ndarray]:
    """Indices of the source half (pretraining) and the held-out half (downstream)."""
    n = 1797
    perm = np.random.default_rng(12345).permutation(n)
    return np.sort(perm[: n // 2]), np.sort(perm[n // 2:])


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


def _load_digits_source(root: Path | None, params: dict) -> Raw:
    x, y = _digits_images()
    src, _ = _digits_halves()
    return Raw({"train": (x[src], y[src]), "eval": (x[src], y[src])}, 10)


def _load_digits_c(root: Path | None, params: dict) -> Raw:
    x, y = _digits_images()
    _, held = _digits_halves()
    seed = DIGITS_CORRUPTIONS.index(params["corruption"]) * 10 + params["severity"]
    return Raw({"train": (corrupt(x[held], params["corruption"], params["severity"], seed),
                          y[held])}, 10)


DATASETS.register("digits_source", DatasetSpec(
    "digits_source", "source", "clean scikit-learn digits, the source half (pretraining and "
    "plasticity reference of the default suite)", _load_digits_source))
DATASETS.register("digits_c", DatasetSpec(
    "digits_c", "target", "held-out scikit-learn digits under a CIFAR-10-C-style corruption",
    _load_digits_c,
    params={"corruption": (DIGITS_CORRUPTIONS, None), "severity": ((1, 2, 3, 4, 5), 5)},
    cut_test=True))


# ---------------------------------------------------------------- the paper's datasets

def _formats():
    from bench import formats

    return formats


def _need_root(root: Path | None, name: str) -> Path:
    if root is None:
        raise _formats().MissingData(
            f"dataset '{name}' needs a data root: set `data_root:` in the suite or the "
            f"BENCH_DATA environment variable. Expected layout under it:\n"
            f"{_formats().LAYOUTS.get(name, '')}")
    return root


def _load_cifar(which: str) -> Callable[[Path | None, dict], Raw]:
    def load(root: Path | None, params: dict) -> Raw:
        f = _formats()
        root = _need_root(root, which)
        return Raw({s: f.read_cifar(root, which, s) for s in ("train", "test")},
                   10 if which == "cifar10" else 100)
    return load


def _load_cifar10_c(root: Path | None, params: dict) -> Raw:
    root = _need_root(root, "cifar10_c")
    x, y = _formats().read_cifar10_c(root, params["corruption"], params["severity"])
    return Raw({"train": (x, y)}, 10)


def _load_pets(root: Path | None, params: dict) -> Raw:
    f = _formats()
    root = _need_root(root, "pets")
    return Raw({"trainval": f.read_pets(root, "trainval"), "test": f.read_pets(root, "test")},
               37)


def _load_flowers(root: Path | None, params: dict) -> Raw:
    f = _formats()
    root = _need_root(root, "flowers102")
    return Raw({"train": f.read_flowers102(root, "train"),
                "test": f.read_flowers102(root, "test")}, 102)


def _load_domainnet(root: Path | None, params: dict) -> Raw:
    root = _need_root(root, "domainnet")
    items, labels, classes = _formats().read_domainnet(root, params["domain"])
    return Raw({"train": (items, labels)}, len(classes))


def _load_imagenet_val(root: Path | None, params: dict) -> Raw:
    root = _need_root(root, "imagenet_val")
    items, labels = _formats().read_imagenet_val(root)[:2]
    return Raw({"eval": (items, labels)}, 1000)


CIFAR10C_CORRUPTIONS = (
    "brightness", "contrast", "defocus_blur", "elastic_transform", "fog", "frost",
    "gaussian_blur", "gaussian_noise", "glass_blur", "impulse_noise", "jpeg_compression",
    "motion_blur", "pixelate", "saturate", "shot_noise", "snow", "spatter", "speckle_noise",
    "zoom_blur")
DOMAINNET_DOMAINS = ("clipart", "infograph", "painting", "quickdraw", "real", "sketch")

DATASETS.register("cifar10", DatasetSpec("cifar10", "target", "CIFAR-10", _load_cifar("cifar10")))
DATASETS.register("cifar100", DatasetSpec("cifar100", "target", "CIFAR-100",
                                          _load_cifar("cifar100")))
DATASETS.register("cifar10_c", DatasetSpec(
    "cifar10_c", "target", "CIFAR-10-C, one corruption at one severity", _load_cifar10_c,
    params={"corruption": (CIFAR10C_CORRUPTIONS, None), "severity": ((1, 2, 3, 4, 5), 5)},
    cut_test=True))
DATASETS.register("pets", DatasetSpec("pets", "target", "Oxford-IIIT Pet", _load_pets,
                                      train_split="trainval"))
DATASETS.register("flowers102", DatasetSpec("flowers102", "target", "Oxford Flowers102",
                                            _load_flowers))
DATASETS.register("domainnet", DatasetSpec(
    "domainnet", "target", "DomainNet, one domain", _load_domainnet,
    params={"domain": (DOMAINNET_DOMAINS, None)}, cut_test=True))
DATASETS.register("imagenet_val", DatasetSpec(
    "imagenet_val", "reference", "ImageNet validation images (plasticity reference)",
    _load_imagenet_val))


# ---------------------------------------------------------------- splits

def split_80_20(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The protocol's seeded 80/20 cut: sorted indices of the 80% part and of the 20% part."""
    perm = np.random.default_rng(seed).permutation(n)
    k = int(0.8 * n)
    return np.sort(perm[:k]), np.sort(perm[k:])


@dataclass
class Splits:
    """uint8 (N, H, W, 3) arrays at the model's input size and int64 labels."""

    train: tuple[np.ndarray, np.ndarray]
    val: tuple[np.ndarray, np.ndarray]
    test: tuple[np.ndarray, np.ndarray]
    num_classes: int
    checksum: str


@dataclass
class Images:
    """One split of a reference or source domain at the model's input size."""

    x: np.ndarray
    y: np.ndarray
    num_classes: int
    checksum: str


def _take(items: Any, idx: np.ndarray) -> Any:
    return items[idx] if isinstance(items, np.ndarray) else [items[i] for i in idx]


def _to_size(items: Any, size: int, crop_pct: float, interpolation: str) -> np.ndarray:
    if isinstance(items, np.ndarray) and items.shape[1:3] == (size, size):
        return np.ascontiguousarray(items)
    return _formats().decode_images(items, size, crop_pct=crop_pct, interpolation=interpolation)


def checksum(*arrays: np.ndarray) -> str:
    h = hashlib.sha256()
    for a in arrays:
        h.update(str(a.shape).encode())
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()[:16]


def load_splits(dataset: dict, root: Path | None, size: int, split_seed: int,
                crop_pct: float = 0.875, interpolation: str = "bicubic") -> Splits:
    """A target dataset's train / val / test at ``size`` (protocol.md's splits)."""
    spec = DATASETS[dataset["name"]]
    raw = spec.load(root, dataset["params"])
    items, labels = raw.splits[spec.train_split]
    if spec.cut_test:
        tr, te = split_80_20(len(labels), split_seed)
        test_items, test_labels = _take(items, te), labels[te]
        items, labels = _take(items, tr), labels[tr]
    else:
        test_items, test_labels = raw.splits["test"]
    tr, va = split_80_20(len(labels), split_seed)
    out = []
    for it, lab in ((_take(items, tr), labels[tr]), (_take(items, va), labels[va]),
                    (test_items, test_labels)):
        out.append((_to_size(it, size, crop_pct, interpolation), np.asarray(lab, np.int64)))
    return Splits(*out, num_classes=raw.num_classes,
                  checksum=checksum(*(a for pair in out for a in pair)))


def load_images(dataset: dict, root: Path | None, size: int, split: str = "eval",
                crop_pct: float = 0.875, interpolation: str = "bicubic") -> Images:
    """One split of a source or reference domain at ``size``."""
    spec = DATASETS[dataset["name"]]
    raw = spec.load(root, dataset["params"])
    items, labels = raw.splits[split]
    x = _to_size(items, size, crop_pct, interpolation)
    y = np.asarray(labels, np.int64)
    return Images(x, y, raw.num_classes, checksum(x, y))
