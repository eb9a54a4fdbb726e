"""`bench show`: one job's story from its record, found by id, id prefix or path."""

from __future__ import annotations

import math

import pytest

from bench import cli
from bench.core.record import new_record
from bench.page import show
from bench.results import store
from bench.tools.synthetic import synthetic_provenance

JID = "0123456789abcdef"


def record(job_id: str = JID, status: str = "done") -> dict:
    """A record with numbers written by hand (not by our code): 2 layers, a cosine-like
    schedule."""
    layers = [{"layer": layer, "component": c, "mean": 1.0 + layer + 0.1 * i, "std": 0.5,
               "n": 10, "ci95": 0.25} for layer in (0, 1)
              for i, c in enumerate(("ln1", "mha", "ln2", "fc1", "fc2"))]
    comps = {c: {"mean": 1.5 + 0.1 * i, "std": 0.5, "n": 10, "ci95": 0.125}
             for i, c in enumerate(("ln1", "mha", "ln2", "fc1", "fc2"))}
    train = [{"step": s, "loss": 2.0 / s, "grad_norm": 1.0,
              "lr": 0.1 * 0.5 * (1 + math.cos(math.pi * s / 100))} for s in range(10, 101, 10)]
    return new_record(
        {"model": {"name": "vit_tiny_patch16_224", "label": "tiny",
                   "weights": {"source": "random"}},
         "dataset": {"name": "cifar10", "key": "cifar10", "params": {}},
         "strategy": {"name": "mha", "key": "mha", "params": {}}, "lr": 0.1,
         "seed": 3, "recipe": {"steps": 100, "batch_size": 8, "optimizer": "sgd"},
         "plasticity": {"reference": {"name": "imagenet_val", "key": "imagenet_val"},
                        "pairs": 10},
         "overrides": ["recipe.steps=100"]},
        "demo", job_id, status,
        metrics={"test_acc": 0.8125, "best_val_acc": 0.84375, "best_step": 60,
                 "steps_done": 100, "trainable_params": 250, "total_params": 1000,
                 "wall_seconds": 12.5},
        curves={"train": train, "val": [{"step": 50, "val_acc": 0.5},
                                        {"step": 100, "val_acc": 0.84375}]},
        plasticity={"variant": "paper", "pairs": 10, "reference": "imagenet_val",
                    "target": "cifar10", "layers": layers, "components": comps},
        error=None if status == "done" else {"type": "Diverged", "reason": "loss is nan",
                                              "traceback": ""},
        provenance=synthetic_provenance(git_commit="f" * 40, code_version="0",
                                        started_at="t0", finished_at="t1"))


def test_ascii_plot_places_points_by_hand():
    lines = show.ascii_plot([(0, 0), (5, 0.5), (10, 1)], width=11, height=3)
    assert lines == ["1 |          *",
                     "  |     *     ",
                     "0 |*          ",
                     "  +-----------",
                     "   0        10"]


def test_show_prints_the_whole_story(tmp_path, capsys):
    results = tmp_path / "results"
    store.write_record(results, record())
    store.write_record(results, record("0123456789abcdee", "diverged"))
    assert cli.main(["show", JID, "--results", str(results)]) == 0
    out = capsys.readouterr().out
    for want in ("job 0123456789abcdef (suite demo): done", "dataset     cifar10",
                 "strategy    mha", "lr, seed    0.1, 3", "overrides   --set recipe.steps=100",
                 "test acc 0.8125, best val acc 0.8438 at step 60 of 100",
                 "trainable parameters 250 of 1,000 (25.00%)", "loss by step",
                 "learning rate by step", "validation accuracy by step"):
        assert want in out, want
    table = [line.split() for line in out.splitlines() if line.strip().startswith(("0 ", "1 ",
                                                                                 "mean "))]
    assert table[0] == ["0", "1", "1.1", "1.2", "1.3", "1.4"]  # layer 0: ln1 .. fc2
    assert table[1] == ["1", "2", "2.1", "2.2", "2.3", "2.4"]
    assert table[2] == ["mean", "1.5", "1.6", "1.7", "1.8", "1.9"]
    # the loss plot: 2.0/10 = 0.2 at the top left, 2.0/100 = 0.02 at the bottom right
    loss = out.split("loss by step\n")[1].splitlines()
    assert loss[0].strip().startswith("0.2 |*") and loss[7].rstrip().endswith("*")
    # a unique prefix and a path find the record; the failed one shows its reason
    assert cli.main(["show", "0123456789abcde", "--results", str(results)]) == 2
    assert "2 records start with 0123456789abcde" in capsys.readouterr().err
    assert cli.main(["show", str(results / "demo" / "0123456789abcdee.json")]) == 0
    out = capsys.readouterr().out
    assert "(suite demo): diverged\n  reason: loss is nan" in out


@pytest.mark.parametrize("what,expect", [("fedcba", "no record of a job fedcba"),
                                         ("not-an-id", "neither a record file nor a job id"),
                                         ("nowhere.json", "nowhere.json: no such record file")])
def test_show_unknown_job_is_exit_2(what, expect, tmp_path, capsys):
    store.write_record(tmp_path / "results", record())
    assert cli.main(["show", what, "--results", str(tmp_path / "results")]) == 2
    err = capsys.readouterr().err
    assert expect in err and "Traceback" not in err


