"""The data cache: decoded, resized uint8 images of one dataset at one input size, written
once and shared by every job that needs them.

``<cache>/data/<key>/{<split>_x.npy, <split>_y.npy, meta.json}``. The key hashes what
determines the bytes: dataset and parameters, size, crop_pct, interpolation, the split seed (or
split), and the identity of the source data. An entry is written in a temporary folder renamed
into place (readers see all of it or nothing), under a file lock, so parallel jobs and SLURM
nodes sharing the cache decode a dataset once. Torch-free.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from bench.core import files
from bench.data import datasets, formats
from bench.data.spec import Raw

CACHE_VERSION = 1  # bump when the bytes an entry holds for the same key would change
WHOLE = "whole"  # an entry's kind for training images kept whole (paper protocol)


def to_size(items: Any, size: int, crop_pct: float, interpolation: str,
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


def cached(cache: Path, dataset: dict, raw: Raw, parts: dict[str, tuple], what: dict,
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
        with files.file_lock(base / f"{key}.lock"):
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
    tmp = files.temp_dir(folder)  # 0777 minus the umask, like any folder
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
                to_size(items, size, crop_pct, interpolation, out=x, progress=progress)
            x.flush()
            y = np.asarray(labels, np.int64)
            np.save(tmp / f"{name}_y.npy", y)
            arrays += [x, y]
        meta = {**description, "key": key, "num_classes": raw.num_classes,
                "counts": {name: len(labels) for name, (_, labels) in parts.items()},
                "checksum": checksum(*arrays),
                "created_at": files.utc_now()}
        del arrays, x  # close the memory maps before the rename
        (tmp / "meta.json").write_text(json.dumps(meta, indent=1, sort_keys=True) + "\n")
        if folder.exists():  # an entry without meta.json: never renamed into place by us
            shutil.rmtree(folder)
        os.replace(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
