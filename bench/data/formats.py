"""Generic file formats of image datasets, and the evaluation decode.

CIFAR's pickles (read without running code, md5 checks), class-per-folder image trees
(torchvision's ImageFolder rule), and ``decode_images``, which applies the evaluation transform
(resize the shorter side, centre crop) once, so that plasticity and evaluation can work on a
uint8 array; plus the writers the tests' fake copies use. What each dataset is (its folder,
layout, files, reader) is its family module (``bench.ds_*``), registered in ``bench.data.datasets``.
Nothing here needs torch.
"""

from __future__ import annotations

import functools
import hashlib
import os
import pickle
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

from bench.core.registry import UnknownName, unknown_name_message

IMAGE_EXTENSIONS: tuple[str, ...] = (
    ".jpg", ".jpeg", ".png", ".bmp", ".gif", ".ppm", ".pgm", ".tif", ".tiff", ".webp",
)  # fmt: skip


def _check_name(kind: str, name: str, choices: Sequence[str]) -> None:
    if name not in choices:
        raise UnknownName(unknown_name_message(kind, name, tuple(choices)))


# ----------------------------------------------------------------------------------------------
# Errors


class MissingFile(FileNotFoundError):
    """A file or folder a reader needs is not there; ``str()`` is the user-facing message."""

    def __init__(self, path: Path | str, detail: str = "", message: str | None = None):
        self.path = Path(path)
        self.detail = detail
        super().__init__(message or f"{path}: {detail or 'not found'}")

    def __str__(self) -> str:  # OSError would format errno/filename instead
        return str(self.args[0])

    def __reduce__(self):
        # rebuilt from its parts, so it survives a trip back from a worker process
        return (type(self), (self.path, self.detail, self.args[0]))


class UnreadableImages(ValueError):
    """Image files that cannot be decoded; ``str()`` lists every one with the reason."""

    def __init__(self, failures: Sequence[tuple[Path | str, str]]):
        self.failures = [(Path(p), why) for p, why in failures]
        lines = "\n".join(f"  {p}: {why}" for p, why in self.failures)
        super().__init__(f"{len(self.failures)} image file(s) cannot be read (fix or remove "
                         f"them):\n{lines}")

    def __reduce__(self):
        return (type(self), (self.failures,))


def check_images(paths: Sequence[Path | str]) -> None:
    """``UnreadableImages`` listing every file PIL cannot open and verify (no decoding)."""
    failures = []
    for p in paths:
        try:
            with Image.open(p) as img:
                img.verify()
        except (OSError, ValueError, SyntaxError) as e:  # what PIL raises for bad files
            failures.append((p, f"{type(e).__name__}: {e}"))
    if failures:
        raise UnreadableImages(failures)


class ChecksumMismatch(ValueError):
    """A file exists but is not the official file (partial download or modified)."""


class UnreadableFile(ValueError):
    """A dataset file is there but cannot be read (truncated, not the official format);
    ``str()`` names it, says why and what to do."""

    def __init__(self, path: Path | str, reason: str, source: str = ""):
        self.path, self.reason, self.source = Path(path), reason, source
        get = f" (get it from: {source})" if source else ""
        super().__init__(f"{path}: cannot be read ({reason}): not a complete official file; "
                         f"move it away and fetch it again{get}")

    def __reduce__(self):
        return (type(self), (self.path, self.reason, self.source))


# ----------------------------------------------------------------------------------------------
# CIFAR pickles


def md5_of(path: Path, cache: bool = True) -> str:
    """The md5 of a file (cached by path, size and modification time; ``cache=False`` for
    the many small files of an image folder, which would only push the others out)."""
    stat = path.stat()
    return (_md5 if cache else _md5.__wrapped__)(str(path), stat.st_size, stat.st_mtime_ns)

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



