"""Readers of the official on-disk formats of the paper's datasets, and the evaluation decode.

Each reader takes a data root and returns plain numpy arrays or lists of image paths with
0-based int64 labels; nothing here needs torch (``download`` imports torchvision lazily). The
layouts are the ones the official releases unpack to, which are also the ones torchvision's
dataset classes use, so a root that torchvision filled works as is:

    cifar10       <root>/cifar-10-batches-py/{data_batch_1..5,test_batch}
    cifar100      <root>/cifar-100-python/{train,test}
    cifar10_c     <root>/CIFAR-10-C/{<corruption>.npy,labels.npy}
    pets          <root>/oxford-iiit-pet/{images/*.jpg,annotations/{trainval,test}.txt}
    flowers102    <root>/flowers-102/{jpg/image_%05d.jpg,imagelabels.mat,setid.mat}
    domainnet     <root>/domainnet/<domain>/<class>/<image>
    imagenet_val  <root>/imagenet/val/<wnid>/<image>

A missing file raises ``MissingData``, whose message names the expected path, the layout and
where the data comes from. ``decode_images`` applies the evaluation transform (resize the
shorter side, centre crop) once, so that plasticity and evaluation can work on a uint8 array.
``write_fake_layout`` writes a tiny copy of any dataset in its official layout, for tests.
"""

from __future__ import annotations

import functools
import hashlib
import os
import pickle
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

from bench.registry import UnknownName, unknown_name_message

# ----------------------------------------------------------------------------------------------
# Names and layouts

CIFAR10C_CORRUPTIONS: tuple[str, ...] = (
    # the 15 benchmark corruptions of Hendrycks & Dietterich (2019)
    "gaussian_noise", "shot_noise", "impulse_noise",
    "defocus_blur", "glass_blur", "motion_blur", "zoom_blur",
    "snow", "frost", "fog", "brightness",
    "contrast", "elastic_transform", "pixelate", "jpeg_compression",
    # the 4 extra ones shipped in the same release (held out in the original paper)
    "speckle_noise", "gaussian_blur", "spatter", "saturate",
)  # fmt: skip

DOMAINNET_DOMAINS: tuple[str, ...] = (
    "clipart", "infograph", "painting", "quickdraw", "real", "sketch",
)  # fmt: skip

LAYOUTS: dict[str, str] = {
    "cifar10": (
        "<root>/cifar-10-batches-py/data_batch_1 ... data_batch_5   (train, 5 x 10,000 images)\n"
        "<root>/cifar-10-batches-py/test_batch                      (test, 10,000 images)\n"
        "python pickles with 'data' (N x 3072 uint8, CHW order) and 'labels'"
    ),
    "cifar100": (
        "<root>/cifar-100-python/train   (50,000 images)\n"
        "<root>/cifar-100-python/test    (10,000 images)\n"
        "python pickles with 'data' (N x 3072 uint8, CHW order) and 'fine_labels'"
    ),
    "cifar10_c": (
        "<root>/CIFAR-10-C/<corruption>.npy   (50,000 x 32 x 32 x 3 uint8: severities 1..5,\n"
        "                                      10,000 images each, in that order)\n"
        "<root>/CIFAR-10-C/labels.npy         (50,000 labels, the test labels 5 times)"
    ),
    "pets": (
        "<root>/oxford-iiit-pet/images/<Breed>_<n>.jpg\n"
        "<root>/oxford-iiit-pet/annotations/trainval.txt   (lines 'Abyssinian_100 1 1 1':\n"
        "<root>/oxford-iiit-pet/annotations/test.txt        image id, class 1..37, species, breed)"
    ),
    "flowers102": (
        "<root>/flowers-102/jpg/image_00001.jpg ... image_08189.jpg\n"
        "<root>/flowers-102/imagelabels.mat   (key 'labels', 1-based, one per image)\n"
        "<root>/flowers-102/setid.mat         (keys 'trnid', 'valid', 'tstid': 1-based image ids)"
    ),
    "domainnet": (
        "<root>/domainnet/<domain>/<class>/<image>.jpg   (the official per-domain zip files\n"
        "unpacked side by side; domains: " + ", ".join(DOMAINNET_DOMAINS) + ")"
    ),
    "imagenet_val": (
        "<root>/imagenet/val/<wnid>/<image>.JPEG   (ILSVRC2012 validation, 50,000 images in\n"
        "1,000 class folders; the official tar is flat: sort it into wnid folders with the\n"
        "usual valprep.sh, or let torchvision.datasets.ImageNet(split='val') do it)"
    ),
}

