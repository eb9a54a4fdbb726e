"""Logs: a line every log_every steps, one per evaluation and per phase, in each job's log file
beside its record and on the console without a bar; failed jobs' reasons printed; TensorBoard
scalars from the lines' numbers; SLURM tasks log to stdout."""

from __future__ import annotations

import logging
import re

import pytest
import yaml

from bench import cli
from bench.job import logs
from bench.job.run import job_label
from bench.results import store
from tests.conftest import tiny_suite_dict

STEP = re.compile(r"job ([0-9a-f]{16}): step (\d+)/(\d+): loss ([0-9.]+), lr ([0-9.e+-]+), "
                  r"grad norm [0-9.e+-]+, \d+ img/s$")


@pytest.mark.slow
def test_run_logs_each_phase_and_every_log_every_steps(tmp_path, cache_dir, capsys,
                                                        monkeypatch):
    monkeypatch.setenv("BENCH_CACHE", str(cache_dir))
    suite = tmp_path / "s.yaml"
    suite.write_text(yaml.safe_dump(tiny_suite_dict(strategies=("full", "linear"))))
    results = tmp_path / "results"
    argv = ["run", str(suite), "--results", str(results), "--cache", str(cache_dir),
            "--set", "recipe.steps=7", "--set", "lrs=[0.05, 1.0e+9]", "--only", "strategy=full"]
    assert cli.main([*argv, "-q"]) == 1  # lr 1e9 diverges
    err = capsys.readouterr().err
    records, skipped = store.load_records(results)
    assert skipped == []  # the .log files beside the records are no stray files
    assert len(records) == 2
    done = next(r for r in records if r["status"] == "done")
    bad = next(r for r in records if r["status"] == "diverged")
    assert done["config"]["overrides"] == ["recipe.steps=7", "lrs=[0.05, 1.0e+9]"]
    # the run ends with each failed job's reason
    assert f"  diverged: {bad['job_id']} " in err and "loss is nan" in err
    log = store.log_path(results, "tiny", done["job_id"]).read_text()
    # log_every 2 of 7 steps (protocol: every log_every steps, and the last)
    steps = [int(m.group(2)) for m in map(STEP.search, log.splitlines()) if m]
    assert steps == [2, 4, 6, 7]
    for phase in ("start: tiny | digits_c/contrast/5 | full | lr=0.05", "plasticity: ",
                  "trainable parameters: ", "step 3: val acc ", "step 6: val acc ",
                  f"best step {done['metrics']['best_step']} ",
                  f"test acc {done['metrics']['test_acc']:.4f}", "done in "):
        assert phase in log, phase
    assert "diverged: Diverged: loss is nan" in \
        store.log_path(results, "tiny", bad["job_id"]).read_text()
    assert log.splitlines()[0] in err  # -q: the same lines on stderr, no bar

    # with the progress bar: no log line on the console; the file gets the rerun appended
    assert cli.main([*argv, "--force", "--only", "lr=0.05"]) == 0
    err = capsys.readouterr().err
    assert not any(STEP.search(line) for line in err.splitlines()), err
    assert store.log_path(results, "tiny", done["job_id"]).read_text().count("start: ") == 2

    # plan shows the reason too
    assert cli.main(["plan", str(suite), "--results", str(results), "--set", "recipe.steps=7",
                     "--set", "lrs=[0.05, 1.0e+9]", "--summary"]) == 0
    out = capsys.readouterr().out
    assert f"  diverged: {bad['job_id']} " in out and "loss is nan" in out


