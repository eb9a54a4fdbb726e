"""One specification per dataset: the registry every other module reads dataset facts from.

A ``DatasetSpec`` holds everything the benchmark knows about a dataset: its role (fine-tuned
on, pretrained on, plasticity reference), its parameters and their valid values, the number
of classes, the rule that cuts it into train / val / test (a name in ``bench.data``'s
``SPLIT_RULES``), and, for the datasets read from files, the folder under the data root, the
official layout and files (with md5s where the release has them), where to get it, how to
download it, and how to write a tiny fake copy in the official format for tests. Adding a
dataset means writing its reader (and fake writer) here and registering one spec.

The readers below take a data root and return plain numpy arrays or lists of image paths with
0-based int64 labels; generic file formats (CIFAR pickles, image folders, the evaluation
decode) are in ``bench.formats``. Module level is torch-free: suites validate against this
registry without it (``download`` fetches with the standard library, ``bench.fetch``).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from bench import digits, formats
from bench.config import LOCATED_PARAMS
from bench.fetch import Archive
from bench.formats import ChecksumMismatch, MissingFile, UnreadableFile
from bench.registry import Registry, UnknownName, unknown_name_message

KINDS = ("target", "source", "reference")  # fine-tuned on, pretrained on, plasticity reference


@dataclass
class Raw:
    """What a reader returns: (items, labels) per split; items are uint8 arrays or paths.

    ``num_classes`` None: the spec's ``num_classes``.
    """

    splits: dict[str, tuple[Any, np.ndarray]]
    num_classes: int | None = None
    # Per split, the ids of its images where they are not their positions in the split (e.g.
    # CIFAR-10-C: one severity's rows of the .npy files); see bench.data.sample_ids.
    ids: dict[str, np.ndarray] | None = None


@dataclass(frozen=True)
class Fake:
    """What a fake-layout writer writes: ``n_per_class`` images of ``n_classes`` classes per
    split file, image files about ``size`` px, drawn from ``rng``."""

    n_per_class: int
    n_classes: int
    size: int
    rng: np.random.Generator

    def dims(self, i: int) -> tuple[int, int]:
        """(h, w) of the i-th image file: alternately landscape and portrait."""
        short = max(8, (self.size * 3) // 4)
        return (self.size, short) if i % 2 else (short, self.size)

    def image(self, label: int, h: int = 32, w: int = 32) -> np.ndarray:
        return formats.fake_image(self.rng, label, self.n_classes, h, w)


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    kinds: tuple[str, ...]  # a subset of KINDS
    description: str
    read: Callable[[Path | None, dict], Raw]  # (data root or None, parameters) -> Raw
    # parameter -> (valid values or None for any, default or None when required)
    params: dict[str, tuple[tuple | None, Any]] = field(default_factory=dict)
    num_classes: int | None = None  # None: the reader counts them (class folders)
    splits: str | None = None  # rule in bench.data.SPLIT_RULES (targets); None: not cut
    train_split: str = "train"  # the reader's split that the rule cuts into train / val
    # Read from files under the data root (None: made in memory, e.g. the digits):
    folder: str | None = None  # under the data root: the folder torchvision creates
    layout: str = ""  # the official layout, for error messages (lines under <root>)
    source: str = ""  # where to get it
    files: tuple[str, ...] = ()  # what the readers need first, under ``folder``; "{param}"
    md5: dict[str, str] = field(default_factory=dict)  # official file -> md5
    # The official files `bench prepare --download` fetches (URL, md5, where they go):
    archives: tuple[Archive, ...] = ()
    fake: Callable[[Path, Fake], None] | None = None  # write a tiny copy into ``folder``
    # Checks the suite's parameters beyond their valid values: (parameters, the suite file's
    # folder) -> (resolved parameters, [(parameter, problem)]); cheap (validate runs it).
    check: Callable[[dict, Path], tuple[dict, list[tuple[str, str]]]] | None = None
    # Before any work (run, prepare, submit): every file readable, else an error naming them.
    preflight: Callable[[dict], None] | None = None
    param_docs: dict[str, str] = field(default_factory=dict)  # for parameters of any value
    # How tables name it when the suite gives no `label:` (parameters -> label); None: its key.
    default_label: Callable[[dict], str] | None = None
    # Parameters that say where the data lies, not what it is (a folder dataset's ``path``):
    # out of the dataset key and the job id, so that moving the data keeps both. Named from
    # the core rule ``bench.config.LOCATED_PARAMS``, which the job id applies.
    located: tuple[str, ...] = ()
    # What the user should know about the data, as warning lines (validate, plan and run
    # print them): e.g. a class too small to be in both parts of a cut.
    notes: Callable[[dict], list[str]] | None = None
    # The official release's images per reader split, from the parameters, for planning
    # without the data (`bench plan --cost`); None: the reader counts them (in-memory and
    # your own datasets). ``arrays``: the reader gives uint8 arrays at their native size
    # (CIFAR's 32 px), not image files.
    counts: Callable[[dict], dict[str, int]] | None = None
    arrays: bool = False

    def anchor(self, root: Path | None, params: dict) -> Path | None:
        """What sample ids and the data cache's source identity are relative to: the folder of
        a dataset with a located parameter (so that moving it changes neither), else
        ``root``."""
        return Path(params[self.located[0]]) if self.located else root

    def dir(self, root: Path | str) -> Path:
        """The folder under ``root`` where this dataset lives in its official layout."""
        if self.folder is None:
            raise ValueError(f"{self.name} is not read from a data root")
        return Path(root) / self.folder

    def need_root(self, root: Path | None) -> Path | None:
        """``root``, or MissingData (with the layout) when this dataset needs one and it is
        not set."""
        if self.folder is not None and root is None:
            raise MissingData(self.name, self.dir("<data root>"),
                              "no data root: set `data_root:` in the suite, --data-root, or "
                              "the BENCH_DATA environment variable")
        return root

    def load(self, root: Path | None, params: dict) -> Raw:
        """The reader's splits; MissingData (with the layout) when files or the root lack."""
        raw = self.read(self.need_root(root), params)
        return raw if raw.num_classes is not None else replace(raw, num_classes=self.num_classes)

    def first_missing(self, root: Path | str, params: dict | None = None) -> Path | None:
        """The first file or folder the readers need that is not there, or None. Paths with a
        parameter are checked only when ``params`` has it. Cheap: no listing, no md5."""
        folder = self.dir(root)
        for f in self.files:
            try:
                path = folder / f.format(**(params or {}))
            except KeyError:
                continue
            if not path.exists():
                return path
        return None


