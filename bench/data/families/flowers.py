"""The Oxford Flowers102 family: 102 classes with the official train / val / test ids from
the release's ``.mat`` files, its spec and fake copy."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bench.data import formats
from bench.data.fetch import Archive
from bench.data.formats import UnreadableFile
from bench.data.spec import (
    DatasetSpec,
    Fake,
    Raw,
    check_name,
    read_official,
    require,
    require_files,
)


def read_flowers102(root: Path | str, split: str) -> tuple[list[Path], np.ndarray]:
    """Flowers102 ``split`` ("train", "val" or "test"): image paths and labels 0..101."""
    from scipy.io import loadmat  # scipy is slow to import and only needed here

    keys = {"train": "trnid", "val": "valid", "test": "tstid"}
    check_name("Flowers102 split", split, tuple(keys))
    folder = FLOWERS102.dir(root)
    setid = read_official(FLOWERS102, folder / "setid.mat",
                          lambda p: _mat_arrays(loadmat(p), p, tuple(keys.values())))
    all_labels = read_official(FLOWERS102, folder / "imagelabels.mat",
                               lambda p: _mat_arrays(loadmat(p), p, ("labels",)))
    jpg = require(FLOWERS102, folder / "jpg")
    # ravel, not squeeze_me: a one-element split would squeeze to a scalar
    ids = np.asarray(setid[keys[split]]).ravel().astype(np.int64)
    per_image = np.asarray(all_labels["labels"]).ravel().astype(np.int64) - 1
    if len(ids) and (ids.min() < 1 or ids.max() > len(per_image)):
        raise UnreadableFile(folder / "setid.mat", f"image ids outside 1..{len(per_image)}",
                             FLOWERS102.source)
    paths = [jpg / f"image_{i:05d}.jpg" for i in ids]
    require_files(FLOWERS102, paths)
    return paths, per_image[ids - 1]


def _mat_arrays(mat: dict, path: Path, keys: tuple[str, ...]) -> dict:
    missing = [k for k in keys if k not in mat]
    if missing:
        raise KeyError(f"no {', '.join(missing)} in it")
    return mat


def _fake_flowers102(folder: Path, fake: Fake) -> None:
    from scipy.io import savemat

    labels = np.repeat(np.arange(fake.n_classes), 3 * fake.n_per_class)
    fake.rng.shuffle(labels)
    for i, y in enumerate(labels, 1):
        h, w = fake.dims(i)
        formats.write_jpg(folder / "jpg" / f"image_{i:05d}.jpg", fake.image(int(y), h, w))
    # per class, n_per_class ids go to each split, in shuffled order as in the release
    ids: dict[str, list[int]] = {"trnid": [], "valid": [], "tstid": []}
    n = fake.n_per_class
    for c in range(fake.n_classes):
        members = fake.rng.permutation(np.flatnonzero(labels == c) + 1)
        for s, key in enumerate(ids):
            ids[key] += members[s * n: (s + 1) * n].tolist()
    savemat(folder / "imagelabels.mat", {"labels": (labels + 1)[None].astype(np.uint8)})
    savemat(folder / "setid.mat", {k: np.asarray(v, dtype=np.uint16)[None]
                                   for k, v in ids.items()})


_FLOWERS = "https://www.robots.ox.ac.uk/~vgg/data/flowers/102"
FLOWERS102 = DatasetSpec(
    "flowers102", ("target",), "Oxford Flowers102",
    lambda root, p: Raw({s: read_flowers102(root, s) for s in ("train", "val", "test")}),
    num_classes=102, splits="official", folder="flowers-102",
    layout="<root>/flowers-102/jpg/image_00001.jpg ... image_08189.jpg\n"
    "<root>/flowers-102/imagelabels.mat   (key 'labels', 1-based, one per image)\n"
    "<root>/flowers-102/setid.mat         (keys 'trnid', 'valid', 'tstid': 1-based image ids)",
    source="https://www.robots.ox.ac.uk/~vgg/data/flowers/102/; "
    "torchvision.datasets.Flowers102; or `bench prepare --download`",
    files=("setid.mat", "imagelabels.mat", "jpg"),
    fake=_fake_flowers102, counts=lambda p: {"train": 1_020, "val": 1_020, "test": 6_149},
    archives=(Archive(f"{_FLOWERS}/102flowers.tgz", "52808999861908f626f3c1f4e79d11fa",
                      "flowers-102"),
              Archive(f"{_FLOWERS}/imagelabels.mat", "e0620be6f572b9609742df49c70aed4d",
                      "flowers-102", extract=False),
              Archive(f"{_FLOWERS}/setid.mat", "a5357ecc9cb78c4bef273ce3793fc85c",
                      "flowers-102", extract=False)))

SPECS = (FLOWERS102,)
