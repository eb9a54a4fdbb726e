"""The CUDA paths' device logic, reached on the CPU: a device string normalised once
(``cpu:0`` is not ``cpu`` to torch, as ``cuda`` is not ``cuda:0``), checkpoints written on one
device and resumed on another, checkpoint keys whatever wraps the model, no read-back from the
device between log steps, a data-parallel task's GPU from what it sees, and a failure on one
rank turned into rank 0's error within seconds."""

from __future__ import annotations

import dataclasses
import functools
import os
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from bench import cli
from bench.core.devices import torch_device
from bench.job import parallel, train
from bench.results import store
from tests.conftest import RECIPE, TINY_KWARGS


def _model(num_classes=10):
    import timm

    torch.manual_seed(0)
    return timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=num_classes,
                             **TINY_KWARGS)


def _data(device, n=48, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 255, (n, 16, 16, 3), dtype=np.uint8)
    return train.DeviceData(x, rng.integers(0, 10, n), [0.5] * 3, [0.5] * 3, device)


# ---------------------------------------------------------------- one normaliser


def test_a_cpu_device_compares_equal_with_a_tensor_on_it_however_spelt():
    for spec in ("cpu", "cpu:0", torch.device("cpu:0"), None):
        dev = torch_device(spec) if spec is not None or not torch.cuda.is_available() else None
        if dev is None:
            continue
        assert dev == torch.empty(0, device="cpu:0").device == torch.empty(0).device
    with pytest.raises(ValueError, match="not a device"):
        torch_device("gpu0")


def test_cuda_gets_the_index_of_the_current_device_and_a_missing_one_is_an_error(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 1)  # a task bound to GPU 1
    assert torch_device("cuda") == torch.device("cuda", 1)
    assert torch_device("cuda:0") == torch.device("cuda", 0)
    assert torch_device(None) == torch.device("cuda", 1)
    with pytest.raises(ValueError, match="only 2 CUDA"):
        torch_device("cuda:2")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match="no CUDA device"):
        torch_device("cuda")


def test_data_on_cpu0_is_gathered_in_place_like_cpu():
    # Before normalising, cpu:0 != cpu sent the batch through pinned memory (needs CUDA).
    a, b = _data("cpu"), _data("cpu:0")
    idx = torch.tensor([5, 0, 47, 3])
    xa, ya = a.batch(idx)
    xb, yb = b.batch(idx)
    assert torch.equal(xa, xb) and torch.equal(ya, yb)


def test_bench_run_device_cpu0_end_to_end(write_suite, tmp_path, cache_dir):
    suite = write_suite(strategies=["full"], steps=4)
    results = tmp_path / "r"
    assert cli.main(["run", suite, "--results", str(results), "--cache", str(cache_dir),
                     "--device", "cpu:0", "-q"]) == 0
    (rec,) = store.load_records(results, "tiny")[0]
    assert rec["status"] == "done", rec.get("error")
    assert rec["provenance"]["device"] == "cpu" and rec["metrics"]["test_acc"] is not None


# ---------------------------------------------------------------- checkpoints


class _Stop(Exception):
    pass


def _stop_after(step):
    done = [0]

    def progress(n):
        done[0] += n
        if done[0] == step:
            raise _Stop

    return progress


def _finetune(model, device, recipe, checkpoint=None, progress=None):
    data = _data(device)
    return train.finetune(model, data, data, data, recipe=recipe, lr=0.05, seed=3,
                          checkpoint=checkpoint, progress=progress)


def test_resume_written_on_cpu_onto_cpu0_is_bit_identical(tmp_path):
    recipe = dataclasses.replace(RECIPE, checkpoint_every=2)
    whole = _model()
    want = _finetune(whole, "cpu", recipe)
    ck = tmp_path / "ck.pt"
    with pytest.raises(_Stop):
        _finetune(_model(), "cpu", recipe, ck, _stop_after(5))  # checkpoint at step 4
    assert torch.load(ck, weights_only=True)["step"] == 4
    resumed = _model()
    got = _finetune(resumed, "cpu:0", recipe, ck)
    for (n, a), b in zip(whole.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), n
    assert got.curves == want.curves and got.test_acc == want.test_acc


