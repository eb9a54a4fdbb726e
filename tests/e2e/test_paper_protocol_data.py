"""The paper protocol's data (protocol.md, `paper`): split ids per dataset and seed, images.

The oracles are written here from protocol.md and read the official formats themselves
(pickles, annotation files, .mat files, torchvision's ImageFolder), on the fake layouts;
images are compared with torchvision's own transforms.
"""

from __future__ import annotations

import hashlib
import json
import pickle
from pathlib import Path

import jsonschema
import numpy as np
import pytest
import yaml

from bench import cli
from bench.core.record import RECORD_SCHEMA
from bench.data import datasets, loading
from bench.job import run as job
from bench.suites.expand import parse_suite
from tests.e2e.test_paper_data import PAPER_DATASETS, _entry, _id, tiny_suite

SEEDS = (0, 42)


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    """Every file dataset, 3 classes x 5 images per split file, official layouts."""
    r = tmp_path_factory.mktemp("data")
    for name in datasets.file_datasets():
        datasets.write_fake_layout(name, r, n_per_class=5)
    return r


def _paper_splits(entry: dict, root, size: int, seed: int, cache=None):
    """A target as a paper-protocol job of run ``seed`` loads it."""
    from bench.core.protocol import PROTOCOLS

    paper = PROTOCOLS["paper"]
    return loading.load_target(paper, entry, root, paper.data_config({"input_size": size}),
                            paper.split_seed(seed, None), cache)


# ---------------------------------------------------------------- the oracle (protocol.md)


def seed_cut(n: int, seed: int) -> tuple[list[int], list[int]]:
    """random_split right after torch.manual_seed(seed), as the reference does."""
    import torch
    from torch.utils.data import random_split

    torch.manual_seed(seed)
    k = int(0.8 * n)
    tr, va = random_split(range(n), [k, n - k])
    return list(tr.indices), list(va.indices)


def fixed_cut(n: int) -> tuple[list[int], list[int]]:
    """The reference's deterministic_split: legacy np.random.seed(42), then sorted parts."""
    state = np.random.get_state()
    np.random.seed(42)
    idx = np.random.permutation(range(n))
    np.random.set_state(state)
    k = int(0.8 * n)
    return sorted(idx[:k].tolist()), sorted(idx[k:].tolist())


def _pickled_data(path):
    with open(path, "rb") as f:
        batch = pickle.load(f, encoding="bytes")
    return batch[b"data"]


def official_ids(root, d: dict) -> dict[str, list]:
    """The reader splits' ids in the official files' order, read here from the files."""
    name = d["name"]
    if name in ("cifar10", "cifar100"):
        folder = root / ("cifar-10-batches-py" if name == "cifar10" else "cifar-100-python")
        files = ([f"data_batch_{i}" for i in range(1, 6)], ["test_batch"]) if name == "cifar10" \
            else (["train"], ["test"])
        n = [sum(len(_pickled_data(folder / f)) for f in fs) for fs in files]
        return {"train": list(range(n[0])), "test": list(range(n[1]))}
    if name == "cifar10_c":
        rows = len(np.load(root / "CIFAR-10-C" / "labels.npy")) // 5
        start = (d["severity"] - 1) * rows
        return {"train": list(range(start, start + rows))}
    if name == "pets":
        ann = root / "oxford-iiit-pet" / "annotations"
        return {s: [f"oxford-iiit-pet/images/{line.split()[0]}.jpg"
                    for line in (ann / f"{s}.txt").read_text().splitlines() if line.strip()]
                for s in ("trainval", "test")}
    if name == "flowers102":
        from scipy.io import loadmat

        setid = loadmat(root / "flowers-102" / "setid.mat")
        return {s: [f"flowers-102/jpg/image_{int(i):05d}.jpg" for i in setid[k].ravel()]
                for s, k in (("train", "trnid"), ("val", "valid"), ("test", "tstid"))}
    from torchvision.datasets import ImageFolder

    folder = root / "domainnet" / d["domain"]
    return {"train": [Path(p).relative_to(root).as_posix() for p, _ in
                      ImageFolder(str(folder)).imgs]}


