"""Verifying records: ``bench verify`` re-derives what a record claims from its own
configuration, with the job body itself (``bench.job.run.replay``) as the oracle.

Checks, per run of a job (docs/contributing.md, "Verifying records"):

- ``code``: the record's ``provenance.git_commit`` is a commit of this repository (the git
  folder this package sits in); a dirty tree is said in a note;
- ``data``: the splits of its configuration, made again, have the record's sizes and id
  checksums (``metrics.splits``, ``metrics.data_checksum``) and the plasticity reference its
  checksum: exactly;
- ``plasticity``: measured again on the same pairs with the same weights, every (layer,
  component) mean within ``PLASTICITY_RTOL`` (relative);
- ``steps``: the first K training steps replayed from the same seed, every logged loss and
  gradient norm within ``LOSS_RTOL`` and the learning rate exactly (to ``LR_RTOL``);
- ``all`` (``--steps all``) instead of ``steps``: the whole job again, every curve point,
  test and best validation accuracy (``ACC_ATOL``), best step, parameters counted.

Each check is ``verified``, ``differs`` (which field, claimed, found, by how much, against
which tolerance) or ``cannot`` (what is missing, and the fix). The tolerances cover other
thread counts and CPUs; how they were measured is in docs/contributing.md. What was found is
kept beside the records (``bench.results.verifications``), never inside one.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import subprocess
import tempfile
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.core import cpus
from bench.core.status import Status
from bench.results import runs as job_runs
from bench.results import verifications as ver
from bench.results.verifications import ACC_ATOL, LOSS_RTOL, LR_RTOL, PLASTICITY_RTOL

DEFAULT_STEPS = 20
ALL = "all"


@dataclass
class Finding:
    """One field that differs: what the record claims, what was found, and the tolerance."""

    field: str
    claimed: Any
    found: Any
    tolerance: str = "exact"

    @property
    def difference(self) -> float | None:
        try:
            return abs(float(self.found) - float(self.claimed))
        except (TypeError, ValueError):
            return None

    def to_dict(self) -> dict:
        return {"field": self.field, "claimed": self.claimed, "found": self.found,
                "difference": self.difference, "tolerance": self.tolerance}

    def __str__(self) -> str:
        by = f", by {self.difference:.3g}" if self.difference is not None else ""
        return (f"{self.field}: claimed {_short(self.claimed)}, found {_short(self.found)}"
                f"{by} (tolerance {self.tolerance})")


@dataclass
class Check:
    state: str
    findings: list[Finding] = field(default_factory=list)
    note: str = ""  # what a verified check adds (a dirty tree), or the fix of a `cannot`
    compared: int = 0  # how many values were compared
    # the largest difference seen among them, relative and absolute (within tolerance too)
    largest: dict = field(default_factory=dict)


@dataclass
class Outcome:
    """What ``bench verify`` found for one run."""

    record: dict
    path: str
    checks: dict[str, Check]

    @property
    def state(self) -> str:
        return ver.state_of({c: {"state": k.state} for c, k in self.checks.items()})

    def to_dict(self) -> dict:
        r = self.record
        return {"run": job_runs.run_id(r), "suite": r["suite"], "job_id": r["job_id"],
                "file": self.path, "state": self.state,
                "checks": {c: {"state": k.state, "note": k.note, "compared": k.compared,
                               "largest_difference": k.largest,
                               "findings": [f.to_dict() for f in k.findings]}
                           for c, k in self.checks.items()}}


def _short(v: Any) -> str:
    text = f"{v:.6g}" if isinstance(v, float) else repr(v)
    return text if len(text) <= 40 else text[:37] + "..."


# ---------------------------------------------------------------- the checks


def _repo() -> Path:
    return Path(__file__).resolve().parents[2]


def _shallow() -> bool:
    try:
        return subprocess.run(["git", "-C", str(_repo()), "rev-parse",
                               "--is-shallow-repository"], capture_output=True, text=True,
                              timeout=10).stdout.strip() == "true"
    except (OSError, subprocess.SubprocessError):
        return False


def check_code(record: dict) -> Check:
    """The record's commit is one of this repository's; a dirty tree is noted."""
    prov = record["provenance"]
    commit = prov.get("git_commit")
    if not commit:
        return Check(ver.CANNOT, note="the record names no git commit (made outside a git "
                     "checkout); rerun the job from a clone of the repository")
    try:
        known = subprocess.run(["git", "-C", str(_repo()), "cat-file", "-e",
                                f"{commit}^{{commit}}"], capture_output=True,
                               timeout=10).returncode == 0
        has_git = (_repo() / ".git").exists()
    except (OSError, subprocess.SubprocessError):
        known, has_git = False, False
    if not has_git:
        return Check(ver.CANNOT, note="this copy of the code is not a git checkout; run "
                     "bench verify from a clone of the repository")
    if not known and _shallow():
        return Check(ver.CANNOT, note=f"commit {commit[:12]} is not in this shallow clone. "
                     "Fix: git fetch --unshallow")
    if not known:
        return Check(ver.DIFFERS, [Finding("provenance.git_commit", commit,
                                           "no such commit in this repository")],
                     note="git fetch the contributor's branch, or rerun the job on a "
                     "published commit", compared=1)
    dirty = prov.get("git_dirty")
    note = (f"made from commit {commit[:12]} with uncommitted changes under bench/ (git_dirty):"
            " its code may differ from the commit's") if dirty else ""
    return Check(ver.VERIFIED, note=note, compared=1)


class Findings(list):
    """The findings of one check, and the largest difference it saw within tolerance too
    (relative and absolute): how close a verified record came (docs: "Tolerances")."""

    def __init__(self):
        super().__init__()
        self.largest: dict[str, float] = {}

    def saw(self, kind: str, diff: float) -> None:
        self.largest[kind] = max(self.largest.get(kind, 0.0), diff)


def _compare(findings: list[Finding], name: str, claimed: Any, found: Any,
             rtol: float | None = None, atol: float | None = None) -> int:
    """Compare one value; append a finding when it differs. Returns 1 (values compared)."""
    if rtol is None and atol is None or not isinstance(claimed, (int, float)) \
            or not isinstance(found, (int, float)):
        if claimed != found:
            findings.append(Finding(name, claimed, found))
        return 1
    diff = abs(float(found) - float(claimed))
    if rtol is not None:
        rel = diff / max(abs(float(claimed)), 1e-12)
        ok, tol = rel <= rtol, f"relative {rtol:g}"
        if isinstance(findings, Findings):
            findings.saw("relative", rel)
    else:
        ok, tol = diff <= atol, f"absolute {atol:g}"
        if isinstance(findings, Findings):
            findings.saw("absolute", diff)
    if not ok:
        findings.append(Finding(name, claimed, found, tol))
    return 1


def _checked(findings: list[Finding], compared: int, note: str = "") -> Check:
    largest = getattr(findings, "largest", {})
    return Check(ver.DIFFERS if findings else ver.VERIFIED, list(findings), note, compared,
                 dict(largest))


def check_data(record: dict, again: dict) -> Check:
    findings = Findings()
    m, a = record["metrics"], again["metrics"]
    n = _compare(findings, "metrics.data_checksum", m.get("data_checksum"),
                 a.get("data_checksum"))
    for split in ("train", "val", "test"):
        for key in ("n", "checksum"):
            n += _compare(findings, f"metrics.splits.{split}.{key}",
                          (m.get("splits") or {}).get(split, {}).get(key),
                          (a.get("splits") or {}).get(split, {}).get(key))
    p, q = record.get("plasticity"), again.get("plasticity")
    if p and q and "reference_checksum" in p:
        n += _compare(findings, "plasticity.reference_checksum", p["reference_checksum"],
                      q.get("reference_checksum"))
    return _checked(findings, n)


def _plasticity_findings(where: str, p: dict | None, q: dict | None,
                         findings: list[Finding]) -> int:
    if p is None or q is None:
        return _compare(findings, where, p is not None, q is not None)
    n = _compare(findings, f"{where}.pairs", p["pairs"], q["pairs"])
    found = {(x["layer"], x["component"]): x for x in q["layers"]}
    for i, x in enumerate(p["layers"]):
        y = found.get((x["layer"], x["component"]))
        name = f"{where}.layers[{i}] (block {x['layer']} {x['component']}).mean"
        n += _compare(findings, name, x["mean"], None if y is None else y["mean"],
                      rtol=PLASTICITY_RTOL) if y else _compare(findings, name, x["mean"], None)
    for c, x in p["components"].items():
        y = q["components"].get(c)
        n += _compare(findings, f"{where}.components.{c}.mean", x["mean"],
                      None if y is None else y["mean"], rtol=PLASTICITY_RTOL)
    return n


def check_plasticity(record: dict, again: dict, after: bool = False) -> Check:
    """The paper's plasticity and every variant measured before fine-tuning (all of them,
    after fine-tuning too, when the whole job was replayed: ``after``)."""
    findings = Findings()
    if record.get("plasticity") is None and again.get("plasticity") is None:
        return Check(ver.VERIFIED, note="no plasticity in this job (disabled, or lp)")
    n = _plasticity_findings("plasticity", record.get("plasticity"), again.get("plasticity"),
                             findings)
    for name, p in (record.get("plasticity_variants") or {}).items():
        if name != "after_finetuning" or after:
            n += _plasticity_findings(f"plasticity_variants.{name}", p,
                                      again["plasticity_variants"].get(name), findings)
    return _checked(findings, n)


def _curve_findings(record: dict, again: dict, last: int | None,
                    findings: list[Finding]) -> int:
    n = 0
    for curve, keys in (("train", ("loss", "grad_norm", "lr")), ("val", ("val_acc",))):
        found = {x["step"]: x for x in again["curves"][curve]}
        for i, x in enumerate(record["curves"][curve]):
            if last is not None and x["step"] > last:
                break
            y = found.get(x["step"])
            for k in keys:
                tol = {"lr": {"rtol": LR_RTOL}, "val_acc": {"atol": ACC_ATOL}}.get(
                    k, {"rtol": LOSS_RTOL})
                n += _compare(findings, f"curves.{curve}[{i}] (step {x['step']}).{k}", x[k],
                              None if y is None else y[k], **tol)
    return n


def check_steps(record: dict, again: dict, steps: int) -> Check:
    findings = Findings()
    n = _curve_findings(record, again, steps, findings)
    note = "" if n else "no training step to replay (a probe, or no logged step up to K)"
    return _checked(findings, n, note)


_EXACT_METRICS = ("best_step", "steps_done", "trainable_params", "total_params")


def check_all(record: dict, again: dict) -> Check:
    """The whole job again: every curve point, accuracies and counts."""
    findings = Findings()
    n = _curve_findings(record, again, None, findings)
    m, a = record["metrics"], again["metrics"]
    for k in ("test_acc", "best_val_acc"):
        n += _compare(findings, f"metrics.{k}", m.get(k), a.get(k), atol=ACC_ATOL)
    for k in _EXACT_METRICS:
        if k in m:
            n += _compare(findings, f"metrics.{k}", m[k], a.get(k))
    if "trained_params" in m:
        n += _compare(findings, "metrics.trained_params", m["trained_params"],
                      a.get("trained_params"))
    return _checked(findings, n)


# ---------------------------------------------------------------- one record


def _cannot(why: str) -> Check:
    return Check(ver.CANNOT, note=why)


def verify_record(record: dict, path: str = "", *, steps: int | str = DEFAULT_STEPS,
                  cache: str | None = None, device: str | None = None,
                  data_root: str | None = None) -> Outcome:
    """Every check of one record (``steps``: K, or ``"all"``)."""
    from bench.core.config import as_config
    from bench.data.formats import MissingFile
    from bench.job import run
    from bench.job.models import MissingWeights

    checks = {"code": check_code(record)}
    last = "all" if steps == ALL else "steps"
    derived = ("data", "plasticity", last)
    if record["status"] != Status.DONE.value:
        return Outcome(record, path, {**checks, **{c: _cannot(
            f"a {record['status']} record: nothing to re-derive") for c in derived}})
    try:
        config = dataclasses.replace(as_config(record["config"]), data_root=data_root)
    except Exception as e:  # noqa: BLE001 - a configuration this code cannot read
        return Outcome(record, path, {**checks, "data": Check(ver.DIFFERS, [Finding(
            "config", "a valid configuration", f"{type(e).__name__}: {e}")])})
    if config.job_id != record["job_id"]:
        return Outcome(record, path, {**checks, "data": Check(ver.DIFFERS, [Finding(
            "job_id", record["job_id"], config.job_id)], note="the configuration does not "
            "hash to the record's job id: an edited configuration")})
    with tempfile.TemporaryDirectory(prefix="bench-verify-") as scratch:
        try:
            again = run.replay(config, Path(scratch), cache, device,
                               steps=None if steps == ALL else int(steps))
        except (MissingFile, MissingWeights) as e:
            fix = (f"{e}. Fix: bench prepare SUITE (--download), or --data-root DIR, or put "
                   "the weights in the cache")
            return Outcome(record, path, {**checks, **{c: _cannot(fix) for c in derived}})
        except Exception as e:  # noqa: BLE001 - one record's replay must not stop the others
            why = (f"the replay failed here ({type(e).__name__}: {e}). Fix: run the job here "
                   "(bench run SUITE --only ...) and read its log")
            return Outcome(record, path, {**checks, **{c: _cannot(why) for c in derived}})
    checks["data"] = check_data(record, again)
    other = _other_weights(record, again) or _other_precision(record, device)
    if other:
        return Outcome(record, path, {**checks, "plasticity": _cannot(other),
                                      last: _cannot(other)})
    checks["plasticity"] = check_plasticity(record, again, after=steps == ALL)
    checks[last] = check_all(record, again) if steps == ALL else check_steps(record, again,
                                                                              int(steps))
    if "weights_checksum" not in record["metrics"]:
        for name in ("plasticity", last):  # other weights, or another record: unknown
            if checks[name].state == ver.DIFFERS:
                checks[name] = dataclasses.replace(checks[name], state=ver.CANNOT,
                                                   note=_PREDATES)
    return Outcome(record, path, checks)


_PREDATES = ("the record predates metrics.weights_checksum, so these differences may come "
             "from other pretrained weights rather than from the record. Fix: rerun the job "
             "(bench run --force) and verify the new record")


def _other_weights(record: dict, again: dict) -> str:
    """Why the replay did not start from the run's weights ("" when it did, or when the
    record predates ``metrics.weights_checksum``)."""
    claimed = record["metrics"].get("weights_checksum")
    found = again["metrics"].get("weights_checksum")
    if claimed is None or claimed == found:
        return ""
    return (f"the pretrained weights here (checksum {found}) are not the run's ({claimed}): "
            "weights the benchmark pretrains are made again on each machine. Fix: copy the "
            "contributor's <cache>/pretrained/*.safetensors of this model into yours "
            "($BENCH_CACHE), or verify on the machine that made them")


def _other_precision(record: dict, device: str | None) -> str:
    """Why a run made on a GPU in reduced precision (bf16 autocast, TF32) cannot be replayed
    here within the tolerances measured in fp32 ("" when it can)."""
    made_on = str(record["provenance"].get("device") or "cpu")
    if not made_on.startswith("cuda") or str(device or "cpu").startswith("cuda"):
        return ""
    from bench.core.protocol import PROTOCOLS

    protocol = PROTOCOLS[record["config"].get("protocol", "clean")]
    if record["config"]["recipe"].get("precision", "auto") == "fp32" and not protocol.tf32:
        return ""
    return (f"made on {made_on} in reduced precision (bf16 autocast or TF32), replayed here "
            "on the CPU in fp32: the tolerances, measured in fp32, do not cover that. Fix: "
            "bench verify --device cuda on a GPU")


def save(results: Path, outcome: Outcome, steps: int | str, threads: int) -> None:
    """Keep each check's result beside the records (``bench.results.verifications``)."""
    from bench.job.run import host_provenance

    prov = host_provenance(None)
    by = {k: prov.get(k) for k in ("hostname", "git_commit", "git_dirty", "cpu")}
    for name, c in outcome.checks.items():
        ver.write(results, outcome.record, name, c.state, [f.to_dict() for f in c.findings],
                  note=c.note, compared=c.compared, largest_difference=c.largest,
                  steps=steps, threads=threads, tolerances=tolerances(), by=by)


