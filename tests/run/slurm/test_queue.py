"""Tests of bench.run.slurm.queue: the SLURM client commands, against fake clients on PATH."""

from __future__ import annotations

import os
import stat

import pytest

from bench.run.slurm import queue


def fake_client(tmp_path, monkeypatch, name: str, body: str) -> None:
    """A shell script ``name`` on a PATH that holds nothing else (no real SLURM)."""
    path = tmp_path / name
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}/bin{os.pathsep}/usr/bin")


def test_queue_states_parses_one_line_per_task_and_passes_the_flags(tmp_path, monkeypatch):
    args = tmp_path / "args"
    fake_client(tmp_path, monkeypatch, "squeue",
                f'echo "$@" > {args}\nprintf "12_0 RUNNING\\n12_1 PENDING\\n7 COMPLETING\\n'
                'garbage\\n"')
    assert queue.queue_states() == {"12_0": "RUNNING", "12_1": "PENDING", "7": "COMPLETING"}
    assert args.read_text().split() == ["--me", "-h", "-r", "-o", "%i", "%T"]


def test_max_array_size_from_scontrol_and_its_default(tmp_path, monkeypatch):
    fake_client(tmp_path, monkeypatch, "scontrol",
                'echo "Configuration data as of now"\necho "MaxArraySize            = 40"\n'
                'echo "MaxJobCount = 10000"')
    assert queue.max_array_size() == 40
    assert queue.slurm_config()["MaxJobCount"] == "10000"
    fake_client(tmp_path, monkeypatch, "scontrol", 'echo "MaxJobCount = 5"')
    assert queue.max_array_size() == 1001  # SLURM's default when the key is absent
    fake_client(tmp_path, monkeypatch, "scontrol", 'echo "MaxArraySize = lots"')
    with pytest.raises(queue.SlurmError, match="not a number"):
        queue.max_array_size()


def test_run_command_failures_are_slurm_errors(tmp_path, monkeypatch):
    fake_client(tmp_path, monkeypatch, "squeue", 'echo "slurm_load_jobs error: down" >&2\nexit 3')
    with pytest.raises(queue.SlurmError, match=r"exit 3\): slurm_load_jobs error: down"):
        queue.queue_states()
    with pytest.raises(queue.SlurmError, match="'no-such-slurm-client' not found"):
        queue.run_command(["no-such-slurm-client", "x"])
    fake_client(tmp_path, monkeypatch, "squeue", "sleep 5")
    with pytest.raises(queue.SlurmError, match="did not answer within 0.2s"):
        queue.run_command(["squeue"], timeout=0.2)


def test_state_sets_are_disjoint():
    assert not queue.PENDING_STATES & queue.RUNNING_STATES
    assert "PENDING" in queue.PENDING_STATES and "RUNNING" in queue.RUNNING_STATES
    assert "COMPLETED" not in queue.PENDING_STATES | queue.RUNNING_STATES