def test_tensorboard_handler_writes_the_numbers_of_log_lines(tmp_path):
    class Writer:
        def __init__(self):
            self.scalars, self.closed = [], False

        def add_scalar(self, tag, value, step):
            self.scalars.append((tag, value, step))

        def close(self):
            self.closed = True

    writer = Writer()
    handler = logs.TensorBoardHandler(tmp_path, writer=writer)
    log = logging.getLogger("bench.test-tb")
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    try:
        job = logs.JobLog(log, {"job": "0" * 16})
        job.info("no numbers")
        job.info("step 5", extra={"metrics": {"train/loss": 1.5, "test/acc": None}, "step": 5})
    finally:
        log.removeHandler(handler)
        handler.close()
    assert writer.scalars == [("train/loss", 1.5, 5)] and writer.closed


def test_tensorboard_missing_is_bad_input(tmp_path, write_suite, capsys, monkeypatch):
    real = logs.importlib.util.find_spec
    monkeypatch.setattr(logs.importlib.util, "find_spec",
                        lambda name, *a: None if name == "tensorboard" else real(name, *a))
    assert cli.main(["run", write_suite(), "--results", str(tmp_path / "r"),
                     "--tensorboard", str(tmp_path / "tb")]) == 2
    err = capsys.readouterr().err
    assert "needs the tensorboard package" in err and "[tensorboard]" in err
    assert not (tmp_path / "r").exists() and not (tmp_path / "tb").exists()


def test_slurm_task_logs_to_stdout(tmp_path, capsys):
    from bench.run.slurm import task as slurm_task

    def body(config, suite, results, cache):
        logs.job_logger("1" * 16).info("step 1/1: loss 1.0")
        return {"status": "done"}

    slurm_task.SlurmJob("s", "1" * 16, fn=body)({}, str(tmp_path))
    assert "job 1111111111111111: step 1/1: loss 1.0" in capsys.readouterr().out


def test_status_and_plan_show_why_a_job_failed(tmp_path, write_suite, capsys, monkeypatch):
    from bench.run.lifecycle import failed_record
    from bench.suites.expand import load_suite

    path = write_suite()
    job = load_suite(path).jobs[0]
    results = tmp_path / "results"
    store.write_record(results, failed_record(
        job.config, job.suite, job.job_id, RuntimeError("the disk is on fire"), 0.0))
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "squeue").write_text("#!/bin/sh\nexit 0\n")
    (tmp_path / "bin" / "squeue").chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    for command in ("status", "plan"):
        assert cli.main([command, path, "--results", str(results)]) == 0
        out = capsys.readouterr().out
        assert f"  failed: {job.job_id} {job_label(job.config)}: RuntimeError escaped the job: " \
               "the disk is on fire" in out, (command, out)


@pytest.mark.slow
def test_tensorboard_event_files_hold_the_records_curves(tmp_path, cache_dir, monkeypatch):
    """`bench run --tensorboard DIR` for real: TensorBoard's own reader finds, per job, the
    training loss of every logged step and the validation accuracies the record holds."""
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    monkeypatch.setenv("BENCH_CACHE", str(cache_dir))
    suite = tmp_path / "s.yaml"
    suite.write_text(yaml.safe_dump(tiny_suite_dict(strategies=("full",))))
    results, tb = tmp_path / "results", tmp_path / "tb"
    assert cli.main(["run", str(suite), "--results", str(results), "--cache", str(cache_dir),
                     "--tensorboard", str(tb), "-q"]) == 0
    (record,), _ = store.load_records(results)
    folders = {p.parent for p in tb.rglob("events.out.tfevents.*")}
    assert len(folders) == 1 and record["job_id"] in str(next(iter(folders)))
    events = EventAccumulator(str(next(iter(folders))))
    events.Reload()
    loss = [(e.step, e.value) for e in events.Scalars("train/loss")]
    want = [(p["step"], p["loss"]) for p in record["curves"]["train"]]
    assert [s for s, _ in loss] == [s for s, _ in want]
    assert [v for _, v in loss] == pytest.approx([v for _, v in want], rel=1e-6)
    val = [(e.step, e.value) for e in events.Scalars("val/acc")]
    assert val == [(p["step"], pytest.approx(p["val_acc"], rel=1e-6))
                   for p in record["curves"]["val"]]
