"""The DomainNet family: one of six domains (cleaned release) as a class-per-folder target,
its spec and fake copy."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bench.data import formats
from bench.data.spec import DatasetSpec, Fake, Raw, check_name, image_folder

DOMAINNET_DOMAINS: tuple[str, ...] = (
    "clipart", "infograph", "painting", "quickdraw", "real", "sketch",
)  # fmt: skip
# Images per domain of the cleaned release (train + test on the dataset page's table,
# http://ai.bu.edu/M3SDA/; 586,575 in all).
DOMAINNET_IMAGES = {"clipart": 48_129, "infograph": 51_605, "painting": 72_266,
                    "quickdraw": 172_500, "real": 172_947, "sketch": 69_128}


def read_domainnet(root: Path | str, domain: str) -> tuple[list[Path], np.ndarray, list[str]]:
    """One DomainNet domain: image paths, labels (sorted class folders), class names."""
    check_name("DomainNet domain", domain, DOMAINNET_DOMAINS)
    return image_folder(DOMAINNET, DOMAINNET.dir(root) / domain)


def _read_domainnet(root: Path | None, params: dict) -> Raw:
    items, labels, classes = read_domainnet(root, params["domain"])
    return Raw({"train": (items, labels)}, len(classes))


def _fake_domainnet(folder: Path, fake: Fake) -> None:
    for domain in DOMAINNET_DOMAINS:
        for c in range(fake.n_classes):
            for j in range(fake.n_per_class):
                h, w = fake.dims(j)
                path = folder / domain / f"class_{c:03d}" / f"{domain}_{c:03d}_{j + 1:06d}.jpg"
                # quickdraw images are black-and-white drawings: exercise the gray path
                formats.write_jpg(path, fake.image(c, h, w), "L" if domain == "quickdraw"
                                  else "RGB")


DOMAINNET = DatasetSpec(
    "domainnet", ("target",), "DomainNet, one domain", _read_domainnet,
    params={"domain": (DOMAINNET_DOMAINS, None)}, splits="cut_test", folder="domainnet",
    layout="<root>/domainnet/<domain>/<class>/<image>.jpg   (the official per-domain zip files\n"
    "unpacked side by side; domains: " + ", ".join(DOMAINNET_DOMAINS) + ")",
    source="http://ai.bu.edu/M3SDA/ (the 'cleaned' per-domain zip files); "
    "not downloadable automatically: fetch and unzip them by hand",
    files=("", "{domain}"), fake=_fake_domainnet,
    counts=lambda p: {"train": DOMAINNET_IMAGES[p["domain"]]})

SPECS = (DOMAINNET,)
