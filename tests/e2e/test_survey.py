"""The survey and paper-lite suites end to end, through a local server that answers like the
Hugging Face hub, with random weights in each model's real architecture and official-format
data made here.

Every checkpoint of ``suites/survey.yaml`` and ``suites/paper-lite.yaml`` is served as timm's
own hub exporter writes it, for the tag's architecture with one block (``depth=1``: the only
shrinking, through ``--set``; the input size, width, LayerScale, ``norm_pre`` and attention
pool are the real ones). ``bench prepare suites/survey.yaml --download`` fetches each once
(and retries one whose connection drops); the survey runs (``plasticity`` jobs), then paper-lite,
whose jobs reuse the survey's measurements; the page's across-model lines come out of those
records. Commands run in subprocesses with ``HF_ENDPOINT`` pointing at the server.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench.data import datasets
from bench.suites.expand import load_suite
from tests.httpserve import Route, Server

pytestmark = pytest.mark.slow  # a dozen architectures at 224 px, in several interpreters

ROOT = Path(__file__).resolve().parents[2]
BENCH = str(Path(sys.executable).with_name("bench"))
SURVEY, LITE = ROOT / "suites/survey.yaml", ROOT / "suites/paper-lite.yaml"
COMMIT = "0123456789abcdef0123456789abcdef01234567"
# What CPU time demands and nothing else: one block per model, few pairs, a few steps.
PLASTICITY = ["--set", "plasticity.pairs=16", "--set", "plasticity.batch_size=8"]


def shrink(path: Path) -> list[str]:
    n = len({j.config["model"]["label"] for j in load_suite(path).jobs})
    return [a for i in range(n) for a in ("--set", f"models.{i}.kwargs.depth=1")] + PLASTICITY


def names() -> list[str]:
    return sorted({j.config["model"]["name"] for p in (SURVEY, LITE)
                   for j in load_suite(p).jobs})


@pytest.fixture(scope="module")
def hub_files(tmp_path_factory) -> dict[str, dict[str, bytes]]:
    """Per tag: config.json and model.safetensors of its architecture with one block."""
    import timm
    import torch
    from timm.models._hub import save_for_hf

    out = {}
    for name in names():
        torch.manual_seed(0)
        model = timm.create_model(name, pretrained=False, num_classes=0, depth=1)
        folder = tmp_path_factory.mktemp("hf-export")
        save_for_hf(model, str(folder), model_args={"depth": 1}, safe_serialization=True)
        out[name] = {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}
    return out


def hub_server(files: dict[str, dict[str, bytes]]) -> Server:
    routes = {}
    for name, items in files.items():
        for fname, body in items.items():
            sha = hashlib.sha256(body).hexdigest()
            headers = {"ETag": f'"{sha}"', "X-Repo-Commit": COMMIT}
            if fname.endswith(".safetensors"):
                headers.update({"X-Linked-Etag": f'"{sha}"', "X-Linked-Size": str(len(body))})
            for rev in ("main", COMMIT):
                routes[f"/timm/{name}/resolve/{rev}/{fname}"] = Route(body, headers)

    def not_found(path: str) -> dict[str, str]:
        if "/resolve/" in path:
            return {"X-Error-Code": "EntryNotFound", "X-Repo-Commit": COMMIT}
        return {"X-Error-Code": "RepoNotFound"}

    return Server(routes, not_found)


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("data")
    datasets.write_fake_layout("imagenet_val", root, n_per_class=6)  # 18 > the 16 pairs
    for name in ("cifar10", "cifar100"):  # 10 and 100 classes: 2 images of each per file
        datasets.write_fake_layout(name, root, n_per_class=2)
    for name in ("pets", "flowers102"):  # 3 classes x 4 images: test splits under 16 images
        datasets.write_fake_layout(name, root)
    return root


def env_for(tmp: Path, endpoint: str, root: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    env.update(HF_ENDPOINT=endpoint, HF_HOME=str(tmp / "hf"), BENCH_CACHE=str(tmp / "cache"),
               HOME=str(tmp), HF_HUB_DISABLE_TELEMETRY="1", BENCH_DATA=str(root),
               BENCH_VERIFY_MD5="0", **extra)
    return env


def bench(*args: str, env: dict, cwd: Path, timeout: int = 1200) -> subprocess.CompletedProcess:
    return subprocess.run([BENCH, *args], capture_output=True, text=True, env=env, cwd=cwd,
                          timeout=timeout)


def records(folder: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))]


@pytest.fixture(scope="module")
def prepared(hub_files, data_root, tmp_path_factory):
    """``bench prepare suites/survey.yaml --download`` against the hub, one checkpoint's
    connection dropped half-way; returns (tmp, its output, the server's requests)."""
    tmp = tmp_path_factory.mktemp("survey")
    with hub_server(hub_files) as hub:
        env = env_for(tmp, hub.url, data_root)
        first = names()[0]
        half = len(hub_files[first]["model.safetensors"]) // 2
        # dropped once (fetched at the commit the hub names for `main`)
        hub.truncate[f"/timm/{first}/resolve/{COMMIT}/model.safetensors"] = [half]
        proc = bench("prepare", str(SURVEY), "--download", env=env, cwd=tmp)
        return tmp, proc, list(hub.requests)


@pytest.fixture(scope="module")
def ran(prepared, data_root):
    """The survey, paper-lite (one learning rate), then the page, with the hub gone (the
    checkpoints come from the cache prepare filled); returns (tmp, outputs by step)."""
    tmp, out = prepared[0], {}
    env = env_for(tmp, "http://127.0.0.1:9", data_root, HF_HUB_OFFLINE="1")
    results = tmp / "results"
    out["survey"] = bench("run", str(SURVEY), *shrink(SURVEY), "--results", str(results), "-q",
                          env=env, cwd=tmp)
    out["lite"] = bench("run", str(LITE), *shrink(LITE), "--set", "lrs=[0.01]", "--set",
                        "recipe.steps=2", "--set", "recipe.warmup_steps=1", "--set",
                        "recipe.eval_every=1", "--set", "recipe.batch_size=8", "--set",
                        "recipe.eval_batch_size=64", "--set", "recipe.checkpoint_every=0",
                        "--results", str(results), "-q", "--jobs", "2", env=env, cwd=tmp)
    out["page"] = bench("leaderboard", "--results", str(results), "--out",
                        str(tmp / "LEADERBOARD.md"), "--no-site", env=env, cwd=tmp)
    return tmp, out


def test_prepare_download_fetches_every_checkpoint_once_and_retries(prepared, hub_files):
    tmp, proc, requests = prepared
    assert proc.returncode == 0, proc.stderr[-3000:]
    survey = list(dict.fromkeys(j.config["model"]["name"] for j in load_suite(SURVEY).jobs))
    gets = [p for m, p, _ in requests if m == "GET" and p.endswith("model.safetensors")]
    first = names()[0]
    dropped = f"/timm/{first}/resolve/{COMMIT}/model.safetensors"
    assert sorted(set(gets)) == sorted(f"/timm/{n}/resolve/{COMMIT}/model.safetensors"
                                       for n in survey)
    assert all(gets.count(p) == (2 if p == dropped else 1) for p in gets)  # each once
    # the dropped one was resumed from where it stopped and arrived whole (below)
    half = len(hub_files[first]["model.safetensors"]) // 2
    assert [r for m, p, r in requests if m == "GET" and p == dropped] == [None, f"bytes={half}-"]
    for i, n in enumerate(survey, 1):
        assert f"[{i}/{len(survey)}] {n}: fetching" in proc.stdout
    total = sum(len(hub_files[n]["model.safetensors"]) for n in survey)
    assert f"hub weights: {len(survey)} checkpoint(s), {total / 1e9:.2f} GB in" in proc.stdout
    cached = tmp / "hf" / "hub" / f"models--timm--{first}" / "snapshots" / COMMIT
    assert (cached / "model.safetensors").read_bytes() == hub_files[first]["model.safetensors"]


def test_the_survey_measures_every_model_and_dataset(ran):
    tmp, out = ran
    assert out["survey"].returncode == 0, out["survey"].stderr[-3000:]
    recs = records(tmp / "results" / "survey")
    plan = load_suite(SURVEY, [a for a in shrink(SURVEY) if a != "--set"]).jobs
    assert sorted(r["job_id"] for r in recs) == sorted(j.job_id for j in plan)
    for r in recs:
        assert r["status"] == "done" and r["metrics"]["test_acc"] is None
        assert r["plasticity"]["pairs"] == 16  # test splits under 16 images passed over again
        assert set(r["plasticity"]["components"]) == {"ln1", "mha", "ln2", "fc1", "fc2"}
        assert "trained_params" not in r["metrics"]


def test_paper_lite_reuses_the_survey_measurements(ran):
    tmp, out = ran
    assert out["lite"].returncode == 0, out["lite"].stderr[-3000:]
    survey = {(r["config"]["model"]["name"], r["config"]["dataset"]["key"]): r
              for r in records(tmp / "results" / "survey")}
    recs = records(tmp / "results" / "paper-lite")
    assert len(recs) == 7 * 2 * 7
    for r in recs:
        assert r["status"] == "done", r["error"]
        if r["config"]["strategy"]["name"] == "lp":
            continue
        source = survey[(r["config"]["model"]["name"], r["config"]["dataset"]["key"])]
        assert r["provenance"]["plasticity_reused_from"] == source["job_id"]
        assert r["plasticity"] == source["plasticity"]


def test_the_page_tests_claim_a_across_the_models(ran):
    tmp, out = ran
    assert out["page"].returncode == 0, out["page"].stderr[-3000:]
    page = (tmp / "LEADERBOARD.md").read_text()
    lines = [ln for ln in page.splitlines() if ln.startswith("- **Verdict**")]
    survey = [ln for ln in lines if "`survey`" in ln and "across models" in ln]
    assert survey and "plasticity ranks the components" in survey[0]
    assert "12 public checkpoints, independent in pretraining data" in page
    assert "they share the ViT block design" in page
    lite = [ln for ln in lines if "`paper-lite`" in ln and "across models" in ln]
    assert lite  # the claims on gains too, from the fine-tuning records


def test_prepare_download_without_a_hub_fails_in_seconds_with_the_fix(data_root, tmp_path):
    import socket

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    t0 = time.perf_counter()
    proc = bench("prepare", str(SURVEY), "--download", env=env_for(tmp_path, url, data_root),
                 cwd=tmp_path, timeout=120)
    took = time.perf_counter() - t0
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "HF_HUB_OFFLINE" in proc.stderr and "{file: PATH}" in proc.stderr
    assert took < 60, took  # one quick request, no retries (mostly interpreter start-up)
