"""Waiting for a job another process holds (``bench.lifecycle.Waiting``): the one way both the
local runner and a SLURM task wait."""

from __future__ import annotations

import threading

from bench import claims, lifecycle

JID, OTHER = "0123456789abcdef", "fedcba9876543210"


def test_a_held_job_is_said_once_and_handed_back_when_released(tmp_path):
    claim = claims.try_claim(tmp_path, "s", JID)
    assert isinstance(claim, claims.Claim)
    waiting = lifecycle.Waiting(tmp_path, "s")
    line = waiting.hold(JID, "pid 1 on h", item="job")
    assert line == f"job {JID} is being run by pid 1 on h; waiting for it"
    assert waiting.hold(JID, "pid 1 on h", item="job") is None  # said once
    assert waiting.hold(OTHER, "pid 2 on h", item="other")  # no claim: released at once
    assert len(waiting) == 2 and waiting.released() == ["other"] and len(waiting) == 1
    assert waiting.released() == []  # still held
    claim.release()
    assert waiting.released() == ["job"] and not waiting


def test_block_returns_once_the_claim_is_released_and_ticks_meanwhile(tmp_path):
    claim = claims.try_claim(tmp_path, "s", JID)
    waiting = lifecycle.Waiting(tmp_path, "s")
    waiting.hold(JID, "x")
    ticks = []

    def tick():
        ticks.append(1)
        if len(ticks) == 3:
            threading.Thread(target=claim.release).start()

    waiting.block(JID, 0.01, tick)
    assert len(ticks) >= 3 and not waiting