def tolerances() -> dict:
    return {"plasticity_rtol": PLASTICITY_RTOL, "loss_rtol": LOSS_RTOL, "lr_rtol": LR_RTOL,
            "acc_atol": ACC_ATOL}


# ---------------------------------------------------------------- many records


def sample(items: list[tuple[dict, Path, Path]], n: int | None) -> list[tuple[dict, Path, Path]]:
    """``n`` of the records, the same ones every time (the smallest hashes of their run ids),
    in their order."""
    if n is None or n >= len(items):
        return items
    key = [hashlib.sha256(job_runs.run_id(r).encode()).hexdigest() for r, _, _ in items]
    keep = set(sorted(range(len(items)), key=lambda i: key[i])[:n])
    return [x for i, x in enumerate(items) if i in keep]


def _init(threads: int) -> None:
    cpus.use(threads)
    logging.getLogger("bench").setLevel(logging.WARNING)


def _verify_one(item: tuple[dict, str, str | None], steps, cache, device, data_root,
                threads) -> Outcome:
    record, path, results = item
    out = verify_record(record, path, steps=steps, cache=cache, device=device,
                        data_root=data_root)
    if results is not None:
        save(Path(results), out, steps, threads)
    return out


def verify_all(items: list[tuple[dict, Path, Path | None]], *, steps: int | str = DEFAULT_STEPS,
               workers: int = 1, cache: str | None = None, device: str | None = None,
               data_root: str | None = None, progress: bool = True) -> list[Outcome]:
    """Verify (record, its file, its results folder or None to keep nothing) items,
    ``workers`` at a time, each with its share of the CPUs (``bench.core.cpus``), with a
    progress bar; the verification files are written as each finishes."""
    import functools
    import multiprocessing as mp

    from tqdm import tqdm

    threads = cpus.decide(workers).count
    one = functools.partial(_verify_one, steps=steps, cache=cache, device=device,
                            data_root=data_root, threads=threads)
    todo = [(r, str(p), None if res is None else str(res)) for r, p, res in items]
    bar = tqdm(total=len(todo), desc="verify", unit="record", disable=not progress,
               dynamic_ncols=True)
    out: list[Outcome] = []
    if workers <= 1:
        _init(threads)
        for item in todo:
            out.append(one(item))
            bar.update(1)
    else:
        with ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn"),
                                 initializer=_init, initargs=(threads,)) as pool:
            for o in pool.map(one, todo):
                out.append(o)
                bar.update(1)
    bar.close()
    return out
