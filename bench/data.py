"""Datasets as jobs see them: the protocol's splits, the data cache and ``bench prepare``.

Every dataset ends as uint8 arrays (N, H, W, 3) at the model's input size (the evaluation
resize and centre crop done once), split into train / val / test as protocol.md says:
the training split cut 80/20 into train/val by a seeded permutation; CIFAR-10-C, DomainNet
and the held-out digits first cut 80/20 into train/test. Module level is torch-free: suites
validate without it. What each dataset is (parameters, reader, split rule, files) is
``bench.datasets``, its registry.

The paper's datasets are read from their official layouts under the data
root (``data_root:`` of a suite, or ``BENCH_DATA``). Decoding and resizing them is done once
per (dataset, input size, ...) into the data cache, ``<cache>/data/<key>/``, memory-mapped
``.npy`` files shared by every job: ``bench prepare`` fills it ahead of time (``prepare``),
and a job that finds no entry writes it, under a lock, on first use.

``python -m bench.data --readme`` rewrites docs/data.md's tables of datasets from the registry.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bench import datasets, formats, readme, store
from bench import protocol as protocols
from bench.datasets import (  # noqa: F401 (re-exported)
    DATASETS,
    DatasetSpec,
    Raw,
    dataset_key,
    stratum_80,
)
from bench.protocol import DEFAULT_PROTOCOL, PROTOCOLS, Protocol
from bench.registry import Registry


def data_root(config_root: str | None) -> Path | None:
    root = config_root or os.environ.get("BENCH_DATA")
    return Path(root).expanduser() if root else None


# ---------------------------------------------------------------- splits

SPLITS = ("train", "val", "test")


def split_80_20(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The protocol's seeded 80/20 cut: sorted indices of the 80% part and of the 20% part."""
    perm = np.random.default_rng(seed).permutation(n)
    k = int(0.8 * n)
    return np.sort(perm[:k]), np.sort(perm[k:])


def stratified_80_20(labels: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The seeded 80/20 cut within each class (classes in label order, each one's members
    permuted by the same generator; ``stratum_80`` of them in the 80% part): sorted indices
    of the 80% part and of the 20% part."""
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    big, small = [], []
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        perm = members[rng.permutation(len(members))]
        k = stratum_80(len(members))
        big.append(perm[:k])
        small.append(perm[k:])
    return (np.sort(np.concatenate(big or [np.zeros(0, np.int64)])),
            np.sort(np.concatenate(small or [np.zeros(0, np.int64)])))


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


def _to_size(items: Any, size: int, crop_pct: float, interpolation: str,
             out: np.ndarray | None = None, progress: bool | None = None) -> np.ndarray:
    if isinstance(items, np.ndarray) and items.shape[1:3] == (size, size):
        if out is None:
            return np.ascontiguousarray(items)
        out[...] = items
        return out
    return formats.decode_images(items, size, crop_pct=crop_pct, interpolation=interpolation,
                                 out=out, progress=progress)


def checksum(*arrays: np.ndarray) -> str:
    """sha256 (16 hex digits) over the shapes and bytes of ``arrays``."""
    h = hashlib.sha256()
    for a in arrays:
        h.update(str(a.shape).encode())
        if a.size:  # a memoryview, not tobytes(): no copy of a multi-GB memory map
            h.update(memoryview(np.ascontiguousarray(a)).cast("B"))
    return h.hexdigest()[:16]


# A split rule gives, per split (train, val, test), the reader's split its images come from and
# their indices in it, so that the images and their ids (``sample_ids``) are the same selection.
Part = tuple[str, np.ndarray]


def _all(raw: Raw, split: str) -> Part:
    return split, np.arange(len(raw.splits[split][1]))


def _official(spec: DatasetSpec, raw: Raw, seed: int) -> dict[str, Part]:
    """The official test split; the training split cut 80/20 into train / validation."""
    src = spec.train_split
    tr, va = split_80_20(len(raw.splits[src][1]), seed)
    return {"train": (src, tr), "val": (src, va), "test": _all(raw, "test")}


def _cut_test(spec: DatasetSpec, raw: Raw, seed: int) -> dict[str, Part]:
    """No official test split: the training split cut 80/20 into a training pool and test,
    the pool 80/20 into train / validation."""
    src = spec.train_split
    pool, te = split_80_20(len(raw.splits[src][1]), seed)
    tr, va = split_80_20(len(pool), seed)
    return {"train": (src, pool[tr]), "val": (src, pool[va]), "test": (src, te)}


def _official_or_cut(spec: DatasetSpec, raw: Raw, seed: int) -> dict[str, Part]:
    """Stratified by class (each class with 2 or more images in both parts of every cut):
    the given test split where the reader found one (train/ and test/ folders), the training
    split cut 80/20 into train / validation; else the images cut 80/20 into a training pool
    and test, the pool 80/20 into train / validation."""
    src = spec.train_split
    labels = np.asarray(raw.splits[src][1])
    if "test" in raw.splits:
        pool, test = np.arange(len(labels)), _all(raw, "test")
    else:
        pool, te = stratified_80_20(labels, seed)
        test = (src, te)
    tr, va = stratified_80_20(labels[pool], seed)
    return {"train": (src, pool[tr]), "val": (src, pool[va]), "test": test}


# ---- the paper protocol's splits: the reference code's, per run seed (protocol.md, `paper`)

def paper_seed_cut(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``torch.utils.data.random_split`` after ``torch.manual_seed(seed)``: a permutation from
    a generator seeded with the run seed, its first int(0.8 n) indices train, the rest
    validation (in the permutation's order)."""
    import torch

    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).numpy()
    k = int(0.8 * n)
    return perm[:k], perm[k:]


