"""Data parallelism (bench.job.parallel): two gloo processes on CPU train like one process on the
same global batch. Oracles: the gradient of the global batch's mean loss computed in the test
on one process with plain autograd, and one-process training with the same recipe."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from bench.core.config import Recipe
from bench.job import parallel, train
from bench.run.slurm import groups as slurm_groups
from bench.run.slurm import profiles as slurm_profiles
from tests.conftest import TINY_KWARGS

RECIPE = Recipe(steps=3, batch_size=13, warmup_steps=0, eval_every=3, log_every=1,
                optimizer="sgd", momentum=0.9, weight_decay=1e-4, clip_grad=0.05,
                crop_scale=(0.5, 1.0), hflip=True, grad_accum=3, eval_batch_size=64,
                precision="fp32", checkpoint_every=0)


def _model():
    import timm

    torch.manual_seed(0)
    return timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=5,
                             **TINY_KWARGS)


def _data(device="cpu"):
    g = torch.Generator().manual_seed(1)
    x = torch.randint(0, 256, (40, 16, 16, 3), dtype=torch.uint8, generator=g).numpy()
    y = torch.randint(0, 5, (40,), generator=g).numpy()
    return train.DeviceData(x, y, (0.5,) * 3, (0.25,) * 3, device)


def _first_batch(data, part=None):
    gen = torch.Generator().manual_seed(7)
    idx = train.Sampler(len(data), gen).next(RECIPE.batch_size)
    return data.augmented(idx, gen, RECIPE.crop_scale, RECIPE.hflip, part=part)


def test_parts_cover_the_batch_once():
    for n in (1, 2, 7, 13, 64):
        for size in (1, 2, 3, 8):
            if n < size:
                continue
            parts = [parallel.World(r, size).part(n) for r in range(size)]
            assert [i for p in parts for i in range(n)[p]] == list(range(n))
            assert max(len(range(n)[p]) for p in parts) - \
                min(len(range(n)[p]) for p in parts) <= 1


def test_a_rank_part_is_the_same_images_augmented_alike():
    data = _data()
    x, y = _first_batch(data)
    for size in (2, 3):
        pieces = [_first_batch(data, parallel.World(r, size).part(len(y))) for r in range(size)]
        assert torch.equal(torch.cat([p[1] for p in pieces]), y)
        torch.testing.assert_close(torch.cat([p[0] for p in pieces]), x, rtol=0, atol=1e-6)


def _rank(rank: int, size: int, rendezvous: str, out: str, device: str = "cpu") -> None:
    torch.set_num_threads(1)
    gpu = device == "cuda"
    world = parallel.init(rank, size, rank if gpu else 0, rendezvous, timeout_s=120,
                          backend="nccl" if gpu else "gloo")
    data = _data(device)
    model = _model().to(device)
    net = parallel.wrap(model)
    params = [p for p in model.parameters() if p.requires_grad]
    x, y = _first_batch(data, world.part(RECIPE.batch_size))
    micro = -(-RECIPE.batch_size // RECIPE.grad_accum)
    loss, _ = train.accumulate_gradients(net, params, x, y, micro, "fp32",
                                         weight=len(y) * size / RECIPE.batch_size)
    grads = {n: p.grad.clone() for n, p in model.named_parameters()}
    loss = float(parallel.mean(loss))
    for p in params:
        p.grad = None
    model = _model().to(device)  # fresh, then three steps of the recipe
    train.finetune(model, data, data, None, recipe=RECIPE, lr=0.1, seed=7)
    torch.save({"grads": {n: g.cpu() for n, g in grads.items()}, "loss": loss,
                "state": {n: t.cpu() for n, t in model.state_dict().items()}},
               Path(out) / f"rank{rank}.pt")
    torch.distributed.destroy_process_group()


def _two_ranks_like_one_process(tmp_path, device: str) -> None:
    torch.multiprocessing.spawn(
        _rank, args=(2, f"file://{tmp_path}/rdzv", str(tmp_path), device), nprocs=2, join=True)
    got = [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]
    # Oracle: one process, the whole global batch, plain autograd on the mean loss.
    data = _data(device)
    model = _model().to(device)
    x, y = _first_batch(data)
    loss = torch.nn.functional.cross_entropy(model(x), y)
    loss.backward()
    for r in range(2):
        assert got[r]["loss"] == pytest.approx(float(loss.detach()), rel=1e-5)
        for n, p in model.named_parameters():
            torch.testing.assert_close(got[r]["grads"][n], p.grad.cpu(), rtol=1e-4, atol=1e-6)
    single = _model().to(device)
    train.finetune(single, data, data, None, recipe=RECIPE, lr=0.1, seed=7)
    want = {n: t.cpu() for n, t in single.state_dict().items()}
    for n, t in want.items():
        assert torch.equal(got[0]["state"][n], got[1]["state"][n]), n  # ranks identical
        torch.testing.assert_close(got[0]["state"][n], t, rtol=1e-4, atol=1e-6)
    assert any(not torch.equal(t, _model().state_dict()[n]) for n, t in want.items())


@pytest.mark.slow
def test_two_gloo_ranks_give_one_process_gradients_and_weights(tmp_path):
    _two_ranks_like_one_process(tmp_path, "cpu")


@pytest.mark.gpu
@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs 2 GPUs")
def test_two_nccl_ranks_give_one_process_gradients_and_weights(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)  # fp32 convolutions
    monkeypatch.setenv("NVIDIA_TF32_OVERRIDE", "0")  # the spawned ranks too
    _two_ranks_like_one_process(tmp_path, "cuda")


def test_one_rank_per_gpu_in_profiles():
    res = slurm_profiles.merge_resources(slurm_profiles.BUILTIN_DEFAULTS, {"gpus_per_node": 2})
    assert slurm_profiles.ranks(res) == 2
    p = slurm_groups.executor_parameters(res, "x")
    assert (p["gpus_per_node"], p["ntasks_per_node"], p["nodes"]) == (2, 2, 1)
    assert "ntasks_per_node" not in slurm_groups.executor_parameters(
        slurm_profiles.BUILTIN_DEFAULTS, "x")
    cpu = slurm_profiles.merge_resources(slurm_profiles.BUILTIN_DEFAULTS, {"tasks_per_node": 2})
    assert slurm_groups.executor_parameters(cpu, "x")["ntasks_per_node"] == 2
    with pytest.raises(slurm_profiles.ProfileError, match="tasks_per_node 3 with gpus_per_node 2"):
        slurm_profiles.profile_from_dict({"executor": "slurm", "defaults": {"gpus_per_node": 2},
                                 "groups": [{"name": "g", "match": {"model": "*"},
                                             "resources": {"tasks_per_node": 3}}]})


def test_example_profile_jobs_use_every_gpu_they_ask_for():
    root = Path(__file__).resolve().parents[2]
    for path in sorted((root / "slurm").glob("*.yaml")):
        prof = slurm_profiles.load_profile(path)
        for res in [prof.defaults, *(slurm_profiles.merge_resources(prof.defaults, g.resources)
                                     for g in prof.groups)]:
            gpus = res.get("gpus_per_node") or 0
            assert gpus <= 1 or slurm_profiles.ranks(res) == gpus, (path, res)