DATASETS: tuple[str, ...] = tuple(LAYOUTS)

SOURCES: dict[str, str] = {
    "cifar10": "https://www.cs.toronto.edu/~kriz/cifar.html; torchvision.datasets.CIFAR10; "
    "or `bench prepare --download`",
    "cifar100": "https://www.cs.toronto.edu/~kriz/cifar.html; torchvision.datasets.CIFAR100; "
    "or `bench prepare --download`",
    "cifar10_c": "https://zenodo.org/records/2535967 (CIFAR-10-C.tar, about 2.9 GB); "
    "not downloadable by torchvision: fetch and untar it by hand",
    "pets": "https://www.robots.ox.ac.uk/~vgg/data/pets/; torchvision.datasets.OxfordIIITPet; "
    "or `bench prepare --download`",
    "flowers102": "https://www.robots.ox.ac.uk/~vgg/data/flowers/102/; "
    "torchvision.datasets.Flowers102; or `bench prepare --download`",
    "domainnet": "http://ai.bu.edu/M3SDA/ (the 'cleaned' per-domain zip files); "
    "not downloadable by torchvision: fetch and unzip them by hand",
    "imagenet_val": "https://image-net.org/ (ILSVRC2012_img_val.tar, needs an account); "
    "not downloadable by torchvision: fetch it by hand",
}

# Where each dataset lives under the data root (the folder torchvision creates).
_DIRS: dict[str, str] = {
    "cifar10": "cifar-10-batches-py",
    "cifar100": "cifar-100-python",
    "cifar10_c": "CIFAR-10-C",
    "pets": "oxford-iiit-pet",
    "flowers102": "flowers-102",
    "domainnet": "domainnet",
    "imagenet_val": "imagenet/val",
}

# The official files' md5s, the same values torchvision checks.
_CIFAR_FILES: dict[str, dict[str, list[tuple[str, str]]]] = {
    "cifar10": {
        "train": [
            ("data_batch_1", "c99cafc152244af753f735de768cd75f"),
            ("data_batch_2", "d4bba439e000b95fd0a9bffe97cbabec"),
            ("data_batch_3", "54ebc095f3ab1f0389bbae665268c751"),
            ("data_batch_4", "634d18415352ddfa80567beed471001a"),
            ("data_batch_5", "482c414d41f54cd18b22e5b47cb7c3cb"),
        ],
        "test": [("test_batch", "40351d587109b95175f43aff81a1287e")],
    },
    "cifar100": {
        "train": [("train", "16019d7e3df5f24257cddd939b257f8d")],
        "test": [("test", "f0ef6b0ae62326f3e7ffdfab6717acfc")],
    },
}

IMAGE_EXTENSIONS: tuple[str, ...] = (
    ".jpg", ".jpeg", ".png", ".bmp", ".gif", ".ppm", ".pgm", ".tif", ".tiff", ".webp",
)  # fmt: skip


def _check_name(kind: str, name: str, choices: Sequence[str]) -> None:
    if name not in choices:
        raise UnknownName(unknown_name_message(kind, name, tuple(choices)))


def dataset_dir(name: str, root: Path | str) -> Path:
    """The folder under ``root`` where dataset ``name`` lives in its official layout."""
    _check_name("dataset", name, DATASETS)
    return Path(root) / _DIRS[name]


# ----------------------------------------------------------------------------------------------
# Errors


class MissingData(FileNotFoundError):
    """A dataset file or folder is not where the official layout puts it.

    ``str()`` is the whole user-facing message: the expected path, the layout, the source.
    """

    def __init__(self, name: str, path: Path | str, detail: str = ""):
        self.dataset = name
        self.path = Path(path)
        self.detail = detail
        layout = "\n".join("    " + line for line in LAYOUTS[name].splitlines())
        message = (
            f"{name}: expected {self.path}{' (' + detail + ')' if detail else ''}\n"
            f"  layout:\n{layout}\n"
            f"  get it from: {SOURCES[name]}"
        )
        super().__init__(message)

    def __str__(self) -> str:  # OSError would format errno/filename instead
        return str(self.args[0])

    def __reduce__(self):
        # rebuilt from its parts, so it survives a trip back from a worker process
        return (type(self), (self.dataset, self.path, self.detail))


