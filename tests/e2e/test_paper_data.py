"""The paper's datasets end to end on tiny copies in their official layouts.

Split sizes against protocol.md, the data cache (one decode, memory-mapped, same checksum as
without it, rebuilt when a source file changes, built once under concurrency), ``bench
prepare``, exit 2 for missing data or weights, and one tiny job per dataset configuration of
the paper's suite, with weights from a local file through the same code path as real weights.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import jsonschema
import numpy as np
import pytest
import yaml

from bench import cli
from bench.core.record import RECORD_SCHEMA
from bench.data import datasets, formats, loading, splits
from bench.data.families import cifar10_c as ds_cifar10_c
from bench.data.spec import MissingData
from bench.job import models
from bench.job import run as job
from bench.run import prepare
from bench.suites.expand import load_suite, parse_suite

SIZE = 32  # the tiny model's input size
TINY = {"img_size": SIZE, "patch_size": 8, "embed_dim": 32, "depth": 2, "num_heads": 2}

# The 11 dataset configurations of suites/paper.yaml.
PAPER_DATASETS = [
    {"name": "cifar10"},
    {"name": "cifar100"},
    {"name": "pets"},
    {"name": "flowers102"},
    *({"name": "cifar10_c", "corruption": c, "severity": 5}
      for c in ("contrast", "gaussian_noise", "motion_blur", "snow", "speckle_noise")),
    {"name": "domainnet", "domain": "clipart"},
    {"name": "domainnet", "domain": "sketch"},
]


def _entry(d: dict) -> dict:
    params = {k: v for k, v in d.items() if k != "name"}
    return {"name": d["name"], "key": datasets.dataset_key(d["name"], params), "params": params}


def _id(d: dict) -> str:
    return _entry(d)["key"]


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    """Every dataset of the paper, 3 classes x 4 images per split file, official layouts."""
    r = tmp_path_factory.mktemp("data")
    for name in datasets.file_datasets():
        datasets.write_fake_layout(name, r)
    return r


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    """A tiny ViT's weights saved to a file, loaded like any real weight file."""
    import timm
    import torch

    torch.manual_seed(0)
    model = timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=0, **TINY)
    path = tmp_path_factory.mktemp("weights") / "tiny.safetensors"
    models.save_state_dict(model, path)
    return path


def tiny_suite(root, weights, datasets, name="tiny-paper") -> dict:
    return {
        "name": name,
        "models": [{"name": "vit_tiny_patch16_224", "label": "tiny", "kwargs": TINY,
                    "weights": {"file": str(weights)}}],
        "datasets": datasets,
        "strategies": ["mha"],
        "lrs": [0.01],
        "seeds": [0],
        "recipe": {"steps": 3, "batch_size": 8, "warmup_steps": 1, "eval_every": 2,
                   "log_every": 1, "eval_batch_size": 64},
        "plasticity": {"reference": "imagenet_val", "pairs": 6, "batch_size": 6},
        "data_root": str(root),
    }


# ---------------------------------------------------------------- splits (protocol.md)

def protocol_sizes(n_train: int, n_test: int | None) -> tuple[int, int, int]:
    """protocol.md: cut 80/20 into train/test first when there is no test split, then the
    training part 80/20 into train/val."""
    if n_test is None:
        n_test = n_train - int(0.8 * n_train)
        n_train = int(0.8 * n_train)
    return int(0.8 * n_train), n_train - int(0.8 * n_train), n_test


def test_protocol_sizes_of_the_real_datasets():
    # the official sizes, as a reading aid for the rule the tests below check
    assert protocol_sizes(50_000, 10_000) == (40_000, 10_000, 10_000)  # CIFAR-10/100
    assert protocol_sizes(3_680, 3_669) == (2_944, 736, 3_669)  # Pets trainval / test
    assert protocol_sizes(1_020, 6_149) == (816, 204, 6_149)  # Flowers102 train / test
    assert protocol_sizes(10_000, None) == (6_400, 1_600, 2_000)  # one CIFAR-10-C corruption


# (official split that becomes train+val, its size in the fake copy, test size or None: cut)
FAKE_SIZES = {"cifar10": (60, 12), "cifar100": (12, 12), "pets": (12, 12),
              "flowers102": (12, 12), "cifar10_c": (12, None), "domainnet": (12, None)}
NUM_CLASSES = {"cifar10": 10, "cifar100": 100, "pets": 37, "flowers102": 102, "cifar10_c": 10,
               "domainnet": 3}