def paper_split_ids(root, d: dict, seed: int) -> dict[str, list]:
    """protocol.md, `paper`, "Splits", for one dataset and run seed."""
    ids = official_ids(root, d)
    if d["name"] == "flowers102":  # official train / val / test, no cut
        return ids
    if "test" in ids:  # CIFAR, Pets: the training split cut per seed; official test
        pool, test = ids.get("train", ids.get("trainval")), ids["test"]
    else:  # CIFAR-10-C, DomainNet: the fixed cut, then the pool cut per seed
        every = ids["train"]
        p, t = fixed_cut(len(every))
        pool, test = [every[i] for i in p], [every[i] for i in t]
    tr, va = seed_cut(len(pool), seed)
    return {"train": [pool[i] for i in tr], "val": [pool[i] for i in va], "test": test}


def checksum_of(ids: list) -> str:
    return hashlib.sha256("\n".join(map(str, ids)).encode()).hexdigest()[:16]


# ---------------------------------------------------------------- bench splits


def test_oracle_matches_the_real_sizes():
    """A reading aid: the fixed CIFAR-10-C cut and a seed's cut of its pool at real size."""
    pool, test = fixed_cut(10_000)
    assert (len(pool), len(test)) == (8_000, 2_000)
    assert [len(x) for x in seed_cut(len(pool), 0)] == [6_400, 1_600]


