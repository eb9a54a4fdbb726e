"""The CIFAR family: CIFAR-10 and CIFAR-100 from the official python pickles (md5-checked),
their specs and fake copies."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from bench.data import formats
from bench.data.fetch import Archive
from bench.data.formats import ChecksumMismatch
from bench.data.spec import DatasetSpec, Fake, Raw, check_name, read_official, require


def _cifar_files(which: str, split: str) -> list[str]:
    # the official test file is the one whose name starts with "test"
    return [f for f in CIFAR[which].md5 if f.startswith("test") == (split == "test")]


def read_cifar(root: Path | str, which: str, split: str,
               verify_md5: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """CIFAR-10 or CIFAR-100 ``split`` as (uint8 images (N, 32, 32, 3), int64 labels (N,)).

    ``which`` is "cifar10" or "cifar100", ``split`` "train" or "test"; CIFAR-100 labels are the
    100 fine labels. With ``verify_md5`` every file must match the official release's md5 (the
    values torchvision checks), else ``ChecksumMismatch``; pass False for copies that are not
    the official files, e.g. the small ones ``write_fake_layout`` writes.
    """
    check_name("CIFAR dataset", which, ("cifar10", "cifar100"))
    check_name("CIFAR split", split, ("train", "test"))
    spec = CIFAR[which]
    label_key = "labels" if which == "cifar10" else "fine_labels"
    images, labels = [], []
    for filename in _cifar_files(which, split):
        path = require(spec, spec.dir(root) / filename)
        if verify_md5:
            got = formats.md5_of(path)
            if got != spec.md5[filename]:
                raise ChecksumMismatch(
                    f"{path}: md5 {got}, the official file's is {spec.md5[filename]}; "
                    f"re-download it ({spec.source}), or pass verify_md5=False for a "
                    "non-official copy (BENCH_VERIFY_MD5=0 for the benchmark's loaders)")
        x, y = read_official(spec, path, lambda p: formats.read_cifar_pickle(p, label_key))
        images.append(x)
        labels.append(y)
    return np.concatenate(images), np.concatenate(labels)


def _reader_cifar(which: str) -> Callable[[Path | None, dict], Raw]:
    def read(root: Path | None, params: dict) -> Raw:
        verify = formats.verify_md5_default()
        return Raw({s: read_cifar(root, which, s, verify_md5=verify) for s in ("train", "test")})
    return read


def _fake_cifar(which: str) -> Callable[[Path, Fake], None]:
    def write(folder: Path, fake: Fake) -> None:
        label_key = "labels" if which == "cifar10" else "fine_labels"
        for split in ("train", "test"):
            for filename in _cifar_files(which, split):
                labels = np.repeat(np.arange(fake.n_classes), fake.n_per_class)
                fake.rng.shuffle(labels)
                hwc = np.stack([fake.image(int(y)) for y in labels])
                formats.write_cifar_pickle(folder / filename, hwc, labels, label_key,
                                           f"fake {split} {filename}")
        formats.write_cifar_meta(folder, which == "cifar100", fake.n_classes)
    return write


def _cifar_spec(which: str, description: str, num_classes: int, folder: str, layout: str,
                md5: dict[str, str], tv_class: str, archive: Archive) -> DatasetSpec:
    return DatasetSpec(
        which, ("target",), description, _reader_cifar(which), num_classes=num_classes,
        splits="official", folder=folder, layout=layout,
        source=f"https://www.cs.toronto.edu/~kriz/cifar.html; torchvision.datasets.{tv_class}; "
        "or `bench prepare --download`",
        files=tuple(md5), md5=md5, archives=(archive,), fake=_fake_cifar(which),
        counts=lambda p: {"train": 50_000, "test": 10_000}, arrays=True)


# The official files' md5s, the same values torchvision checks.
CIFAR10 = _cifar_spec(
    "cifar10", "CIFAR-10", 10, "cifar-10-batches-py",
    "<root>/cifar-10-batches-py/data_batch_1 ... data_batch_5   (train, 5 x 10,000 images)\n"
    "<root>/cifar-10-batches-py/test_batch                      (test, 10,000 images)\n"
    "python pickles with 'data' (N x 3072 uint8, CHW order) and 'labels'",
    {"data_batch_1": "c99cafc152244af753f735de768cd75f",
     "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
     "data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
     "data_batch_4": "634d18415352ddfa80567beed471001a",
     "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb",
     "test_batch": "40351d587109b95175f43aff81a1287e"}, "CIFAR10",
    Archive("https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
            "c58f30108f718f92721af3b95e74349a"))
CIFAR100 = _cifar_spec(
    "cifar100", "CIFAR-100", 100, "cifar-100-python",
    "<root>/cifar-100-python/train   (50,000 images)\n"
    "<root>/cifar-100-python/test    (10,000 images)\n"
    "python pickles with 'data' (N x 3072 uint8, CHW order) and 'fine_labels'",
    {"train": "16019d7e3df5f24257cddd939b257f8d",
     "test": "f0ef6b0ae62326f3e7ffdfab6717acfc"}, "CIFAR100",
    Archive("https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
            "eb9058c3a382ffc7106e4002c42a8d85"))
CIFAR = {"cifar10": CIFAR10, "cifar100": CIFAR100}

SPECS = (CIFAR10, CIFAR100)
