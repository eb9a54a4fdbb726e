"""Tests of bench.data.splits against protocol.md's split rules, recomputed here by hand."""

from __future__ import annotations

import hashlib

import numpy as np
import torch

from bench.core.protocol import PROTOCOLS
from bench.data import splits
from bench.data.families.cifar import CIFAR10
from bench.data.spec import Raw


def test_clean_cut_is_a_seeded_80_20_permutation():
    tr, va = splits.split_80_20(10, seed=3)
    perm = np.random.default_rng(3).permutation(10)
    assert tr.tolist() == sorted(perm[:8].tolist()) and va.tolist() == sorted(perm[8:].tolist())
    labels = np.array([0] * 10 + [1] * 5)
    big, small = splits.stratified_80_20(labels, seed=0)
    assert sorted(big.tolist() + small.tolist()) == list(range(15))
    assert all(len(set(big) & set(np.flatnonzero(labels == c))) > 0 for c in (0, 1))
    assert all(len(set(small) & set(np.flatnonzero(labels == c))) > 0 for c in (0, 1))


def test_paper_cuts_are_the_reference_codes():
    # protocol.md: perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    tr, va = splits.paper_seed_cut(50, 42)
    perm = torch.randperm(50, generator=torch.Generator().manual_seed(42)).tolist()
    assert tr.tolist() == perm[:40] and va.tolist() == perm[40:]
    # ... and what torch.utils.data.random_split gives after torch.manual_seed(seed)
    torch.manual_seed(42)
    a, b = torch.utils.data.random_split(range(50), [40, 10])
    assert list(a.indices) == tr.tolist() and list(b.indices) == va.tolist()
    # np.random.seed(42); idx = np.random.permutation(n); sorted(idx[:80%]), sorted(idx[80%:])
    np.random.seed(42)
    idx = np.random.permutation(10000)
    pool, test = splits.paper_fixed_cut(10000)
    assert pool.tolist() == sorted(idx[:8000].tolist())
    assert test.tolist() == sorted(idx[8000:].tolist())


def test_cifar10_c_under_the_paper_protocol(tmp_path):
    """protocol.md: one severity's rows, a fixed 80/20 pool / test cut, the pool cut per seed;
    the ids are the rows of the official files."""
    n, severity, seed = 20, 4, 0
    folder = tmp_path / "CIFAR-10-C"
    folder.mkdir()
    np.save(folder / "contrast.npy", np.zeros((5 * n, 32, 32, 3), np.uint8))
    np.save(folder / "labels.npy", (np.arange(5 * n) % 10).astype(np.uint8))
    d = {"name": "cifar10_c", "key": "cifar10_c/contrast/4",
         "params": {"corruption": "contrast", "severity": severity}}
    raw, parts = splits.split_parts(d, seed, tmp_path, PROTOCOLS["paper"])
    idx = np.random.RandomState(42).permutation(n)
    pool, test = sorted(idx[:16]), sorted(idx[16:])
    perm = torch.randperm(16, generator=torch.Generator().manual_seed(seed)).tolist()
    first = (severity - 1) * n
    ids = {k: splits.sample_ids(raw, part, tmp_path) for k, part in parts.items()}
    assert ids["test"] == [first + int(i) for i in test]
    assert ids["train"] == [first + int(pool[i]) for i in perm[:12]]
    assert ids["val"] == [first + int(pool[i]) for i in perm[12:]]
    want = hashlib.sha256("\n".join(map(str, ids["test"])).encode()).hexdigest()[:16]
    assert splits.split_summary(raw, parts, tmp_path)["test"] == {"n": 4, "checksum": want}


def test_official_rule_under_the_clean_protocol():
    """An official test split is kept whole; the training split is cut 80/20 by the seed."""
    raw = Raw({"train": (np.zeros((10, 2, 2, 3), np.uint8), np.arange(10)),
               "test": (np.zeros((3, 2, 2, 3), np.uint8), np.arange(3))})
    parts = splits.SPLIT_RULES["official"](PROTOCOLS["clean"])(CIFAR10, raw, 7)
    perm = np.random.default_rng(7).permutation(10)
    assert parts["train"][0] == "train" and parts["train"][1].tolist() == sorted(perm[:8])
    assert parts["val"][1].tolist() == sorted(perm[8:])
    assert parts["test"][0] == "test" and parts["test"][1].tolist() == [0, 1, 2]