def test_checkpoint_keys_are_the_module_own_and_resume_with_compile_toggled(tmp_path,
                                                                            monkeypatch):
    eager = functools.partial(torch.compile, backend="eager")  # a real wrapper, no compiler
    monkeypatch.setattr(torch, "compile", eager)
    on = dataclasses.replace(RECIPE, checkpoint_every=2, compile=True)
    off = dataclasses.replace(on, compile=False)
    ck = tmp_path / "ck.pt"
    with pytest.raises(_Stop):
        _finetune(_model(), "cpu", on, ck, _stop_after(5))  # saved at 4, eval at 3
    keys = set(torch.load(ck, weights_only=True)["model"])
    assert keys == set(_model().state_dict())  # no _orig_mod., no module.
    best = torch.load(ck, weights_only=True)["best_state"]
    assert set(best) <= keys
    whole, resumed = _model(), _model()
    _finetune(whole, "cpu", off)
    _finetune(resumed, "cpu", off, ck)  # compiled before the requeue, not after
    for (n, a), b in zip(whole.state_dict().items(), resumed.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=n)


def test_unwrapped_reaches_the_module_through_compile():
    m = _model()
    assert train.unwrapped(torch.compile(m, backend="eager")) is m and train.unwrapped(m) is m


# ---------------------------------------------------------------- the step loop


def _reads(monkeypatch):
    """Counts of tensor values read back to the host (.item, float, int, bool, tolist)."""
    count = [0]
    for name in ("item", "__float__", "__int__", "__bool__", "tolist"):
        orig = getattr(torch.Tensor, name)

        def spy(self, *a, _orig=orig, **kw):
            count[0] += 1
            return _orig(self, *a, **kw)

        monkeypatch.setattr(torch.Tensor, name, spy)
    return count


def test_the_step_loop_reads_nothing_back_between_log_and_eval_steps(monkeypatch):
    counts = []
    for steps in (4, 12):  # one log and eval point each: the same reads, however many steps
        recipe = dataclasses.replace(RECIPE, steps=steps, log_every=steps, eval_every=steps,
                                     warmup_steps=0)
        model = _model()
        data = _data("cpu")
        with monkeypatch.context() as m:
            count = _reads(m)
            train.finetune(model, data, data, None, recipe=recipe, lr=0.05, seed=0)
        counts.append(count[0])
    assert counts[0] == counts[1], counts


def test_a_non_finite_loss_is_reported_at_its_own_step_though_read_later():
    recipe = dataclasses.replace(RECIPE, steps=6, log_every=6, eval_every=6)
    model = _model()
    x = np.zeros((32, 16, 16, 3), np.uint8)
    data = train.DeviceData(x, np.zeros(32, np.int64), [0.5] * 3, [0.0] * 3, "cpu")  # 0/0
    with pytest.raises(train.Diverged, match="loss is nan at step 1 "):
        train.finetune(model, data, data, None, recipe=recipe, lr=0.05, seed=0)


# ---------------------------------------------------------------- data parallel


def test_a_task_gpu_comes_from_what_it_sees():
    assert parallel.local_gpu(3, 1, 4) == 0  # SLURM bound one GPU to the task
    assert parallel.local_gpu(1, 2, 2) == 1  # it sees the node's GPUs, one per task
    with pytest.raises(parallel.Binding, match="sees 2 GPU.*CUDA_VISIBLE_DEVICES=0,1"):
        parallel.local_gpu(2, 2, 3, "CUDA_VISIBLE_DEVICES=0,1")


def test_too_few_gpus_is_a_failure_record_before_any_rendezvous(tmp_path, monkeypatch):
    from bench import slurm
    from bench.suites.expand import parse_suite
    from tests.conftest import tiny_suite_dict

    (job,) = parse_suite(tiny_suite_dict(strategies=["full"]), "<t>").jobs
    for k, v in {"SLURM_NTASKS": "3", "SLURM_PROCID": "0", "SLURM_LOCALID": "0",
                 "SLURM_JOB_ID": "77", "CUDA_VISIBLE_DEVICES": "0,1"}.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)

    def no_rendezvous(*a, **kw):
        raise AssertionError("joined a process group")

    monkeypatch.setattr(torch.distributed, "init_process_group", no_rendezvous)
    task = slurm.SlurmJob("tiny", job.job_id)
    with pytest.raises(parallel.Binding):
        task._join(job.config, tmp_path)
    rec = store.read_record(store.record_path(tmp_path, "tiny", job.job_id))
    assert rec["status"] == "failed" and "sees 2 GPU" in rec["error"]["reason"]
    assert "CUDA_VISIBLE_DEVICES=0,1" in rec["error"]["reason"]


