"""A results folder from someone else cannot make `bench` write, move, delete or read outside
it through a symbolic link: real links in tmp folders, real CLI invocations."""

from __future__ import annotations

import os

import pytest
import yaml

from bench import cli
from bench.core.rootpath import OutsideRoot, inside, outside
from bench.results import store
from bench.suites.expand import parse_suite
from tests.conftest import tiny_suite_dict
from tests.support import make_record


def _results(tmp_path, n: int = 2):
    """A results folder with ``n`` records of suite `s` (and their logs), and a folder
    `elsewhere/` beside it holding a file no command may touch."""
    results = tmp_path / "results"
    recs = [make_record("full", seed=i) for i in range(n)]
    for r in recs:
        store.write_record(results, r)
        store.log_path(results, "s", r["job_id"]).write_text("a log\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "keep.html").write_text("not yours")
    (elsewhere / "keep.png").write_text("not yours")
    return results, recs, elsewhere


def _leaderboard(results, tmp_path, *extra):
    return cli.main(["leaderboard", "--results", str(results), "--out",
                     str(tmp_path / "L.md"), "--suites", *extra])


def _refused(capsys, link, target):
    err = capsys.readouterr().err
    assert f"{link} is a symbolic link to {target}" in err, err
    assert "point --results at the real folder" in err and "Traceback" not in err


def test_inside_names_the_link_and_follows_links_that_stay_inside(tmp_path):
    root = tmp_path / "r"
    (root / "a").mkdir(parents=True)
    (tmp_path / "out").mkdir()
    os.symlink(root / "a", root / "b")  # inside: fine
    os.symlink(tmp_path / "out", root / "c")
    assert inside(root, root / "b" / "x") == root / "b" / "x"
    assert outside(root, root / "c" / "x").link == root / "c"
    with pytest.raises(OutsideRoot, match="is a symbolic link to"):
        inside(root, root / "c" / "x" / "y")
    assert outside(root, root / ".." / "x") is not None
    assert outside(root, tmp_path / "elsewhere") is None  # not under the root: not judged
    linked_root = tmp_path / "linked"
    os.symlink(root, linked_root)  # the root itself may be a link
    assert outside(linked_root, linked_root / "a" / "x") is None


@pytest.mark.parametrize("link", ["_site", "_figures", "_site/jobs/s"])
def test_leaderboard_refuses_site_and_figures_that_link_out(tmp_path, capsys, link):
    results, _, elsewhere = _results(tmp_path)
    (results / link).parent.mkdir(parents=True, exist_ok=True)
    os.symlink(elsewhere, results / link)
    before = sorted(p.name for p in elsewhere.iterdir())
    assert _leaderboard(results, tmp_path) == 2
    _refused(capsys, results / link, elsewhere)
    assert sorted(p.name for p in elsewhere.iterdir()) == before  # nothing written or deleted
    assert (elsewhere / "keep.html").read_text() == "not yours"


def test_a_log_or_record_that_links_out_is_set_aside_and_never_published(tmp_path, capsys):
    results, recs, elsewhere = _results(tmp_path, n=3)
    secret = elsewhere / "secret.txt"
    secret.write_text("SECRET-TOKEN")
    log = store.log_path(results, "s", recs[0]["job_id"])
    log.unlink()
    os.symlink(secret, log)
    # a valid record kept outside, linked in: never read, never scored
    outer = store.record_path(results, "s", recs[1]["job_id"])
    os.replace(outer, elsewhere / outer.name)
    os.symlink(elsewhere / outer.name, outer)
    assert _leaderboard(results, tmp_path) == 0
    page = (tmp_path / "L.md").read_text()
    assert "## Set aside (not scored)" in page and "2 file(s)" in page
    assert str(log) in page and str(outer) in page
    site = results / store.SITE_DIR
    assert all("SECRET-TOKEN" not in p.read_text() for p in site.rglob("*.html"))
    assert "Regenerated from 2 records" in page  # the linked record is not among them
    assert _leaderboard(results, tmp_path, "--strict") == 1


def test_a_suite_folder_that_links_out_is_never_read(tmp_path, capsys):
    results, _, elsewhere = _results(tmp_path)
    store.write_record(elsewhere / "r", make_record("full", suite="t", seed=5))
    os.symlink(elsewhere / "r" / "t", results / "t")
    assert _leaderboard(results, tmp_path) == 0
    page = (tmp_path / "L.md").read_text()
    assert f"{results / 't'} is a symbolic link" in page and "Regenerated from 2 records" in page
    with pytest.raises(OutsideRoot):
        store.write_record(results, make_record("full", suite="t", seed=6))
    job = next((elsewhere / "r" / "t").glob("*.json")).stem
    assert cli.main(["show", job, "--results", str(results)]) == 2
    _refused(capsys, results / "t", elsewhere / "r" / "t")


def _prune_setup(tmp_path):
    raw = tiny_suite_dict(name="st", seeds=(0,))
    suite_file = tmp_path / "st.yaml"
    suite_file.write_text(yaml.safe_dump(raw))
    keep = parse_suite(raw, "st.yaml").jobs[0].job_id
    results = tmp_path / "results"
    store.write_record(results, make_record("full", suite="st", job_id=keep))
    stale = make_record("mha", suite="st", job_id="0123456789abcdef")
    store.write_record(results, stale)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    return suite_file, results, elsewhere, stale


def test_prune_refuses_a_stale_folder_that_links_out(tmp_path, capsys):
    suite_file, results, elsewhere, stale = _prune_setup(tmp_path)
    os.symlink(elsewhere, results / "st" / store.STALE_DIR)
    assert cli.main(["prune", str(suite_file), "--results", str(results)]) == 2
    _refused(capsys, results / "st" / store.STALE_DIR, elsewhere)
    assert list(elsewhere.iterdir()) == []
    assert store.record_path(results, "st", stale["job_id"]).is_file()  # not moved


def test_prune_refuses_a_suite_folder_that_links_out(tmp_path, capsys):
    suite_file, results, elsewhere, _ = _prune_setup(tmp_path)
    real = elsewhere / "st"
    os.replace(results / "st", real)
    os.symlink(real, results / "st")
    before = sorted(p.name for p in real.iterdir())
    assert cli.main(["prune", str(suite_file), "--results", str(results)]) == 2
    _refused(capsys, results / "st", real)
    assert sorted(p.name for p in real.iterdir()) == before  # nothing moved
    # the documented way: --results pointing at a real folder on the other disk
    assert cli.main(["prune", str(suite_file), "--results", str(elsewhere)]) == 0
    assert (real / store.STALE_DIR).is_dir()


def test_claims_never_go_through_a_link_out(tmp_path):
    from bench.results.claims import CLAIMS_DIR, claim_path

    results, elsewhere = tmp_path / "results", tmp_path / "elsewhere"
    (results / "s").mkdir(parents=True)
    elsewhere.mkdir()
    os.symlink(elsewhere, results / "s" / CLAIMS_DIR)
    with pytest.raises(OutsideRoot, match="is a symbolic link to"):
        claim_path(results, "s", "0123456789abcdef")


def test_run_refuses_a_suite_folder_that_links_out(tmp_path, capsys):
    raw = tiny_suite_dict(name="st", seeds=(0,))
    suite_file = tmp_path / "st.yaml"
    suite_file.write_text(yaml.safe_dump(raw))
    results, elsewhere = tmp_path / "results", tmp_path / "elsewhere"
    results.mkdir()
    elsewhere.mkdir()
    os.symlink(elsewhere, results / "st")
    assert cli.main(["run", str(suite_file), "--results", str(results)]) == 2
    _refused(capsys, results / "st", elsewhere)
    assert list(elsewhere.iterdir()) == []


def test_submit_logs_never_go_through_a_link_out(tmp_path):
    from bench.run.slurm.profiles import Profile
    from bench.run.slurm.submit import log_dir_for

    results, elsewhere = tmp_path / "results", tmp_path / "elsewhere"
    results.mkdir()
    elsewhere.mkdir()
    assert log_dir_for(Profile(defaults={}), results, "st") == \
        (results / ".submitit" / "st").resolve()
    os.symlink(elsewhere, results / ".submitit")
    with pytest.raises(OutsideRoot, match=r"\.submitit is a symbolic link to"):
        log_dir_for(Profile(defaults={}), results, "st")
    # a log folder of the user's own, outside the results: theirs to choose
    mine = Profile(defaults={}, log_dir=tmp_path / "logs")
    assert log_dir_for(mine, results, "st") == (tmp_path / "logs" / "st").resolve()