DATASETS: Registry[DatasetSpec] = Registry("dataset")


def register(spec: DatasetSpec) -> DatasetSpec:
    if not set(spec.kinds) <= set(KINDS):
        raise ValueError(f"{spec.name}: kinds must be among {KINDS}, got {spec.kinds}")
    return DATASETS.register(spec.name, spec)


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


def _check_name(kind: str, name: str, choices: Sequence[str]) -> None:
    if name not in choices:
        raise UnknownName(unknown_name_message(kind, name, tuple(choices)))


# ----------------------------------------------------------------------------------------------
# Errors


class MissingData(MissingFile):
    """A dataset file or folder is not where the official layout puts it.

    ``str()`` is the whole user-facing message: the expected path, the layout, the source.
    """

    def __init__(self, name: str, path: Path | str, detail: str = ""):
        spec = DATASETS[name]
        layout = "\n".join("    " + line for line in spec.layout.splitlines())
        message = (f"{name}: expected {path}{' (' + detail + ')' if detail else ''}\n"
                   f"  layout:\n{layout}\n"
                   f"  get it from: {spec.source}")
        super().__init__(path, detail, message)
        self.dataset = name

    def __reduce__(self):
        # rebuilt from its parts, so it survives a trip back from a worker process
        return (type(self), (self.dataset, self.path, self.detail))


def _require(name: str, path: Path, detail: str = "") -> Path:
    if not path.exists():
        raise MissingData(name, path, detail)
    return path


def _read_official(name: str, path: Path, read: Callable[[Path], Any]) -> Any:
    """``read(path)`` of one of dataset ``name``'s official files, which must be there; a file
    that cannot be read (truncated, another format) is ``UnreadableFile`` naming it."""
    _require(name, path)
    try:
        return read(path)
    except MissingFile:
        raise
    except Exception as e:  # noqa: BLE001 - whatever the format's reader raises for bad bytes
        raise UnreadableFile(path, f"{type(e).__name__}: {e}", DATASETS[name].source) from None


def _require_files(name: str, paths: list[Path]) -> None:
    missing = [p for p in paths if not p.is_file()]
    if missing:
        more = f"; {len(missing) - 1} more of the split's images are missing too"
        raise MissingData(name, missing[0], "an image the split lists" + (more if
                          len(missing) > 1 else ""))  # fmt: skip


def is_present(name: str, root: Path | str) -> bool:
    """Whether the files ``name``'s readers need first are in place (a cheap check, no md5)."""
    return DATASETS[name].first_missing(root) is None


