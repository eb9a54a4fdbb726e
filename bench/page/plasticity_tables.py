"""The plasticity tables: the measurements of the records, per layer and per component.

One done record per cell stands for the cell's measurement (every job of a cell measures the
same pretrained model on the same pairs); ``measurement_id`` says when two suites share one.
No torch.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Mapping

import pandas as pd

from bench.core.components import COMPONENTS, PAPER_VARIANT
from bench.core.status import Status
from bench.page.runs import CELL, as_float, cell_of, protocol_of, sorted_rows

PLASTICITY_COLUMNS = [
    *CELL, "layer", "component", "mean", "std", "n", "ci95", "variant", "pairs", "job_id",
]
SUMMARY_COLUMNS = [
    *CELL, "component", "paper", "mean", "std", "n", "ci95", "rank", "variant", "pairs", "job_id",
    "measurement",
]

_DONE = Status.DONE.value


def plasticity_of(record: Mapping, variant: str = PAPER_VARIANT) -> Mapping | None:
    """A record's plasticity measurement of one variant (the paper's is ``plasticity``)."""
    if variant == PAPER_VARIANT:
        return record.get("plasticity")
    return (record.get("plasticity_variants") or {}).get(variant)


def _plasticity_sources(records: Iterable[Mapping],
                        variant: str = PAPER_VARIANT) -> list[tuple[Mapping, Mapping]]:
    """One done record with plasticity per (suite, protocol, model, dataset): the smallest
    job_id, and its measurement of ``variant``.

    Every job of a cell measures the same pretrained model on the same pairs, so the values
    agree up to nondeterminism; taking one fixed record keeps the tables reproducible. (Not
    for ``after_finetuning``, which each job measures on its own fine-tuned model.)
    """
    chosen: dict[tuple, Mapping] = {}
    for r in records:
        if r["status"] != _DONE or not plasticity_of(r, variant):
            continue
        key = cell_of(r)
        if key not in chosen or r["job_id"] < chosen[key]["job_id"]:
            chosen[key] = r
    return [(chosen[k], plasticity_of(chosen[k], variant)) for k in sorted(chosen)]


def plasticity_table(records: Iterable[Mapping], variant: str = PAPER_VARIANT) -> pd.DataFrame:
    """Long format: one row per (suite, model, dataset, layer, component), from done records."""
    rows = []
    for r, p in _plasticity_sources(records, variant):
        cell = cell_of(r)
        for e in p["layers"]:
            rows.append((*cell, int(e["layer"]), e["component"], as_float(e["mean"]),
                         as_float(e["std"]), int(e["n"]), as_float(e["ci95"]), p["variant"],
                         int(p["pairs"]), r["job_id"]))
    df = pd.DataFrame(rows, columns=PLASTICITY_COLUMNS)
    return sorted_rows(df, [*CELL, "component", "layer"])


def plasticity_summary(records: Iterable[Mapping], variant: str = PAPER_VARIANT) -> pd.DataFrame:
    """Per (suite, model, dataset, component): the mean over layers, its ci95, and its rank.

    Values are the record's ``plasticity.components`` (the mean over layers); rank 1 is the
    most plastic component of the cell (ties share the smaller rank).
    """
    rows = []
    for r, p in _plasticity_sources(records, variant):
        cell = cell_of(r)
        for comp, s in p["components"].items():
            paper = COMPONENTS[comp].paper if comp in COMPONENTS else comp
            rows.append((*cell, comp, paper, as_float(s["mean"]), as_float(s["std"]), int(s["n"]),
                         as_float(s["ci95"]), math.nan, p["variant"], int(p["pairs"]), r["job_id"],
                         measurement_id(r)))
    df = pd.DataFrame(rows, columns=SUMMARY_COLUMNS)
    if len(df):
        df["rank"] = df.groupby(CELL, sort=False)["mean"].rank(method="min", ascending=False)
    df["rank"] = df["rank"].astype("Int64")
    return sorted_rows(df, [*CELL, "component"])


def measurement_id(record: Mapping) -> str:
    """What determines a plasticity measurement: the protocol, the model (architecture and
    weights, not its label), the dataset and the plasticity settings (not which extra
    variants were measured beside it). Two suites whose records share an id share one
    measurement (the same cached weights measured on the same pairs): not independent
    evidence."""
    cfg = record["config"]
    model = {k: v for k, v in cfg["model"].items() if k != "label"}
    plast = {k: v for k, v in cfg["plasticity"].items() if k != "variants"}
    key = json.dumps([protocol_of(record), model, cfg["dataset"], plast], sort_keys=True)
    return hashlib.sha256(key.encode()).hexdigest()[:16]


LENGTH_COLUMNS = ["suite", "protocol", "model", "steps"]


def pretraining_lengths(records: Iterable[Mapping]) -> pd.DataFrame:
    """Per (suite, protocol, model): its pretraining steps, for the suites whose models are one
    model pretrained for different lengths (the same architecture and pretraining recipe but
    the number of steps, at least three lengths): the others have no row."""
    models: dict[tuple, dict] = {}
    for r in records:
        m = r["config"]["model"]
        w = m.get("weights")
        if isinstance(w, Mapping) and w.get("source") == "pretrain" and "steps" in w:
            models[(r["suite"], protocol_of(r), m.get("label", m["name"]))] = m
    rows = []
    by_suite: dict[tuple, list] = {}
    for (suite, protocol, label), m in models.items():
        by_suite.setdefault((suite, protocol), []).append((label, m))
    for (suite, protocol), ms in by_suite.items():
        if one_model_at_lengths([m for _, m in ms], min_lengths=3):
            rows += [(suite, protocol, label, int(m["weights"]["steps"])) for label, m in ms]
    return sorted_rows(pd.DataFrame(rows, columns=LENGTH_COLUMNS), LENGTH_COLUMNS)


def one_model_at_lengths(models: list[Mapping | None], min_lengths: int = 2) -> bool:
    """Whether ``models`` (configurations, labels aside) are one model pretrained by the
    benchmark for at least ``min_lengths`` different numbers of steps and nothing else
    different: a sweep over pretraining length, not independent replicates."""
    ws = [m.get("weights") if isinstance(m, Mapping) else None for m in models]
    if not ws or not all(isinstance(w, Mapping) and w.get("source") == "pretrain"
                         and "steps" in w for w in ws):
        return False
    same = {json.dumps({**{k: v for k, v in m.items() if k != "label"},
                        "weights": {k: v for k, v in w.items() if k != "steps"}}, sort_keys=True)
            for m, w in zip(models, ws, strict=True)}
    return len(same) == 1 and len({w["steps"] for w in ws}) >= min_lengths
