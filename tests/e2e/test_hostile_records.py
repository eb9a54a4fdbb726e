"""Property: a mutated record (types swapped, values out of range, fields missing or extra,
deep nesting, huge strings) among valid ones never crashes `bench leaderboard` or `bench show`,
is never scored when invalid, and leaves the scores of the valid records unchanged."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from bench import cli
from bench.core.record import RecordError, check_record
from bench.results import store
from tests.support import make_record

HOSTILE_ID = "feedfacefeedface"
PLAST = {"fc1": 0.5, "mha": 0.25}


def _valid() -> list[dict]:
    return [make_record(s, seed=seed, test=0.5 + 0.1 * seed + (s == "mha") * 0.05,
                        plasticity=PLAST)
            for s in ("full", "mha") for seed in (0, 1)]


def _paths(value, prefix=()):
    """Every key path into ``value`` (dict keys and list indices)."""
    yield prefix
    items = value.items() if isinstance(value, dict) else (
        enumerate(value) if isinstance(value, list) else ())
    for k, v in items:
        yield from _paths(v, (*prefix, k))


def _nested(depth: int) -> str:
    return "[" * depth + "]" * depth


BAD_VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(-10**20, 10**20),
    st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([-0.5, 1.5, 250, -3, 1e308]),
    st.text(max_size=20), st.just("<script>x</script>" * 5000),  # a huge string
    st.lists(st.integers(), max_size=3), st.dictionaries(st.text(max_size=5), st.integers(),
                                                         max_size=3),
    st.integers(40, 3000).map(lambda d: ("NESTED", d)))


@st.composite
def mutated(draw):
    """A record mutated at one key path: a value replaced, a key deleted, or one added."""
    rec = make_record("full", seed=7, test=0.9, plasticity=PLAST, job_id=HOSTILE_ID)
    paths = [p for p in _paths(rec) if p and p[0] != "job_id" and p[0] != "suite"]
    path = draw(st.sampled_from(paths))
    action = draw(st.sampled_from(["replace", "replace", "delete", "extra"]))
    *parents, last = path
    node = rec
    for k in parents:
        node = node[k]
    if action == "delete":
        del node[last]
    elif action == "extra" and isinstance(node, dict):
        node[draw(st.text(min_size=1, max_size=8))] = draw(BAD_VALUES)
    else:
        node[last] = draw(BAD_VALUES)
    return rec


def _write(results: Path, rec: dict) -> None:
    marks: dict[str, str] = {}

    def walk(v):
        if isinstance(v, tuple) and v and v[0] == "NESTED":
            key = f"@@NESTED{len(marks)}@@"
            marks[key] = _nested(v[1])
            return key
        if isinstance(v, dict):
            return {k: walk(x) for k, x in v.items()}
        if isinstance(v, list):
            return [walk(x) for x in v]
        return v
    text = json.dumps(walk(rec))
    for key, nested in marks.items():
        text = text.replace(json.dumps(key), nested)
    path = store.record_path(results, rec["suite"], rec["job_id"])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def _scores(csv_dir: Path) -> list[dict]:
    with open(csv_dir / "scores.csv") as f:
        return sorted(csv.DictReader(f), key=lambda r: sorted(r.items()))


def _is_valid(results: Path) -> bool:
    try:
        check_record(store.read_record(store.record_path(results, "s", HOSTILE_ID)))
        return True
    except (RecordError, OSError):
        return False


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    base = tmp_path_factory.mktemp("hostile")
    results = base / "results"
    for r in _valid():
        store.write_record(results, r)
    assert cli.main(["leaderboard", "--results", str(results), "--out", str(base / "L.md"),
                     "--csv", str(base / "csv0"), "--no-site", "--suites"]) == 0
    return base, results, _scores(base / "csv0")


@pytest.mark.slow
@settings(max_examples=25, deadline=None, derandomize=True,
          phases=[Phase.explicit, Phase.generate],  # no shrinking: minutes per failure
          suppress_health_check=[HealthCheck.function_scoped_fixture,
                                 HealthCheck.too_slow, HealthCheck.data_too_large])
@given(rec=mutated())
def test_a_mutated_record_is_named_never_scored_never_a_crash(folder, rec, capsys):
    base, results, baseline = folder
    _write(results, rec)
    code = cli.main(["leaderboard", "--results", str(results), "--out", str(base / "L.md"),
                     "--csv", str(base / "csv"), "--no-site", "--suites"])
    assert code == 0
    page = (base / "L.md").read_text()
    if not _is_valid(results):
        # never scored, the others unchanged
        assert [r for r in _scores(base / "csv") if r["suite"] == "s"] == baseline
        assert "## Set aside (not scored)" in page and HOSTILE_ID in page
    assert cli.main(["show", HOSTILE_ID, "--results", str(results)]) in (0, 2)
    err = capsys.readouterr().err
    assert "Traceback" not in err


def test_the_named_mutations_are_set_aside(folder, capsys):
    """The issue's examples, without hypothesis's search (one build): each is named with its
    field and value and not scored; a valid record whose parameters make no label is shown by
    its key."""
    base, results, baseline = folder
    cases = [("metrics", "test_acc", -0.5), ("metrics", "test_acc", 1.5),
             ("metrics", "test_acc", 250), ("metrics", "best_val_acc", -3)]
    for i, (where, key, value) in enumerate(cases):
        rec = make_record("full", seed=7, test=0.9, plasticity=PLAST, job_id=f"{i:016x}")
        rec[where][key] = value
        _write(results, rec)
    rec = make_record("full", seed=7, test=0.9, plasticity=PLAST, job_id=HOSTILE_ID)
    rec["curves"]["train"] = [{"step": "x", "loss": 1.0, "grad_norm": 1.0, "lr": 0.1}]
    rec["plasticity"]["components"]["mha"]["mean"] = "x"
    _write(results, rec)
    rec = make_record("full", seed=7, test=0.9, plasticity=PLAST, suite="t")
    rec["config"]["dataset"] = {"name": "folder", "key": "<b>k</b>", "params": {}}
    store.write_record(results, rec)
    assert cli.main(["leaderboard", "--results", str(results), "--out", str(base / "L.md"),
                     "--csv", str(base / "csv"), "--no-site", "--suites"]) == 0
    assert [r for r in _scores(base / "csv") if r["suite"] == "s"] == baseline
    page = (base / "L.md").read_text()
    assert "5 file(s)" in page
    for where, key, value in cases:
        assert f"{where}.{key}: {value}" in page
    assert "curves.train\\[0\\].step: must be integer, not string ('x')" in page  # escaped
    assert "\\<b\\>k\\</b\\>" in page  # scored, under its key, as text
    assert cli.main(["show", HOSTILE_ID, "--results", str(results)]) == 2
    assert "Traceback" not in capsys.readouterr().err
