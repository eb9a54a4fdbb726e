"""Your own images: the `folder` dataset, on PNG and JPEG folders the tests write.

Class order and labels are checked against torchvision's own ImageFolder; splits against
protocol.md (80/20); bad folders against validate's messages (file, key path, fix); unreadable
images against exit 2 with every bad path named; and one tiny job end to end.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from bench import cli
from bench.data import datasets, loading, splits
from bench.suites.expand import load_suite
from tests.conftest import tiny_suite_dict

CLASSES = ("zebra", "Apple", "mango")  # sorted order: Apple, mango, zebra (case-sensitive)
COLOURS = {"zebra": (230, 30, 30), "Apple": (30, 230, 30), "mango": (30, 30, 230),
           "triangle": (230, 230, 30)}


def write_images(folder: Path, n: int = 5, classes=CLASSES, seed: int = 0) -> None:
    """``n`` images per class, alternately PNG and JPEG, sizes varying, one colour a class."""
    rng = np.random.default_rng(seed)
    for cls in classes:
        (folder / cls).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            h, w = 20 + 3 * i, 28 - 2 * i
            pixels = np.clip(np.array(COLOURS[cls]) + rng.normal(0, 10, (h, w, 3)), 0, 255)
            ext, fmt = (".png", "PNG") if i % 2 == 0 else (".jpg", "JPEG")
            Image.fromarray(pixels.astype(np.uint8)).save(folder / cls / f"img_{i}{ext}", fmt)


def suite_file(tmp_path: Path, dataset, reference=None, name: str = "s.yaml") -> Path:
    extra = {"plasticity": {"reference": reference, "pairs": 8, "batch_size": 8}} if reference \
        else {}
    suite = tiny_suite_dict(datasets=[dataset], strategies=("mha",), steps=4, **extra)
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(suite))
    return path


def run_cli(argv: list[str]) -> int:
    try:
        return cli.main(argv)
    except SystemExit as e:
        return e.code


def entry(path: Path) -> dict:
    (job,) = load_suite(suite_file(path.parent, {"name": "folder", "path": str(path)},
                                   name="entry.yaml")).jobs
    return job.config["dataset"]


# ---------------------------------------------------------------- reading and splitting


def test_class_order_and_labels_are_imagefolders(tmp_path):
    from torchvision.datasets import ImageFolder

    write_images(tmp_path / "imgs")
    raw = datasets.DATASETS["folder"].load(None, {"path": str(tmp_path / "imgs")})
    items, labels = raw.splits["train"]
    oracle = ImageFolder(str(tmp_path / "imgs"))
    assert oracle.classes == ["Apple", "mango", "zebra"] and raw.num_classes == 3
    assert [str(p) for p in items] == [p for p, _ in oracle.samples]
    assert labels.tolist() == [y for _, y in oracle.samples]


def test_one_folder_is_cut_80_20_then_80_20_within_each_class(tmp_path):
    write_images(tmp_path / "imgs", n=10)  # 30 images, 10 a class
    s = loading.load_splits(entry(tmp_path / "imgs"), None, 16, split_seed=0)
    # protocol.md's 80/20 cuts, within each class: 10 -> a pool of 8 and 2 test; the pool
    # -> 6 train and 2 validation
    assert [len(s.train[1]), len(s.val[1]), len(s.test[1])] == [18, 6, 6]
    for labels, per_class in ((s.train[1], 6), (s.val[1], 2), (s.test[1], 2)):
        assert np.bincount(labels, minlength=3).tolist() == [per_class] * 3
    assert s.num_classes == 3
    pixels = np.concatenate([s.train[0], s.val[0], s.test[0]]).reshape(30, -1)
    assert len({row.tobytes() for row in pixels}) == 30  # every image once


def test_the_cut_is_stratified_every_class_of_2_or_more_in_both_parts(tmp_path):
    sizes = {"Apple": 11, "mango": 3, "zebra": 2}
    for cls, n in sizes.items():
        write_images(tmp_path / "imgs", n=n, classes=(cls,))
    write_images(tmp_path / "imgs", n=1, classes=("zebra",), seed=5)  # overwrites img_0 only
    raw = datasets.DATASETS["folder"].load(None, {"path": str(tmp_path / "imgs")})
    labels = raw.splits["train"][1]
    for seed in range(20):  # whatever the seed
        big, small = splits.stratified_80_20(labels, seed)
        assert sorted([*big, *small]) == list(range(len(labels)))  # a partition
        for c, n in enumerate(sizes.values()):  # sorted class order: Apple, mango, zebra
            in_big, in_small = (int((labels[part] == c).sum()) for part in (big, small))
            assert in_big >= 1 and in_small >= 1  # 2 or more images: in both parts
            assert in_big == max(1, min(int(0.8 * n), n - 1))
    # a class of one image stays in the 80% part (it is trained on, never only tested)
    big, small = splits.stratified_80_20(np.array([0, 0, 0, 0, 0, 1]), 3)
    assert 5 in big and 5 not in small


def test_train_test_layout_keeps_the_given_test_split(tmp_path):
    write_images(tmp_path / "imgs" / "train", n=10, seed=1)
    write_images(tmp_path / "imgs" / "test", n=2, seed=2)
    s = loading.load_splits(entry(tmp_path / "imgs"), None, 16, split_seed=0)
    assert [len(s.train[1]), len(s.val[1]), len(s.test[1])] == [24, 6, 6]
    assert sorted(s.test[1].tolist()) == [0, 0, 1, 1, 2, 2]
    # the test split is the test folder, decoded in ImageFolder order
    first = np.asarray(Image.open(tmp_path / "imgs" / "test" / "Apple" / "img_0.png"))
    assert abs(s.test[0][0].reshape(-1, 3).mean(0) - first.reshape(-1, 3).mean(0)).max() < 8


def test_cached_once_and_keyed_by_the_folder(tmp_path):
    write_images(tmp_path / "imgs")
    d, cache = entry(tmp_path / "imgs"), tmp_path / "cache"
    first = loading.load_splits(d, None, 16, 0, cache=cache)
    again = loading.load_splits(d, None, 16, 0, cache=cache)
    assert first.fresh and not again.fresh and again.checksum == first.checksum
    write_images(tmp_path / "imgs", classes=("zebra",), n=6)  # one more zebra image
    changed = loading.load_splits(d, None, 16, 0, cache=cache)
    assert changed.fresh and changed.cache_dir != first.cache_dir


# ---------------------------------------------------------------- where it lies, what it holds


def test_moving_the_folder_keeps_the_job_ids_changing_an_image_changes_them(tmp_path):
    write_images(tmp_path / "a" / "imgs")
    before = load_suite(suite_file(tmp_path, {"name": "folder", "path": str(tmp_path / "a" /
                                                                            "imgs")})).jobs
    ids_before = splits.suite_splits([before[0].config])[0]["splits"]["test"]["ids"]
    shutil.move(tmp_path / "a" / "imgs", tmp_path / "b" / "elsewhere" / "imgs")
    moved = load_suite(suite_file(tmp_path, {"name": "folder", "path": str(
        tmp_path / "b" / "elsewhere" / "imgs")})).jobs
    assert [j.job_id for j in moved] == [j.job_id for j in before]
    assert moved[0].config["dataset"]["key"] == before[0].config["dataset"]["key"]
    assert str(tmp_path) not in moved[0].config["dataset"]["key"]
    # the same split ids wherever it lies (paths under the folder)
    ids_moved = splits.suite_splits([moved[0].config])[0]["splits"]["test"]["ids"]
    assert ids_moved == ids_before and all(not i.startswith("/") for i in ids_moved)
    # one image's pixels changed (same name, same size on disk or not): another dataset
    img = tmp_path / "b" / "elsewhere" / "imgs" / "mango" / "img_1.jpg"
    Image.fromarray(np.zeros((20, 20, 3), np.uint8)).save(img, "JPEG")
    changed = load_suite(suite_file(tmp_path, {"name": "folder", "path": str(
        tmp_path / "b" / "elsewhere" / "imgs")})).jobs
    assert changed[0].job_id != moved[0].job_id
    assert changed[0].config["dataset"]["key"] != moved[0].config["dataset"]["key"]


# ---------------------------------------------------------------- validate


@pytest.mark.parametrize("layout", ["one folder", "train/test"])
def test_an_empty_class_folder_is_an_error_naming_it(layout, tmp_path, capsys):
    folder = tmp_path / "imgs"
    parts = [folder] if layout == "one folder" else [folder / "train", folder / "test"]
    for part in parts:
        write_images(part)
    empty = parts[-1] / "triangle"
    empty.mkdir()
    (empty / "notes.txt").write_text("not an image")
    if layout == "train/test":
        write_images(folder / "train", n=1, classes=("triangle",))  # only test/ is empty
    suite = suite_file(tmp_path, {"name": "folder", "path": "imgs"})
    assert run_cli(["validate", str(suite)]) == 2
    err = capsys.readouterr().err
    assert f"{suite}: datasets[0].path: class folder {empty} has no image files" in err, err
    assert "Traceback" not in err


def test_a_class_too_small_for_both_parts_of_a_cut_is_named(tmp_path, capsys):
    write_images(tmp_path / "imgs", n=6, classes=("Apple", "mango"))
    write_images(tmp_path / "imgs", n=1, classes=("zebra",))
    suite = suite_file(tmp_path, {"name": "folder", "path": "imgs"})
    for command in (["validate", str(suite)], ["plan", str(suite), "--results",
                                                str(tmp_path / "r")]):
        assert run_cli(command) == 0
        err = capsys.readouterr().err
        assert "class 'zebra' has 1 image(s): not in val or test" in err, err
        assert "'Apple'" not in err and "'mango'" not in err




@pytest.mark.parametrize("case", ["missing", "one-class", "train-test-mismatch", "not-a-string"])
def test_validate_names_file_key_and_fix(case, tmp_path, capsys):
    folder = tmp_path / "imgs"
    if case == "one-class":
        write_images(folder, classes=("zebra",))
    elif case == "train-test-mismatch":
        write_images(folder / "train", classes=("zebra", "mango"))
        write_images(folder / "test", classes=("zebra", "Apple"))
    path = 3 if case == "not-a-string" else "imgs"
    suite = suite_file(tmp_path, {"name": "folder", "path": path})
    assert run_cli(["validate", str(suite)]) == 2
    err = capsys.readouterr().err
    assert f"{suite}: datasets[0].path: " in err and "Traceback" not in err
    expect = {"missing": f"folder {folder} not found (relative paths start at the suite "
                         f"file's folder, {tmp_path})",
              "one-class": "has 1 class folder(s), at least 2 are needed",
              "train-test-mismatch": "must hold the same class folders; in one only: Apple, mango",
              "not-a-string": "must be a folder path (a string), got 3"}[case]
    assert expect in err, err


def test_relative_path_starts_at_the_suite_files_folder(tmp_path, monkeypatch, capsys):
    write_images(tmp_path / "project" / "imgs")
    suite = suite_file(tmp_path / "project", {"name": "folder", "path": "imgs"},
                       reference={"name": "folder", "path": "imgs"})
    monkeypatch.chdir(tmp_path)  # not the suite's folder
    assert run_cli(["validate", str(suite.relative_to(tmp_path))]) == 0
    (job,) = load_suite(suite).jobs
    assert job.config["dataset"]["params"]["path"] == str(tmp_path / "project" / "imgs")
    assert job.config["plasticity"]["reference"]["name"] == "folder"


# ---------------------------------------------------------------- unreadable images, a job


@pytest.mark.parametrize("command", ["run", "prepare"])
def test_unreadable_images_are_all_named_and_exit_2(command, tmp_path, capsys):
    write_images(tmp_path / "imgs")
    garbage = tmp_path / "imgs" / "mango" / "broken.png"
    garbage.write_bytes(b"not an image at all")
    truncated = tmp_path / "imgs" / "zebra" / "cut.png"
    png = (tmp_path / "imgs" / "zebra" / "img_0.png").read_bytes()
    truncated.write_bytes(png[: len(png) // 2])
    suite = suite_file(tmp_path, {"name": "folder", "path": "imgs"})
    out = tmp_path / "out"
    where = ["--results", str(out)] if command == "run" else ["--cache", str(out), "-q"]
    assert run_cli([command, str(suite), *where]) == 2
    err = capsys.readouterr().err
    assert "2 image file(s) cannot be read" in err and "Traceback" not in err
    assert str(garbage) in err and str(truncated) in err
    assert not out.exists()


def test_decode_reports_every_unreadable_image(tmp_path):
    from bench.data.formats import UnreadableImages, decode_images

    write_images(tmp_path / "imgs", n=2)
    bad = [tmp_path / "imgs" / "Apple" / "x.jpg", tmp_path / "imgs" / "zebra" / "y.png"]
    for p in bad:
        p.write_bytes(b"\x89PNG garbage")
    items = sorted((tmp_path / "imgs").rglob("*.*"))
    with pytest.raises(UnreadableImages) as e:
        decode_images(items, 16, num_workers=2)
    assert [p for p, _ in e.value.failures] == bad


@pytest.mark.slow
def test_a_tiny_job_on_a_folder_end_to_end(tmp_path, cache_dir):
    write_images(tmp_path / "imgs", n=8)
    write_images(tmp_path / "ref", n=4, classes=("zebra", "mango"), seed=3)
    suite = suite_file(tmp_path, {"name": "folder", "path": "imgs"},
                       reference={"name": "folder", "path": "ref"})
    results = tmp_path / "results"
    assert run_cli(["run", str(suite), "--results", str(results), "--cache", str(cache_dir),
                    "--device", "cpu"]) == 0
    (record,) = [json.loads(p.read_text()) for p in (results / "tiny").glob("*.json")]
    assert record["status"] == "done", record.get("error")
    assert record["config"]["dataset"]["params"]["path"] == str(tmp_path / "imgs")
    assert 0 <= record["metrics"]["test_acc"] <= 1
    ref = record["plasticity"]["reference"]
    assert re.fullmatch(r"folder/[0-9a-f]{16}", ref) and str(tmp_path) not in ref
