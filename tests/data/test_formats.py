"""Readers of the official dataset layouts, on tiny copies the tests write themselves."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from PIL import Image

from bench.core.registry import UnknownName
from bench.data import datasets
from bench.data.datasets import DATASETS, download, file_datasets, write_fake_layout
from bench.data.families.cifar import read_cifar
from bench.data.families.cifar10_c import CIFAR10C_CORRUPTIONS, read_cifar10_c
from bench.data.families.domainnet import DOMAINNET_DOMAINS, read_domainnet
from bench.data.families.flowers import read_flowers102
from bench.data.families.imagenet import read_imagenet_val
from bench.data.families.pets import read_pets
from bench.data.formats import ChecksumMismatch, UnreadableFile, decode_images, read_image_folder
from bench.data.spec import MissingData

# ---------------------------------------------------------------------------------------------
# CIFAR


@pytest.mark.parametrize("which, n_train_files", [("cifar10", 5), ("cifar100", 1)])
def test_cifar_roundtrip(tmp_path, which, n_train_files):
    write_fake_layout(which, tmp_path, n_per_class=4, n_classes=5)
    x, y = read_cifar(tmp_path, which, "train", verify_md5=False)
    assert x.shape == (n_train_files * 20, 32, 32, 3) and x.dtype == np.uint8
    assert y.shape == (n_train_files * 20,) and y.dtype == np.int64
    assert np.bincount(y).tolist() == [4 * n_train_files] * 5
    xt, yt = read_cifar(tmp_path, which, "test", verify_md5=False)
    assert xt.shape == (20, 32, 32, 3) and sorted(set(yt.tolist())) == [0, 1, 2, 3, 4]


def test_cifar_pixel_order_is_hwc(tmp_path):
    # one hand-written batch: the rows are channel-first, the reader must give HWC
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    img = np.zeros((32, 32, 3), np.uint8)
    img[0, 1] = (10, 20, 30)
    img[31, 0, 2] = 200
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        entry = {b"data": img.transpose(2, 0, 1).reshape(1, -1), b"labels": [7]}
        (folder / name).write_bytes(pickle.dumps(entry, protocol=2))
    x, y = read_cifar(tmp_path, "cifar10", "test", verify_md5=False)
    assert np.array_equal(x[0], img) and y.tolist() == [7]


def test_cifar_py2_style_str_keys(tmp_path):
    # the official files, read with encoding="latin1", give str keys; accept both
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    data = np.arange(2 * 3072, dtype=np.int64).astype(np.uint8).reshape(2, 3072)
    for name in ("train", "test"):
        entry = {"data": data, "fine_labels": [3, 99], "coarse_labels": [0, 19]}
        (folder / name).write_bytes(pickle.dumps(entry, protocol=2))
    x, y = read_cifar(tmp_path, "cifar100", "train", verify_md5=False)
    assert x.shape == (2, 32, 32, 3) and y.tolist() == [3, 99]


def test_cifar_md5_check(tmp_path):
    write_fake_layout("cifar10", tmp_path, n_per_class=1, n_classes=2)
    with pytest.raises(ChecksumMismatch, match="verify_md5=False"):
        read_cifar(tmp_path, "cifar10", "test")


def test_cifar_md5_of_official_files_passes(tmp_path, monkeypatch):
    import hashlib

    write_fake_layout("cifar100", tmp_path, n_per_class=1, n_classes=2)
    folder = tmp_path / "cifar-100-python"
    md5 = hashlib.md5((folder / "test").read_bytes()).hexdigest()
    monkeypatch.setitem(DATASETS["cifar100"].md5, "test", md5)
    x, _ = read_cifar(tmp_path, "cifar100", "test")  # verify_md5 defaults to True
    assert len(x) == 2


def test_cifar_refuses_code_in_pickles(tmp_path):
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    (folder / "test").write_bytes(pickle.dumps({b"data": Evil(), b"fine_labels": []}))
    # refused, and said to be an unreadable file, named (exit 2 in the commands)
    with pytest.raises(UnreadableFile, match="UnpicklingError: refusing") as e:
        read_cifar(tmp_path, "cifar100", "test", verify_md5=False)
    assert str(e.value).startswith(f"{folder / 'test'}: cannot be read (")


def test_cifar_missing(tmp_path):
    with pytest.raises(MissingData) as err:
        read_cifar(tmp_path, "cifar10", "train", verify_md5=False)
    message = str(err.value)
    assert str(tmp_path / "cifar-10-batches-py" / "data_batch_1") in message
    assert "torchvision.datasets.CIFAR10" in message and "bench prepare --download" in message
    assert isinstance(err.value, FileNotFoundError)


def test_missing_data_pickles(tmp_path):
    err = DATASETS["pets"].missing(tmp_path / "x", "some detail")
    back = pickle.loads(pickle.dumps(err))
    assert str(back) == str(err) and back.path == err.path and back.dataset == "pets"


def test_cifar_bad_names(tmp_path):
    with pytest.raises(UnknownName, match="did you mean 'cifar10'"):
        read_cifar(tmp_path, "cifar-10", "train")
    with pytest.raises(UnknownName, match="valid: train, test"):
        read_cifar(tmp_path, "cifar10", "val")


# ---------------------------------------------------------------------------------------------
# CIFAR-10-C


def test_cifar10_c_severities(tmp_path):
    folder = tmp_path / "CIFAR-10-C"
    folder.mkdir()
    n = 12
    # each row's pixels hold its severity, so a wrong slice shows
    images = np.repeat(np.arange(1, 6, dtype=np.uint8), n)[:, None, None, None]
    images = np.broadcast_to(images, (5 * n, 32, 32, 3)).copy()
    labels = np.tile(np.arange(n) % 10, 5).astype(np.uint8)
    np.save(folder / "contrast.npy", images)
    np.save(folder / "labels.npy", labels)
    for severity in range(1, 6):
        x, y = read_cifar10_c(tmp_path, "contrast", severity)
        assert x.shape == (n, 32, 32, 3) and x.dtype == np.uint8
        assert (x == severity).all()
        assert y.dtype == np.int64 and y.tolist() == (np.arange(n) % 10).tolist()
        assert not isinstance(x, np.memmap)  # detached from the file
    with pytest.raises(ValueError, match="severity"):
        read_cifar10_c(tmp_path, "contrast", 6)
    with pytest.raises(UnknownName, match="did you mean 'gaussian_noise'"):
        read_cifar10_c(tmp_path, "gaussian-noise", 5)
    with pytest.raises(MissingData, match="snow.npy"):
        read_cifar10_c(tmp_path, "snow", 5)


def test_cifar10_c_fake_layout(tmp_path):
    write_fake_layout("cifar10_c", tmp_path, n_per_class=4, n_classes=3)
    assert len(CIFAR10C_CORRUPTIONS) == 19
    assert {"contrast", "gaussian_noise", "motion_blur", "snow", "speckle_noise"} <= set(
        CIFAR10C_CORRUPTIONS
    )
    x, y = read_cifar10_c(tmp_path, "speckle_noise", 5)
    assert x.shape == (12, 32, 32, 3) and np.bincount(y).tolist() == [4, 4, 4]


# ---------------------------------------------------------------------------------------------
# Oxford-IIIT Pet and Flowers102


def test_pets_splits(tmp_path):
    write_fake_layout("pets", tmp_path, n_per_class=2, n_classes=3, size=24)
    trainval, y_trainval = read_pets(tmp_path, "trainval")
    test, y_test = read_pets(tmp_path, "test")
    assert len(trainval) == len(test) == 6
    assert np.bincount(y_trainval).tolist() == [2, 2, 2] and y_trainval.dtype == np.int64
    assert set(trainval).isdisjoint(test)
    assert all(p.is_file() and p.suffix == ".jpg" for p in trainval + test)
    # the class of an image is its breed, the file name up to the last '_'
    breed_of = {p.stem.rsplit("_", 1)[0]: int(label) for p, label in zip(test, y_test)}
    assert len(breed_of) == 3 and sorted(breed_of.values()) == [0, 1, 2]


def test_pets_annotation_lines(tmp_path):
    ann = tmp_path / "oxford-iiit-pet" / "annotations"
    ann.mkdir(parents=True)
    images = tmp_path / "oxford-iiit-pet" / "images"
    images.mkdir()
    for name in ("Abyssinian_100", "yorkshire_terrier_9"):
        Image.new("RGB", (10, 8)).save(images / f"{name}.jpg")
    (ann / "test.txt").write_text("Abyssinian_100 1 1 1\nyorkshire_terrier_9 37 2 25\n\n")
    paths, labels = read_pets(tmp_path, "test")
    assert [p.name for p in paths] == ["Abyssinian_100.jpg", "yorkshire_terrier_9.jpg"]
    assert labels.tolist() == [0, 36]


@pytest.mark.parametrize("line", ["Abyssinian_100 one 1 1", "Abyssinian_100 0 1 1",
                                  "Abyssinian_100 38 1 1", "Abyssinian_100 1 1"])
def test_a_pets_line_with_a_bad_class_names_the_file_and_line(tmp_path, line):
    ann = tmp_path / "oxford-iiit-pet" / "annotations"
    ann.mkdir(parents=True)
    (tmp_path / "oxford-iiit-pet" / "images").mkdir()
    (ann / "test.txt").write_text(f"yorkshire_terrier_9 37 2 25\n{line}\n")
    with pytest.raises(UnreadableFile) as err:
        read_pets(tmp_path, "test")
    assert str(err.value).startswith(f"{ann / 'test.txt'}: cannot be read (line 2: ")
    assert repr(line) in str(err.value)


def test_pets_missing(tmp_path):
    with pytest.raises(MissingData) as err:
        read_pets(tmp_path, "trainval")
    assert str(tmp_path / "oxford-iiit-pet" / "annotations" / "trainval.txt") in str(err.value)
    write_fake_layout("pets", tmp_path, n_per_class=1, n_classes=2)
    victim = read_pets(tmp_path, "test")[0][0]
    victim.unlink()
    with pytest.raises(MissingData, match=victim.name):
        read_pets(tmp_path, "test")


def test_flowers102_splits(tmp_path):
    write_fake_layout("flowers102", tmp_path, n_per_class=2, n_classes=3)
    splits = {s: read_flowers102(tmp_path, s) for s in ("train", "val", "test")}
    for paths, labels in splits.values():
        assert len(paths) == 6 and np.bincount(labels).tolist() == [2, 2, 2]
        assert labels.dtype == np.int64
    names = [{p.name for p in paths} for paths, _ in splits.values()]
    assert not (names[0] & names[1] or names[0] & names[2] or names[1] & names[2])
    assert set.union(*names) == {f"image_{i:05d}.jpg" for i in range(1, 19)}


def test_flowers102_mat_files(tmp_path):
    from scipy.io import savemat

    folder = tmp_path / "flowers-102"
    (folder / "jpg").mkdir(parents=True)
    for i in range(1, 7):
        Image.new("RGB", (9, 7)).save(folder / "jpg" / f"image_{i:05d}.jpg")
    # as in the release: 1-based labels and ids in (1, n) arrays; a split of one image
    savemat(folder / "imagelabels.mat", {"labels": np.array([[5, 1, 102, 1, 5, 2]], np.uint8)})
    savemat(
        folder / "setid.mat",
        {
            "trnid": np.array([[6, 1]], np.uint16),
            "valid": np.array([[3]], np.uint16),
            "tstid": np.array([[2, 4, 5]], np.uint16),
        },
    )
    paths, labels = read_flowers102(tmp_path, "train")
    assert [p.name for p in paths] == ["image_00006.jpg", "image_00001.jpg"]
    assert labels.tolist() == [1, 4]
    paths, labels = read_flowers102(tmp_path, "val")
    assert [p.name for p in paths] == ["image_00003.jpg"] and labels.tolist() == [101]
    assert read_flowers102(tmp_path, "test")[1].tolist() == [0, 0, 4]


def test_flowers102_missing(tmp_path):
    with pytest.raises(MissingData) as err:
        read_flowers102(tmp_path, "train")
    assert str(tmp_path / "flowers-102" / "setid.mat") in str(err.value)
    assert "torchvision.datasets.Flowers102" in str(err.value)


# ---------------------------------------------------------------------------------------------
# Image folders: DomainNet, ImageNet validation


def test_image_folder(tmp_path):
    for cls, names in {
        "b_cls": ["2.png", "1.JPG", ".hidden.jpg", "notes.txt"],
        "a_cls": ["x.jpeg"],
    }.items():
        (tmp_path / cls).mkdir()
        for name in names:
            path = tmp_path / cls / name
            if name.endswith(".txt") or name.startswith("."):
                path.write_text("not an image")
            else:
                Image.new("RGB", (4, 4)).save(path, format="PNG")
    (tmp_path / "empty_cls").mkdir()
    paths, labels, classes = read_image_folder(tmp_path)
    assert classes == ["a_cls", "b_cls", "empty_cls"]
    assert [p.relative_to(tmp_path).as_posix() for p in paths] == [
        "a_cls/x.jpeg", "b_cls/1.JPG", "b_cls/2.png",
    ]  # fmt: skip
    assert labels.tolist() == [0, 1, 1]


def test_domainnet(tmp_path):
    write_fake_layout("domainnet", tmp_path, n_per_class=2, n_classes=3)
    assert DOMAINNET_DOMAINS == ("clipart", "infograph", "painting", "quickdraw", "real", "sketch")
    for domain in ("clipart", "quickdraw"):
        paths, labels, classes = read_domainnet(tmp_path, domain)
        assert len(paths) == 6 and np.bincount(labels).tolist() == [2, 2, 2]
        assert classes == ["class_000", "class_001", "class_002"]
        assert all(p.parent.parent.name == domain for p in paths)
    with pytest.raises(UnknownName, match="did you mean 'sketch'"):
        read_domainnet(tmp_path, "sketches")


def test_domainnet_missing_domain(tmp_path):
    with pytest.raises(MissingData) as err:
        read_domainnet(tmp_path, "clipart")
    message = str(err.value)
    assert str(tmp_path / "domainnet" / "clipart") in message and "ai.bu.edu/M3SDA" in message


def test_imagenet_val(tmp_path):
    write_fake_layout("imagenet_val", tmp_path, n_per_class=3, n_classes=2)
    paths, labels, wnids = read_imagenet_val(tmp_path)
    assert wnids == ["n00000000", "n00000001"] and labels.tolist() == [0, 0, 0, 1, 1, 1]
    assert all(p.suffix == ".JPEG" for p in paths)


def test_imagenet_val_missing(tmp_path):
    (tmp_path / "imagenet" / "val").mkdir(parents=True)  # there, but empty
    with pytest.raises(MissingData) as err:
        read_imagenet_val(tmp_path)
    assert str(tmp_path / "imagenet" / "val") in str(err.value)
    assert "image-net.org" in str(err.value)


# ---------------------------------------------------------------------------------------------
# decode_images


def _centre_marked(h: int, w: int) -> np.ndarray:
    # red everywhere, a green square in the middle: a centre crop must be mostly green
    img = np.zeros((h, w, 3), np.uint8)
    img[..., 0] = 255
    img[h // 4 : h - h // 4, w // 4 : w - w // 4] = (0, 255, 0)
    return img


def test_decode_array_centre_crop():
    images = np.stack([_centre_marked(64, 64), _centre_marked(64, 64)[::-1].copy()])
    out = decode_images(images, size=16, crop_pct=0.5, interpolation="nearest")
    # shorter side 64 -> int(16 / 0.5) = 32, then the central 16 x 16: all green
    assert out.shape == (2, 16, 16, 3) and out.dtype == np.uint8
    assert (out[..., 1] == 255).all() and (out[..., 0] == 0).all()
    # crop_pct 1: the whole image is kept, so the red border shows
    full = decode_images(images, size=16, crop_pct=1.0, interpolation="nearest")
    assert (full[:, 0, 0] == (255, 0, 0)).all() and (full[:, 8, 8] == (0, 255, 0)).all()


def test_decode_paths_non_square_gray_rgba(tmp_path):
    # a wide image in three vertical stripes, red | green | blue
    wide = np.zeros((40, 200, 3), np.uint8)
    wide[:, :60, 0] = wide[:, 60:140, 1] = wide[:, 140:, 2] = 255
    rgb = tmp_path / "wide.png"
    Image.fromarray(wide).save(rgb)
    gray = tmp_path / "gray.jpg"
    Image.new("L", (30, 50), color=128).save(gray)
    rgba = tmp_path / "rgba.png"
    Image.new("RGBA", (20, 20), color=(0, 0, 255, 10)).save(rgba)
    out = decode_images([rgb, str(gray), rgba], size=24, crop_pct=0.875, num_workers=2)
    assert out.shape == (3, 24, 24, 3)
    # shorter side 40 -> int(24 / 0.875) = 27, width 135; the central 24 columns are green
    assert (out[0, :, :, 1] > 250).all() and (out[0, :, :, [0, 2]] < 5).all()
    assert (np.abs(out[1].astype(int) - 128) <= 2).all()  # gray replicated to 3 channels
    assert (out[2] == (0, 0, 255)).all()  # alpha dropped


def test_decode_matches_torchvision_eval_transform():
    tvt = pytest.importorskip("torchvision.transforms")
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in [(32, 32), (37, 50)]]
    for size, crop_pct in [(24, 0.875), (16, 0.9), (20, 1.0)]:
        scale = int(size / crop_pct)
        transform = tvt.Compose(
            [
                tvt.Resize(scale, interpolation=tvt.InterpolationMode.BICUBIC),
                tvt.CenterCrop(size),
            ]
        )
        for img in images:
            ours = decode_images(img[None], size=size, crop_pct=crop_pct)[0]
            theirs = np.asarray(transform(Image.fromarray(img)))
            assert np.array_equal(ours, theirs), (img.shape, size, crop_pct)


def test_decode_threads_keep_order():
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (40, 20, 30, 3), dtype=np.uint8)
    serial = decode_images(images, size=8, num_workers=1)
    threaded = decode_images(images, size=8, num_workers=4, progress=False)
    assert np.array_equal(serial, threaded)


def test_decode_rejects_bad_input():
    with pytest.raises(ValueError, match="uint8"):
        decode_images(np.zeros((1, 8, 8, 3), np.float32), size=4)
    with pytest.raises(UnknownName, match="did you mean 'bicubic'"):
        decode_images(np.zeros((1, 8, 8, 3), np.uint8), size=4, interpolation="bicubik")
    with pytest.raises(ValueError, match="crop_pct"):
        decode_images(np.zeros((1, 8, 8, 3), np.uint8), size=4, crop_pct=1.5)


# ---------------------------------------------------------------------------------------------
# download, layouts, fake layouts


@pytest.mark.parametrize(
    "name, source",
    [("domainnet", "ai.bu.edu/M3SDA"), ("imagenet_val", "image-net.org")],
)
def test_download_not_possible(tmp_path, name, source):
    with pytest.raises(MissingData) as err:
        download(name, tmp_path)
    assert source in str(err.value)
    assert str(datasets.dataset_dir(name, tmp_path)) in str(err.value)


@pytest.mark.parametrize("name", ["domainnet", "cifar10_c"])  # by hand, and downloadable
def test_download_of_a_present_dataset_is_a_no_op(tmp_path, name, monkeypatch):
    write_fake_layout(name, tmp_path, n_per_class=1, n_classes=2)
    monkeypatch.setenv("BENCH_MIRROR", "http://127.0.0.1:9")  # nothing answers there
    assert download(name, tmp_path) == []


def test_download_unknown_name(tmp_path):
    with pytest.raises(UnknownName, match="did you mean 'flowers102'"):
        download("flowers", tmp_path)


def test_layouts_cover_every_dataset():
    assert file_datasets() == (
        "cifar10", "cifar100", "cifar10_c", "pets", "flowers102", "domainnet", "imagenet_val",
    )  # fmt: skip
    for name in file_datasets():
        spec = DATASETS[name]
        assert spec.layout.startswith("<root>/" + spec.folder) and spec.source and spec.files
        assert spec.fake is not None


@pytest.mark.parametrize("name", file_datasets())
def test_every_fake_layout_reads_and_decodes(tmp_path, name):
    assert not datasets.is_present(name, tmp_path)
    write_fake_layout(name, tmp_path, n_per_class=2, n_classes=2, size=20)
    assert datasets.is_present(name, tmp_path)
    items = {
        "cifar10": lambda: read_cifar(tmp_path, "cifar10", "test", verify_md5=False)[0],
        "cifar100": lambda: read_cifar(tmp_path, "cifar100", "test", verify_md5=False)[0],
        "cifar10_c": lambda: read_cifar10_c(tmp_path, "contrast", 5)[0],
        "pets": lambda: read_pets(tmp_path, "test")[0],
        "flowers102": lambda: read_flowers102(tmp_path, "test")[0],
        "domainnet": lambda: read_domainnet(tmp_path, "sketch")[0],
        "imagenet_val": lambda: read_imagenet_val(tmp_path)[0],
    }[name]()
    out = decode_images(items, size=16)
    assert out.shape == (4, 16, 16, 3)
