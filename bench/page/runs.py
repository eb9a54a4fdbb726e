"""The runs table: one row per job, and the keys and orders every table of the page shares.

A cell is one (suite, protocol, model, dataset): nothing is ever scored across protocols.
Every function here is pure and deterministic (rows come out in a fixed order). No torch.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

import pandas as pd

from bench.core.components import BLOCK_COMPONENTS, COMPONENTS
from bench.core.protocol import DEFAULT_PROTOCOL
from bench.core.status import Status
from bench.core.strategies import STRATEGIES, strategy_label
from bench.data.datasets import dataset_label

# One (model, dataset) measured within one suite under one protocol: nothing is ever scored
# across protocols.
CELL = ["suite", "protocol", "model", "dataset"]
SCORE_KEY = [*CELL, "strategy"]

RUN_COLUMNS = [
    "suite", "protocol", "job_id", "status", "model", "model_name", "dataset", "strategy",
    "strategy_name", "lr", "seed",
    "test_acc", "best_val_acc", "best_step", "trainable_params", "total_params", "wall_seconds",
    "train_seconds", "steps_done", "step_seconds", "images_per_second", "peak_memory_mb", "error",
    "dataset_key", "strategy_key",
]

_DONE = Status.DONE.value


# Ties between mean validation accuracies are decided on values rounded this far, so that
# float summation order can never turn an exact tie into a spurious winner.
TIE_DECIMALS = 12


def strategy_order(name: object) -> int:
    """Sort position of a strategy name: the registry's order, unknown names last."""
    names = STRATEGIES.names()
    return names.index(name) if name in names else len(names)


def component_order(name: object) -> int:
    """Sort position of a component: forward order of the block, then the others."""
    names = (*BLOCK_COMPONENTS, *(n for n in COMPONENTS.names() if n not in BLOCK_COMPONENTS))
    return names.index(name) if name in names else len(names)


def strategy_component(name: object) -> str | None:
    """The block component a strategy isolates (None for full, linear, emb, unknown names)."""
    return STRATEGIES[name].component if name in STRATEGIES else None


def as_float(value: object) -> float:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else (
        math.nan)


def sorted_rows(df: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """Sort with strategies and components in their registry order; stable, fresh index."""
    keys = {}
    for col in by:
        if col == "strategy" and "strategy_name" in df:
            keys["_s"] = df["strategy_name"].map(strategy_order)
        if col == "component":
            keys["_c"] = df["component"].map(component_order)
        keys[col] = df[col]
    tmp = pd.DataFrame(keys, index=df.index)
    order = tmp.sort_values(list(tmp.columns), kind="mergesort", na_position="last").index
    return df.loc[order].reset_index(drop=True)


def protocol_of(record: Mapping) -> str:
    """A record's protocol (records written before protocols existed are ``clean``)."""
    return record["config"].get("protocol") or DEFAULT_PROTOCOL


def cell_of(r: Mapping) -> tuple[str, str, str, str]:
    return (r["suite"], protocol_of(r), r["config"]["model"]["label"],
            dataset_label(r["config"]["dataset"]))


def runs_table(records: Iterable[Mapping]) -> pd.DataFrame:
    """One row per job: what ran, how it ended, its metrics and, for failures, the reason."""
    rows = []
    for r in records:
        cfg, m = r["config"], r.get("metrics") or {}
        err = r.get("error") or {}
        train_s, steps = as_float(m.get("train_seconds")), as_float(m.get("steps_done"))
        rows.append((
            r["suite"], protocol_of(r), r["job_id"], r["status"], cfg["model"]["label"],
            cfg["model"]["name"], dataset_label(cfg["dataset"]), strategy_label(cfg["strategy"]),
            cfg["strategy"]["name"], as_float(cfg["lr"]), int(cfg["seed"]),
            as_float(m.get("test_acc")), as_float(m.get("best_val_acc")),
            as_float(m.get("best_step")),
            as_float(m.get("trainable_params")), as_float(m.get("total_params")),
            as_float(m.get("wall_seconds")), train_s, steps,
            train_s / steps if steps > 0 else math.nan,
            as_float(m.get("images_per_second")), as_float(m.get("peak_memory_mb")),
            str(err.get("reason") or ""), cfg["dataset"]["key"], cfg["strategy"]["key"],
        ))
    df = pd.DataFrame(rows, columns=RUN_COLUMNS)
    for col in ("best_step", "trainable_params", "total_params", "steps_done"):
        df[col] = df[col].astype("Int64")
    return sorted_rows(df, [*SCORE_KEY, "lr", "seed", "job_id"])


def done_runs(records: Iterable[Mapping]) -> pd.DataFrame:
    """The done runs with a test accuracy (a baseline probe may have no validation score)."""
    runs = runs_table(records)
    return runs[(runs["status"] == _DONE) & runs["test_acc"].notna()]
