"""Preparing the data of a list of jobs: check that it is there, download what is missing,
decode it into the data cache ahead of time (``bench prepare``).

Each step reads the jobs' configurations: their targets at each model's input size with the
job's split seed, and their plasticity references, each once. Above one job: the input size
comes from the model (``bench.job.models.input_config``).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from bench.core.protocol import DEFAULT_PROTOCOL, PROTOCOLS, Protocol
from bench.data import datasets
from bench.data.datasets import DATASETS, data_root, data_root_path
from bench.data.loading import load_images, load_splits, whole_sources
from bench.data.spec import MissingData
from bench.data.splits import SPLITS, anchor, split_parts


def prepare(configs: list[dict], cache: Path, root: str | None = None,
            download: bool = False, progress: bool = True) -> list[dict]:
    """Decode every dataset that ``configs`` (job configurations) need into the data cache.

    Targets at each model's input size with the job's split seed, and the plasticity
    reference; each once. ``root`` overrides the jobs' data root (``data_root:`` of the
    suite, else ``BENCH_DATA``). With ``download``, the missing datasets that have official files
    are downloaded first (``download_missing``).
    Returns one row per cache entry: what, where, counts, checksum, whether it was decoded now.
    """
    from bench.job import models

    inputs: dict[tuple[str, str], dict] = {}
    todo: dict[str, tuple] = {}
    for c in configs:
        mkey = json.dumps(c["model"], sort_keys=True)
        protocol = PROTOCOLS[c.get("protocol", DEFAULT_PROTOCOL)]
        if (mkey, protocol.name) not in inputs:
            inputs[mkey, protocol.name] = models.input_config(c["model"], protocol)
        dc = inputs[mkey, protocol.name]
        where = root or c.get("data_root")
        fmt = (dc["input_size"], dc["crop_pct"], dc["interpolation"])
        # entries of whole training images do not depend on the seed (its cuts index them)
        wanted = [("whole", c["dataset"], protocol.name) if protocol.whole_train_images
                  else ("splits", c["dataset"], [c["recipe"]["split_seed"], protocol.name])]
        if c["plasticity"]["enabled"]:
            wanted.append(("images", c["plasticity"]["reference"], "eval"))
        for kind, d, arg in wanted:
            todo.setdefault(json.dumps([kind, d, arg, fmt, where], sort_keys=True),
                            (kind, d, arg, fmt, where))
    if download:
        download_missing(configs, root, progress=progress)
    rows = []
    bar = _tqdm(todo.values(), progress)
    for kind, d, arg, (size, crop, interp), where in bar:
        if hasattr(bar, "set_description"):
            bar.set_description(f"prepare {d['key']} {size}px")
        r = data_root(where)
        dcfg = {"input_size": size, "crop_pct": crop, "interpolation": interp}
        if kind == "splits":
            s = load_splits(d, r, size, arg[0], crop, interp, cache=cache, progress=progress,
                            protocol=PROTOCOLS[arg[1]])
            counts = {n: len(getattr(s, n)[1]) for n in SPLITS}
        elif kind == "whole":
            rows += _prepare_whole(d, r, dcfg, PROTOCOLS[arg], cache, progress)
            continue
        else:
            s = load_images(d, r, size, arg, crop, interp, cache=cache, progress=progress)
            counts = {arg: len(s.y)}
        rows.append({"dataset": d["key"], "kind": kind, "size": size, "counts": counts,
                     "num_classes": s.num_classes, "checksum": s.checksum,
                     "cache_dir": str(s.cache_dir), "fresh": s.fresh})
    return rows


def _prepare_whole(dataset: dict, root: Path | None, dcfg: dict, protocol: Protocol,
                   cache: Path, progress: bool) -> list[dict]:
    """The cache entries of a target under a protocol that trains on whole images
    (``whole_sources``), one row each."""
    root = anchor(dataset, root)
    raw, parts = split_parts(dataset, 0, root, protocol)
    evals, whole = whole_sources(dataset, raw, parts, root, dcfg, cache, progress)
    size = dcfg["input_size"]
    rows = [{"dataset": dataset["key"], "kind": f"{protocol.name} eval {src}", "size": size,
             "counts": {src: len(im.y)}, "num_classes": im.num_classes, "checksum": im.checksum,
             "cache_dir": str(im.cache_dir), "fresh": im.fresh} for src, im in evals.items()]
    if not isinstance(raw.splits[parts["train"][0]][0], np.ndarray):  # arrays need no entry
        rows.append({"dataset": dataset["key"], "kind": f"{protocol.name} train (whole)",
                     "size": whole.x.shape[1], "counts": {parts["train"][0]: len(whole.x)},
                     "num_classes": raw.num_classes, "checksum": whole.checksum,
                     "cache_dir": str(whole.cache_dir), "fresh": whole.fresh})
    return rows


def download_missing(configs: list[dict], root: str | None = None, mirror: str | None = None,
                     progress: bool = True) -> list[dict]:
    """Fetch the datasets (targets and plasticity references) of ``configs`` that are not in
    place under their data root (``root`` overrides the jobs'), each once, from the official
    hosts or ``mirror`` (``BENCH_MIRROR``); one row per file fetched. Datasets that cannot be
    downloaded are left to ``check_data`` (which lists every missing one)."""
    wanted = set()
    for c in configs:
        where = root or c.get("data_root")
        wanted.add((c["dataset"]["name"], where))
        if c["plasticity"]["enabled"]:
            wanted.add((c["plasticity"]["reference"]["name"], where))
    from bench.data import fetch

    rows: list[dict] = []
    mirror, manifest = fetch.mirror_url(mirror), None
    for name, where in sorted(wanted, key=str):
        if DATASETS[name].folder is None or not DATASETS[name].archives:
            continue  # the digits come with scikit-learn; the others are fetched by hand
        path = data_root_path(where, name)
        if not datasets.is_present(name, path):
            if manifest is None:  # read once, and only when something is fetched
                manifest = fetch.read_manifest(mirror) if mirror else {}
            rows += [{"dataset": name, **r}
                     for r in datasets.download(name, path, mirror, progress, manifest)]
    return rows


def check_data(configs: list[dict], root: str | None = None,
               after_download: bool = False) -> None:
    """``MissingData`` for the datasets (targets and plasticity references) of ``configs``
    whose files are not in place, all of them in one error (``MissingDatasets`` when there
    are several); cheap (no decoding, no checksums), for a check before any work. ``root``
    overrides the jobs' data root as in ``prepare``; ``after_download``: say which of the
    missing ones cannot be downloaded."""
    seen = set()
    missing: list[MissingData] = []
    for c in configs:
        wanted = [c["dataset"]] + ([c["plasticity"]["reference"]]
                                   if c["plasticity"]["enabled"] else [])
        where = root or c.get("data_root")
        for d in wanted:
            spec = DATASETS[d["name"]]
            if (d["key"], where) in seen:
                continue
            seen.add((d["key"], where))
            if spec.preflight is not None:
                spec.preflight(d["params"])
            if spec.folder is None:
                continue  # not under the data root (digits come with scikit-learn)
            try:
                path = spec.first_missing(data_root_path(where, d["name"]), d["params"])
            except MissingData as e:  # no data root at all
                missing.append(e)
                continue
            if path is not None:
                by_hand = after_download and not spec.archives
                missing.append(spec.missing(path, "not found" + (
                    "; cannot be downloaded automatically" if by_hand else "")))
    if len(missing) == 1:
        raise missing[0]
    if missing:
        raise MissingDatasets(missing)


class MissingDatasets(MissingData):
    """Several datasets are missing: every one's message, in one error."""

    def __init__(self, missing: list[MissingData]):
        self.missing = list(missing)
        first = self.missing[0]
        FileNotFoundError.__init__(self, f"{len(self.missing)} datasets are missing:\n"
                                   + "\n".join(str(m) for m in self.missing))
        self.dataset, self.path, self.detail = first.dataset, first.path, first.detail

    def __reduce__(self):
        return (type(self), (self.missing,))



def _tqdm(items, progress: bool):
    items = list(items)
    if not progress:
        return items
    from tqdm import tqdm

    return tqdm(items, unit="dataset", dynamic_ncols=True)