def download(name: str, root: Path | str, mirror: str | None = None,
             progress: bool = False, manifest: dict | None = None) -> list[dict]:
    """Put dataset ``name`` under ``root`` in its official layout from its official files
    (``archives``: from their hosts, or from ``mirror`` / ``BENCH_MIRROR``), verified and
    extracted by ``bench.fetch`` (``manifest``: the mirror's, if already read); returns what was
    fetched (file, url, checksum used). For a
    dataset without archives that is not in place, ``MissingData`` says where to get it."""
    from bench import fetch

    spec = DATASETS[name]
    root = Path(root)
    folder = spec.dir(root)
    if not spec.archives:
        if spec.first_missing(root) is not None:
            raise MissingData(name, folder, "cannot be downloaded automatically")
        return []
    root.mkdir(parents=True, exist_ok=True)
    need = [str(Path(spec.folder) / f) for f in spec.files if "{" not in f]
    from bench.store import file_lock

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


# ----------------------------------------------------------------------------------------------
# Digits (offline default): made in memory from scikit-learn


def _read_digits_source(root: Path | None, params: dict) -> Raw:
    x, y = digits.source()
    return Raw({"train": (x, y), "eval": (x, y)})


def _read_digits_c(root: Path | None, params: dict) -> Raw:
    """The held-out half, cut once into a training pool and a test set (``digits.test_cut``);
    ids are positions in the held-out half."""
    x, y = digits.held_out(params["corruption"], params["severity"])
    pool, test = digits.test_cut(len(y))
    return Raw({"train": (x[pool], y[pool]), "test": (x[test], y[test])},
               ids={"train": pool, "test": test})


register(DatasetSpec(
    "digits_source", ("source",), "clean scikit-learn digits, the source half (pretraining "
    "and plasticity reference of the default suite)", _read_digits_source, num_classes=10,
    counts=lambda p: digits.counts("source"), arrays=True))
register(DatasetSpec(
    "digits_c", ("target",), "held-out scikit-learn digits under a CIFAR-10-C-style "
    "corruption; a fixed 50/50 cut of them is its test split (450 images)",
    _read_digits_c, num_classes=10, splits="official",
    counts=lambda p: digits.counts("held_out"), arrays=True,
    params={"corruption": (digits.CORRUPTIONS, None), "severity": ((1, 2, 3, 4, 5), 5)}))


# ----------------------------------------------------------------------------------------------
# CIFAR-10 / CIFAR-100


def _cifar_files(which: str, split: str) -> list[str]:
    # the official test file is the one whose name starts with "test"
    return [f for f in DATASETS[which].md5 if f.startswith("test") == (split == "test")]