def test_rendezvous_files_of_two_jobs_differ_and_live_in_the_results(tmp_path):
    a = parallel.rendezvous_file(tmp_path, {"SLURM_JOB_ID": "20001"})
    b = parallel.rendezvous_file(tmp_path, {"SLURM_JOB_ID": "1"})  # same port before
    assert a != b and a.startswith(f"file://{tmp_path.resolve()}")


def _failing_rank(rank: int, size: int, rendezvous: str, out: str) -> None:
    torch.set_num_threads(1)
    world = parallel.init(rank, size, 0, rendezvous, timeout_s=60, backend="gloo")
    net = train._ranks(_model(), 8, world, compile_=True)[1]
    wrapped_first = isinstance(getattr(net, "_orig_mod", None),
                               torch.nn.parallel.DistributedDataParallel)
    if rank == 1:  # an out-of-memory error in rank 1's validation, at step 2
        real = train.evaluate

        def evaluate(model, data, *a, **kw):
            if evaluate.calls == 1:
                raise torch.cuda.OutOfMemoryError("simulated on rank 1")
            evaluate.calls += 1
            return real(model, data, *a, **kw)

        evaluate.calls = 0
        train.evaluate = evaluate
    recipe = dataclasses.replace(RECIPE, steps=6, eval_every=2, batch_size=8)
    data = _data("cpu")
    t0 = time.perf_counter()
    try:
        train.finetune(_model(), data, data, None, recipe=recipe, lr=0.05, seed=0)
        error = None
    except Exception as e:  # noqa: BLE001 - what each rank saw is the result
        error = f"{type(e).__name__}: {e}"
    Path(out, f"rank{rank}.txt").write_text(
        f"{wrapped_first}\n{time.perf_counter() - t0:.1f}\n{error}")
    torch.distributed.destroy_process_group()


@pytest.mark.slow
def test_a_failure_on_rank_1_becomes_rank_0_error_within_seconds(tmp_path):
    torch.multiprocessing.spawn(_failing_rank, args=(2, f"file://{tmp_path}/rdzv", str(tmp_path)),
                                nprocs=2, join=True)
    wrapped, seconds, error = (tmp_path / "rank0.txt").read_text().split("\n", 2)
    assert wrapped == "True"  # DDP inside torch.compile's wrapper
    assert float(seconds) < 30  # not TIMEOUT_S
    assert error.startswith("RankFailed: validation at step 4 failed on another rank")
    assert "rank 1: OutOfMemoryError: simulated on rank 1" in error
    assert "OutOfMemoryError" in (tmp_path / "rank1.txt").read_text()


def test_nccl_rank_joins_on_the_gpu_it_sees_with_device_id(monkeypatch):
    joined, chosen = [], []
    monkeypatch.setattr(torch.cuda, "set_device", chosen.append)
    monkeypatch.setattr(torch.distributed, "init_process_group",
                        lambda backend, **kw: joined.append((backend, kw)))
    monkeypatch.delenv("TORCH_NCCL_ASYNC_ERROR_HANDLING", raising=False)
    monkeypatch.setenv("LOCAL_RANK", "0")  # init sets it; restored after
    for visible, local, want in ((1, 3, 0), (4, 1, 1)):  # bound to one GPU; sees all four
        monkeypatch.setattr(torch.cuda, "device_count", lambda v=visible: v)
        parallel.init(local, 4, local, "file:///nowhere", backend="nccl")
        assert chosen[-1] == want and joined[-1][0] == "nccl"
        assert joined[-1][1]["device_id"] == torch.device("cuda", want)
    assert os.environ["TORCH_NCCL_ASYNC_ERROR_HANDLING"] == "2"  # errors raised, not fatal
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    with pytest.raises(parallel.Binding):
        parallel.init(2, 4, 2, "file:///nowhere", backend="nccl")
    assert len(joined) == 2  # no rendezvous for the task without a GPU