def paper_fixed_cut(n: int) -> tuple[np.ndarray, np.ndarray]:
    """The reference's fixed 80/20 train-pool / test cut of a dataset without a test split:
    legacy NumPy ``np.random.seed(42); np.random.permutation(n)``, each part sorted."""
    perm = np.random.RandomState(42).permutation(n)
    k = int(0.8 * n)
    return np.sort(perm[:k]), np.sort(perm[k:])


def _paper_official(spec: DatasetSpec, raw: Raw, seed: int) -> dict[str, Part]:
    """The official test split; the official validation split where the release has one
    (Flowers102), else the training split cut per run seed (a torch.randperm seeded with it,
    first int(0.8 n) train)."""
    src = spec.train_split
    if "val" in raw.splits:
        return {"train": _all(raw, src), "val": _all(raw, "val"), "test": _all(raw, "test")}
    tr, va = paper_seed_cut(len(raw.splits[src][1]), seed)
    return {"train": (src, tr), "val": (src, va), "test": _all(raw, "test")}


def _paper_cut_test(spec: DatasetSpec, raw: Raw, seed: int) -> dict[str, Part]:
    """No official test split: a fixed cut into a training pool and test, the same for every
    seed (legacy np.random.seed(42) permutation, sorted 80% / 20%), the pool cut per run seed
    (a torch.randperm seeded with it, first int(0.8 n) train)."""
    src = spec.train_split
    pool, te = paper_fixed_cut(len(raw.splits[src][1]))
    tr, va = paper_seed_cut(len(pool), seed)
    return {"train": (src, pool[tr]), "val": (src, pool[va]), "test": (src, te)}


def _paper_official_or_cut(spec: DatasetSpec, raw: Raw, seed: int) -> dict[str, Part]:
    """As ``official_or_cut``, with the paper protocol's cuts."""
    return (_paper_official if "test" in raw.splits else _paper_cut_test)(spec, raw, seed)


@dataclass(frozen=True)
class SplitRule:
    """How a target dataset is cut into train / val / test, by each kind of cut a protocol
    names (``Protocol.split_cuts``)."""

    seeded: Callable[[DatasetSpec, Raw, int], dict[str, Part]]  # seed: recipe.split_seed
    reference: Callable[[DatasetSpec, Raw, int], dict[str, Part]]  # seed: the run seed

    def __call__(self, protocol: Protocol) -> Callable[[DatasetSpec, Raw, int], dict[str, Part]]:
        return getattr(self, protocol.split_cuts)