def read_cifar(root: Path | str, which: str, split: str,
               verify_md5: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """CIFAR-10 or CIFAR-100 ``split`` as (uint8 images (N, 32, 32, 3), int64 labels (N,)).

    ``which`` is "cifar10" or "cifar100", ``split`` "train" or "test"; CIFAR-100 labels are the
    100 fine labels. With ``verify_md5`` every file must match the official release's md5 (the
    values torchvision checks), else ``ChecksumMismatch``; pass False for copies that are not
    the official files, e.g. the small ones ``write_fake_layout`` writes.
    """
    _check_name("CIFAR dataset", which, ("cifar10", "cifar100"))
    _check_name("CIFAR split", split, ("train", "test"))
    spec = DATASETS[which]
    label_key = "labels" if which == "cifar10" else "fine_labels"
    images, labels = [], []
    for filename in _cifar_files(which, split):
        path = _require(which, spec.dir(root) / filename)
        if verify_md5:
            got = formats.md5_of(path)
            if got != spec.md5[filename]:
                raise ChecksumMismatch(
                    f"{path}: md5 {got}, the official file's is {spec.md5[filename]}; "
                    f"re-download it ({spec.source}), or pass verify_md5=False for a "
                    "non-official copy (BENCH_VERIFY_MD5=0 for the benchmark's loaders)")
        x, y = _read_official(which, path, lambda p: formats.read_cifar_pickle(p, label_key))
        images.append(x)
        labels.append(y)
    return np.concatenate(images), np.concatenate(labels)


def _reader_cifar(which: str) -> Callable[[Path | None, dict], Raw]:
    def read(root: Path | None, params: dict) -> Raw:
        verify = formats.verify_md5_default()
        return Raw({s: read_cifar(root, which, s, verify_md5=verify) for s in ("train", "test")})
    return read


def _fake_cifar(which: str) -> Callable[[Path, Fake], None]:
    def write(folder: Path, fake: Fake) -> None:
        label_key = "labels" if which == "cifar10" else "fine_labels"
        for split in ("train", "test"):
            for filename in _cifar_files(which, split):
                labels = np.repeat(np.arange(fake.n_classes), fake.n_per_class)
                fake.rng.shuffle(labels)
                hwc = np.stack([fake.image(int(y)) for y in labels])
                formats.write_cifar_pickle(folder / filename, hwc, labels, label_key,
                                           f"fake {split} {filename}")
        formats.write_cifar_meta(folder, which == "cifar100", fake.n_classes)
    return write


def _cifar_spec(which: str, description: str, num_classes: int, folder: str, layout: str,
                md5: dict[str, str], tv_class: str, archive: Archive) -> DatasetSpec:
    return DatasetSpec(
        which, ("target",), description, _reader_cifar(which), num_classes=num_classes,
        splits="official", folder=folder, layout=layout,
        source=f"https://www.cs.toronto.edu/~kriz/cifar.html; torchvision.datasets.{tv_class}; "
        "or `bench prepare --download`",
        files=tuple(md5), md5=md5, archives=(archive,), fake=_fake_cifar(which),
        counts=lambda p: {"train": 50_000, "test": 10_000}, arrays=True)


# The official files' md5s, the same values torchvision checks.
register(_cifar_spec(
    "cifar10", "CIFAR-10", 10, "cifar-10-batches-py",
    "<root>/cifar-10-batches-py/data_batch_1 ... data_batch_5   (train, 5 x 10,000 images)\n"
    "<root>/cifar-10-batches-py/test_batch                      (test, 10,000 images)\n"
    "python pickles with 'data' (N x 3072 uint8, CHW order) and 'labels'",
    {"data_batch_1": "c99cafc152244af753f735de768cd75f",
     "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
     "data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
     "data_batch_4": "634d18415352ddfa80567beed471001a",
     "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb",
     "test_batch": "40351d587109b95175f43aff81a1287e"}, "CIFAR10",
    Archive("https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
            "c58f30108f718f92721af3b95e74349a")))
register(_cifar_spec(
    "cifar100", "CIFAR-100", 100, "cifar-100-python",
    "<root>/cifar-100-python/train   (50,000 images)\n"
    "<root>/cifar-100-python/test    (10,000 images)\n"
    "python pickles with 'data' (N x 3072 uint8, CHW order) and 'fine_labels'",
    {"train": "16019d7e3df5f24257cddd939b257f8d",
     "test": "f0ef6b0ae62326f3e7ffdfab6717acfc"}, "CIFAR100",
    Archive("https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
            "eb9058c3a382ffc7106e4002c42a8d85")))


# ----------------------------------------------------------------------------------------------
# CIFAR-10-C

CIFAR10C_CORRUPTIONS: tuple[str, ...] = (
    # the 15 benchmark corruptions of Hendrycks & Dietterich (2019)
    "gaussian_noise", "shot_noise", "impulse_noise",
    "defocus_blur", "glass_blur", "motion_blur", "zoom_blur",
    "snow", "frost", "fog", "brightness",
    "contrast", "elastic_transform", "pixelate", "jpeg_compression",
    # the 4 extra ones shipped in the same release (held out in the original paper)
    "speckle_noise", "gaussian_blur", "spatter", "saturate",
)  # fmt: skip


def read_cifar10_c(root: Path | str, corruption: str,
                   severity: int) -> tuple[np.ndarray, np.ndarray]:
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
    data = _read_official("cifar10_c", path,
                          lambda p: np.load(p, mmap_mode="r", allow_pickle=False))
    labels = _read_official("cifar10_c", labels_path,
                            lambda p: np.load(p, mmap_mode="r", allow_pickle=False))
    source = DATASETS["cifar10_c"].source
    if data.ndim != 4 or data.shape[1:] != (32, 32, 3) or len(data) % 5:
        raise UnreadableFile(path, f"expected (5*n, 32, 32, 3) images, found {data.shape}",
                             source)
    if len(labels) != len(data):
        raise UnreadableFile(labels_path, f"{len(labels)} labels for {len(data)} images in "
                             f"{path}", source)
    n = len(data) // 5
    rows = slice((severity - 1) * n, severity * n)
    return np.array(data[rows], dtype=np.uint8), np.array(labels[rows], dtype=np.int64)


def _cifar10_c_raw(xy: tuple[np.ndarray, np.ndarray], severity: int) -> Raw:
    """One severity's rows; their ids are their rows in the official files."""
    n = len(xy[1])
    return Raw({"train": xy}, ids={"train": np.arange(n) + (severity - 1) * n})


def _fake_cifar10_c(folder: Path, fake: Fake) -> None:
    labels = np.repeat(np.arange(fake.n_classes), fake.n_per_class)
    fake.rng.shuffle(labels)
    # the official labels.npy is uint8: the test labels repeated for the 5 severities
    np.save(folder / "labels.npy", np.tile(labels, 5).astype(np.uint8))
    for corruption in CIFAR10C_CORRUPTIONS:
        np.save(folder / f"{corruption}.npy",
                np.stack([fake.image(int(y)) for _ in range(5) for y in labels]))


register(DatasetSpec(
    "cifar10_c", ("target",), "CIFAR-10-C, one corruption at one severity",
    lambda root, p: _cifar10_c_raw(read_cifar10_c(root, p["corruption"], p["severity"]),
                                   p["severity"]),
    params={"corruption": (CIFAR10C_CORRUPTIONS, None), "severity": ((1, 2, 3, 4, 5), 5)},
    num_classes=10, splits="cut_test", folder="CIFAR-10-C",
    layout="<root>/CIFAR-10-C/<corruption>.npy   (50,000 x 32 x 32 x 3 uint8: severities "
    "1..5,\n                                      10,000 images each, in that order)\n"
    "<root>/CIFAR-10-C/labels.npy         (50,000 labels, the test labels 5 times)",
    source="https://zenodo.org/records/2535967 (CIFAR-10-C.tar, about 2.9 GB); "
    "or `bench prepare --download`",
    files=("labels.npy", "{corruption}.npy"), fake=_fake_cifar10_c,
    counts=lambda p: {"train": 10_000}, arrays=True,  # one severity's rows
    # md5 as listed on the Zenodo record (2,918,471,680 bytes)
    archives=(Archive("https://zenodo.org/records/2535967/files/CIFAR-10-C.tar",
                      "56bf5dcef84df0e2308c6dcbcbbd8499", size=2_918_471_680),)))


# ----------------------------------------------------------------------------------------------
# Oxford-IIIT Pet


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
        if len(fields) != 4 or not fields[1].isdigit() or not 1 <= int(fields[1]) <= 37:
            raise UnreadableFile(ann, f"line {lineno}: expected 'image_id class species "
                                 f"breed' with class 1..37, found {line!r}",
                                 DATASETS["pets"].source)
        paths.append(images / f"{fields[0]}.jpg")
        labels.append(int(fields[1]) - 1)
    _require_files("pets", paths)
    return paths, np.asarray(labels, dtype=np.int64)


def _fake_pets(folder: Path, fake: Fake) -> None:
    # official names: cats capitalised, dogs lower case, '_' inside breed names
    breeds = [f"Cat_breed_{c}" if c % 2 == 0 else f"dog_breed_{c}" for c in range(fake.n_classes)]
    listing = ["#Image CLASS-ID SPECIES BREED ID", "#ID: 1:37 Class ids",
               "#SPECIES: 1:Cat 2:Dog", "#BREED ID: 1-25:Cat 1:12:Dog"]  # fmt: skip
    lines: dict[str, list[str]] = {"trainval": [], "test": []}
    k = 0
    for c, breed in enumerate(breeds):
        for j in range(2 * fake.n_per_class):
            image_id = f"{breed}_{j + 1}"
            line = f"{image_id} {c + 1} {1 if c % 2 == 0 else 2} {c // 2 + 1}"
            lines["trainval" if j < fake.n_per_class else "test"].append(line)
            listing.append(line)
            h, w = fake.dims(k)
            k += 1
            formats.write_jpg(folder / "images" / f"{image_id}.jpg", fake.image(c, h, w))
    (folder / "annotations").mkdir(parents=True, exist_ok=True)
    for split, split_lines in lines.items():
        (folder / "annotations" / f"{split}.txt").write_text("\n".join(split_lines) + "\n")
    (folder / "annotations" / "list.txt").write_text("\n".join(listing) + "\n")


register(DatasetSpec(
    "pets", ("target",), "Oxford-IIIT Pet",
    lambda root, p: Raw({s: read_pets(root, s) for s in ("trainval", "test")}),
    num_classes=37, splits="official", train_split="trainval", folder="oxford-iiit-pet",
    layout="<root>/oxford-iiit-pet/images/<Breed>_<n>.jpg\n"
    "<root>/oxford-iiit-pet/annotations/trainval.txt   (lines 'Abyssinian_100 1 1 1':\n"
    "<root>/oxford-iiit-pet/annotations/test.txt        image id, class 1..37, species, breed)",
    source="https://www.robots.ox.ac.uk/~vgg/data/pets/; torchvision.datasets.OxfordIIITPet; "
    "or `bench prepare --download`",
    files=("annotations/trainval.txt", "annotations/test.txt", "images"),
    fake=_fake_pets, counts=lambda p: {"trainval": 3_680, "test": 3_669},
    archives=(Archive("https://www.robots.ox.ac.uk/~vgg/data/pets/data/images.tar.gz",
                      "5c4f3ee8e5d25df40f4fd59a7f44e54c", "oxford-iiit-pet"),
              Archive("https://www.robots.ox.ac.uk/~vgg/data/pets/data/annotations.tar.gz",
                      "95a8c909bbe2e81eed6a22bccdf3f68f", "oxford-iiit-pet"))))


# ----------------------------------------------------------------------------------------------
# Flowers102


def read_flowers102(root: Path | str, split: str) -> tuple[list[Path], np.ndarray]:
    """Flowers102 ``split`` ("train", "val" or "test"): image paths and labels 0..101."""
    from scipy.io import loadmat  # scipy is slow to import and only needed here

    keys = {"train": "trnid", "val": "valid", "test": "tstid"}
    _check_name("Flowers102 split", split, tuple(keys))
    folder = dataset_dir("flowers102", root)
    setid = _read_official("flowers102", folder / "setid.mat",
                           lambda p: _mat_arrays(loadmat(p), p, tuple(keys.values())))
    all_labels = _read_official("flowers102", folder / "imagelabels.mat",
                                lambda p: _mat_arrays(loadmat(p), p, ("labels",)))
    jpg = _require("flowers102", folder / "jpg")
    # ravel, not squeeze_me: a one-element split would squeeze to a scalar
    ids = np.asarray(setid[keys[split]]).ravel().astype(np.int64)
    per_image = np.asarray(all_labels["labels"]).ravel().astype(np.int64) - 1
    if len(ids) and (ids.min() < 1 or ids.max() > len(per_image)):
        raise UnreadableFile(folder / "setid.mat", f"image ids outside 1..{len(per_image)}",
                             DATASETS["flowers102"].source)
    paths = [jpg / f"image_{i:05d}.jpg" for i in ids]
    _require_files("flowers102", paths)
    return paths, per_image[ids - 1]


def _mat_arrays(mat: dict, path: Path, keys: tuple[str, ...]) -> dict:
    missing = [k for k in keys if k not in mat]
    if missing:
        raise KeyError(f"no {', '.join(missing)} in it")
    return mat


def _fake_flowers102(folder: Path, fake: Fake) -> None:
    from scipy.io import savemat

    labels = np.repeat(np.arange(fake.n_classes), 3 * fake.n_per_class)
    fake.rng.shuffle(labels)
    for i, y in enumerate(labels, 1):
        h, w = fake.dims(i)
        formats.write_jpg(folder / "jpg" / f"image_{i:05d}.jpg", fake.image(int(y), h, w))
    # per class, n_per_class ids go to each split, in shuffled order as in the release
    ids: dict[str, list[int]] = {"trnid": [], "valid": [], "tstid": []}
    n = fake.n_per_class
    for c in range(fake.n_classes):
        members = fake.rng.permutation(np.flatnonzero(labels == c) + 1)
        for s, key in enumerate(ids):
            ids[key] += members[s * n: (s + 1) * n].tolist()
    savemat(folder / "imagelabels.mat", {"labels": (labels + 1)[None].astype(np.uint8)})
    savemat(folder / "setid.mat", {k: np.asarray(v, dtype=np.uint16)[None]
                                   for k, v in ids.items()})


_FLOWERS = "https://www.robots.ox.ac.uk/~vgg/data/flowers/102"
register(DatasetSpec(
    "flowers102", ("target",), "Oxford Flowers102",
    lambda root, p: Raw({s: read_flowers102(root, s) for s in ("train", "val", "test")}),
    num_classes=102, splits="official", folder="flowers-102",
    layout="<root>/flowers-102/jpg/image_00001.jpg ... image_08189.jpg\n"
    "<root>/flowers-102/imagelabels.mat   (key 'labels', 1-based, one per image)\n"
    "<root>/flowers-102/setid.mat         (keys 'trnid', 'valid', 'tstid': 1-based image ids)",
    source="https://www.robots.ox.ac.uk/~vgg/data/flowers/102/; "
    "torchvision.datasets.Flowers102; or `bench prepare --download`",
    files=("setid.mat", "imagelabels.mat", "jpg"),
    fake=_fake_flowers102, counts=lambda p: {"train": 1_020, "val": 1_020, "test": 6_149},
    archives=(Archive(f"{_FLOWERS}/102flowers.tgz", "52808999861908f626f3c1f4e79d11fa",
                      "flowers-102"),
              Archive(f"{_FLOWERS}/imagelabels.mat", "e0620be6f572b9609742df49c70aed4d",
                      "flowers-102", extract=False),
              Archive(f"{_FLOWERS}/setid.mat", "a5357ecc9cb78c4bef273ce3793fc85c",
                      "flowers-102", extract=False))))


# ----------------------------------------------------------------------------------------------
# Class-per-folder layouts: DomainNet, ImageNet validation

DOMAINNET_DOMAINS: tuple[str, ...] = (
    "clipart", "infograph", "painting", "quickdraw", "real", "sketch",
)  # fmt: skip
# Images per domain of the cleaned release (train + test on the dataset page's table,
# http://ai.bu.edu/M3SDA/; 586,575 in all).
DOMAINNET_IMAGES = {"clipart": 48_129, "infograph": 51_605, "painting": 72_266,
                    "quickdraw": 172_500, "real": 172_947, "sketch": 69_128}


def _image_folder(name: str, folder: Path) -> tuple[list[Path], np.ndarray, list[str]]:
    try:
        return formats.read_image_folder(folder)
    except MissingFile as e:
        raise MissingData(name, e.path, e.detail) from None


def read_domainnet(root: Path | str, domain: str) -> tuple[list[Path], np.ndarray, list[str]]:
    """One DomainNet domain: image paths, labels (sorted class folders), class names."""
    _check_name("DomainNet domain", domain, DOMAINNET_DOMAINS)
    return _image_folder("domainnet", dataset_dir("domainnet", root) / domain)


def read_imagenet_val(root: Path | str) -> tuple[list[Path], np.ndarray, list[str]]:
    """ImageNet validation: image paths, labels (sorted wnids, the standard order), wnids."""
    return _image_folder("imagenet_val", dataset_dir("imagenet_val", root))


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


def _fake_imagenet_val(folder: Path, fake: Fake) -> None:
    k = 0
    for c in range(fake.n_classes):
        for _ in range(fake.n_per_class):
            k += 1
            h, w = fake.dims(k)
            path = folder / f"n{c:08d}" / f"ILSVRC2012_val_{k:08d}.JPEG"
            # a few official validation images are grayscale
            formats.write_jpg(path, fake.image(c, h, w), "L" if k == 1 else "RGB")


register(DatasetSpec(
    "domainnet", ("target",), "DomainNet, one domain", _read_domainnet,
    params={"domain": (DOMAINNET_DOMAINS, None)}, splits="cut_test", folder="domainnet",
    layout="<root>/domainnet/<domain>/<class>/<image>.jpg   (the official per-domain zip files\n"
    "unpacked side by side; domains: " + ", ".join(DOMAINNET_DOMAINS) + ")",
    source="http://ai.bu.edu/M3SDA/ (the 'cleaned' per-domain zip files); "
    "not downloadable automatically: fetch and unzip them by hand",
    files=("", "{domain}"), fake=_fake_domainnet,
    counts=lambda p: {"train": DOMAINNET_IMAGES[p["domain"]]}))
register(DatasetSpec(
    "imagenet_val", ("reference",), "ImageNet validation images (plasticity reference)",
    lambda root, p: Raw({"eval": read_imagenet_val(root)[:2]}), num_classes=1000,
    folder="imagenet/val",
    layout="<root>/imagenet/val/<wnid>/<image>.JPEG   (ILSVRC2012 validation, 50,000 images "
    "in\n1,000 class folders; the official tar is flat: sort it into wnid folders with the\n"
    "usual valprep.sh, or let torchvision.datasets.ImageNet(split='val') do it)",
    source="https://image-net.org/ (ILSVRC2012_img_val.tar, needs an account); "
    "not downloadable automatically: fetch it by hand",
    files=("",), fake=_fake_imagenet_val, counts=lambda p: {"eval": 50_000}))



# ----------------------------------------------------------------------------------------------
# Your own images: a folder of class folders

FOLDER_LAYOUT = ("<path>/<class>/<image>   (one folder of class folders, cut 80/20 into "
                 "train/test)\nor <path>/train/<class>/<image> and <path>/test/<class>/<image>")


def _subdirs(folder: Path) -> list[str]:
    return sorted(e.name for e in os.scandir(folder) if e.is_dir() and not e.name.startswith("."))


def _has_split_layout(folder: Path) -> bool:
    return (folder / "train").is_dir() and (folder / "test").is_dir()


def _class_counts(folder: Path) -> dict[str, int]:
    """Class folder -> its number of image files (those ``read_image_folder`` reads)."""
    return {c: formats.count_images(folder / c) for c in _subdirs(folder)}


def _folder_problems(path: Path) -> list[str]:
    """What makes a folder dataset unusable: train/ and test/ with other class folders, fewer
    than 2 classes, a class folder without images (it would be a class never seen)."""
    if _has_split_layout(path):
        train, test = _subdirs(path / "train"), _subdirs(path / "test")
        if train != test:
            only = sorted(set(train) ^ set(test))
            return [f"{path}/train and {path}/test must hold the same class folders; in one "
                    f"only: {', '.join(only)}"]
        parts = [path / "train", path / "test"]
    else:
        parts = [path]
    classes = _subdirs(parts[0])
    if len(classes) < 2:
        return [f"{path} has {len(classes)} class folder(s), at least 2 are needed; expected "
                f"{FOLDER_LAYOUT}"]
    return [f"class folder {part / c} has no image files ({', '.join(formats.IMAGE_EXTENSIONS)})"
            f": add images or remove the folder (it would be a class of its own)"
            for part in parts for c, n in _class_counts(part).items() if n == 0]


def _check_folder(params: dict, base: Path) -> tuple[dict, list[tuple[str, str]]]:
    """``path`` resolved against the suite file's folder; it exists, has 2+ classes and no
    empty class folder; ``images``, the fingerprint of its images, is added (the dataset key)."""
    given = params["path"]
    if not isinstance(given, str) or not given.strip():
        return params, [("path", f"must be a folder path (a string), got {given!r}")]
    path = Path(os.path.abspath(base / Path(given).expanduser()))
    resolved = {**params, "path": str(path)}
    where = "" if Path(given).expanduser().is_absolute() else \
        f" (relative paths start at the suite file's folder, {Path(os.path.abspath(base))})"
    if not path.is_dir():
        return resolved, [("path", f"folder {path} not found{where}; expected {FOLDER_LAYOUT}")]
    problems = _folder_problems(path)
    if problems:
        return resolved, [("path", p) for p in problems]
    return {**resolved, "images": folder_fingerprint(path)}, []


def folder_fingerprint(path: Path | str) -> str:
    """16 hex digits of sha256 over every image the reader reads: its path under the folder
    (class and split included) and the md5 of its bytes. Moving or copying the folder keeps
    it; adding, removing, renaming or changing an image changes it."""
    path = Path(path)
    raw = read_folder(path)
    items = raw.splits["eval"][0]
    stats = tuple((Path(p).relative_to(path).as_posix(), *_stat(p)) for p in items)
    return _fingerprint(str(path), stats)


def _stat(p: Path) -> tuple[int, int]:
    st = os.stat(p)
    return st.st_size, st.st_mtime_ns


@functools.lru_cache(maxsize=16)
def _fingerprint(path: str, stats: tuple) -> str:
    # the stats are in the key: a folder whose files changed is hashed again
    h = hashlib.sha256()
    for rel, *_ in stats:
        h.update(f"{rel}\0{formats.md5_of(Path(path) / rel, cache=False)}\n".encode())
    return h.hexdigest()[:16]


def stratum_80(n: int) -> int:
    """How many of a class's ``n`` images the 80% part of a stratified cut takes: int(0.8 n),
    but at least 1 and, from 2 images on, at most n - 1, so that every class with 2 or more
    images is in both parts (a class of 1 stays in the 80% part: it is at least trained on)."""
    return max(1, min(int(0.8 * n), n - 1)) if n else 0


def _folder_notes(params: dict) -> list[str]:
    """The classes that the clean protocol's stratified cuts cannot put in every split."""
    path = Path(params["path"])
    if _has_split_layout(path):
        counts = {c: {"train": stratum_80(n), "val": n - stratum_80(n)}
                  for c, n in _class_counts(path / "train").items()}
    else:
        counts = {}
        for c, n in _class_counts(path).items():
            pool = stratum_80(n)
            counts[c] = {"train": stratum_80(pool), "val": pool - stratum_80(pool),
                         "test": n - pool}
    notes = []
    for c, parts in counts.items():
        absent = [s for s, k in parts.items() if k == 0]
        if absent:
            n = sum(parts.values())
            notes.append(f"{path}: class {c!r} has {n} image(s): not in {' or '.join(absent)} "
                         f"(a class needs 2 images to be in both parts of a cut, "
                         f"{3 if 'test' in parts else 2} to be in every split)")
    return notes


def read_folder(path: Path | str) -> Raw:
    """A folder dataset: ``train`` (and ``test`` for the train/test layout) and ``eval`` (every
    image: the plasticity reference), labels by sorted class folder (ImageFolder order)."""
    path = Path(path)
    if not _has_split_layout(path):
        items, labels, classes = formats.read_image_folder(path)
        return Raw({"train": (items, labels), "eval": (items, labels)}, len(classes))
    tr_items, tr_labels, classes = formats.read_image_folder(path / "train")
    te_items, te_labels, te_classes = formats.read_image_folder(path / "test")
    if te_classes != classes:
        raise MissingFile(path / "test", "", f"{path}/train and {path}/test must hold the same "
                          "class folders")
    return Raw({"train": (tr_items, tr_labels), "test": (te_items, te_labels),
                "eval": (tr_items + te_items, np.concatenate([tr_labels, te_labels]))},
               len(classes))


def _preflight_folder(params: dict) -> None:
    raw = read_folder(params["path"])
    formats.check_images(sorted({p for items, _ in raw.splits.values() for p in items}))


register(DatasetSpec(
    "folder", ("target", "reference"), "your own images: a folder of class folders (classes in "
    "sorted folder order); with train/ and test/ inside, those are the splits, else a seeded "
    "80/20 cut makes the test split",
    lambda root, p: read_folder(p["path"]), params={"path": (None, None)},
    param_docs={"path": "a folder; relative: from the suite file's folder"},
    splits="official_or_cut", layout=FOLDER_LAYOUT, check=_check_folder,
    preflight=_preflight_folder, located=LOCATED_PARAMS, notes=_folder_notes,
    default_label=lambda p: Path(str(p["path"])).name))
