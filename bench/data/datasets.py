"""The dataset registry: every dataset's specification, registered once, and what is asked of
it by name (keys, labels, identity, folders, download, fake copies).

What a dataset is (``DatasetSpec``) is ``bench.data.spec``; each family's reader and specs
are a module of their own in ``bench.data.families`` (digits, cifar, cifar10_c, pets, flowers,
domainnet, imagenet, folder), registered here in the order of ``families.FAMILIES`` (the docs'
tables follow it). Adding a dataset means writing its family module and adding it there.
Generic file formats (CIFAR pickles, image folders, the evaluation decode) are in
``bench.data.formats``. Module level is torch-free: suites validate against this registry
without it (``download`` fetches with the standard library, ``bench.data.fetch``).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from bench.core.registry import Registry
from bench.data.families import FAMILIES
from bench.data.spec import KINDS, DatasetSpec, Fake

DATASETS: Registry[DatasetSpec] = Registry("dataset")


def register(spec: DatasetSpec) -> DatasetSpec:
    if not set(spec.kinds) <= set(KINDS):
        raise ValueError(f"{spec.name}: kinds must be among {KINDS}, got {spec.kinds}")
    return DATASETS.register(spec.name, spec)


# Each family module declares its specs (``SPECS``); the registry holds them in FAMILIES' order.
for _spec in (spec for family in FAMILIES for spec in family.SPECS):
    register(_spec)


def file_datasets() -> tuple[str, ...]:
    """The datasets read from an official layout under the data root."""
    return tuple(n for n, s in DATASETS.items() if s.folder is not None)


def dataset_key(name: str, params: dict) -> str:
    """The one name of a dataset with its parameters: ``cifar10_c/snow/5``; a folder dataset's
    is ``folder/<fingerprint of its images>``. Parameters that say where the data lies
    (``DatasetSpec.located``) are left out, so the key does not depend on where it is."""
    located = DATASETS[name].located if name in DATASETS else ()
    return "/".join([name, *(str(params[k]) for k in sorted(params) if k not in located)])


def identity(entry: dict) -> dict:
    """A dataset entry of a job configuration ({name, key, params}) without its located
    parameters: what the job id hashes."""
    spec = DATASETS[entry["name"]]
    if not spec.located:
        return entry
    return {**entry, "params": {k: v for k, v in entry["params"].items()
                                if k not in spec.located}}


def dataset_label(entry: Mapping) -> str:
    """How tables, figures and the site name a job's dataset (``config["dataset"]``): the
    suite's ``label:``, else its specification's default label (a folder dataset: the
    folder's name), else its key."""
    if entry.get("label"):
        return entry["label"]
    spec = DATASETS[entry["name"]] if entry["name"] in DATASETS else None
    if spec is not None and spec.default_label is not None and entry.get("params"):
        return spec.default_label(entry["params"])
    return entry["key"]


def dataset_dir(name: str, root: Path | str) -> Path:
    """The folder under ``root`` where dataset ``name`` lives in its official layout."""
    return DATASETS[name].dir(root)


def data_root(config_root: str | None) -> Path | None:
    """The data root: a suite's ``data_root:`` (or --data-root), else ``BENCH_DATA``."""
    root = config_root or os.environ.get("BENCH_DATA")
    return Path(root).expanduser() if root else None


def data_root_path(root: str | None, name: str) -> Path:
    """The data root, or MissingData naming the layout of ``name`` when none is set."""
    return DATASETS[name].need_root(data_root(root))


def is_present(name: str, root: Path | str) -> bool:
    """Whether the files ``name``'s readers need first are in place (a cheap check, no md5)."""
    return DATASETS[name].first_missing(root) is None


def download(name: str, root: Path | str, mirror: str | None = None,
             progress: bool = False, manifest: dict | None = None) -> list[dict]:
    """Put dataset ``name`` under ``root`` in its official layout from its official files
    (``archives``: from their hosts, or from ``mirror`` / ``BENCH_MIRROR``), verified and
    extracted by ``bench.data.fetch`` (``manifest``: the mirror's, if already read); returns what
    was fetched (file, url, checksum used). For a
    dataset without archives that is not in place, ``MissingData`` says where to get it."""
    from bench.data import fetch

    spec = DATASETS[name]
    root = Path(root)
    folder = spec.dir(root)
    if not spec.archives:
        if spec.first_missing(root) is not None:
            raise spec.missing(folder, "cannot be downloaded automatically")
        return []
    root.mkdir(parents=True, exist_ok=True)
    need = [str(Path(spec.folder) / f) for f in spec.files if "{" not in f]
    from bench.core.files import file_lock

    downloads = root / ".downloads"
    try:
        # one fetcher per dataset and root; the lock file goes with the lock
        with file_lock(downloads / f"{name}.lock", remove=True):
            if spec.first_missing(root) is None:  # another process has just put it in place
                return []
            return fetch.fetch_dataset(name, spec.archives, root, need, mirror, progress,
                                       manifest)
    finally:
        with contextlib.suppress(OSError):  # empty once no fetcher is at work
            downloads.rmdir()


def write_fake_layout(name: str, root: Path | str, n_per_class: int = 4, n_classes: int = 3,
                      size: int = 32, seed: int = 0) -> Path:
    """Write a tiny copy of dataset ``name`` under ``root`` in its official layout.

    Every split file gets ``n_per_class`` images of each of ``n_classes`` classes (CIFAR:
    each of the 5 training batches and the test batch; CIFAR-10-C: each severity of every
    corruption; Pets: trainval and test; Flowers102: train, val and test; DomainNet: every
    domain; ImageNet: the validation set). Image files are about ``size`` px, alternately
    landscape and portrait; CIFAR and CIFAR-10-C are 32 px by definition. Each class has its
    own colour, so the classes are learnable. The CIFAR files are not the official ones, so
    read them with ``verify_md5=False`` (or, through the benchmark's loaders, with
    ``BENCH_VERIFY_MD5=0``). Returns the dataset's folder.
    """
    spec = DATASETS[name]
    if spec.fake is None:
        raise ValueError(f"{name} has no fake layout")
    if n_per_class < 1 or n_classes < 1 or size < 8:
        raise ValueError("write_fake_layout needs n_per_class >= 1, n_classes >= 1, size >= 8")
    folder = spec.dir(root)
    folder.mkdir(parents=True, exist_ok=True)
    spec.fake(folder, Fake(n_per_class, n_classes, size, np.random.default_rng(seed)))
    return folder
