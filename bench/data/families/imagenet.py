"""The ImageNet family: the ILSVRC2012 validation images in wnid folders, the plasticity
reference, its spec and fake copy."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bench.data import formats
from bench.data.spec import DatasetSpec, Fake, Raw, image_folder


def read_imagenet_val(root: Path | str) -> tuple[list[Path], np.ndarray, list[str]]:
    """ImageNet validation: image paths, labels (sorted wnids, the standard order), wnids."""
    return image_folder(IMAGENET_VAL, IMAGENET_VAL.dir(root))


def _fake_imagenet_val(folder: Path, fake: Fake) -> None:
    k = 0
    for c in range(fake.n_classes):
        for _ in range(fake.n_per_class):
            k += 1
            h, w = fake.dims(k)
            path = folder / f"n{c:08d}" / f"ILSVRC2012_val_{k:08d}.JPEG"
            # a few official validation images are grayscale
            formats.write_jpg(path, fake.image(c, h, w), "L" if k == 1 else "RGB")


IMAGENET_VAL = DatasetSpec(
    "imagenet_val", ("reference",), "ImageNet validation images (plasticity reference)",
    lambda root, p: Raw({"eval": read_imagenet_val(root)[:2]}), num_classes=1000,
    folder="imagenet/val",
    layout="<root>/imagenet/val/<wnid>/<image>.JPEG   (ILSVRC2012 validation, 50,000 images "
    "in\n1,000 class folders; the official tar is flat: sort it into wnid folders with the\n"
    "usual valprep.sh, or let torchvision.datasets.ImageNet(split='val') do it)",
    source="https://image-net.org/ (ILSVRC2012_img_val.tar, needs an account); "
    "not downloadable automatically: fetch it by hand",
    files=("",), fake=_fake_imagenet_val, counts=lambda p: {"eval": 50_000})

SPECS = (IMAGENET_VAL,)