@pytest.mark.parametrize("d", PAPER_DATASETS, ids=_id)
def test_split_sizes_follow_the_protocol(root, d):
    s = loading.load_splits(_entry(d), root, SIZE, split_seed=0, crop_pct=0.9)
    sizes = tuple(len(part[1]) for part in (s.train, s.val, s.test))
    assert sizes == protocol_sizes(*FAKE_SIZES[d["name"]])
    assert s.num_classes == NUM_CLASSES[d["name"]]
    for x, y in (s.train, s.val, s.test):
        assert x.dtype == np.uint8 and x.shape[1:] == (SIZE, SIZE, 3) and y.dtype == np.int64


def test_cut_datasets_use_every_image_once(root):
    # CIFAR-10-C: train, val and test partition the 12 images of one corruption and severity
    d = _entry({"name": "cifar10_c", "corruption": "snow", "severity": 5})
    s = loading.load_splits(d, root, SIZE, split_seed=3)
    x, _ = ds_cifar10_c.read_cifar10_c(root, "snow", 5)
    rows = np.concatenate([s.train[0], s.val[0], s.test[0]])
    assert sorted(map(bytes, rows)) == sorted(map(bytes, x))


def test_split_seed_changes_the_split_not_the_sizes(root):
    d = _entry({"name": "cifar10"})
    a = loading.load_splits(d, root, SIZE, split_seed=0)
    b = loading.load_splits(d, root, SIZE, split_seed=1)
    assert len(a.train[1]) == len(b.train[1]) and a.checksum != b.checksum
    assert np.array_equal(a.test[0], b.test[0])  # the official test split is untouched


def test_cifar_md5_is_checked_unless_switched_off(root, monkeypatch):
    monkeypatch.setenv("BENCH_VERIFY_MD5", "1")
    with pytest.raises(formats.ChecksumMismatch, match="BENCH_VERIFY_MD5=0"):
        loading.load_splits(_entry({"name": "cifar10"}), root, SIZE, 0)
    monkeypatch.setenv("BENCH_VERIFY_MD5", "0")
    assert loading.load_splits(_entry({"name": "cifar10"}), root, SIZE, 0).num_classes == 10


# ---------------------------------------------------------------- the data cache

@pytest.mark.parametrize("d", [{"name": "pets"}, {"name": "cifar10_c", "corruption": "snow"}],
                         ids=_id)
def test_cache_gives_the_same_data_and_checksum(root, tmp_path, d):
    d = _entry({**d, "severity": 5} if d["name"] == "cifar10_c" else d)
    plain = loading.load_splits(d, root, SIZE, 0, 0.9, "bicubic")
    first = loading.load_splits(d, root, SIZE, 0, 0.9, "bicubic", cache=tmp_path)
    again = loading.load_splits(d, root, SIZE, 0, 0.9, "bicubic", cache=tmp_path)
    assert first.fresh and not again.fresh and first.cache_dir == again.cache_dir
    assert plain.checksum == first.checksum == again.checksum
    for a, b in zip((plain.train, plain.val, plain.test), (again.train, again.val, again.test),
                    strict=True):
        assert isinstance(b[0], np.memmap) and not b[0].flags.writeable
        assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    entry = again.cache_dir
    assert entry.parent == tmp_path / "data"
    assert {p.name for p in entry.iterdir()} == {
        "meta.json", *(f"{s}_{k}.npy" for s in splits.SPLITS for k in "xy")}
    meta = yaml.safe_load((entry / "meta.json").read_text())
    assert meta["checksum"] == plain.checksum and meta["size"] == SIZE
    assert not list((tmp_path / "data").glob(".*"))  # no temporary folder left behind


def test_cache_key_follows_what_determines_the_bytes(root, tmp_path):
    d = _entry({"name": "pets"})
    base = loading.load_splits(d, root, SIZE, 0, cache=tmp_path).cache_dir
    others = [loading.load_splits(d, root, 24, 0, cache=tmp_path).cache_dir,
              loading.load_splits(d, root, SIZE, 1, cache=tmp_path).cache_dir,
              loading.load_splits(d, root, SIZE, 0, 1.0, cache=tmp_path).cache_dir,
              loading.load_splits(d, root, SIZE, 0, interpolation="bilinear",
                               cache=tmp_path).cache_dir]
    assert len({base, *others}) == 5


def test_a_changed_source_file_makes_a_new_entry(tmp_path):
    root = tmp_path / "data"
    datasets.write_fake_layout("pets", root)
    d = _entry({"name": "pets"})
    a = loading.load_splits(d, root, SIZE, 0, cache=tmp_path / "cache")
    image = sorted((root / "oxford-iiit-pet" / "images").iterdir())[0]
    formats.write_jpg(image, np.zeros((40, 30, 3), np.uint8))
    b = loading.load_splits(d, root, SIZE, 0, cache=tmp_path / "cache")
    assert b.fresh and b.cache_dir != a.cache_dir and b.checksum != a.checksum


