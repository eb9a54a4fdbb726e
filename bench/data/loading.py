"""Loading a job's data: a target dataset's train / val / test, or one split of a source or
reference domain, at the model's input size.

Every dataset ends as uint8 arrays (N, H, W, 3) at the model's input size (the evaluation
resize and centre crop done once), cut as ``bench.data.splits`` says; with a cache folder, the
arrays are memory-mapped entries of the data cache (``bench.data.cache``), written on first use.
The paper protocol keeps the training images whole (``load_whole_splits``). The paper's
datasets are read from their official layouts under the data root (``data_root:`` of a suite,
or ``BENCH_DATA``). Module level is torch-free.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bench.core import protocol as protocols
from bench.core.protocol import Protocol
from bench.data import formats
from bench.data.cache import WHOLE, cache_key, cached, checksum, to_size
from bench.data.datasets import DATASETS
from bench.data.spec import Raw
from bench.data.splits import SPLITS, Part, anchor, split_parts, split_summary


@dataclass
class Splits:
    """uint8 (N, H, W, 3) arrays at the model's input size and int64 labels.

    The arrays are memory-mapped, read-only views of the data cache when one was given.
    """

    train: tuple[np.ndarray, np.ndarray]
    val: tuple[np.ndarray, np.ndarray]
    test: tuple[np.ndarray, np.ndarray]
    num_classes: int
    checksum: str
    cache_dir: Path | None = None  # the cache entry the arrays come from
    fresh: bool = False  # decoded by this call (not read back from the cache)
    ids: dict | None = None  # per split: its size and the checksum of its ids (split_summary)
    # Paper protocol: the training images kept whole (not at the input size): each one's
    # original (height, width), and the size the training transform resizes crops to.
    train_sizes: np.ndarray | None = None
    train_out_size: int | None = None


@dataclass
class Images:
    """One split of a reference or source domain at the model's input size."""

    x: np.ndarray
    y: np.ndarray
    num_classes: int
    checksum: str
    cache_dir: Path | None = None
    fresh: bool = False


def _take(items: Any, idx: np.ndarray) -> Any:
    return items[idx] if isinstance(items, np.ndarray) else [items[i] for i in idx]


def _select(raw: Raw, part: Part) -> tuple[Any, np.ndarray]:
    items, labels = raw.splits[part[0]]
    return _take(items, part[1]), np.asarray(labels)[part[1]]


def load_splits(dataset: dict, root: Path | None, size: int, split_seed: int,
                crop_pct: float = 0.875, interpolation: str = "bicubic",
                cache: Path | None = None, progress: bool | None = None,
                protocol: Protocol | None = None) -> Splits:
    """A target dataset's train / val / test at ``size`` (protocol.md's splits, cut as
    ``protocol`` cuts them; the default protocol's when None).

    With ``cache`` the arrays come from (or are first written to) the data cache under
    ``<cache>/data/``; the result, checksum included, is the same either way.
    """
    root = anchor(dataset, root)
    raw, indices = split_parts(dataset, split_seed, root, protocol)
    parts = {k: _select(raw, part) for k, part in indices.items()}
    summary = split_summary(raw, indices, root)
    if cache is None:
        out = [(to_size(it, size, crop_pct, interpolation, progress=progress),
                np.asarray(lab, np.int64)) for it, lab in parts.values()]
        return Splits(*out, num_classes=raw.num_classes,
                      checksum=checksum(*(a for pair in out for a in pair)), ids=summary)
    what: dict[str, Any] = {"kind": "splits", "split_seed": split_seed}
    if protocol is not None and protocol.split_cuts != Protocol.split_cuts:
        what["cuts"] = protocol.split_cuts  # other cuts, other bytes
    arrays, meta, folder, fresh = cached(Path(cache), dataset, raw, parts, what, root, size,
                                         crop_pct, interpolation, progress)
    return Splits(*(arrays[s] for s in SPLITS), num_classes=meta["num_classes"],
                  checksum=meta["checksum"], cache_dir=folder, fresh=fresh, ids=summary)


def load_images(dataset: dict, root: Path | None, size: int, split: str = "eval",
                crop_pct: float = 0.875, interpolation: str = "bicubic",
                cache: Path | None = None, progress: bool | None = None) -> Images:
    """One split of a source or reference domain at ``size`` (from the data cache if given)."""
    spec = DATASETS[dataset["name"]]
    root = anchor(dataset, root)
    raw = spec.load(root, dataset["params"])
    return _images(dataset, raw, root, size, split, crop_pct, interpolation, cache, progress)