def test_bench_splits_prints_the_protocol_ids(root, tmp_path, capsys):
    suite = tiny_suite(root, tmp_path / "w.safetensors", PAPER_DATASETS)
    suite.update(protocol="paper", seeds=list(SEEDS))
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(suite))
    assert cli.main(["splits", str(path), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert len(out) == len(PAPER_DATASETS) * len(SEEDS)
    for e in out:
        d = next(x for x in PAPER_DATASETS if _id(x) == e["dataset"])
        want = paper_split_ids(root, d, e["seed"])
        assert e["protocol"] == "paper"
        for name in ("train", "val", "test"):
            got = e["splits"][name]
            assert got["ids"] == want[name], (e["dataset"], e["seed"], name)
            assert got["n"] == len(want[name]) and got["checksum"] == checksum_of(want[name])
    # each seed has its own validation set, the test set is the same for every seed
    by = {(e["dataset"], e["seed"]): e["splits"] for e in out}
    assert by["cifar10", 0]["val"]["ids"] != by["cifar10", 42]["val"]["ids"]
    assert by["domainnet/clipart", 0]["test"] == by["domainnet/clipart", 42]["test"]
    assert cli.main(["splits", str(path)]) == 0  # the text form names every split
    text = capsys.readouterr().out
    assert "pets | protocol paper | seed 42 (its own split)" in text
    assert "  val: n=15 checksum=" in text  # flowers102's official val: 3 classes x 5


def test_clean_splits_keep_one_cut_for_every_seed(root, tmp_path, capsys):
    suite = tiny_suite(root, tmp_path / "w.safetensors", [{"name": "cifar10"}])
    suite["seeds"] = list(SEEDS)
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(suite))
    assert cli.main(["splits", str(path), "--json"]) == 0
    a, b = json.loads(capsys.readouterr().out)
    assert a["splits"] == b["splits"] and a["split_seed"] == 0
    perm = np.random.default_rng(0).permutation(75)  # clean: numpy's seeded 80/20 cut
    assert a["splits"]["val"]["ids"] == sorted(perm[60:].tolist())


@pytest.mark.slow
@pytest.mark.parametrize("d", [{"name": "pets"},
                               {"name": "cifar10_c", "corruption": "snow", "severity": 5}],
                         ids=_id)
def test_paper_job_records_its_splits(root, tmp_path, d):
    import timm
    import torch

    from bench.job import models
    from tests.e2e.test_paper_data import TINY

    torch.manual_seed(0)
    weights = tmp_path / "w.safetensors"
    models.save_state_dict(timm.create_model("vit_tiny_patch16_224", num_classes=0, **TINY),
                           weights)
    suite = tiny_suite(root, weights, [d])
    suite.update(protocol="paper", seeds=[42])
    suite["plasticity"].update(pairs=4, batch_size=2)  # the fake CIFAR-10-C test split: 3
    (j,) = parse_suite(suite, "<t>").jobs
    rec = job.run_job(j.config, j.suite, tmp_path / "r", cache=tmp_path / "c", device="cpu")
    assert rec["status"] == "done", rec["error"]
    jsonschema.Draft202012Validator(RECORD_SCHEMA).validate(rec)
    want = paper_split_ids(root, d, 42)
    assert rec["metrics"]["splits"] == {k: {"n": len(v), "checksum": checksum_of(v)}
                                        for k, v in want.items()}


# ---------------------------------------------------------------- images


def _torchvision_eval(img, size: int) -> np.ndarray:
    from torchvision import transforms as T

    return np.asarray(T.Compose([T.Resize(size), T.CenterCrop(size)])(img.convert("RGB")))


@pytest.mark.parametrize("d", [{"name": "pets"}, {"name": "cifar10"}], ids=_id)
def test_eval_images_are_torchvision_resize_center_crop(root, d):
    """Validation and test images equal torchvision's Resize(224) + CenterCrop(224) on the
    PIL image, pixel for pixel (a file dataset and an array dataset)."""
    from PIL import Image

    s = _paper_splits(_entry(d), root, 224, seed=0)
    want = paper_split_ids(root, d, 0)
    raw = datasets.DATASETS[d["name"]].load(root, _entry(d)["params"])
    for name, (x, _) in (("val", s.val), ("test", s.test)):
        assert x.shape == (len(want[name]), 224, 224, 3)
        for k in (0, len(x) - 1):  # a few images: 224 px transforms are slow-ish
            ident = want[name][k]
            if isinstance(ident, str):
                img = Image.open(root / ident)
            else:
                src = "test" if name == "test" else "train"
                img = Image.fromarray(raw.splits[src][0][ident])
            assert np.array_equal(x[k], _torchvision_eval(img, 224)), (name, ident)


def test_training_images_are_kept_whole(root):
    """Files: the whole decoded image (squeezed to the store's side) and its original size;
    arrays: their native 32 x 32 pixels. Crops are then resized to the input size."""
    from PIL import Image

    from bench.core import protocol as protocols

    s = _paper_splits(_entry({"name": "pets"}), root, 224, seed=0)
    ids = paper_split_ids(root, {"name": "pets"}, 0)["train"]
    side = protocols.TRAIN_STORE_SIDE
    assert s.train[0].shape == (len(ids), side, side, 3) and s.train_out_size == 224
    img = Image.open(root / ids[0]).convert("RGB")
    assert tuple(s.train_sizes[0]) == (img.height, img.width)
    assert np.array_equal(s.train[0][0], np.asarray(img.resize((side, side), Image.BILINEAR)))
    c = _paper_splits(_entry({"name": "cifar10"}), root, 224, seed=0)
    assert c.train[0].shape[1:] == (32, 32, 3) and c.train_sizes is None


def _torchvision_boxes(h: int, w: int, n: int):
    import torch
    from torchvision.transforms import RandomResizedCrop

    torch.manual_seed(0)
    img = torch.zeros(1, h, w)
    return np.array([RandomResizedCrop.get_params(img, (0.08, 1.0), (3 / 4, 4 / 3))
                     for _ in range(n)], dtype=np.float64)  # (top, left, height, width)


@pytest.mark.parametrize("h, w", [(375, 500), (32, 32)])
def test_crop_boxes_follow_torchvision_random_resized_crop(h, w):
    """The distribution of the boxes (area, aspect, position), not the draws: two-sample
    Kolmogorov-Smirnov tests against torchvision's own get_params."""
    import torch
    from scipy.stats import ks_2samp

    from bench.job.train import crop_boxes

    n = 4000
    ref = _torchvision_boxes(h, w, n)
    sizes = torch.tensor([[h, w]] * n)  # each image's own size, as the training data has it
    top, left, ch, cw = (t.double().numpy() for t in crop_boxes(
        n, sizes[:, 0], sizes[:, 1], torch.Generator().manual_seed(1), (0.08, 1.0)))
    ours = np.stack([top, left, ch, cw], axis=1)
    stats = {"area": lambda b: b[:, 2] * b[:, 3] / (h * w), "aspect": lambda b: b[:, 3] / b[:, 2],
             "centre_y": lambda b: (b[:, 0] + b[:, 2] / 2) / h,
             "centre_x": lambda b: (b[:, 1] + b[:, 3] / 2) / w}
    for name, f in stats.items():
        assert ks_2samp(f(ours), f(ref)).pvalue > 1e-3, name
    assert (ours[:, 0] + ours[:, 2] <= h).all() and (ours[:, 1] + ours[:, 3] <= w).all()
    assert (ours >= 0).all()


def test_training_crop_reads_the_box_of_the_whole_image():
    """A crop of the stored (squeezed) copy is the crop of the original image: a horizontal
    ramp of the original's columns, a full-image box, resized to the output size."""
    import torch

    from bench.job.train import rrc_flip

    h, w, side, out = 40, 80, 16, 20
    cols = torch.linspace(0, 1, side).view(1, 1, 1, side).expand(1, 3, side, side)
    ratio = (w / h, w / h)  # the only box of the whole area with this aspect: the whole image
    got = rrc_flip(cols.contiguous(), torch.Generator().manual_seed(0), (1.0, 1.0), False,
                   ratio=ratio, sizes=torch.tensor([[h, w]]), out_size=out)
    want = torch.nn.functional.interpolate(cols, size=(out, out), mode="bilinear",
                                           align_corners=False)
    assert got.shape == (1, 3, out, out) and torch.allclose(got, want, atol=1e-5)


def test_prepare_writes_the_paper_entries_once_for_every_seed(root, tmp_path, capsys):
    """`bench prepare` on a paper suite: each reader split once through the evaluation
    transform, the image files' training split kept whole; jobs of any seed then decode
    nothing."""
    suite = tiny_suite(root, tmp_path / "w.safetensors",
                       [{"name": "pets"}, {"name": "cifar10"}])
    suite.update(protocol="paper", seeds=[0, 42])
    suite["plasticity"]["enabled"] = False
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(suite))
    import timm
    import torch

    from bench.job import models
    from tests.e2e.test_paper_data import TINY

    torch.manual_seed(0)
    models.save_state_dict(timm.create_model("vit_tiny_patch16_224", num_classes=0, **TINY),
                           tmp_path / "w.safetensors")
    cache = tmp_path / "cache"
    assert cli.main(["prepare", str(path), "--cache", str(cache), "-q"]) == 0
    out = capsys.readouterr().out
    assert out.count("paper eval") == 4  # pets trainval and test, cifar10 train and test
    assert out.count("paper train (whole)") == 1  # pets only: cifar10 trains from its arrays
    entries = sorted(p.name for p in (cache / "data").iterdir() if p.is_dir())
    # an empty cache: every entry decoded now, the whole-image one too (issue 21)
    whole = [line for line in out.splitlines() if "paper train (whole)" in line][0]
    assert " decoded " in whole and str(cache / "data") in whole
    images = sum(n for e in entries for n in json.loads(
        (cache / "data" / e / "meta.json").read_text())["counts"].values())
    assert f"5 data cache entries: 5 decoded now ({images:,} images), 0 already there" in out
    assert cli.main(["prepare", str(path), "--cache", str(cache), "-q"]) == 0
    again = capsys.readouterr().out
    assert "5 data cache entries: 0 decoded now (0 images), 5 already there" in again
    assert " decoded " not in [line for line in again.splitlines() if "(whole)" in line][0]
    for seed in (0, 42):
        s = _paper_splits(_entry({"name": "pets"}), root, 32, seed, cache=cache)
        assert s.train_sizes is not None and s.val[0].shape[1:] == (32, 32, 3)
    assert sorted(p.name for p in (cache / "data").iterdir() if p.is_dir()) == entries