def read_cifar_pickle(path: Path, label_key: str) -> tuple[np.ndarray, np.ndarray]:
    """One CIFAR batch file: uint8 images (N, 32, 32, 3) (HWC) and int64 labels."""
    entry = _load_cifar_pickle(path)
    if "data" not in entry or label_key not in entry:
        raise ValueError(f"{path}: expected keys 'data' and '{label_key}', "
                         f"found {sorted(map(str, entry))}")  # fmt: skip
    data = np.asarray(entry["data"], dtype=np.uint8)
    lab = np.asarray(entry[label_key], dtype=np.int64)
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or len(lab) != len(data):
        raise ValueError(f"{path}: expected data (N, 3072) and N labels, "
                         f"found data {data.shape} and {len(lab)} labels")  # fmt: skip
    # rows are stored channel-first (1024 R, 1024 G, 1024 B); return HWC
    return np.ascontiguousarray(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)), lab


def write_cifar_pickle(path: Path, hwc: np.ndarray, labels: np.ndarray, label_key: str,
                       batch_label: str) -> None:
    """A batch file as the official release writes it (a protocol-2 pickle, bytes keys)."""
    entry = {
        b"batch_label": batch_label.encode(),
        b"data": hwc.transpose(0, 3, 1, 2).reshape(len(labels), -1),
        label_key.encode(): [int(y) for y in labels],  # a list, as in the official files
        b"filenames": [f"fake_{i}.png".encode() for i in range(len(labels))],
    }
    if label_key == "fine_labels":
        entry[b"coarse_labels"] = [int(y) % 20 for y in labels]
    with open(path, "wb") as f:
        pickle.dump(entry, f, protocol=2)


def write_cifar_meta(folder: Path, cifar100: bool, n_classes: int) -> None:
    """The label-name file of a CIFAR release (``batches.meta`` or ``meta``)."""
    names = [f"class_{c}".encode() for c in range(n_classes)]
    if cifar100:
        meta_name = "meta"
        meta = {b"fine_label_names": names,
                b"coarse_label_names": [f"super_{c}".encode() for c in range(20)]}
    else:
        meta_name, meta = "batches.meta", {b"label_names": names}
    with open(folder / meta_name, "wb") as f:
        pickle.dump(meta, f, protocol=2)


# ----------------------------------------------------------------------------------------------
# Class-per-folder layouts

def _is_image(entry: os.DirEntry) -> bool:
    return (
        not entry.name.startswith(".")
        and entry.name.lower().endswith(IMAGE_EXTENSIONS)
        and entry.is_file()
    )


def count_images(folder: Path | str) -> int:
    """The image files directly in ``folder`` (what ``read_image_folder`` reads of a class)."""
    return sum(1 for e in os.scandir(folder) if _is_image(e))


def read_image_folder(root_dir: Path | str) -> tuple[list[Path], np.ndarray, list[str]]:
    """``<root_dir>/<class>/<image>``: image paths, labels, and the sorted class names.

    Label i is the i-th class folder in sorted order (torchvision's ImageFolder rule); images
    are sorted within a class so the order does not depend on the file system. A missing or
    empty folder raises ``MissingFile``.
    """
    root_dir = Path(root_dir)

    def missing(detail: str) -> Exception:
        return MissingFile(root_dir, detail,
                           f"{root_dir}: {detail} (expected <class>/<image> folders)")

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


