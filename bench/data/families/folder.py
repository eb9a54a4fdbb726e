"""The folder family: your own images, a folder of class folders (or train/ and test/ of
them), with its checks, notes, fingerprint and spec."""

from __future__ import annotations

import functools
import hashlib
import os
from pathlib import Path

import numpy as np

from bench.core.config import LOCATED_PARAMS
from bench.data import formats
from bench.data.formats import MissingFile
from bench.data.spec import DatasetSpec, Raw

FOLDER_LAYOUT = ("<path>/<class>/<image>   (one folder of class folders, cut 80/20 into "
                 "train/test)\nor <path>/train/<class>/<image> and <path>/test/<class>/<image>")


def _subdirs(folder: Path) -> list[str]:
    return sorted(e.name for e in os.scandir(folder) if e.is_dir() and not e.name.startswith("."))


def _has_split_layout(folder: Path) -> bool:
    return (folder / "train").is_dir() and (folder / "test").is_dir()


def _class_counts(folder: Path) -> dict[str, int]:
    """Class folder -> its number of image files (those ``read_image_folder`` reads)."""
    return {c: formats.count_images(folder / c) for c in _subdirs(folder)}


def _folder_problems(path: Path) -> list[str]:
    """What makes a folder dataset unusable: train/ and test/ with other class folders, fewer
    than 2 classes, a class folder without images (it would be a class never seen)."""
    if _has_split_layout(path):
        train, test = _subdirs(path / "train"), _subdirs(path / "test")
        if train != test:
            only = sorted(set(train) ^ set(test))
            return [f"{path}/train and {path}/test must hold the same class folders; in one "
                    f"only: {', '.join(only)}"]
        parts = [path / "train", path / "test"]
    else:
        parts = [path]
    classes = _subdirs(parts[0])
    if len(classes) < 2:
        return [f"{path} has {len(classes)} class folder(s), at least 2 are needed; expected "
                f"{FOLDER_LAYOUT}"]
    return [f"class folder {part / c} has no image files ({', '.join(formats.IMAGE_EXTENSIONS)})"
            f": add images or remove the folder (it would be a class of its own)"
            for part in parts for c, n in _class_counts(part).items() if n == 0]


def _check_folder(params: dict, base: Path) -> tuple[dict, list[tuple[str, str]]]:
    """``path`` resolved against the suite file's folder; it exists, has 2+ classes and no
    empty class folder; ``images``, the fingerprint of its images, is added (the dataset key)."""
    given = params["path"]
    if not isinstance(given, str) or not given.strip():
        return params, [("path", f"must be a folder path (a string), got {given!r}")]
    path = Path(os.path.abspath(base / Path(given).expanduser()))
    resolved = {**params, "path": str(path)}
    where = "" if Path(given).expanduser().is_absolute() else \
        f" (relative paths start at the suite file's folder, {Path(os.path.abspath(base))})"
    if not path.is_dir():
        return resolved, [("path", f"folder {path} not found{where}; expected {FOLDER_LAYOUT}")]
    problems = _folder_problems(path)
    if problems:
        return resolved, [("path", p) for p in problems]
    return {**resolved, "images": folder_fingerprint(path)}, []


def folder_fingerprint(path: Path | str) -> str:
    """16 hex digits of sha256 over every image the reader reads: its path under the folder
    (class and split included) and the md5 of its bytes. Moving or copying the folder keeps
    it; adding, removing, renaming or changing an image changes it."""
    path = Path(path)
    raw = read_folder(path)
    items = raw.splits["eval"][0]
    stats = tuple((Path(p).relative_to(path).as_posix(), *_stat(p)) for p in items)
    return _fingerprint(str(path), stats)


def _stat(p: Path) -> tuple[int, int]:
    st = os.stat(p)
    return st.st_size, st.st_mtime_ns


@functools.lru_cache(maxsize=16)
def _fingerprint(path: str, stats: tuple) -> str:
    # the stats are in the key: a folder whose files changed is hashed again
    h = hashlib.sha256()
    for rel, *_ in stats:
        h.update(f"{rel}\0{formats.md5_of(Path(path) / rel, cache=False)}\n".encode())
    return h.hexdigest()[:16]


def stratum_80(n: int) -> int:
    """How many of a class's ``n`` images the 80% part of a stratified cut takes: int(0.8 n),
    but at least 1 and, from 2 images on, at most n - 1, so that every class with 2 or more
    images is in both parts (a class of 1 stays in the 80% part: it is at least trained on)."""
    return max(1, min(int(0.8 * n), n - 1)) if n else 0


def _folder_notes(params: dict) -> list[str]:
    """The classes that the clean protocol's stratified cuts cannot put in every split."""
    path = Path(params["path"])
    if _has_split_layout(path):
        counts = {c: {"train": stratum_80(n), "val": n - stratum_80(n)}
                  for c, n in _class_counts(path / "train").items()}
    else:
        counts = {}
        for c, n in _class_counts(path).items():
            pool = stratum_80(n)
            counts[c] = {"train": stratum_80(pool), "val": pool - stratum_80(pool),
                         "test": n - pool}
    notes = []
    for c, parts in counts.items():
        absent = [s for s, k in parts.items() if k == 0]
        if absent:
            n = sum(parts.values())
            notes.append(f"{path}: class {c!r} has {n} image(s): not in {' or '.join(absent)} "
                         f"(a class needs 2 images to be in both parts of a cut, "
                         f"{3 if 'test' in parts else 2} to be in every split)")
    return notes


def read_folder(path: Path | str) -> Raw:
    """A folder dataset: ``train`` (and ``test`` for the train/test layout) and ``eval`` (every
    image: the plasticity reference), labels by sorted class folder (ImageFolder order)."""
    path = Path(path)
    if not _has_split_layout(path):
        items, labels, classes = formats.read_image_folder(path)
        return Raw({"train": (items, labels), "eval": (items, labels)}, len(classes))
    tr_items, tr_labels, classes = formats.read_image_folder(path / "train")
    te_items, te_labels, te_classes = formats.read_image_folder(path / "test")
    if te_classes != classes:
        raise MissingFile(path / "test", "", f"{path}/train and {path}/test must hold the same "
                          "class folders")
    return Raw({"train": (tr_items, tr_labels), "test": (te_items, te_labels),
                "eval": (tr_items + te_items, np.concatenate([tr_labels, te_labels]))},
               len(classes))


def _preflight_folder(params: dict) -> None:
    raw = read_folder(params["path"])
    formats.check_images(sorted({p for items, _ in raw.splits.values() for p in items}))


def _folder_label(path: object) -> str:
    """A folder dataset's one label everywhere (tables, figures, site, ``bench plan``): the
    folder's name as the suite gives it (``data/shapes/`` -> ``shapes``), the path itself
    where it has no name (``.``)."""
    name = Path(str(path)).name
    return name if name not in ("", ".", "..") else str(path)


FOLDER = DatasetSpec(
    "folder", ("target", "reference"), "your own images: a folder of class folders (classes in "
    "sorted folder order); with train/ and test/ inside, those are the splits, else a seeded "
    "80/20 cut makes the test split",
    lambda root, p: read_folder(p["path"]), params={"path": (None, None)},
    param_docs={"path": "a folder; relative: from the suite file's folder"},
    splits="official_or_cut", layout=FOLDER_LAYOUT, check=_check_folder,
    preflight=_preflight_folder, located=LOCATED_PARAMS, notes=_folder_notes,
    default_label=lambda p: _folder_label(p["path"]))

SPECS = (FOLDER,)
