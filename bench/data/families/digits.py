"""The digits family (the offline default): clean scikit-learn digits as the source domain,
the held-out half under a CIFAR-10-C-style corruption as the target; made in memory
(``bench.data.digits``), no data root.
"""

from __future__ import annotations

from pathlib import Path

from bench.data import digits
from bench.data.spec import DatasetSpec, Raw


def _read_digits_source(root: Path | None, params: dict) -> Raw:
    x, y = digits.source()
    return Raw({"train": (x, y), "eval": (x, y)})


def _read_digits_c(root: Path | None, params: dict) -> Raw:
    """The held-out half, cut once into a training pool and a test set (``digits.test_cut``);
    ids are positions in the held-out half."""
    x, y = digits.held_out(params["corruption"], params["severity"])
    pool, test = digits.test_cut(len(y))
    return Raw({"train": (x[pool], y[pool]), "test": (x[test], y[test])},
               ids={"train": pool, "test": test})


DIGITS_SOURCE = DatasetSpec(
    "digits_source", ("source",), "clean scikit-learn digits, the source half (pretraining "
    "and plasticity reference of the default suite)", _read_digits_source, num_classes=10,
    counts=lambda p: digits.counts("source"), arrays=True)
DIGITS_C = DatasetSpec(
    "digits_c", ("target",), "held-out scikit-learn digits under a CIFAR-10-C-style "
    "corruption; a fixed 50/50 cut of them is its test split (450 images)",
    _read_digits_c, num_classes=10, splits="official",
    counts=lambda p: digits.counts("held_out"), arrays=True,
    params={"corruption": (digits.CORRUPTIONS, None), "severity": ((1, 2, 3, 4, 5), 5)})

SPECS = (DIGITS_SOURCE, DIGITS_C)