# How a target dataset is cut into train / val / test (a spec's ``splits``; protocol.md).
SPLIT_RULES: Registry[SplitRule] = Registry("split rule")
SPLIT_RULES.register("official", SplitRule(_official, _paper_official))
SPLIT_RULES.register("cut_test", SplitRule(_cut_test, _paper_cut_test))
SPLIT_RULES.register("official_or_cut", SplitRule(_official_or_cut, _paper_official_or_cut))


def anchor(dataset: dict, root: Path | None) -> Path | None:
    """What a dataset's sample ids and cache identity are relative to: its own folder for a
    folder dataset (moving it changes neither), else the data root (``DatasetSpec.anchor``)."""
    return DATASETS[dataset["name"]].anchor(root, dataset["params"])


def split_parts(dataset: dict, seed: int, root: Path | None,
                protocol: Protocol | None = None) -> tuple[Raw, dict[str, Part]]:
    """The raw dataset and, per split, (the reader's split, indices): protocol.md's splits
    as ``protocol`` cuts them (the default protocol's when None). ``seed`` is the protocol's
    ``split_seed``: ``recipe.split_seed`` (clean) or the run seed (paper)."""
    spec = DATASETS[dataset["name"]]
    raw = spec.load(root, dataset["params"])
    if spec.splits is None:
        raise ValueError(f"{spec.name} is not a dataset to fine-tune on (no split rule)")
    return raw, SPLIT_RULES[spec.splits](protocol or PROTOCOLS[DEFAULT_PROTOCOL])(spec, raw, seed)


def _select(raw: Raw, part: Part) -> tuple[Any, np.ndarray]:
    items, labels = raw.splits[part[0]]
    return _take(items, part[1]), np.asarray(labels)[part[1]]


def sample_ids(raw: Raw, part: Part, root: Path | None) -> list:
    """The ids of a split's images: positions in the official file's order (array datasets;
    ``Raw.ids`` where the reader's split is a slice of a file), or paths relative to the data
    root (image files)."""
    src, idx = part
    items = raw.splits[src][0]
    if raw.ids is not None and src in raw.ids:
        return [int(raw.ids[src][i]) for i in idx]
    if isinstance(items, np.ndarray):
        return [int(i) for i in idx]
    out = []
    for i in idx:
        p = Path(items[i])
        out.append(p.relative_to(root).as_posix() if root is not None and p.is_relative_to(root)
                   else p.as_posix())
    return out


def ids_checksum(ids: list) -> str:
    """sha256 (16 hex digits) of a split's ids, one per line, in the split's order."""
    return hashlib.sha256("\n".join(map(str, ids)).encode()).hexdigest()[:16]


def split_summary(raw: Raw, parts: dict[str, Part], root: Path | None) -> dict:
    """Each split's size and the checksum of its ids (a record's ``metrics.splits``)."""
    return {k: {"n": len(part[1]), "checksum": ids_checksum(sample_ids(raw, part, root))}
            for k, part in parts.items()}