def _images(dataset: dict, raw: Raw, root: Path | None, size: int, split: str,
            crop_pct: float, interpolation: str, cache: Path | None,
            progress: bool | None) -> Images:
    """A reader's split through the evaluation transform (``load_images``)."""
    if cache is None:
        items, labels = raw.splits[split]
        x = to_size(items, size, crop_pct, interpolation, progress=progress)
        y = np.asarray(labels, np.int64)
        return Images(x, y, raw.num_classes, checksum(x, y))
    what = {"kind": "images", "split": split}
    arrays, meta, folder, fresh = cached(Path(cache), dataset, raw, {split: raw.splits[split]},
                                         what, root, size, crop_pct, interpolation, progress)
    x, y = arrays[split]
    return Images(x, y, meta["num_classes"], meta["checksum"], cache_dir=folder, fresh=fresh)


@dataclass
class Whole:
    """A reader's split kept whole (``_whole``): the images, each one's original (height,
    width) or None, their checksum, and the cache entry (None: none needed) and whether this
    call decoded it."""

    x: np.ndarray
    hw: np.ndarray | None
    checksum: str
    cache_dir: Path | None = None
    fresh: bool = False


def _whole(dataset: dict, raw: Raw, root: Path | None, split: str, cache: Path | None,
           progress: bool | None) -> Whole:
    """A reader's split kept whole for random-resized crops. Arrays (CIFAR, CIFAR-10-C,
    digits) as they are, at their native size; image files decoded once at
    ``TRAIN_STORE_SIDE`` (``decode_whole``)."""
    items, labels = raw.splits[split]
    if isinstance(items, np.ndarray):
        return Whole(items, None, checksum(items))
    side = protocols.TRAIN_STORE_SIDE
    if cache is None:
        x, hw = formats.decode_whole(items, side, progress=progress)
        return Whole(x, hw, checksum(x, hw))
    what = {"kind": WHOLE, "split": split}
    arrays, meta, folder, fresh = cached(Path(cache), dataset, raw, {split: (items, labels)},
                                         what, root, side, protocols.WHOLE_CROP_PCT,
                                         protocols.WHOLE_INTERPOLATION, progress)
    return Whole(arrays[split][0], arrays[split][2], meta["checksum"], folder, fresh)


def whole_sources(dataset: dict, raw: Raw, parts: dict[str, Part], root: Path | None,
                  dcfg: dict, cache: Path | None, progress: bool | None
                  ) -> tuple[dict[str, Images], Whole]:
    """What the splits of a protocol that trains on whole images (``paper``) are cut from,
    whatever the seed: each reader split that validation or test images come from, through
    the evaluation transform of ``dcfg``; the reader split of the training images, kept whole
    (``_whole``)."""
    evals: dict[str, Images] = {}
    for name in ("val", "test"):
        src = parts[name][0]
        if src not in evals:
            evals[src] = _images(dataset, raw, root, dcfg["input_size"], src, dcfg["crop_pct"],
                                 dcfg["interpolation"], cache, progress)
    return evals, _whole(dataset, raw, root, parts["train"][0], cache, progress)


def load_whole_splits(dataset: dict, root: Path | None, dcfg: dict, seed: int,
                      protocol: Protocol, cache: Path | None = None,
                      progress: bool | None = None) -> Splits:
    """A target dataset cut by ``protocol`` for ``seed`` (its ``split_seed``), training images
    kept whole (protocol.md, `paper`).

    Validation and test images through the evaluation transform of ``dcfg`` (the paper's:
    ``Resize(size)`` + ``CenterCrop(size)``, bilinear, on the PIL image); training images whole
    (``_whole``), with ``train_sizes`` and ``train_out_size`` for the training transform. The
    data cache holds each reader split once (the per-seed cuts only index it).
    """
    root = anchor(dataset, root)
    raw, parts = split_parts(dataset, seed, root, protocol)
    evals, whole = whole_sources(dataset, raw, parts, root, dcfg, cache, progress)
    x, hw, whole_sum = whole.x, whole.hw, whole.checksum
    idx = parts["train"][1]
    summary = split_summary(raw, parts, root)

    def rows(name: str, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        s, i = parts[name]
        return np.asarray(images[i]), np.asarray(raw.splits[s][1], np.int64)[i]

    what = {"eval": {k: v.checksum for k, v in sorted(evals.items())}, "train": whole_sum,
            "splits": summary}
    return Splits(rows("train", x), *(rows(n, evals[parts[n][0]].x) for n in ("val", "test")),
                  num_classes=raw.num_classes, checksum=cache_key(what)[:16], ids=summary,
                  train_sizes=None if hw is None else np.asarray(hw)[idx],
                  train_out_size=dcfg["input_size"])


def load_target(protocol: Protocol, dataset: dict, root: Path | None, dcfg: dict,
                seed: int, cache: Path | None = None, progress: bool | None = None) -> Splits:
    """A job's target dataset, cut and preprocessed as its protocol says: ``seed`` is the
    protocol's ``split_seed``; training crops from the whole image or from the input-size
    copy."""
    if protocol.whole_train_images:
        return load_whole_splits(dataset, root, dcfg, seed, protocol, cache, progress)
    return load_splits(dataset, root, dcfg["input_size"], seed, dcfg["crop_pct"],
                       dcfg["interpolation"], cache=cache, progress=progress, protocol=protocol)
