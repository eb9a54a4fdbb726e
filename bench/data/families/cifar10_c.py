"""The CIFAR-10-C family: one of 19 corruptions at one severity, read from the release's
``.npy`` files (memory-mapped), its spec and fake copy."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bench.data.fetch import Archive
from bench.data.formats import UnreadableFile
from bench.data.spec import DatasetSpec, Fake, Raw, check_name, read_official, require

CIFAR10C_CORRUPTIONS: tuple[str, ...] = (
    # the 15 benchmark corruptions of Hendrycks & Dietterich (2019)
    "gaussian_noise", "shot_noise", "impulse_noise",
    "defocus_blur", "glass_blur", "motion_blur", "zoom_blur",
    "snow", "frost", "fog", "brightness",
    "contrast", "elastic_transform", "pixelate", "jpeg_compression",
    # the 4 extra ones shipped in the same release (held out in the original paper)
    "speckle_noise", "gaussian_blur", "spatter", "saturate",
)  # fmt: skip


def read_cifar10_c(root: Path | str, corruption: str,
                   severity: int) -> tuple[np.ndarray, np.ndarray]:
    """One corruption at one severity (1..5) of CIFAR-10-C: uint8 (n, 32, 32, 3), int64 (n,).

    n is a fifth of the file's rows (10,000 in the official release): severity s is rows
    (s-1)*n to s*n, and its labels are the same rows of labels.npy.
    """
    check_name("CIFAR-10-C corruption", corruption, CIFAR10C_CORRUPTIONS)
    if severity not in (1, 2, 3, 4, 5) or isinstance(severity, (bool, float)):
        raise ValueError(f"CIFAR-10-C severity must be an integer 1..5, got {severity!r}")
    folder = CIFAR10_C.dir(root)
    path = require(CIFAR10_C, folder / f"{corruption}.npy")
    labels_path = require(CIFAR10_C, folder / "labels.npy")
    # mmap: a corruption file is 150 MB and only a fifth of it is needed
    data = read_official(CIFAR10_C, path,
                         lambda p: np.load(p, mmap_mode="r", allow_pickle=False))
    labels = read_official(CIFAR10_C, labels_path,
                           lambda p: np.load(p, mmap_mode="r", allow_pickle=False))
    source = CIFAR10_C.source
    if data.ndim != 4 or data.shape[1:] != (32, 32, 3) or len(data) % 5:
        raise UnreadableFile(path, f"expected (5*n, 32, 32, 3) images, found {data.shape}",
                             source)
    if len(labels) != len(data):
        raise UnreadableFile(labels_path, f"{len(labels)} labels for {len(data)} images in "
                             f"{path}", source)
    n = len(data) // 5
    rows = slice((severity - 1) * n, severity * n)
    return np.array(data[rows], dtype=np.uint8), np.array(labels[rows], dtype=np.int64)


def _cifar10_c_raw(xy: tuple[np.ndarray, np.ndarray], severity: int) -> Raw:
    """One severity's rows; their ids are their rows in the official files."""
    n = len(xy[1])
    return Raw({"train": xy}, ids={"train": np.arange(n) + (severity - 1) * n})


def _fake_cifar10_c(folder: Path, fake: Fake) -> None:
    labels = np.repeat(np.arange(fake.n_classes), fake.n_per_class)
    fake.rng.shuffle(labels)
    # the official labels.npy is uint8: the test labels repeated for the 5 severities
    np.save(folder / "labels.npy", np.tile(labels, 5).astype(np.uint8))
    for corruption in CIFAR10C_CORRUPTIONS:
        np.save(folder / f"{corruption}.npy",
                np.stack([fake.image(int(y)) for _ in range(5) for y in labels]))


CIFAR10_C = DatasetSpec(
    "cifar10_c", ("target",), "CIFAR-10-C, one corruption at one severity",
    lambda root, p: _cifar10_c_raw(read_cifar10_c(root, p["corruption"], p["severity"]),
                                   p["severity"]),
    params={"corruption": (CIFAR10C_CORRUPTIONS, None), "severity": ((1, 2, 3, 4, 5), 5)},
    num_classes=10, splits="cut_test", folder="CIFAR-10-C",
    layout="<root>/CIFAR-10-C/<corruption>.npy   (50,000 x 32 x 32 x 3 uint8: severities "
    "1..5,\n                                      10,000 images each, in that order)\n"
    "<root>/CIFAR-10-C/labels.npy         (50,000 labels, the test labels 5 times)",
    source="https://zenodo.org/records/2535967 (CIFAR-10-C.tar, about 2.9 GB); "
    "or `bench prepare --download`",
    files=("labels.npy", "{corruption}.npy"), fake=_fake_cifar10_c,
    counts=lambda p: {"train": 10_000}, arrays=True,  # one severity's rows
    # md5 as listed on the Zenodo record (2,918,471,680 bytes)
    archives=(Archive("https://zenodo.org/records/2535967/files/CIFAR-10-C.tar",
                      "56bf5dcef84df0e2308c6dcbcbbd8499", size=2_918_471_680),))

SPECS = (CIFAR10_C,)
