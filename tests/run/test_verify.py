"""bench verify's comparisons, without running a job: each names the field, the claim, what
was found and the tolerance; the code check knows this repository's commits; sampling is
stable."""

from __future__ import annotations

import copy
import subprocess
from pathlib import Path

from bench.results import verifications as ver
from bench.run import verify
from tests.support import make_record

ROOT = Path(__file__).resolve().parents[2]


def _again(record: dict) -> dict:
    return copy.deepcopy({k: record[k] for k in ("metrics", "plasticity", "curves")}
                         | {"plasticity_variants": {}})


def test_plasticity_within_its_tolerance_verifies_and_beyond_it_differs():
    rec = make_record(plasticity={"fc1": 1.0, "mha": 2.0})
    again = _again(rec)
    again["plasticity"]["components"]["fc1"]["mean"] *= 1 + ver.PLASTICITY_RTOL / 2
    assert verify.check_plasticity(rec, again).state == ver.VERIFIED
    again["plasticity"]["components"]["fc1"]["mean"] *= 1 + 3 * ver.PLASTICITY_RTOL
    found = verify.check_plasticity(rec, again)
    assert found.state == ver.DIFFERS
    assert [f.field for f in found.findings] == ["plasticity.components.fc1.mean"]
    assert "relative" in str(found.findings[0])


def test_the_steps_compare_only_up_to_k_and_the_whole_job_compares_accuracies():
    rec = make_record()
    rec["curves"]["train"] = [{"step": s, "loss": 1.0, "grad_norm": 1.0, "lr": 0.1}
                              for s in (2, 4)]
    again = _again(rec)
    again["curves"]["train"][1]["loss"] = 2.0
    assert verify.check_steps(rec, again, 3).state == ver.VERIFIED
    assert [f.field for f in verify.check_steps(rec, again, 4).findings] == [
        "curves.train[1] (step 4).loss"]
    again = _again(rec)
    again["metrics"]["test_acc"] += 2 * ver.ACC_ATOL
    assert [f.field for f in verify.check_all(rec, again).findings] == ["metrics.test_acc"]


def test_the_code_check_knows_this_repository_s_commits():
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True,
                          text=True).stdout.strip()
    rec = make_record()
    rec["provenance"].update(git_commit=head, git_dirty=True)
    found = verify.check_code(rec)
    assert found.state == ver.VERIFIED and "uncommitted changes" in found.note
    rec["provenance"]["git_commit"] = "f" * 40
    assert verify.check_code(rec).findings[0].field == "provenance.git_commit"
    rec["provenance"]["git_commit"] = None
    assert verify.check_code(rec).state == ver.CANNOT


def test_a_failed_record_cannot_be_checked_and_says_why():
    rec = make_record(status="failed")
    rec["provenance"]["git_commit"] = None  # nor its code
    out = verify.verify_record(rec)
    assert out.state == ver.CANNOT and "a failed record" in out.checks["data"].note


def test_a_sample_is_the_same_every_time():
    items = [(make_record(seed=s), Path(f"{s}.json"), Path(".")) for s in range(10)]
    picked = verify.sample(items, 3)
    assert len(picked) == 3 and picked == verify.sample(list(items), 3)
    assert verify.sample(items, None) == items


def test_differences_in_a_record_without_a_weights_checksum_cannot_be_judged(monkeypatch):
    from bench.job import run

    rec = make_record(plasticity={"fc1": 1.0})
    rec["provenance"]["git_commit"] = None
    rec["config"] = _tiny_config()
    from bench.core.config import as_config

    rec["job_id"] = as_config(rec["config"]).job_id
    again = _again(rec)
    again["plasticity"]["components"]["fc1"]["mean"] = 2.0
    monkeypatch.setattr(run, "replay", lambda *a, **k: again)
    out = verify.verify_record(rec, steps=3)
    assert out.checks["plasticity"].state == ver.CANNOT
    assert "predates metrics.weights_checksum" in out.checks["plasticity"].note
    assert out.checks["plasticity"].findings  # still listed
    rec["metrics"]["weights_checksum"] = again["metrics"]["weights_checksum"] = "ab" * 8
    assert verify.verify_record(rec, steps=3).checks["plasticity"].state == ver.DIFFERS


def _tiny_config() -> dict:
    from bench.suites.expand import parse_suite
    from tests.conftest import tiny_suite_dict

    return parse_suite(tiny_suite_dict(), "s.yaml").jobs[0].config


def test_an_unknown_commit_in_a_shallow_clone_cannot_be_judged(monkeypatch):
    monkeypatch.setattr(verify, "_shallow", lambda: True)
    rec = make_record()
    rec["provenance"]["git_commit"] = "f" * 40
    found = verify.check_code(rec)
    assert found.state == ver.CANNOT and "--unshallow" in found.note
