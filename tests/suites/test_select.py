"""Suite files: strict validation with every problem listed, expansion, stable job ids."""

from __future__ import annotations

import pytest

from bench.suites.expand import load_suite
from bench.suites.select import FilterError, filter_jobs


def test_only_filters_jobs_without_changing_their_ids(write_suite):
    suite = load_suite(write_suite(strategies=("full", "linear", "mha"), seeds=(0, 1, 2),
                                   lrs=(0.01, 0.05)))
    ids = {j.job_id for j in suite.jobs}
    got = filter_jobs(suite, ["seed=0,2", "strategy=mha,linear", "lr=1e-2"]).jobs
    assert {(j.config["seed"], j.config["strategy"]["name"], j.config["lr"]) for j in got} == {
        (s, n, 0.01) for s in (0, 2) for n in ("mha", "linear")}
    assert {j.job_id for j in got} <= ids
    assert len(filter_jobs(suite, ["model=tiny", "dataset=digits_c"]).jobs) == len(ids)
    with pytest.raises(FilterError) as e:
        filter_jobs(suite, ["sede=0", "strategy=mah", "seed=7"])
    lines = str(e.value).split("\n  ")
    assert "--only sede=0: unknown field 'sede' (did you mean 'seed'?); valid: model, " \
           "dataset, strategy, lr, seed" == lines[0]
    assert "--only strategy=mah: the suite has no strategy 'mah' (did you mean 'mha'?)" \
        in lines[1]
    assert "--only seed=7: the suite has no seed '7'; valid: 0, 1, 2" == lines[2]