def test_cache_is_built_once_under_concurrency(root, tmp_path):
    d = _entry({"name": "domainnet", "domain": "sketch"})
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: loading.load_splits(d, root, SIZE, 0, cache=tmp_path),
                                range(4)))
    assert sum(r.fresh for r in results) == 1
    assert len({r.checksum for r in results}) == 1


def test_reference_images_are_cached_too(root, tmp_path):
    ref = _entry({"name": "imagenet_val"})
    plain = loading.load_images(ref, root, SIZE, "eval", 0.9)
    cached = loading.load_images(ref, root, SIZE, "eval", 0.9, cache=tmp_path)
    assert cached.fresh and plain.checksum == cached.checksum and len(cached.x) == 12
    assert np.array_equal(plain.x, cached.x)


# ---------------------------------------------------------------- missing data and weights

def test_missing_dataset_names_path_and_layout(tmp_path):
    with pytest.raises(MissingData) as e:
        loading.load_splits(_entry({"name": "flowers102"}), tmp_path, SIZE, 0)
    msg = str(e.value)
    assert str(tmp_path / "flowers-102") in msg and "setid.mat" in msg and "layout" in msg
    with pytest.raises(MissingData, match="BENCH_DATA") as e:
        loading.load_splits(_entry({"name": "domainnet", "domain": "clipart"}), None, SIZE, 0)
    assert "<data root>/domainnet" in str(e.value)
    assert issubclass(MissingData, FileNotFoundError)
    assert issubclass(models.MissingWeights, FileNotFoundError)


def test_check_data_finds_the_missing_piece(root, weights, tmp_path):
    entries = [{"name": "cifar10_c", "corruption": "snow", "severity": 5},
                {"name": "domainnet", "domain": "sketch"}]
    configs = [j.config for j in parse_suite(tiny_suite(root, weights, entries), "t").jobs]
    prepare.check_data(configs)  # everything is there
    partial = tmp_path / "partial"
    datasets.write_fake_layout("imagenet_val", partial)
    datasets.write_fake_layout("cifar10_c", partial)
    (partial / "CIFAR-10-C" / "snow.npy").unlink()
    with pytest.raises(MissingData, match="snow.npy"):
        prepare.check_data(configs, str(partial))
    datasets.write_fake_layout("cifar10_c", partial)
    (partial / "domainnet").mkdir()
    with pytest.raises(MissingData) as e:
        prepare.check_data(configs, str(partial))
    assert str(partial / "domainnet" / "sketch") in str(e.value)


def test_missing_dataset_is_exit_2(root, weights, tmp_path, capsys):
    suite = tmp_path / "s.yaml"
    suite.write_text(yaml.safe_dump(tiny_suite(tmp_path / "empty", weights, ["pets"])))
    code = cli.main(["prepare", str(suite), "--cache", str(tmp_path / "c"), "-q"])
    err = capsys.readouterr().err
    assert code == 2
    assert str(tmp_path / "empty" / "oxford-iiit-pet") in err and "trainval.txt" in err
    assert "Traceback" not in err


def test_missing_weight_file_is_exit_2(root, tmp_path, capsys):
    missing = tmp_path / "nowhere" / "vit.safetensors"
    suite = tmp_path / "s.yaml"
    suite.write_text(yaml.safe_dump(tiny_suite(root, missing, ["pets"])))
    code = cli.main(["prepare", str(suite), "--cache", str(tmp_path / "c"), "-q"])
    err = capsys.readouterr().err
    assert code == 2 and str(missing) in err and "state dict" in err
    # the standalone plasticity command goes through the same weight path
    code = cli.main(["plasticity", "--model", "vit_tiny_patch16_224", "--weights", str(missing),
                     "--reference", "digits_source", "--target",
                     "digits_c:corruption=contrast", "--cache", str(tmp_path / "c")])
    assert code == 2 and str(missing) in capsys.readouterr().err


# ---------------------------------------------------------------- bench prepare and jobs