def decode_images(
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
    ``num_workers`` threads (default: the threads this process may use, ``bench.core.cpus``, at
    most 16; PIL releases the GIL while decoding and resizing); the output order is the input
    order whatever the threads do.
    ``progress`` shows a tqdm bar; None shows it for more than 1,000 items. ``out``, a uint8
    (N, size, size, 3) array (e.g. a memory-mapped .npy file), receives the images instead of a
    new array, so a dataset larger than memory can be decoded straight to disk.
    """
    _check_name("interpolation", interpolation, tuple(_RESAMPLING))
    if not 0 < crop_pct <= 1:
        raise ValueError(f"crop_pct must be in (0, 1], got {crop_pct}")
    resample = _RESAMPLING[interpolation]
    scale_size = int(size / crop_pct)  # timm: math.floor(img_size / crop_pct)
    return _map_images(items, lambda i, img: _resize_center_crop(img, size, scale_size, resample),
                       (size, size), num_workers, progress, out)


def decode_whole(
    items: Sequence[Path | str],
    side: int,
    num_workers: int | None = None,
    progress: bool | None = None,
    out: np.ndarray | None = None,
    sizes: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Keep every pixel of each image for random-resized crops: uint8 (N, side, side, 3), each
    whole image (RGB) resized bilinearly to side x side (squeezed: the aspect ratio is not
    kept), and int64 (N, 2) of each original (height, width), which the crop boxes are drawn
    on. ``out`` and ``sizes`` as in ``decode_images``."""
    n = len(items)
    sizes = np.empty((n, 2), dtype=np.int64) if sizes is None else sizes

    def one(i: int, img: Image.Image) -> np.ndarray:
        if img.mode != "RGB":
            img = img.convert("RGB")
        sizes[i] = (img.height, img.width)
        return np.asarray(img.resize((side, side), Image.Resampling.BILINEAR), dtype=np.uint8)

    return _map_images(items, one, (side, side), num_workers, progress, out), sizes


def _map_images(items, one: Callable[[int, Image.Image], np.ndarray], shape: tuple[int, int],
                num_workers: int | None, progress: bool | None,
                out: np.ndarray | None) -> np.ndarray:
    """``one(i, image)`` of every item (a uint8 array's rows, or image files) into ``out``
    (uint8 (N, *shape, 3)), in threads, in input order; unreadable files are reported all
    together (``UnreadableImages``)."""
    is_array = isinstance(items, np.ndarray)
    if is_array:
        if items.dtype != np.uint8 or items.ndim not in (3, 4):
            raise ValueError(f"expected a uint8 (N, H, W, 3) array, got {items.dtype} "
                             f"{items.shape}")  # fmt: skip
        if items.ndim == 4 and items.shape[-1] == 1:
            items = items[..., 0]

    failures: list[tuple[Path | str, str]] = []

    def each(i: int) -> np.ndarray | None:
        if is_array:
            return one(i, Image.fromarray(items[i]))
        try:
            with Image.open(items[i]) as img:
                return one(i, img)
        except (OSError, SyntaxError) as e:  # unreadable: every one is reported at the end
            failures.append((items[i], f"{type(e).__name__}: {e}"))
            return None

    n = len(items)
    if out is None:
        out = np.empty((n, *shape, 3), dtype=np.uint8)
    elif out.shape != (n, *shape, 3) or out.dtype != np.uint8:
        raise ValueError(f"out must be uint8 {(n, *shape, 3)}, got {out.dtype} {out.shape}")
    if num_workers is None:  # the threads this process may use (bench.core.cpus), at most 16
        from bench.core.cpus import decide

        num_workers = min(16, decide().count)
    workers = num_workers
    bar = _progress_bar(n, shape[0], progress)
    try:
        if workers <= 1 or n < 2:
            _fill(out, map(each, range(n)), bar)
        else:
            with ThreadPoolExecutor(max_workers=workers) as pool:
                # map yields in input order, so threads cannot reorder the output
                _fill(out, pool.map(each, range(n)), bar)
    finally:
        if bar is not None:
            bar.close()
    if failures:
        raise UnreadableImages(sorted(failures, key=lambda f: str(f[0])))
    return out


def _progress_bar(n: int, size: int, progress: bool | None):
    if not (progress or (progress is None and n > 1000)):
        return None
    try:
        from tqdm import tqdm
    except ImportError:  # the bar is a nicety, not a dependency
        return None
    return tqdm(total=n, desc=f"decode {size}px", unit="img")


def _fill(out: np.ndarray, images, bar) -> None:
    for i, arr in enumerate(images):
        if arr is not None:
            out[i] = arr
        if bar is not None:
            bar.update()


# ----------------------------------------------------------------------------------------------
# Fake images for tests

def fake_image(rng: np.random.Generator, label: int, n_classes: int, h: int, w: int) -> np.ndarray:
    # a class colour plus noise, so a model can tell the classes apart in end-to-end tests
    hue = label / max(n_classes, 1)
    base = 127.5 + 100 * np.cos(2 * np.pi * (hue + np.array([0.0, 1 / 3, 2 / 3])))
    noise = rng.normal(0, 20, size=(h, w, 3))
    return np.clip(base + noise, 0, 255).astype(np.uint8)


def write_jpg(path: Path, pixels: np.ndarray, mode: str = "RGB") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    img = Image.fromarray(pixels)
    if mode != "RGB":
        img = img.convert(mode)
    img.save(path, format="JPEG", quality=90)