def test_show_png(tmp_path, capsys, monkeypatch):
    """--png draws the record's own curves, one panel each (loss, learning rate, validation
    accuracy by step), into a 1200 x 320 PNG, and the story is still printed."""
    import struct

    from matplotlib.axes import Axes

    plotted, real_plot = [], Axes.plot

    def spy(self, *args, **kw):
        plotted.append((self, [list(a) for a in args]))
        return real_plot(self, *args, **kw)

    monkeypatch.setattr(Axes, "plot", spy)
    rec = record()
    store.write_record(tmp_path / "results", rec)
    png = tmp_path / "job.png"
    assert cli.main(["show", JID[:6], "--results", str(tmp_path / "results"),
                     "--png", str(png)]) == 0
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert struct.unpack(">II", data[16:24]) == (1200, 320)  # IHDR: 12 x 3.2 in at 100 dpi
    train, val = rec["curves"]["train"], rec["curves"]["val"]
    steps = [p["step"] for p in train]
    assert [xy for _, xy in plotted] == [
        [steps, [p["loss"] for p in train]], [steps, [p["lr"] for p in train]],
        [[p["step"] for p in val], [p["val_acc"] for p in val]]]
    assert [ax.get_title() for ax, _ in plotted] == ["loss", "learning rate",
                                                     "validation accuracy"]
    assert f"{JID} (suite demo): done" in capsys.readouterr().out


def test_show_does_not_import_torch(tmp_path):
    import os
    import subprocess
    import sys

    store.write_record(tmp_path / "results", record())
    code = ("import sys\nfrom bench.cli import main\nrc = main(sys.argv[1:])\n"
            "assert 'torch' not in sys.modules and 'timm' not in sys.modules\nsys.exit(rc)")
    root = str(__import__("pathlib").Path(__file__).resolve().parents[2])
    proc = subprocess.run([sys.executable, "-c", code, "show", JID, "--results",
                           str(tmp_path / "results")], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": root})
    assert proc.returncode == 0, proc.stderr


# ---------------------------------------------------------------- issue 21: an interrupted job


def test_show_lists_what_trained_grouped_by_pattern(tmp_path):
    rec = record()
    rec["metrics"]["trained_params"] = sorted(
        [f"blocks.{i}.attn.{n}" for i in range(12) for n in ("qkv.weight", "qkv.bias")]
        + ["head.weight", "head.bias"])
    store.write_record(tmp_path, rec)
    text = show.show(JID, tmp_path)
    assert ("  trained (26 tensors, by pattern): blocks.*.attn.qkv.bias (12), "
            "blocks.*.attn.qkv.weight (12), head.bias, head.weight") in text
    rec["metrics"]["trained_params"] = []  # lp: nothing trained by SGD
    store.write_record(tmp_path, rec)
    assert "trained (0 tensors, by pattern): none (a probe" in show.show(JID, tmp_path)


def _interrupt_at(monkeypatch, step: int) -> None:
    """The first training run stops at ``step`` as Ctrl-C would stop it (KeyboardInterrupt
    escapes the job: no record, the checkpoint and the attempts file stay)."""
    from bench.job import train

    real, fired = train._log_step, []

    def log_step(log, entry, *a, **k):
        real(log, entry, *a, **k)
        if entry["step"] == step and not fired:
            fired.append(step)
            raise KeyboardInterrupt

    monkeypatch.setattr(train, "_log_step", log_step)


@pytest.mark.slow
@pytest.mark.parametrize("every", [4, 0])
def test_a_resumed_job_says_so_in_its_log_record_and_show(every, tmp_path, cache_dir,
                                                         monkeypatch):
    from bench.job.run import run_job
    from bench.results import store
    from bench.suites.expand import parse_suite
    from tests.conftest import tiny_suite_dict

    raw = tiny_suite_dict(strategies=("mha",), steps=8)
    raw["recipe"].update(log_every=2, checkpoint_every=every)
    (job,) = parse_suite(raw, "t.yaml").jobs
    results = tmp_path / "results"
    _interrupt_at(monkeypatch, 6)
    with pytest.raises(KeyboardInterrupt):
        run_job(job.config, "tiny", results, cache_dir, "cpu")
    assert store.attempts_path(results, job.job_id).is_file()
    record = run_job(job.config, "tiny", results, cache_dir, "cpu")
    assert record["status"] == "done"
    log = store.log_path(results, "tiny", job.job_id).read_text()
    starts = [line for line in log.splitlines() if f"job {job.job_id}: start" in line]
    assert len(starts) == 2 and "start (attempt 2: 1 earlier one(s) did not finish)" in starts[1]
    # what the strategy trained, by pattern (the tiny model has 2 blocks)
    assert "trained: blocks.*.attn.proj.bias (2), blocks.*.attn.proj.weight (2), " in log
    after = log.split(starts[1])[1]
    if every:
        assert "resumed at step 4 from its checkpoint" in after
        assert "restarted" not in log
    else:
        assert "restarted from step 0: no checkpoint (recipe.checkpoint_every 0)" in after
        assert "resumed at step" not in log
    attempts = record["provenance"]["attempts"]
    assert [a["resumed_at_step"] for a in attempts] == [0, every]
    assert not store.attempts_path(results, job.job_id).exists()  # gone with the checkpoint
    text = show.show(job.job_id, results)
    assert "attempts: 2" in text
    lines = text.split("attempts: 2\n")[1].splitlines()[:2]
    assert lines[0].endswith("from step 0; interrupted")
    assert lines[1].endswith((f"resumed at step {every} from its checkpoint" if every
                              else "from step 0") + "; finished")
