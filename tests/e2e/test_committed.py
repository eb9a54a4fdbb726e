"""What is committed: every record validates against the declared schema, belongs to a shipped
suite and is done; the leaderboard and its site are what the records give, byte for byte.

Only what git tracks is looked at: a user's own suites and results (``results/<suite>`` of a
suite run locally) are theirs, not the repository's."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import jsonschema
import pytest

from bench.core.record import RECORD_SCHEMA
from bench.results import store
from bench.results.verifications import VERIFY_DIR
from bench.suites.expand import load_suite

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "results"


def _tracked(folder: str) -> list[Path]:
    """The files git tracks under ``folder`` (relative to the repository root)."""
    try:
        out = subprocess.run(["git", "-C", str(ROOT), "ls-files", "-z", "--", folder],
                             capture_output=True, check=True, timeout=60).stdout
    except (OSError, subprocess.SubprocessError):
        pytest.skip("not a git checkout: what is committed is unknown")
    return sorted(ROOT / p for p in out.decode().split("\0") if p)


def _record_files() -> list[Path]:
    return [p for p in _tracked("results") if p.suffix == ".json"
            and not p.parent.name.startswith(("_", "."))]


def _suite_files() -> list[Path]:
    return [p for p in _tracked("suites") if p.suffix in (".yaml", ".yml")]


def test_every_committed_record_validates_against_the_schema():
    files = _record_files()
    assert files, "no committed records under results/"
    validator = jsonschema.Draft202012Validator(RECORD_SCHEMA)
    for path in files:
        record = store.read_record(path)
        validator.validate(record)
        assert (record["suite"], record["job_id"]) == (path.parent.name, path.stem), path


def test_every_committed_record_keeps_its_id_through_the_typed_configuration():
    """A record's config read into the typed job configuration (bench.core.config) gives back the
    same mapping, and its id is the record's: sha256 of the canonical form, recomputed here
    from protocol.md's rule (the settings that cannot change a result left out)."""
    import hashlib
    import json

    from bench.core.config import JobConfig

    files = _record_files()
    assert files
    for path in files:
        record = store.read_record(path)
        typed = JobConfig.from_dict(record["config"])
        assert typed.to_dict() == record["config"], path
        hashed = {k: v for k, v in record["config"].items() if k not in ("data_root", "overrides")}
        hashed["recipe"] = {k: v for k, v in hashed["recipe"].items()
                            if k not in ("log_every", "checkpoint_every")}
        text = json.dumps(hashed, sort_keys=True, separators=(",", ":"), allow_nan=False)
        want = hashlib.sha256(text.encode()).hexdigest()[:16]
        assert typed.job_id == want == record["job_id"], path


def test_committed_suites_are_complete_and_done():
    files = _record_files()
    committed = {p.parent.name for p in files}
    suites = {s.name: s for s in map(load_suite, _suite_files())}
    assert committed <= set(suites), "records of a suite that is not committed"
    for name in sorted(committed):
        statuses = {p.stem: store.read_record(p)["status"] for p in files
                    if p.parent.name == name}
        assert sorted(statuses) == sorted(j.job_id for j in suites[name].jobs), name
        assert set(statuses.values()) == {"done"}, name


@pytest.mark.slow
def test_committed_leaderboard_is_regenerated_from_the_records(tmp_path):
    from bench.cli.page import suite_plans
    from bench.page.leaderboard import build_leaderboard

    results = tmp_path / "results"
    # the records, their logs and what bench verify found for them (their job pages show
    # both)
    verified = [p for p in _tracked("results") if p.parent.name == VERIFY_DIR]
    logs = [p.with_suffix(".log") for p in _record_files() if p.with_suffix(".log").is_file()]
    for path in _record_files() + logs + verified:
        dest = results / path.relative_to(RESULTS)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, dest)
    out = tmp_path / "LEADERBOARD.md"
    build_leaderboard(results, out, plans=suite_plans([str(p) for p in _suite_files()], results),
                      site_dir=results / store.SITE_DIR)
    assert out.read_text() == (ROOT / "LEADERBOARD.md").read_text()
    site = results / store.SITE_DIR
    built = sorted(p.relative_to(site).as_posix() for p in site.rglob("*") if p.is_file())
    committed = _tracked(f"results/{store.SITE_DIR}")
    assert sorted(p.relative_to(RESULTS / store.SITE_DIR).as_posix() for p in committed) == built, (
        "the committed site is not what the records give: bench leaderboard")
    for path in committed:
        assert (site / path.relative_to(RESULTS / store.SITE_DIR)).read_bytes() == \
            path.read_bytes(), path
    for fig in sorted(p for ext in ("png", "svg") for p in (RESULTS / store.FIGURES_DIR).glob(
            f"*.{ext}")):
        assert (results / store.FIGURES_DIR / fig.name).read_bytes() == fig.read_bytes(), fig


def test_a_log_beside_a_committed_record_is_tracked_not_ignored():
    """Job logs stay beside their records (the site shows them, with their size): git keeps a
    committed suite's logs, and ignores those of stale or set-aside records only."""
    records = _record_files()
    if not records:
        pytest.skip("no committed records")
    log = records[0].with_suffix(".log").relative_to(ROOT).as_posix()
    stale = f"{Path(log).parent}/_stale/{Path(log).name}"

    def ignored(path: str) -> bool:
        return subprocess.run(["git", "-C", str(ROOT), "check-ignore", "-q", "--no-index", path],
                              timeout=60).returncode == 0

    assert not ignored(log) and ignored(stale)
