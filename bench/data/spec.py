"""The dataset specification: what a dataset is (``DatasetSpec``), what its reader returns
(``Raw``), how a tiny fake copy is written (``Fake``), and the error for missing files.

A ``DatasetSpec`` holds everything the benchmark knows about a dataset: its role (fine-tuned
on, pretrained on, plasticity reference), its parameters and their valid values, the number
of classes, the rule that cuts it into train / val / test (a name in ``bench.data.splits``'
``SPLIT_RULES``), and, for the datasets read from files, the folder under the data root, the
official layout and files (with md5s where the release has them), where to get it, how to
download it, and how to write a tiny fake copy in the official format for tests. Each dataset
family (``bench.ds_*``) writes its reader and its specs with these types; ``bench.data.datasets``
registers them. The reading helpers below (``require``, ``read_official``...) turn a missing
or unreadable official file into an error naming the layout and where to get it. Torch-free.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from bench.core.registry import UnknownName, unknown_name_message
from bench.data import formats
from bench.data.fetch import Archive
from bench.data.formats import MissingFile, UnreadableFile

KINDS = ("target", "source", "reference")  # fine-tuned on, pretrained on, plasticity reference


@dataclass
class Raw:
    """What a reader returns: (items, labels) per split; items are uint8 arrays or paths.

    ``num_classes`` None: the spec's ``num_classes``.
    """

    splits: dict[str, tuple[Any, np.ndarray]]
    num_classes: int | None = None
    # Per split, the ids of its images where they are not their positions in the split (e.g.
    # CIFAR-10-C: one severity's rows of the .npy files); see bench.data.splits.sample_ids.
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
    splits: str | None = None  # rule in bench.data.splits.SPLIT_RULES (targets); None: not cut
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
    # the core rule ``bench.core.config.LOCATED_PARAMS``, which the job id applies.
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
            raise self.missing(self.dir("<data root>"),
                               "no data root: set `data_root:` in the suite, --data-root, or "
                               "the BENCH_DATA environment variable")
        return root

    def load(self, root: Path | None, params: dict) -> Raw:
        """The reader's splits; MissingData (with the layout) when files or the root lack."""
        raw = self.read(self.need_root(root), params)
        return raw if raw.num_classes is not None else replace(raw, num_classes=self.num_classes)

    def missing(self, path: Path | str, detail: str = "") -> MissingData:
        """The error for a file or folder of this dataset that is not at ``path``."""
        return MissingData(self.name, path, detail, self.layout, self.source)

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



def check_name(kind: str, name: str, choices: Sequence[str]) -> None:
    if name not in choices:
        raise UnknownName(unknown_name_message(kind, name, tuple(choices)))


# ----------------------------------------------------------------------------------------------
# Errors and the reading helpers that raise them


class MissingData(MissingFile):
    """A dataset file or folder is not where the official layout puts it
    (``DatasetSpec.missing`` makes one).

    ``str()`` is the whole user-facing message: the expected path, the layout, the source.
    """

    def __init__(self, name: str, path: Path | str, detail: str = "", layout: str = "",
                 source: str = ""):
        indented = "\n".join("    " + line for line in layout.splitlines())
        message = (f"{name}: expected {path}{' (' + detail + ')' if detail else ''}\n"
                   f"  layout:\n{indented}\n"
                   f"  get it from: {source}")
        super().__init__(path, detail, message)
        self.dataset, self.layout, self.source = name, layout, source

    def __reduce__(self):
        # rebuilt from its parts, so it survives a trip back from a worker process
        return (type(self), (self.dataset, self.path, self.detail, self.layout, self.source))


def require(spec: DatasetSpec, path: Path, detail: str = "") -> Path:
    if not path.exists():
        raise spec.missing(path, detail)
    return path


def read_official(spec: DatasetSpec, path: Path, read: Callable[[Path], Any]) -> Any:
    """``read(path)`` of one of ``spec``'s official files, which must be there; a file that
    cannot be read (truncated, another format) is ``UnreadableFile`` naming it."""
    require(spec, path)
    try:
        return read(path)
    except MissingFile:
        raise
    except Exception as e:  # noqa: BLE001 - whatever the format's reader raises for bad bytes
        raise UnreadableFile(path, f"{type(e).__name__}: {e}", spec.source) from None


def require_files(spec: DatasetSpec, paths: list[Path]) -> None:
    missing = [p for p in paths if not p.is_file()]
    if missing:
        more = f"; {len(missing) - 1} more of the split's images are missing too"
        raise spec.missing(missing[0], "an image the split lists" + (more if
                           len(missing) > 1 else ""))  # fmt: skip


def image_folder(spec: DatasetSpec, folder: Path) -> tuple[list[Path], np.ndarray, list[str]]:
    """``formats.read_image_folder`` of ``folder``, a missing one as ``spec``'s MissingData."""
    try:
        return formats.read_image_folder(folder)
    except MissingFile as e:
        raise spec.missing(e.path, e.detail) from None
