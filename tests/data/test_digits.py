"""bench.data.digits: scikit-learn's digits (read here with scikit-learn itself) upsampled to RGB,
split into two disjoint halves and a fixed test cut, and the CIFAR-10-C-style corruptions."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_digits

from bench.data import digits


def test_images_are_sklearns_digits_upsampled_to_rgb():
    x, y = digits.images()
    d = load_digits()
    assert x.shape == (1797, 32, 32, 3) and x.dtype == np.uint8 and digits.N_IMAGES == 1797
    np.testing.assert_array_equal(y, d.target)
    assert (x[..., 0] == x[..., 1]).all() and (x[..., 0] == x[..., 2]).all()  # grey
    # each 32x32 image, averaged over 4x4 blocks, is its 8x8 digit (up to bilinear blur)
    small = x[..., 0].reshape(1797, 8, 4, 8, 4).mean(axis=(2, 4))
    assert np.corrcoef(small.ravel(), d.images.ravel())[0, 1] > 0.95
    assert np.corrcoef(small[0].ravel(), d.images[1].ravel())[0, 1] < 0.9  # another digit
    assert x.max() == 255 and x.min() == 0


def test_halves_are_disjoint_and_cover_every_digit():
    src, held = digits.halves()
    assert len(src) == 898 and len(held) == 899
    assert not set(src) & set(held) and sorted([*src, *held]) == list(range(1797))
    assert (np.diff(src) > 0).all() and (np.diff(held) > 0).all()
    x, y = digits.source()
    np.testing.assert_array_equal(x, digits.images()[0][src])
    np.testing.assert_array_equal(y, digits.images()[1][src])


def test_the_test_cut_is_half_of_the_held_out_digits():
    train, test = digits.test_cut(899)
    assert len(train) + len(test) == 899 and not set(train) & set(test)
    assert abs(len(test) - 899 / 2) <= 1
    assert digits.counts("c") == {"train": len(train), "test": len(test)}
    assert digits.counts("source") == {"train": 898, "eval": 898}
    again = digits.test_cut(899)
    np.testing.assert_array_equal(again[1], test)  # fixed


def test_held_out_is_the_second_half_corrupted_with_its_own_seed():
    x, y = digits.images()
    _, held = digits.halves()
    clean, labels = digits.held_out("none", 1)
    np.testing.assert_array_equal(clean, x[held])
    np.testing.assert_array_equal(labels, y[held])
    noisy, _ = digits.held_out("gaussian_noise", 3)
    seed = digits.CORRUPTIONS.index("gaussian_noise") * 10 + 3
    np.testing.assert_array_equal(noisy, digits.corrupt(x[held], "gaussian_noise", 3, seed))


@pytest.fixture(scope="module")
def grey():
    rng = np.random.default_rng(0)
    return np.repeat(rng.integers(40, 216, (6, 32, 32, 1), dtype=np.uint8), 3, axis=3)


def test_contrast_shrinks_each_image_about_its_mean(grey):
    for severity, c in zip(range(1, 6), (0.4, 0.3, 0.2, 0.1, 0.05)):
        out = digits.corrupt(grey, "contrast", severity).astype(float)
        g = grey.astype(float)
        m = g.mean(axis=(1, 2, 3), keepdims=True)
        np.testing.assert_allclose(out, np.round((g - m) * c + m), atol=1)


def test_impulse_noise_sets_about_its_amount_of_pixels_to_black_or_white(grey):
    out = digits.corrupt(grey, "impulse_noise", 5, seed=1)
    changed = (out[..., 0] != grey[..., 0])
    assert set(np.unique(out[..., 0][changed])) <= {0, 255}
    assert changed.mean() == pytest.approx(0.27, abs=0.03)


def test_noise_is_seeded_and_grows_with_severity(grey):
    a = digits.corrupt(grey, "gaussian_noise", 2, seed=5)
    np.testing.assert_array_equal(a, digits.corrupt(grey, "gaussian_noise", 2, seed=5))
    assert not np.array_equal(a, digits.corrupt(grey, "gaussian_noise", 2, seed=6))
    err = [np.abs(digits.corrupt(grey, "gaussian_noise", s, 5).astype(float) - grey).mean()
           for s in (1, 3, 5)]
    assert err[0] < err[1] < err[2]
    assert (a[..., 0] == a[..., 2]).all()  # the same noise on each channel: still grey


def test_motion_blur_keeps_the_brightness_and_a_kernel_sums_to_one(grey):
    out = digits.corrupt(grey, "motion_blur", 4, seed=0)
    assert out.shape == grey.shape
    assert abs(out.astype(float).mean() - grey.astype(float).mean()) < 2
    assert out.astype(float).std() < grey.astype(float).std()  # smoother
    k = digits._line_kernel(7, 30.0)
    assert k.shape == (7, 7) and k.sum() == pytest.approx(1.0)


def test_none_and_unknown_corruptions(grey):
    assert digits.corrupt(grey, "none", 5) is grey
    with pytest.raises(ValueError, match="unknown corruption 'fog'"):
        digits.corrupt(grey, "fog", 1)
