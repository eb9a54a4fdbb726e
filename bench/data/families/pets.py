"""The Oxford-IIIT Pet family: 37 breeds from the official images and annotation lists, its
spec and fake copy."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bench.data import formats
from bench.data.fetch import Archive
from bench.data.formats import UnreadableFile
from bench.data.spec import DatasetSpec, Fake, Raw, check_name, require, require_files


def read_pets(root: Path | str, split: str) -> tuple[list[Path], np.ndarray]:
    """Oxford-IIIT Pet ``split`` ("trainval" or "test"): image paths and labels 0..36."""
    check_name("Oxford-IIIT Pet split", split, ("trainval", "test"))
    folder = PETS.dir(root)
    ann = require(PETS, folder / "annotations" / f"{split}.txt")
    images = require(PETS, folder / "images")
    paths, labels = [], []
    for lineno, line in enumerate(ann.read_text().splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        fields = line.split()
        if len(fields) != 4 or not fields[1].isdigit() or not 1 <= int(fields[1]) <= 37:
            raise UnreadableFile(ann, f"line {lineno}: expected 'image_id class species "
                                 f"breed' with class 1..37, found {line!r}",
                                 PETS.source)
        paths.append(images / f"{fields[0]}.jpg")
        labels.append(int(fields[1]) - 1)
    require_files(PETS, paths)
    return paths, np.asarray(labels, dtype=np.int64)


def _fake_pets(folder: Path, fake: Fake) -> None:
    # official names: cats capitalised, dogs lower case, '_' inside breed names
    breeds = [f"Cat_breed_{c}" if c % 2 == 0 else f"dog_breed_{c}" for c in range(fake.n_classes)]
    listing = ["#Image CLASS-ID SPECIES BREED ID", "#ID: 1:37 Class ids",
               "#SPECIES: 1:Cat 2:Dog", "#BREED ID: 1-25:Cat 1:12:Dog"]  # fmt: skip
    lines: dict[str, list[str]] = {"trainval": [], "test": []}
    k = 0
    for c, breed in enumerate(breeds):
        for j in range(2 * fake.n_per_class):
            image_id = f"{breed}_{j + 1}"
            line = f"{image_id} {c + 1} {1 if c % 2 == 0 else 2} {c // 2 + 1}"
            lines["trainval" if j < fake.n_per_class else "test"].append(line)
            listing.append(line)
            h, w = fake.dims(k)
            k += 1
            formats.write_jpg(folder / "images" / f"{image_id}.jpg", fake.image(c, h, w))
    (folder / "annotations").mkdir(parents=True, exist_ok=True)
    for split, split_lines in lines.items():
        (folder / "annotations" / f"{split}.txt").write_text("\n".join(split_lines) + "\n")
    (folder / "annotations" / "list.txt").write_text("\n".join(listing) + "\n")


PETS = DatasetSpec(
    "pets", ("target",), "Oxford-IIIT Pet",
    lambda root, p: Raw({s: read_pets(root, s) for s in ("trainval", "test")}),
    num_classes=37, splits="official", train_split="trainval", folder="oxford-iiit-pet",
    layout="<root>/oxford-iiit-pet/images/<Breed>_<n>.jpg\n"
    "<root>/oxford-iiit-pet/annotations/trainval.txt   (lines 'Abyssinian_100 1 1 1':\n"
    "<root>/oxford-iiit-pet/annotations/test.txt        image id, class 1..37, species, breed)",
    source="https://www.robots.ox.ac.uk/~vgg/data/pets/; torchvision.datasets.OxfordIIITPet; "
    "or `bench prepare --download`",
    files=("annotations/trainval.txt", "annotations/test.txt", "images"),
    fake=_fake_pets, counts=lambda p: {"trainval": 3_680, "test": 3_669},
    archives=(Archive("https://www.robots.ox.ac.uk/~vgg/data/pets/data/images.tar.gz",
                      "5c4f3ee8e5d25df40f4fd59a7f44e54c", "oxford-iiit-pet"),
              Archive("https://www.robots.ox.ac.uk/~vgg/data/pets/data/annotations.tar.gz",
                      "95a8c909bbe2e81eed6a22bccdf3f68f", "oxford-iiit-pet")))

SPECS = (PETS,)
