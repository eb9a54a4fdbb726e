"""One job's story from its record: ``bench show JOB_ID_OR_RECORD [--results DIR] [--png PATH]``.

Configuration, status and reason, accuracies, the plasticity of each component per layer, and
the loss, learning-rate and validation-accuracy curves as small plain-text plots (``--png``:
the same curves as a matplotlib figure). The record is found by its path, its job id, or a
unique prefix of it, under the results directory. No torch import.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

from bench.core.config import format_lr
from bench.core.rootpath import inside
from bench.page import job_facts
from bench.results import store

_HEX = re.compile(r"[0-9a-f]{1,16}")


class NotFound(LookupError):
    """No record, or several, for what was asked; ``str()`` says which and what to do."""


def find_record(what: str, results: Path) -> Path:
    """The record file of a path, a job id, or a unique job-id prefix under ``results``."""
    path = Path(what)
    if path.suffix == ".json" or path.exists():
        if not path.is_file():
            raise NotFound(f"{what}: no such record file")
        return path
    if not _HEX.fullmatch(what):
        raise NotFound(f"{what!r} is neither a record file nor a job id (16 hex digits, or "
                       "their beginning)")
    results = Path(results)
    if not results.is_dir():
        raise NotFound(f"--results {results}: no such directory")
    # Records live at <results>/<suite>/<job_id>.json (bench.results.store); folders starting with
    # '.' or '_' hold no records.
    found = sorted(p for p in results.glob(f"[!._]*/{what}*.json")
                   if re.fullmatch(r"[0-9a-f]{16}", p.stem))
    if not found:
        raise NotFound(f"no record of a job {what}... under {results} (another --results? "
                       "`bench plan SUITE` lists the job ids)")
    if len(found) > 1:
        shown = "\n  ".join(str(p) for p in found[:20])
        more = f"\n  ... and {len(found) - 20} more" if len(found) > 20 else ""
        raise NotFound(f"{len(found)} records start with {what}; give more of the job id:\n  "
                       f"{shown}{more}")
    return inside(results, found[0])  # never read through a link out of the results folder


def ascii_plot(points: list[tuple[float, float]], width: int = 60, height: int = 8,
               log_y: bool = False) -> list[str]:
    """A scatter of (x, y) points in plain text: ``height`` rows of ``width`` columns, the
    y range on the left, the x range below. Non-finite points (and, with ``log_y``,
    non-positive ones) are left out."""
    pts = [(x, y) for x, y in points if math.isfinite(x) and math.isfinite(y)
           and (y > 0 or not log_y)]
    if not pts:
        return ["(no points)"]
    f = math.log10 if log_y else (lambda v: v)
    xs, ys = [x for x, _ in pts], [f(y) for _, y in pts]
    x0, x1, y0, y1 = min(xs), max(xs), min(ys), max(ys)
    grid = [[" "] * width for _ in range(height)]
    for x, y in zip(xs, ys):
        col = round((x - x0) / (x1 - x0) * (width - 1)) if x1 > x0 else 0
        row = round((y - y0) / (y1 - y0) * (height - 1)) if y1 > y0 else 0
        grid[height - 1 - row][col] = "*"
    top, bottom = (f"{10 ** v if log_y else v:.3g}" for v in (y1, y0))
    pad = max(len(top), len(bottom))
    lines = []
    for i, row in enumerate(grid):
        label = top if i == 0 else bottom if i == height - 1 else ""
        lines.append(f"{label:>{pad}} |{''.join(row)}")
    left, right = f"{x0:g}", f"{x1:g}"
    lines.append(" " * pad + " +" + "-" * width)
    lines.append(" " * pad + "  " + left + right.rjust(width - len(left)))
    return lines


def _pct(v) -> str:
    return "-" if v is None else f"{v:.4f}"


def _key(entry) -> str:
    return entry["key"] if isinstance(entry, dict) else str(entry)


def _configuration(rec: dict) -> list[str]:
    c = rec["config"]
    m, r, p = c["model"], c["recipe"], c["plasticity"]
    w = m["weights"] if isinstance(m["weights"], dict) else {"source": m["weights"]}
    lines = [
        f"  model       {m['label']} ({m['name']}, weights: {w.get('source')}"
        + (f" {w['file']}" if w.get("file") else "") + ")"
        + (f", kwargs {m['kwargs']}" if m.get("kwargs") else ""),
        f"  dataset     {c['dataset']['key']}",
        f"  strategy    {c['strategy']['key']}",
        f"  lr, seed    {format_lr(c['lr'])}, {c['seed']}"
        + (f"   protocol {c['protocol']}" if c.get("protocol") else ""),
        "  recipe      " + ", ".join(f"{k} {v}" for k, v in r.items()),
        f"  plasticity  reference {_key(p['reference'])}, {p['pairs']} pairs"
        + ("" if p.get("enabled", True) else " (not measured)"),
    ]
    if c.get("overrides"):
        lines.append("  overrides   " + " ".join(f"--set {o}" for o in c["overrides"]))
    return lines


def _results(rec: dict) -> list[str]:
    mt = rec["metrics"]
    lines = [f"  test acc {_pct(mt.get('test_acc'))}, best val acc {_pct(mt.get('best_val_acc'))}"
             f" at step {mt.get('best_step', '-')} of {mt.get('steps_done', '-')}"]
    if mt.get("trainable_params") is not None and mt.get("total_params"):
        share = 100 * mt["trainable_params"] / mt["total_params"]
        lines.append(f"  trainable parameters {mt['trainable_params']:,} of "
                     f"{mt['total_params']:,} ({share:.2f}%)")
    if mt.get("trained_params") is not None:
        from bench.core.strategies import name_groups

        groups = name_groups(mt["trained_params"])
        lines.append(f"  trained ({len(mt['trained_params'])} tensors, by pattern): "
                     + (", ".join(groups) if groups else "none (a probe on frozen features)"))
    times = [f"wall {mt['wall_seconds']:.1f} s"] if "wall_seconds" in mt else []
    times += [f"{k} {mt[k + '_seconds']:.1f} s" for k in ("train", "plasticity")
              if k + "_seconds" in mt]
    if mt.get("images_per_second"):
        times.append(f"{mt['images_per_second']:.0f} images/s")
    if mt.get("peak_memory_mb"):
        times.append(f"peak memory {mt['peak_memory_mb']:.0f} MB")
    if times:
        lines.append("  " + ", ".join(times))
    return lines


def plasticity_table(plast: dict) -> list[str]:
    """Layers as rows, components as columns (mean over pairs), and the mean over layers."""
    from tabulate import tabulate

    comps, layers = job_facts.plasticity_grid(plast)
    rows = [[layer, *(layers[layer][c]["mean"] if c in layers[layer] else None for c in comps)]
            for layer in layers]
    rows.append(["mean", *(plast["components"][c]["mean"] for c in comps)])
    rows.append(["ci95", *(plast["components"][c].get("ci95") for c in comps)])
    return tabulate(rows, headers=["layer", *comps], floatfmt=".4g").splitlines()


def _attempts(attempts: list[dict]) -> list[str]:
    """One line per attempt of the job (``provenance.attempts``): when, where, from which
    step; every one but the last was interrupted."""
    if not attempts:
        return []
    out = ["", f"attempts: {len(attempts)}"]
    for i, a in enumerate(attempts, 1):
        step = a.get("resumed_at_step") or 0
        how = f"resumed at step {step} from its checkpoint" if step else "from step 0"
        end = "finished" if i == len(attempts) else "interrupted"
        out.append(f"  {i}. {a.get('started_at')} on {a.get('hostname')} (pid {a.get('pid')}):"
                   f" {how}; {end}")
    return out


def describe(rec: dict, path: Path | None = None) -> str:
    """The whole story of one record, as text."""
    out = [f"job {rec['job_id']} (suite {rec['suite']}): {rec['status']}"]
    if rec.get("error"):
        out.append(f"  reason: {rec['error']['reason']}")
    out += ["", "configuration", *_configuration(rec), "", "results", *_results(rec)]
    plast = rec.get("plasticity")
    if plast:
        out += ["", f"plasticity ({plast.get('variant', 'paper')}: reference {plast['reference']}"
                f" -> {plast['target']}, {plast['pairs']} pairs)",
                *("  " + line for line in plasticity_table(plast))]
    points = job_facts.curves(rec)
    for title, key in (("loss", "loss"), ("learning rate", "lr")):
        out += ["", f"{title} by step", *("  " + line for line in ascii_plot(points[key]))]
    val = points["val_acc"]
    if val:
        out += ["", "validation accuracy by step", *("  " + line for line in ascii_plot(
            val, height=5))]
    prov = rec.get("provenance") or {}
    out += _attempts(prov.get("attempts") or [])
    out += ["", f"provenance: git {str(prov.get('git_commit'))[:12]}"
            f"{' (dirty)' if prov.get('git_dirty') else ''}, {prov.get('device')} on "
            f"{prov.get('hostname', '?')}, {prov.get('started_at')} .. {prov.get('finished_at')}"]
    if path is not None:
        out.append(f"record: {path}")
        log = path.with_suffix(".log")
        if log.is_file():
            out.append(f"log:    {log}")
    return "\n".join(out)


def save_png(rec: dict, path: Path) -> None:
    """Loss, learning rate and validation accuracy by step, one panel each."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points = job_facts.curves(rec)
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.2))
    for ax, (title, pts) in zip(axes, (("loss", points["loss"]), ("learning rate", points["lr"]),
                                       ("validation accuracy", points["val_acc"]))):
        if pts:
            ax.plot(*zip(*pts), marker="." if len(pts) < 50 else None)
        ax.set_title(title)
        ax.set_xlabel("step")
    fig.suptitle(f"{rec['job_id']}: {rec['config']['strategy']['key']} on "
                 f"{rec['config']['dataset']['key']} ({rec['status']})")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def show(what: str, results: Path, png: Path | None = None) -> str:
    """The text ``bench show`` prints; ``NotFound`` or ``bench.core.record.RecordError``
    otherwise."""
    path = find_record(what, results)
    rec = store.read_record(path)
    if png is not None:
        save_png(rec, png)
    return describe(rec, path)
