"""Shared fixtures: a tiny timm ViT and a tiny suite that runs in seconds."""

from __future__ import annotations

import os

import pytest

from bench.core.config import Recipe

# A tiny ViT: 2 blocks, width 16, MLP width 32 (so fc2's zero padding is exercised).
TINY_KWARGS = {"img_size": 16, "patch_size": 4, "embed_dim": 16, "depth": 2, "num_heads": 2,
               "mlp_ratio": 2.0}


# A full training recipe for calling bench.job.train.finetune directly; tests override keys.
RECIPE = Recipe(steps=9, batch_size=16, warmup_steps=2, eval_every=3, log_every=1,
                optimizer="sgd", momentum=0.9, weight_decay=0.0, clip_grad=1.0,
                crop_scale=(0.5, 1.0), hflip=True, grad_accum=1, eval_batch_size=64,
                precision="fp32", checkpoint_every=0)


def random_data(n: int = 48, seed: int = 0, size: int = 16):
    """Random uint8 images and labels as bench.job.train.DeviceData on the CPU."""
    import numpy as np

    from bench.job import train

    rng = np.random.default_rng(seed)
    x = rng.integers(0, 255, (n, size, size, 3), dtype=np.uint8)
    return train.DeviceData(x, rng.integers(0, 10, n), [0.5] * 3, [0.5] * 3, "cpu")


def pytest_configure(config):
    os.environ.setdefault("BENCH_VERIFY_MD5", "0")


# Where a test run may write, besides each test's tmp_path: nothing in the user's home or
# caches. Subprocesses (the CLI, SLURM tasks) inherit these.
REDIRECTED = ("HOME", "XDG_CACHE_HOME", "BENCH_CACHE", "TORCH_HOME", "HF_HOME")


@pytest.fixture(scope="session", autouse=True)
def _private_home(tmp_path_factory):
    """HOME and every cache the code or its libraries write into, under the session's tmp.

    BENCH_CACHE is the folder of the ``cache_dir`` fixture, so tests that leave the cache
    to its default share the tiny model pretrained once."""
    base = tmp_path_factory.getbasetemp()
    places = {"HOME": base / "home", "XDG_CACHE_HOME": base / "home" / ".cache",
              "BENCH_CACHE": base / "bench-cache", "TORCH_HOME": base / "torch",
              "HF_HOME": base / "huggingface"}
    saved = {k: os.environ.get(k) for k in REDIRECTED}
    for k, path in places.items():
        path.mkdir(parents=True, exist_ok=True)
        os.environ[k] = str(path)
    yield places
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture
def tiny_vit():
    import timm
    import torch

    torch.manual_seed(0)
    return timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=10,
                             **TINY_KWARGS).eval()


def tiny_suite_dict(name: str = "tiny", strategies=("full", "linear"), steps: int = 6,
                    seeds=(0,), lrs=(0.05,), **extra) -> dict:
    """A suite on digits with a tiny model pretrained for a few steps."""
    suite = {
        "name": name,
        "description": "tiny test suite",
        "models": [{"name": "vit_tiny_patch16_224", "label": "tiny",
                    "kwargs": {**TINY_KWARGS, "img_size": 32, "patch_size": 8},
                    "weights": {"pretrain": {"dataset": "digits_source", "steps": 4,
                                             "batch_size": 32, "warmup_steps": 1}}}],
        "datasets": [{"name": "digits_c", "corruption": "contrast", "severity": 5}],
        "strategies": list(strategies),
        "lrs": list(lrs),
        "seeds": list(seeds),
        "recipe": {"steps": steps, "batch_size": 16, "warmup_steps": 2, "eval_every": 3,
                   "log_every": 2, "eval_batch_size": 256, "crop_scale": [0.6, 1.0],
                   "hflip": False},
        "plasticity": {"reference": "digits_source", "pairs": 32, "batch_size": 16},
    }
    suite.update(extra)
    return suite


@pytest.fixture
def write_suite(tmp_path):
    import yaml

    def write(d: dict | None = None, name: str = "suite.yaml", **kw) -> str:
        path = tmp_path / name
        path.write_text(yaml.safe_dump(d if d is not None else tiny_suite_dict(**kw)))
        return str(path)

    return write


@pytest.fixture
def cache_dir(tmp_path_factory):
    # One pretraining cache for the session: the tiny recipe is pretrained once.
    return tmp_path_factory.getbasetemp() / "bench-cache"