def suite_splits(configs: list[dict], root: str | None = None) -> list[dict]:
    """``bench splits``: per (dataset, protocol, run seed) of the job configurations, each
    split's exact sample ids (``sample_ids``), size and checksum. No image is decoded."""
    out, seen = [], set()
    for c in configs:
        protocol = PROTOCOLS[c.get("protocol", DEFAULT_PROTOCOL)]
        where = root or c.get("data_root")
        key = json.dumps([c["dataset"], protocol.name, c["seed"],
                          c["recipe"].get("split_seed"), where], sort_keys=True)
        if key in seen:
            continue
        seen.add(key)
        r = anchor(c["dataset"], data_root(where))
        seed = protocol.split_seed(c["seed"], c["recipe"].get("split_seed"))
        raw, parts = split_parts(c["dataset"], seed, r, protocol)
        splits = {}
        for name, part in parts.items():
            ids = sample_ids(raw, part, r)
            splits[name] = {"n": len(ids), "checksum": ids_checksum(ids), "ids": ids}
        out.append({"dataset": c["dataset"]["key"], "protocol": protocol.name, "seed": c["seed"],
                    "split_seed": c["recipe"].get("split_seed"),  # None: the run's own
                    "splits": splits})
    return out


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
        out = [(_to_size(it, size, crop_pct, interpolation, progress=progress),
                np.asarray(lab, np.int64)) for it, lab in parts.values()]
        return Splits(*out, num_classes=raw.num_classes,
                      checksum=checksum(*(a for pair in out for a in pair)), ids=summary)
    what: dict[str, Any] = {"kind": "splits", "split_seed": split_seed}
    if protocol is not None and protocol.split_cuts != Protocol.split_cuts:
        what["cuts"] = protocol.split_cuts  # other cuts, other bytes
    arrays, meta, folder, fresh = _cached(Path(cache), dataset, raw, parts, what, root, size,
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
        x = _to_size(items, size, crop_pct, interpolation, progress=progress)
        y = np.asarray(labels, np.int64)
        return Images(x, y, raw.num_classes, checksum(x, y))
    what = {"kind": "images", "split": split}
    arrays, meta, folder, fresh = _cached(Path(cache), dataset, raw, {split: raw.splits[split]},
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
    arrays, meta, folder, fresh = _cached(Path(cache), dataset, raw, {split: (items, labels)},
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


# ---------------------------------------------------------------- the data cache
#
# <cache>/data/<key>/{<split>_x.npy, <split>_y.npy, meta.json}: the decoded, resized uint8
# images of one dataset at one input size, shared by every job that needs them. The key hashes
# what determines the bytes: dataset and parameters, size, crop_pct, interpolation, the split
# seed (or split), and the identity of the source data. An entry is written in a temporary
# folder renamed into place (readers see all of it or nothing), under a file lock, so parallel
# jobs and SLURM nodes sharing the cache decode a dataset once.

CACHE_VERSION = 1  # bump when the bytes an entry holds for the same key would change
WHOLE = "whole"  # an entry's kind for training images kept whole (paper protocol)


def source_identity(raw: Raw, root: Path | None) -> str:
    """What the source data is: image files by (path under the data root, size, mtime);
    arrays read from files (CIFAR, CIFAR-10-C) or made in memory (digits) by their content.
    A replaced, added or removed file changes it; a copy elsewhere under another root does not
    (unless the copy changed the files' modification times).
    """
    h = hashlib.sha256()
    for name in sorted(raw.splits):
        items, labels = raw.splits[name]
        h.update(f"[{name}]".encode())
        if isinstance(items, np.ndarray):
            h.update(checksum(items).encode())
        else:
            for item in items:
                st = os.stat(item)
                rel = os.path.relpath(item, root) if root is not None else str(item)
                h.update(f"{rel}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
        h.update(checksum(np.asarray(labels, np.int64)).encode())
    return h.hexdigest()[:16]


def cache_key(description: dict) -> str:
    return hashlib.sha256(json.dumps(description, sort_keys=True).encode()).hexdigest()[:16]


def _read_entry(folder: Path, names) -> dict[str, tuple]:
    """Per split: (images, labels), and each image's original size for a WHOLE entry."""
    return {s: (np.load(folder / f"{s}_x.npy", mmap_mode="r", allow_pickle=False),
                np.load(folder / f"{s}_y.npy", allow_pickle=False),
                *([np.load(folder / f"{s}_hw.npy", allow_pickle=False)]
                  if (folder / f"{s}_hw.npy").is_file() else []))
            for s in names}


def _cached(cache: Path, dataset: dict, raw: Raw, parts: dict[str, tuple], what: dict,
            root: Path | None, size: int, crop_pct: float, interpolation: str,
            progress: bool | None):
    """(arrays, meta, folder, fresh): read the entry of ``parts`` at ``size``, or write it."""

    description = {"cache_version": CACHE_VERSION, "dataset": dataset["name"],
                   "params": datasets.identity(dataset)["params"], "size": size,
                   "crop_pct": crop_pct,
                   "interpolation": interpolation, **what,
                   "source": source_identity(raw, root)}
    key = cache_key(description)
    base = cache / "data"
    folder = base / key
    fresh = False
    if not (folder / "meta.json").is_file():
        with store.file_lock(base / f"{key}.lock"):
            if not (folder / "meta.json").is_file():  # nobody finished it while we waited
                _write_entry(base, key, description, raw, parts, size, crop_pct,
                             interpolation, progress)
                fresh = True
    meta = json.loads((folder / "meta.json").read_text())
    return _read_entry(folder, parts), meta, folder, fresh


def _write_entry(base: Path, key: str, description: dict, raw: Raw, parts: dict[str, tuple],
                 size: int, crop_pct: float, interpolation: str,
                 progress: bool | None) -> None:
    folder = base / key
    # We hold the lock: temporary folders of this key are leftovers of a killed writer.
    for old in base.glob(f".{key}.*"):
        shutil.rmtree(old, ignore_errors=True)
    tmp = store.temp_dir(folder)  # 0777 minus the umask, like any folder
    try:
        arrays = []
        for name, (items, labels) in parts.items():
            x = np.lib.format.open_memmap(tmp / f"{name}_x.npy", mode="w+", dtype=np.uint8,
                                          shape=(len(labels), size, size, 3))
            if description["kind"] == WHOLE:  # whole images, and their original sizes
                hw = formats.decode_whole(items, size, out=x, progress=progress)[1]
                np.save(tmp / f"{name}_hw.npy", hw)
                arrays.append(hw)
            else:
                _to_size(items, size, crop_pct, interpolation, out=x, progress=progress)
            x.flush()
            y = np.asarray(labels, np.int64)
            np.save(tmp / f"{name}_y.npy", y)
            arrays += [x, y]
        meta = {**description, "key": key, "num_classes": raw.num_classes,
                "counts": {name: len(labels) for name, (_, labels) in parts.items()},
                "checksum": checksum(*arrays),
                "created_at": store.utc_now()}
        del arrays, x  # close the memory maps before the rename
        (tmp / "meta.json").write_text(json.dumps(meta, indent=1, sort_keys=True) + "\n")
        if folder.exists():  # an entry without meta.json: never renamed into place by us
            shutil.rmtree(folder)
        os.replace(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


# ---------------------------------------------------------------- bench prepare

def prepare(configs: list[dict], cache: Path, root: str | None = None,
            download: bool = False, progress: bool = True) -> list[dict]:
    """Decode every dataset that ``configs`` (job configurations) need into the data cache.

    Targets at each model's input size with the job's split seed, and the plasticity
    reference; each once. ``root`` overrides the jobs' data root (``data_root:`` of the
    suite, else ``BENCH_DATA``). With ``download``, the missing datasets that have official files
    are downloaded first (``download_missing``).
    Returns one row per cache entry: what, where, counts, checksum, whether it was decoded now.
    """
    from bench import models

    inputs: dict[tuple[str, str], dict] = {}
    todo: dict[str, tuple] = {}
    for c in configs:
        mkey = json.dumps(c["model"], sort_keys=True)
        protocol = PROTOCOLS[c.get("protocol", DEFAULT_PROTOCOL)]
        if (mkey, protocol.name) not in inputs:
            inputs[mkey, protocol.name] = models.input_config(c["model"], protocol)
        dc = inputs[mkey, protocol.name]
        where = root or c.get("data_root")
        fmt = (dc["input_size"], dc["crop_pct"], dc["interpolation"])
        # entries of whole training images do not depend on the seed (its cuts index them)
        wanted = [("whole", c["dataset"], protocol.name) if protocol.whole_train_images
                  else ("splits", c["dataset"], [c["recipe"]["split_seed"], protocol.name])]
        if c["plasticity"]["enabled"]:
            wanted.append(("images", c["plasticity"]["reference"], "eval"))
        for kind, d, arg in wanted:
            todo.setdefault(json.dumps([kind, d, arg, fmt, where], sort_keys=True),
                            (kind, d, arg, fmt, where))
    if download:
        download_missing(configs, root, progress=progress)
    rows = []
    bar = _tqdm(todo.values(), progress)
    for kind, d, arg, (size, crop, interp), where in bar:
        if hasattr(bar, "set_description"):
            bar.set_description(f"prepare {d['key']} {size}px")
        r = data_root(where)
        dcfg = {"input_size": size, "crop_pct": crop, "interpolation": interp}
        if kind == "splits":
            s = load_splits(d, r, size, arg[0], crop, interp, cache=cache, progress=progress,
                            protocol=PROTOCOLS[arg[1]])
            counts = {n: len(getattr(s, n)[1]) for n in SPLITS}
        elif kind == "whole":
            rows += _prepare_whole(d, r, dcfg, PROTOCOLS[arg], cache, progress)
            continue
        else:
            s = load_images(d, r, size, arg, crop, interp, cache=cache, progress=progress)
            counts = {arg: len(s.y)}
        rows.append({"dataset": d["key"], "kind": kind, "size": size, "counts": counts,
                     "num_classes": s.num_classes, "checksum": s.checksum,
                     "cache_dir": str(s.cache_dir), "fresh": s.fresh})
    return rows


def _prepare_whole(dataset: dict, root: Path | None, dcfg: dict, protocol: Protocol,
                   cache: Path, progress: bool) -> list[dict]:
    """The cache entries of a target under a protocol that trains on whole images
    (``whole_sources``), one row each."""
    root = anchor(dataset, root)
    raw, parts = split_parts(dataset, 0, root, protocol)
    evals, whole = whole_sources(dataset, raw, parts, root, dcfg, cache, progress)
    size = dcfg["input_size"]
    rows = [{"dataset": dataset["key"], "kind": f"{protocol.name} eval {src}", "size": size,
             "counts": {src: len(im.y)}, "num_classes": im.num_classes, "checksum": im.checksum,
             "cache_dir": str(im.cache_dir), "fresh": im.fresh} for src, im in evals.items()]
    if not isinstance(raw.splits[parts["train"][0]][0], np.ndarray):  # arrays need no entry
        rows.append({"dataset": dataset["key"], "kind": f"{protocol.name} train (whole)",
                     "size": whole.x.shape[1], "counts": {parts["train"][0]: len(whole.x)},
                     "num_classes": raw.num_classes, "checksum": whole.checksum,
                     "cache_dir": str(whole.cache_dir), "fresh": whole.fresh})
    return rows


def download_missing(configs: list[dict], root: str | None = None, mirror: str | None = None,
                     progress: bool = True) -> list[dict]:
    """Fetch the datasets (targets and plasticity references) of ``configs`` that are not in
    place under their data root (``root`` overrides the jobs'), each once, from the official
    hosts or ``mirror`` (``BENCH_MIRROR``); one row per file fetched. Datasets that cannot be
    downloaded are left to ``check_data`` (which lists every missing one)."""
    wanted = set()
    for c in configs:
        where = root or c.get("data_root")
        wanted.add((c["dataset"]["name"], where))
        if c["plasticity"]["enabled"]:
            wanted.add((c["plasticity"]["reference"]["name"], where))
    from bench import fetch

    rows: list[dict] = []
    mirror, manifest = fetch.mirror_url(mirror), None
    for name, where in sorted(wanted, key=str):
        if DATASETS[name].folder is None or not DATASETS[name].archives:
            continue  # the digits come with scikit-learn; the others are fetched by hand
        path = data_root_path(where, name)
        if not datasets.is_present(name, path):
            if manifest is None:  # read once, and only when something is fetched
                manifest = fetch.read_manifest(mirror) if mirror else {}
            rows += [{"dataset": name, **r}
                     for r in datasets.download(name, path, mirror, progress, manifest)]
    return rows


def check_data(configs: list[dict], root: str | None = None,
               after_download: bool = False) -> None:
    """``MissingData`` for the datasets (targets and plasticity references) of ``configs``
    whose files are not in place, all of them in one error (``MissingDatasets`` when there
    are several); cheap (no decoding, no checksums), for a check before any work. ``root``
    overrides the jobs' data root as in ``prepare``; ``after_download``: say which of the
    missing ones cannot be downloaded."""
    seen = set()
    missing: list[datasets.MissingData] = []
    for c in configs:
        wanted = [c["dataset"]] + ([c["plasticity"]["reference"]]
                                   if c["plasticity"]["enabled"] else [])
        where = root or c.get("data_root")
        for d in wanted:
            spec = DATASETS[d["name"]]
            if (d["key"], where) in seen:
                continue
            seen.add((d["key"], where))
            if spec.preflight is not None:
                spec.preflight(d["params"])
            if spec.folder is None:
                continue  # not under the data root (digits come with scikit-learn)
            try:
                path = spec.first_missing(data_root_path(where, d["name"]), d["params"])
            except datasets.MissingData as e:  # no data root at all
                missing.append(e)
                continue
            if path is not None:
                by_hand = after_download and not spec.archives
                missing.append(datasets.MissingData(d["name"], path, "not found" + (
                    "; cannot be downloaded automatically" if by_hand else "")))
    if len(missing) == 1:
        raise missing[0]
    if missing:
        raise MissingDatasets(missing)


class MissingDatasets(datasets.MissingData):
    """Several datasets are missing: every one's message, in one error."""

    def __init__(self, missing: list[datasets.MissingData]):
        self.missing = list(missing)
        first = self.missing[0]
        FileNotFoundError.__init__(self, f"{len(self.missing)} datasets are missing:\n"
                                   + "\n".join(str(m) for m in self.missing))
        self.dataset, self.path, self.detail = first.dataset, first.path, first.detail

    def __reduce__(self):
        return (type(self), (self.missing,))


def data_root_path(root: str | None, name: str) -> Path:
    """The data root, or MissingData naming the layout of ``name`` when none is set."""
    return DATASETS[name].need_root(data_root(root))


def _tqdm(items, progress: bool):
    items = list(items)
    if not progress:
        return items
    from tqdm import tqdm

    return tqdm(items, unit="dataset", dynamic_ncols=True)


# ---------------------------------------------------------------- the README's dataset table



README_BEGIN, README_END = readme.markers("datasets")


def _param_text(spec: DatasetSpec) -> str:
    parts = []
    for name, (choices, default) in spec.params.items():
        valid = ", ".join(f"`{c}`" for c in choices) if choices else spec.param_docs.get(
            name, "any value")
        parts.append(f"`{name}`: {valid}" + (f" (default `{default}`)" if default is not None
                                              else " (required)"))
    return "<br>".join(parts)


def _splits_text(spec: DatasetSpec) -> str:
    if spec.splits is None:
        return "not cut: every image"
    rule = SPLIT_RULES[spec.splits]
    per = "; ".join(f"{name}: " + " ".join((rule(PROTOCOLS[name]).__doc__ or "").split())
                    .rstrip(".").replace("``", "`") for name in protocols.default_first())
    return f"`{spec.splits}`: {per}" + (
        f" (training split: `{spec.train_split}`)" if spec.train_split != "train" else "")


def datasets_table() -> str:
    """The README's table of every registered dataset: role, parameters and their valid
    values, classes, how it is split (``python -m bench.data --readme`` writes it)."""
    rows = ["| dataset | use as | what | parameters (valid values) | classes | splits |",
            "|---|---|---|---|---|---|"]
    for name, spec in DATASETS.items():
        classes = str(spec.num_classes) if spec.num_classes else "class folders"
        rows.append(f"| `{name}` | {', '.join(spec.kinds)} | {spec.description} | "
                    f"{_param_text(spec) or 'none'} | {classes} | {_splits_text(spec)} |")
    return "\n".join(rows) + "\n"


def layouts_table() -> str:
    """The README's table of the datasets read from the data root: each one's official layout
    and where to get it, from the same specification the error messages print."""
    rows = ["| dataset | layout under the data root | where to get it |", "|---|---|---|"]
    for name, spec in DATASETS.items():
        if spec.folder is None:
            continue
        layout = "<br>".join(f"`{line.strip()}`" for line in spec.layout.splitlines()
                             if line.strip())
        rows.append(f"| `{name}` | {layout} | {spec.source} |")
    return "\n".join(rows) + "\n"


README_TABLES = {"datasets": datasets_table, "layouts": layouts_table}


def readme_with_table(text: str) -> str:
    """``text`` (the README) with each generated table whose markers it has replaced."""
    return readme.with_parts(text, readme_parts())


def readme_parts() -> dict[str, str]:
    """The README's dataset tables, rendered, by marker name."""
    return {name: render() for name, render in README_TABLES.items()}


if __name__ == "__main__":
    readme.main("data", "dataset tables", readme_parts)
