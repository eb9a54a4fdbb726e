"""The protocol's splits: how a target dataset is cut into train / val / test, and the ids of
each split's images.

As protocol.md says: the training split cut 80/20 into train/val by a seeded permutation;
CIFAR-10-C, DomainNet and the held-out digits first cut 80/20 into train/test; folder datasets
cut the same way within each class. The paper protocol cuts as the reference code does, per
run seed. A dataset's rule is a name in ``SPLIT_RULES`` (``DatasetSpec.splits``). Nothing is
decoded here (``bench.data.loading`` does that); module level is torch-free.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.core.protocol import DEFAULT_PROTOCOL, PROTOCOLS, Protocol
from bench.core.registry import Registry
from bench.data.datasets import DATASETS, data_root
from bench.data.families.folder import stratum_80
from bench.data.spec import DatasetSpec, Raw

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