class ChecksumMismatch(ValueError):
    """A CIFAR file exists but is not the official file (partial download or modified)."""


def _require(name: str, path: Path, detail: str = "") -> Path:
    if not path.exists():
        raise MissingData(name, path, detail)
    return path


# ----------------------------------------------------------------------------------------------
# CIFAR-10 / CIFAR-100


@functools.lru_cache(maxsize=64)
def _md5(path: str, size: int, mtime_ns: int) -> str:
    # size and mtime are in the key so a replaced file is hashed again
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles only what the CIFAR files hold: dicts, lists, bytes and numpy arrays.

    The official files are Python 2 pickles; refusing every other global keeps a tampered
    file from running code when it is loaded.
    """

    _ALLOWED = frozenset(
        {
            ("numpy.core.multiarray", "_reconstruct"),
            ("numpy._core.multiarray", "_reconstruct"),
            ("numpy.core.multiarray", "scalar"),
            ("numpy._core.multiarray", "scalar"),
            ("numpy.core.numeric", "_frombuffer"),
            ("numpy._core.numeric", "_frombuffer"),
            ("numpy", "ndarray"),
            ("numpy", "dtype"),
            ("_codecs", "encode"),  # how Python 3 pickles bytes at protocol 2
        }
    )

    def find_class(self, module: str, name: str):
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a CIFAR file")
        if module.startswith("numpy.core.") and hasattr(np, "_core"):
            # numpy 2 renamed numpy.core; importing the old name only warns
            module = "numpy._core." + module.split(".", 2)[2]
        return super().find_class(module, name)


def _load_cifar_pickle(path: Path) -> dict[str, object]:
    with open(path, "rb") as f:
        # latin1: the official files are Python 2 pickles whose arrays hold py2 str bytes
        entry = _ArrayUnpickler(f, encoding="latin1").load()
    if not isinstance(entry, dict):
        raise TypeError(f"{path}: expected a pickled dict, found {type(entry).__name__}")
    # keys are str when read from the official py2 files, bytes when a py3 writer used bytes
    return {k.decode() if isinstance(k, bytes) else k: v for k, v in entry.items()}


def verify_md5_default() -> bool:
    """Whether the benchmark's loaders check CIFAR md5s: yes, unless ``BENCH_VERIFY_MD5=0``.

    The switch exists for tests and for deliberately modified copies (``write_fake_layout``'s
    tiny CIFAR files cannot have the official md5s); ``read_cifar`` itself always defaults to
    checking.
    """
    return os.environ.get("BENCH_VERIFY_MD5", "1").strip().lower() not in ("0", "false", "no",
                                                                            "off")


def read_cifar(
    root: Path | str, which: str, split: str, verify_md5: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """CIFAR-10 or CIFAR-100 ``split`` as (uint8 images (N, 32, 32, 3), int64 labels (N,)).

    ``which`` is "cifar10" or "cifar100", ``split`` "train" or "test"; CIFAR-100 labels are the
    100 fine labels. With ``verify_md5`` every file must match the official release's md5 (the
    values torchvision checks), else ``ChecksumMismatch``; pass False for copies that are not
    the official files, e.g. the small ones ``write_fake_layout`` writes.
    """
    _check_name("CIFAR dataset", which, tuple(_CIFAR_FILES))
    _check_name("CIFAR split", split, ("train", "test"))
    folder = dataset_dir(which, root)
    label_key = "labels" if which == "cifar10" else "fine_labels"
    images, labels = [], []
    for filename, md5 in _CIFAR_FILES[which][split]:
        path = _require(which, folder / filename)
        if verify_md5:
            stat = path.stat()
            got = _md5(str(path), stat.st_size, stat.st_mtime_ns)
            if got != md5:
                raise ChecksumMismatch(
                    f"{path}: md5 {got}, the official file's is {md5}; re-download it "
                    f"({SOURCES[which]}), or pass verify_md5=False for a non-official copy "
                    "(BENCH_VERIFY_MD5=0 for the benchmark's loaders)"
                )
        entry = _load_cifar_pickle(path)
        if "data" not in entry or label_key not in entry:
            raise ValueError(f"{path}: expected keys 'data' and '{label_key}', "
                             f"found {sorted(map(str, entry))}")  # fmt: skip
        data = np.asarray(entry["data"], dtype=np.uint8)
        lab = np.asarray(entry[label_key], dtype=np.int64)
        if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or len(lab) != len(data):
            raise ValueError(f"{path}: expected data (N, 3072) and N labels, "
                             f"found data {data.shape} and {len(lab)} labels")  # fmt: skip
        images.append(data)
        labels.append(lab)
    # rows are stored channel-first (1024 R, 1024 G, 1024 B); return HWC
    x = np.concatenate(images).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(x), np.concatenate(labels)


# ----------------------------------------------------------------------------------------------
# CIFAR-10-C


def read_cifar10_c(
    root: Path | str, corruption: str, severity: int
) -> tuple[np.ndarray, np.ndarray]:
    """One corruption at one severity (1..5) of CIFAR-10-C: uint8 (n, 32, 32, 3), int64 (n,).

    n is a fifth of the file's rows (10,000 in the official release): severity s is rows
    (s-1)*n to s*n, and its labels are the same rows of labels.npy.
    """
    _check_name("CIFAR-10-C corruption", corruption, CIFAR10C_CORRUPTIONS)
    if severity not in (1, 2, 3, 4, 5) or isinstance(severity, (bool, float)):
        raise ValueError(f"CIFAR-10-C severity must be an integer 1..5, got {severity!r}")
    folder = dataset_dir("cifar10_c", root)
    path = _require("cifar10_c", folder / f"{corruption}.npy")
    labels_path = _require("cifar10_c", folder / "labels.npy")
    # mmap: a corruption file is 150 MB and only a fifth of it is needed
    data = np.load(path, mmap_mode="r", allow_pickle=False)
    labels = np.load(labels_path, mmap_mode="r", allow_pickle=False)
    if data.ndim != 4 or data.shape[1:] != (32, 32, 3) or len(data) % 5:
        raise ValueError(f"{path}: expected (5*n, 32, 32, 3) images, found {data.shape}")
    if len(labels) != len(data):
        raise ValueError(f"{labels_path}: {len(labels)} labels for {len(data)} images in {path}")
    n = len(data) // 5
    rows = slice((severity - 1) * n, severity * n)
    return np.array(data[rows], dtype=np.uint8), np.array(labels[rows], dtype=np.int64)


# ----------------------------------------------------------------------------------------------
# Oxford-IIIT Pet and Flowers102


def _require_files(name: str, paths: list[Path]) -> None:
    missing = [p for p in paths if not p.is_file()]
    if missing:
        more = f"; {len(missing) - 1} more of the split's images are missing too"
        raise MissingData(name, missing[0], "an image the split lists" + (more if
                          len(missing) > 1 else ""))  # fmt: skip


def read_pets(root: Path | str, split: str) -> tuple[list[Path], np.ndarray]:
    """Oxford-IIIT Pet ``split`` ("trainval" or "test"): image paths and labels 0..36."""
    _check_name("Oxford-IIIT Pet split", split, ("trainval", "test"))
    folder = dataset_dir("pets", root)
    ann = _require("pets", folder / "annotations" / f"{split}.txt")
    images = _require("pets", folder / "images")
    paths, labels = [], []
    for lineno, line in enumerate(ann.read_text().splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        fields = line.split()
        if len(fields) != 4:
            raise ValueError(f"{ann}:{lineno}: expected 'image_id class species breed', "
                             f"found {line!r}")  # fmt: skip
        paths.append(images / f"{fields[0]}.jpg")
        labels.append(int(fields[1]) - 1)
    _require_files("pets", paths)
    return paths, np.asarray(labels, dtype=np.int64)


def read_flowers102(root: Path | str, split: str) -> tuple[list[Path], np.ndarray]:
    """Flowers102 ``split`` ("train", "val" or "test"): image paths and labels 0..101."""
    from scipy.io import loadmat  # scipy is slow to import and only needed here

    keys = {"train": "trnid", "val": "valid", "test": "tstid"}
    _check_name("Flowers102 split", split, tuple(keys))
    folder = dataset_dir("flowers102", root)
    setid = loadmat(_require("flowers102", folder / "setid.mat"))
    all_labels = loadmat(_require("flowers102", folder / "imagelabels.mat"))
    jpg = _require("flowers102", folder / "jpg")
    # ravel, not squeeze_me: a one-element split would squeeze to a scalar
    ids = np.asarray(setid[keys[split]]).ravel().astype(np.int64)
    per_image = np.asarray(all_labels["labels"]).ravel().astype(np.int64) - 1
    if len(ids) and (ids.min() < 1 or ids.max() > len(per_image)):
        raise ValueError(f"{folder / 'setid.mat'}: image ids outside 1..{len(per_image)}")
    paths = [jpg / f"image_{i:05d}.jpg" for i in ids]
    _require_files("flowers102", paths)
    return paths, per_image[ids - 1]


# ----------------------------------------------------------------------------------------------
# Class-per-folder layouts: DomainNet, ImageNet validation


def _is_image(entry: os.DirEntry) -> bool:
    return (
        not entry.name.startswith(".")
        and entry.name.lower().endswith(IMAGE_EXTENSIONS)
        and entry.is_file()
    )


def read_image_folder(
    root_dir: Path | str, name: str | None = None
) -> tuple[list[Path], np.ndarray, list[str]]:
    """``<root_dir>/<class>/<image>``: image paths, labels, and the sorted class names.

    Label i is the i-th class folder in sorted order (torchvision's ImageFolder rule); images
    are sorted within a class so the order does not depend on the file system. ``name`` is
    the dataset whose layout a ``MissingData`` should describe (none: a generic message).
    """
    root_dir = Path(root_dir)

    def missing(detail: str) -> Exception:
        if name is not None:
            return MissingData(name, root_dir, detail)
        return FileNotFoundError(f"{root_dir}: {detail} (expected <class>/<image> folders)")

    if not root_dir.is_dir():
        raise missing("folder not found")
    classes = sorted(
        e.name for e in os.scandir(root_dir) if e.is_dir() and not e.name.startswith(".")
    )
    paths: list[Path] = []
    labels: list[int] = []
    for label, cls in enumerate(classes):
        files = sorted(e.name for e in os.scandir(root_dir / cls) if _is_image(e))
        paths += [root_dir / cls / f for f in files]
        labels += [label] * len(files)
    if not paths:
        raise missing("no <class>/<image> files in it")
    return paths, np.asarray(labels, dtype=np.int64), classes


def read_domainnet(root: Path | str, domain: str) -> tuple[list[Path], np.ndarray, list[str]]:
    """One DomainNet domain: image paths, labels (sorted class folders), class names."""
    _check_name("DomainNet domain", domain, DOMAINNET_DOMAINS)
    return read_image_folder(dataset_dir("domainnet", root) / domain, name="domainnet")


def read_imagenet_val(root: Path | str) -> tuple[list[Path], np.ndarray, list[str]]:
    """ImageNet validation: image paths, labels (sorted wnids, the standard order), wnids."""
    return read_image_folder(dataset_dir("imagenet_val", root), name="imagenet_val")


# ----------------------------------------------------------------------------------------------
# The evaluation transform

_RESAMPLING = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
    "box": Image.Resampling.BOX,
    "hamming": Image.Resampling.HAMMING,
}


def _resize_center_crop(img: Image.Image, size: int, scale_size: int, resample) -> np.ndarray:
    if img.mode != "RGB":
        img = img.convert("RGB")  # grayscale, palette, RGBA (alpha dropped), CMYK
    # torchvision's Resize(int) on a PIL image: the shorter side becomes scale_size, the
    # longer one int(scale_size * long / short); then CenterCrop's rounding of the offsets
    w, h = img.size
    if w <= h:
        new_w, new_h = scale_size, int(scale_size * h / w)
    else:
        new_w, new_h = int(scale_size * w / h), scale_size
    if (new_w, new_h) != (w, h):
        img = img.resize((new_w, new_h), resample)
    if new_w < size or new_h < size:
        raise ValueError(f"image resized to {new_w}x{new_h} is smaller than the {size} px crop; "
                         f"crop_pct must be <= 1")  # fmt: skip
    top = round((new_h - size) / 2.0)
    left = round((new_w - size) / 2.0)
    return np.asarray(img.crop((left, top, left + size, top + size)), dtype=np.uint8)


def decode_images(  # noqa: C901 - to split (issue 14)
    items: np.ndarray | Sequence[Path | str],
    size: int,
    crop_pct: float = 0.875,
    interpolation: str = "bicubic",
    num_workers: int | None = None,
    progress: bool | None = None,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Apply the evaluation transform once: uint8 (N, size, size, 3).

    ``items`` is a uint8 array (N, H, W, 3) (or (N, H, W) grayscale) or a list of image paths.
    Each image is converted to RGB, its shorter side resized to int(size / crop_pct) with
    ``interpolation``, then centre-cropped to size x size: timm's eval transform, pixel for
    pixel what torchvision's Resize + CenterCrop give on a PIL image. Images are decoded in
    ``num_workers`` threads (default: the CPU count, at most 16; PIL releases the GIL while
    decoding and resizing); the output order is the input order whatever the threads do.
    ``progress`` shows a tqdm bar; None shows it for more than 1,000 items. ``out``, a uint8
    (N, size, size, 3) array (e.g. a memory-mapped .npy file), receives the images instead of a
    new array, so a dataset larger than memory can be decoded straight to disk.
    """
    _check_name("interpolation", interpolation, tuple(_RESAMPLING))
    if not 0 < crop_pct <= 1:
        raise ValueError(f"crop_pct must be in (0, 1], got {crop_pct}")
    resample = _RESAMPLING[interpolation]
    scale_size = int(size / crop_pct)  # timm: math.floor(img_size / crop_pct)
    is_array = isinstance(items, np.ndarray)
    if is_array:
        if items.dtype != np.uint8 or items.ndim not in (3, 4):
            raise ValueError(f"expected a uint8 (N, H, W, 3) array, got {items.dtype} "
                             f"{items.shape}")  # fmt: skip
        if items.ndim == 4 and items.shape[-1] == 1:
            items = items[..., 0]

    def one(i: int) -> np.ndarray:
        if is_array:
            return _resize_center_crop(Image.fromarray(items[i]), size, scale_size, resample)
        with Image.open(items[i]) as img:
            return _resize_center_crop(img, size, scale_size, resample)

    n = len(items)
    if out is None:
        out = np.empty((n, size, size, 3), dtype=np.uint8)
    elif out.shape != (n, size, size, 3) or out.dtype != np.uint8:
        raise ValueError(f"out must be uint8 {(n, size, size, 3)}, got {out.dtype} {out.shape}")
    workers = num_workers if num_workers is not None else min(16, os.cpu_count() or 1)
    indices = range(n)
    bar = None
    if progress or (progress is None and n > 1000):
        try:
            from tqdm import tqdm

            bar = tqdm(total=n, desc=f"decode {size}px", unit="img")
        except ImportError:  # the bar is a nicety, not a dependency
            bar = None
    try:
        if workers <= 1 or n < 2:
            results = map(one, indices)
            for i, arr in zip(indices, results, strict=True):
                out[i] = arr
                if bar is not None:
                    bar.update()
        else:
            with ThreadPoolExecutor(max_workers=workers) as pool:
                # map yields in input order, so threads cannot reorder the output
                for i, arr in zip(indices, pool.map(one, indices), strict=True):
                    out[i] = arr
                    if bar is not None:
                        bar.update()
    finally:
        if bar is not None:
            bar.close()
    return out


# ----------------------------------------------------------------------------------------------
# Download

_TORCHVISION_DOWNLOADABLE = ("cifar10", "cifar100", "pets", "flowers102")


def is_present(name: str, root: Path | str) -> bool:
    """Whether the files ``name``'s readers need first are in place (a cheap check, no md5)."""
    return first_missing(name, root) is None


def first_missing(name: str, root: Path | str, part: str | None = None) -> Path | None:
    """The first file or folder that ``name``'s readers need and that is not there, or None.

    ``part`` is a CIFAR-10-C corruption or a DomainNet domain, whose file or folder is checked
    too. Cheap: no listing of images, no md5.
    """
    folder = dataset_dir(name, root)
    needed = {
        "cifar10": [folder / f for files in _CIFAR_FILES["cifar10"].values() for f, _ in files],
        "cifar100": [folder / f for files in _CIFAR_FILES["cifar100"].values() for f, _ in files],
        "cifar10_c": [folder / "labels.npy"],
        "pets": [folder / "annotations" / "trainval.txt", folder / "annotations" / "test.txt",
                 folder / "images"],
        "flowers102": [folder / "setid.mat", folder / "imagelabels.mat", folder / "jpg"],
        "domainnet": [folder],
        "imagenet_val": [folder],
    }[name]  # fmt: skip
    if part is not None and name == "cifar10_c":
        needed.append(folder / f"{part}.npy")
    elif part is not None and name == "domainnet":
        needed.append(folder / part)
    return next((p for p in needed if not p.exists()), None)


def download(name: str, root: Path | str) -> Path:
    """Put dataset ``name`` under ``root`` in its official layout; returns its folder.

    CIFAR-10, CIFAR-100, Pets and Flowers102 are fetched by torchvision's own dataset classes
    (which check the official md5s). CIFAR-10-C, DomainNet and ImageNet cannot be fetched
    that way: if they are not already in place, ``MissingData`` says where to get them.
    """
    _check_name("dataset", name, DATASETS)
    root = Path(root)
    folder = dataset_dir(name, root)
    if name not in _TORCHVISION_DOWNLOADABLE:
        if not is_present(name, root):
            raise MissingData(name, folder, "cannot be downloaded automatically")
        return folder
    root.mkdir(parents=True, exist_ok=True)
    import torchvision.datasets as tvd  # heavy, and only needed to download

    if name == "cifar10":
        tvd.CIFAR10(str(root), train=True, download=True)
        tvd.CIFAR10(str(root), train=False, download=True)
    elif name == "cifar100":
        tvd.CIFAR100(str(root), train=True, download=True)
        tvd.CIFAR100(str(root), train=False, download=True)
    elif name == "pets":
        tvd.OxfordIIITPet(str(root), split="trainval", download=True)
    elif name == "flowers102":
        tvd.Flowers102(str(root), split="train", download=True)
    return folder


# ----------------------------------------------------------------------------------------------
# Fake copies for tests


def _fake_image(rng: np.random.Generator, label: int, n_classes: int, h: int, w: int) -> np.ndarray:
    # a class colour plus noise, so a model can tell the classes apart in end-to-end tests
    hue = label / max(n_classes, 1)
    base = 127.5 + 100 * np.cos(2 * np.pi * (hue + np.array([0.0, 1 / 3, 2 / 3])))
    noise = rng.normal(0, 20, size=(h, w, 3))
    return np.clip(base + noise, 0, 255).astype(np.uint8)


def _write_jpg(path: Path, pixels: np.ndarray, mode: str = "RGB") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    img = Image.fromarray(pixels)
    if mode != "RGB":
        img = img.convert(mode)
    img.save(path, format="JPEG", quality=90)


def _fake_cifar(folder: Path, which: str, n_per_class: int, n_classes: int, rng) -> None:
    label_key = b"labels" if which == "cifar10" else b"fine_labels"
    for split, files in _CIFAR_FILES[which].items():
        for filename, _ in files:
            labels = np.repeat(np.arange(n_classes), n_per_class)
            rng.shuffle(labels)
            hwc = np.stack([_fake_image(rng, int(y), n_classes, 32, 32) for y in labels])
            entry = {
                b"batch_label": f"fake {split} {filename}".encode(),
                b"data": hwc.transpose(0, 3, 1, 2).reshape(len(labels), -1),
                label_key: [int(y) for y in labels],  # a list, as in the official files
                b"filenames": [f"fake_{i}.png".encode() for i in range(len(labels))],
            }
            if which == "cifar100":
                entry[b"coarse_labels"] = [int(y) % 20 for y in labels]
            with open(folder / filename, "wb") as f:
                pickle.dump(entry, f, protocol=2)
    if which == "cifar10":
        meta_name = "batches.meta"
        meta = {b"label_names": [f"class_{c}".encode() for c in range(n_classes)]}
    else:
        meta_name = "meta"
        meta = {b"fine_label_names": [f"class_{c}".encode() for c in range(n_classes)],
                b"coarse_label_names": [f"super_{c}".encode() for c in range(20)]}  # fmt: skip
    with open(folder / meta_name, "wb") as f:
        pickle.dump(meta, f, protocol=2)


def write_fake_layout(  # noqa: C901 - to split (issue 14)
    name: str,
    root: Path | str,
    n_per_class: int = 4,
    n_classes: int = 3,
    size: int = 32,
    seed: int = 0,
) -> Path:
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
    _check_name("dataset", name, DATASETS)
    if n_per_class < 1 or n_classes < 1 or size < 8:
        raise ValueError("write_fake_layout needs n_per_class >= 1, n_classes >= 1, size >= 8")
    rng = np.random.default_rng(seed)
    folder = dataset_dir(name, root)
    folder.mkdir(parents=True, exist_ok=True)

    def dims(i: int) -> tuple[int, int]:
        short = max(8, (size * 3) // 4)
        return (size, short) if i % 2 else (short, size)  # (h, w)

    if name in ("cifar10", "cifar100"):
        _fake_cifar(folder, name, n_per_class, n_classes, rng)
    elif name == "cifar10_c":
        labels = np.repeat(np.arange(n_classes), n_per_class)
        rng.shuffle(labels)
        # the official labels.npy is uint8: the test labels repeated for the 5 severities
        np.save(folder / "labels.npy", np.tile(labels, 5).astype(np.uint8))
        for corruption in CIFAR10C_CORRUPTIONS:
            images = np.stack([_fake_image(rng, int(y), n_classes, 32, 32)
                               for _ in range(5) for y in labels])  # fmt: skip
            np.save(folder / f"{corruption}.npy", images)
    elif name == "pets":
        # official names: cats capitalised, dogs lower case, '_' inside breed names
        breeds = [f"Cat_breed_{c}" if c % 2 == 0 else f"dog_breed_{c}" for c in range(n_classes)]
        listing = ["#Image CLASS-ID SPECIES BREED ID", "#ID: 1:37 Class ids",
                   "#SPECIES: 1:Cat 2:Dog", "#BREED ID: 1-25:Cat 1:12:Dog"]  # fmt: skip
        lines: dict[str, list[str]] = {"trainval": [], "test": []}
        k = 0
        for c, breed in enumerate(breeds):
            species = 1 if c % 2 == 0 else 2
            for j in range(2 * n_per_class):
                image_id = f"{breed}_{j + 1}"
                split = "trainval" if j < n_per_class else "test"
                line = f"{image_id} {c + 1} {species} {c // 2 + 1}"
                lines[split].append(line)
                listing.append(line)
                h, w = dims(k)
                k += 1
                _write_jpg(
                    folder / "images" / f"{image_id}.jpg", _fake_image(rng, c, n_classes, h, w)
                )
        (folder / "annotations").mkdir(parents=True, exist_ok=True)
        for split, split_lines in lines.items():
            (folder / "annotations" / f"{split}.txt").write_text("\n".join(split_lines) + "\n")
        (folder / "annotations" / "list.txt").write_text("\n".join(listing) + "\n")
    elif name == "flowers102":
        from scipy.io import savemat

        labels = np.repeat(np.arange(n_classes), 3 * n_per_class)
        rng.shuffle(labels)
        for i, y in enumerate(labels, 1):
            h, w = dims(i)
            _write_jpg(
                folder / "jpg" / f"image_{i:05d}.jpg", _fake_image(rng, int(y), n_classes, h, w)
            )
        # per class, n_per_class ids go to each split, in shuffled order as in the release
        ids = {"trnid": [], "valid": [], "tstid": []}
        for c in range(n_classes):
            members = rng.permutation(np.flatnonzero(labels == c) + 1)
            for s, key in enumerate(ids):
                ids[key] += members[s * n_per_class : (s + 1) * n_per_class].tolist()
        savemat(folder / "imagelabels.mat", {"labels": (labels + 1)[None].astype(np.uint8)})
        savemat(folder / "setid.mat",
                {k: np.asarray(v, dtype=np.uint16)[None] for k, v in ids.items()})  # fmt: skip
    elif name == "domainnet":
        for domain in DOMAINNET_DOMAINS:
            for c in range(n_classes):
                for j in range(n_per_class):
                    h, w = dims(j)
                    path = folder / domain / f"class_{c:03d}" / f"{domain}_{c:03d}_{j + 1:06d}.jpg"
                    # quickdraw images are black-and-white drawings: exercise the gray path
                    mode = "L" if domain == "quickdraw" else "RGB"
                    _write_jpg(path, _fake_image(rng, c, n_classes, h, w), mode)
    elif name == "imagenet_val":
        k = 0
        for c in range(n_classes):
            for _ in range(n_per_class):
                k += 1
                h, w = dims(k)
                path = folder / f"n{c:08d}" / f"ILSVRC2012_val_{k:08d}.JPEG"
                # a few official validation images are grayscale
                _write_jpg(path, _fake_image(rng, c, n_classes, h, w), "L" if k == 1 else "RGB")
    return folder


__all__ = [
    "CIFAR10C_CORRUPTIONS",
    "DATASETS",
    "DOMAINNET_DOMAINS",
    "IMAGE_EXTENSIONS",
    "LAYOUTS",
    "SOURCES",
    "ChecksumMismatch",
    "MissingData",
    "dataset_dir",
    "decode_images",
    "download",
    "first_missing",
    "is_present",
    "read_cifar",
    "read_cifar10_c",
    "read_domainnet",
    "read_flowers102",
    "read_image_folder",
    "read_imagenet_val",
    "read_pets",
    "verify_md5_default",
    "write_fake_layout",
]
