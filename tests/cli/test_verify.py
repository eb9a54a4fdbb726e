"""The contribution commands' input checks (exit 2) and merge, without running a job."""

from __future__ import annotations

from bench import cli
from bench.results import runs, store
from tests.support import make_record


def test_bad_input_exits_2(tmp_path, capsys):
    assert cli.main(["verify", str(tmp_path / "nope.json")]) == 2
    assert cli.main(["verify", "--results", str(tmp_path / "none")]) == 2
    assert cli.main(["verify", "--results", str(tmp_path), "--steps", "zero"]) == 2
    assert cli.main(["merge", str(tmp_path / "none"), "--results", str(tmp_path)]) == 2
    assert "no such" in capsys.readouterr().err


def test_merge_keeps_every_run_and_refuses_an_edited_copy(tmp_path, capsys):
    a = make_record(suite="s")
    b = make_record(suite="s")
    b["provenance"]["hostname"] = "other"
    for folder, rec in (("one", a), ("two", b)):
        store.write_record(tmp_path / folder, rec)
    dest = tmp_path / "results"
    assert cli.main(["merge", str(tmp_path / "one"), str(tmp_path / "two"),
                     "--results", str(dest)]) == 0
    assert sorted(p.name for p in (dest / "s").glob("*.json")) == sorted(
        [f"{a['job_id']}.json", runs.extra_name(b)])
    edited = tmp_path / "three"
    b["metrics"]["test_acc"] = 0.1
    store.write_record(edited, b)
    (edited / "s" / f"{b['job_id']}.json").rename(edited / "s" / runs.extra_name(b))
    assert cli.main(["merge", str(edited), "--results", str(dest)]) == 1
    assert "an edited copy is not merged" in capsys.readouterr().err