def test_prepare_then_jobs_use_the_cache(root, weights, tmp_path, capsys):
    entries = [{"name": "cifar10_c", "corruption": "snow", "severity": 5}, "pets"]
    suite = tmp_path / "s.yaml"
    suite.write_text(yaml.safe_dump(tiny_suite(root, weights, entries)))
    cache = tmp_path / "cache"
    assert cli.main(["prepare", str(suite), "--cache", str(cache), "-q"]) == 0
    out = capsys.readouterr().out
    assert "3 data cache entries: 3 decoded now (" in out and "), 0 already there" in out
    assert cli.main(["prepare", str(suite), "--cache", str(cache), "-q"]) == 0
    assert "0 decoded now (0 images), 3 already there" in capsys.readouterr().out
    entries = {p.name for p in (cache / "data").iterdir() if p.is_dir()}
    metas = [yaml.safe_load((cache / "data" / e / "meta.json").read_text()) for e in entries]
    checksums = {m["dataset"]: m["checksum"] for m in metas}

    j = load_suite(suite).jobs[0]
    rec = job.run_job(j.config, j.suite, tmp_path / "results", cache=cache, device="cpu")
    assert rec["status"] == "done", rec["error"]
    assert rec["metrics"]["data_checksum"] == checksums["cifar10_c"]
    assert rec["plasticity"]["reference_checksum"] == checksums["imagenet_val"]
    # the job read the entries prepare wrote: nothing new was decoded
    assert {p.name for p in (cache / "data").iterdir() if p.is_dir()} == entries


def test_prepare_download_of_a_manual_dataset_says_where_to_get_it(weights, tmp_path, capsys):
    suite = tmp_path / "s.yaml"
    suite.write_text(yaml.safe_dump(tiny_suite(tmp_path / "empty", weights, [
        {"name": "domainnet", "domain": "clipart"}])))
    code = cli.main(["prepare", str(suite), "--download", "--cache", str(tmp_path / "c"), "-q"])
    err = capsys.readouterr().err
    assert code == 2 and "ai.bu.edu" in err and "cannot be downloaded automatically" in err


@pytest.fixture(scope="module")
def job_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("job-cache")  # the reference entry is shared by the jobs


@pytest.mark.parametrize("d", PAPER_DATASETS, ids=_id)
def test_one_tiny_job_per_paper_dataset(root, weights, job_cache, tmp_path, d):
    suite = parse_suite(tiny_suite(root, weights, [d]), "<test>")
    (j,) = suite.jobs
    rec = job.run_job(j.config, j.suite, tmp_path / "results", cache=job_cache, device="cpu")
    assert rec["status"] == "done", rec["error"]
    jsonschema.Draft202012Validator(RECORD_SCHEMA).validate(rec)
    assert (tmp_path / "results" / j.suite / f"{j.job_id}.json").is_file()
    m = rec["metrics"]
    assert 0 <= m["test_acc"] <= 1 and m["steps_done"] == 3
    assert len(m["data_checksum"]) == 16
    assert rec["plasticity"]["reference"] == "imagenet_val"
    assert rec["plasticity"]["target"] == _id(d)


def test_paper_suites_match_the_protocol():
    from bench.core.strategies import PAPER_BASELINE, PAPER_STRATEGIES

    def count(path):
        jobs = load_suite(path).jobs
        base = [j for j in jobs if j.config["strategy"]["name"] == PAPER_BASELINE]
        return jobs, len(jobs) - len(base), len(base)

    jobs, paper, base = count("suites/paper.yaml")
    assert (paper, base) == (924, 33)
    assert {j.config["strategy"]["name"] for j in jobs} == {*PAPER_STRATEGIES, PAPER_BASELINE}
    assert len({j.config["dataset"]["key"] for j in jobs}) == 11
    by_dataset = {}
    for j in jobs:
        r = j.config["recipe"]
        by_dataset.setdefault(j.config["dataset"]["name"], set()).add(
            (r["steps"], r["eval_every"], j.config["lr"]))
    assert {s for s, _, _ in by_dataset["cifar10_c"]} == {10_000}
    assert {(s, e) for s, e, _ in by_dataset["pets"]} == {(4_000, 200)}
    assert {(s, e) for s, e, _ in by_dataset["flowers102"]} == {(5_000, 250)}
    assert {e for _, e, _ in by_dataset["cifar10_c"]} == {350}
    assert {lr for *_, lr in by_dataset["domainnet"]} - {None} == {3e-3, 1e-2, 3e-2, 6e-2}
    assert {lr for *_, lr in by_dataset["cifar100"]} - {None} == {1e-3, 3e-3, 1e-2, 3e-2}
    assert {j.config["plasticity"]["reference"]["name"] for j in jobs} == {"imagenet_val"}

    jobs, paper, base = count("suites/paper-model-size.yaml")
    assert (paper, base) == (144, 6)
    assert {j.config["model"]["name"] for j in jobs} == {
        "vit_large_patch16_224.orig_in21k", "vit_huge_patch14_224.orig_in21k"}
    r = jobs[0].config["recipe"]
    assert r["batch_size"] == 512 and r["grad_accum"] > 1

    jobs, paper, base = count("suites/paper-adamw.yaml")
    assert {j.config["recipe"]["optimizer"] for j in jobs} == {"adamw"}
    assert {j.config["lr"] for j in jobs} - {None} == {1e-5, 3e-5, 1e-4, 3e-4, 6e-4}
