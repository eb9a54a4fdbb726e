"""`weights: hub` for real, against a local server that answers like the Hugging Face hub.

The server holds one repository, ``timm/vit_base_patch16_224.orig_in21k`` (the paper's tag),
with the ``config.json`` and ``model.safetensors`` that timm's own ``save_for_hf`` writes for
a tiny model of that architecture, served with the headers huggingface_hub reads (ETag,
X-Repo-Commit, Content-Length; X-Error-Code on 404). Every command runs in a subprocess with
``HF_ENDPOINT`` pointing at the server (huggingface_hub reads it at import) and ``HF_HOME``,
``BENCH_CACHE`` and ``HOME`` in the test's folder.

- A job with ``weights: hub`` fetches the weights into the Hugging Face cache and its model
  has the served weights (features equal to the source model's, computed here with timm).
- With the server stopped, a second run reads the cache (with and without HF_HUB_OFFLINE).
- With the server stopped and an empty cache, ``bench run`` and ``bench prepare --download``
  exit 2 in seconds, naming HF_HUB_OFFLINE and ``{file: PATH}``, and a job records the same.
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
import yaml

from tests.conftest import tiny_suite_dict
from tests.httpserve import Route, Server

pytestmark = pytest.mark.slow  # several interpreters that import torch

BENCH = str(Path(sys.executable).with_name("bench"))
TAG = "vit_base_patch16_224.orig_in21k"
REPO = f"timm/{TAG}"
COMMIT = "0123456789abcdef0123456789abcdef01234567"
KW = {"img_size": 32, "patch_size": 8, "embed_dim": 32, "depth": 2, "num_heads": 2,
      "mlp_ratio": 2.0}


@pytest.fixture(scope="module")
def hub_files(tmp_path_factory) -> dict[str, bytes]:
    """config.json and model.safetensors of a tiny model of the tag's architecture, written
    by timm's own hub exporter."""
    import timm
    import torch
    from timm.models._hub import save_for_hf

    torch.manual_seed(7)
    model = timm.create_model(TAG, pretrained=False, num_classes=0, **KW)
    out = tmp_path_factory.mktemp("hf-export")
    save_for_hf(model, str(out), model_args=KW, safe_serialization=True)
    return {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}


def hub_server(files: dict[str, bytes]) -> Server:
    routes = {}
    for name, body in files.items():
        sha = hashlib.sha256(body).hexdigest()
        headers = {"ETag": f'"{sha}"', "X-Repo-Commit": COMMIT}
        if name.endswith(".safetensors"):  # an LFS file, as the hub serves it
            headers.update({"X-Linked-Etag": f'"{sha}"', "X-Linked-Size": str(len(body))})
        for rev in ("main", COMMIT):
            routes[f"/{REPO}/resolve/{rev}/{name}"] = Route(body, headers)

    def not_found(path: str) -> dict[str, str]:
        if path.startswith(f"/{REPO}/resolve/"):
            return {"X-Error-Code": "EntryNotFound", "X-Repo-Commit": COMMIT}
        return {"X-Error-Code": "RepoNotFound"}

    return Server(routes, not_found)


def env_for(tmp: Path, endpoint: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    env.update(HF_ENDPOINT=endpoint, HF_HOME=str(tmp / "hf"), BENCH_CACHE=str(tmp / "cache"),
               HOME=str(tmp), HF_HUB_DISABLE_TELEMETRY="1", **extra)
    return env


def hub_suite(tmp: Path, seed: int = 0) -> Path:
    suite = tiny_suite_dict(name="hub", strategies=("linear",), steps=2, seeds=(seed,))
    suite["models"] = [{"name": TAG, "label": "tiny-hub", "kwargs": KW, "weights": "hub"}]
    path = tmp / f"hub-{seed}.yaml"
    path.write_text(yaml.safe_dump(suite))
    return path


def bench(*args: str, env: dict, cwd: Path) -> tuple[subprocess.CompletedProcess, float]:
    t0 = time.perf_counter()
    proc = subprocess.run([BENCH, *args], capture_output=True, text=True, env=env, cwd=cwd,
                          timeout=300)
    return proc, time.perf_counter() - t0


def records(results: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(results.glob("hub/*.json"))]


FEATURES = """
import json, sys, torch, timm
from bench.job import models
cfg = {"name": sys.argv[1], "label": "t", "kwargs": json.loads(sys.argv[2]),
       "weights": {"source": "hub"}}
m = models.create_model(cfg, 3, None).eval()
torch.manual_seed(0)
with torch.no_grad():
    f = m.forward_features(torch.randn(2, 3, 32, 32))
print(json.dumps({"path": str(models.hub_cached(sys.argv[1])), "f": f.flatten().tolist()}))
"""


def test_hub_weights_are_fetched_cached_and_used(hub_files, tmp_path):
    import timm
    import torch

    env = env_for(tmp_path, "")
    with hub_server(hub_files) as hub:
        env["HF_ENDPOINT"] = hub.url
        proc, _ = bench("run", str(hub_suite(tmp_path)), "--results", str(tmp_path / "r"), "-q",
                        env=env, cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
        # fetched at the commit the hub named for `main` (a branch that moves mid-download
        # cannot mix two versions of the file)
        assert f"/{REPO}/resolve/{COMMIT}/model.safetensors" in hub.paths("GET")
    (rec,) = records(tmp_path / "r")
    assert rec["status"] == "done" and rec["config"]["model"]["weights"] == {"source": "hub"}

    # the server is down now: the cache alone serves the weights, with or without offline mode
    for extra in ({}, {"HF_HUB_OFFLINE": "1"}):
        proc = subprocess.run([sys.executable, "-c", FEATURES, TAG, json.dumps(KW)],
                              capture_output=True, text=True, env={**env, **extra}, timeout=300)
        assert proc.returncode == 0, proc.stderr
        got = json.loads(proc.stdout)
        cached = Path(got["path"])
        assert cached.is_relative_to(tmp_path / "hf") and cached.name == "model.safetensors"
        assert cached.read_bytes() == hub_files["model.safetensors"]
        source = timm.create_model(TAG, pretrained=False, num_classes=0, **KW).eval()
        from safetensors.torch import load

        source.load_state_dict(load(hub_files["model.safetensors"]))
        torch.manual_seed(0)
        with torch.no_grad():
            want = source.forward_features(torch.randn(2, 3, 32, 32)).flatten()
        assert torch.equal(torch.tensor(got["f"]), want)

    # a second job (another seed) runs from the cache with the server stopped
    proc, _ = bench("run", str(hub_suite(tmp_path, seed=1)), "--results", str(tmp_path / "r"),
                    "-q", env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert [r["status"] for r in records(tmp_path / "r")] == ["done", "done"]


def test_prepare_download_fills_the_cache(hub_files, tmp_path):
    with hub_server(hub_files) as hub:
        env = env_for(tmp_path, hub.url)
        proc, _ = bench("prepare", str(hub_suite(tmp_path)), "--download", "-q", env=env,
                        cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
        assert hub.paths("GET") == [f"/{REPO}/resolve/{COMMIT}/model.safetensors"]
    blobs = list((tmp_path / "hf" / "hub").glob("models--timm--*/blobs/*"))
    assert [b.read_bytes() for b in blobs] == [hub_files["model.safetensors"]]
    assert "in the Hugging Face cache" in proc.stdout


def test_prepare_download_resumes_an_interrupted_download(hub_files, tmp_path):
    """A checkpoint whose transfer drops on every attempt of one run: that run fails (exit 2,
    saying a rerun resumes) and keeps what arrived; the next run asks the hub only for the
    rest (an HTTP Range request from the bytes kept), and huggingface_hub's own cache lookup
    (``try_to_load_from_cache``, in a fresh interpreter) then finds the served bytes, which
    timm loads."""
    weights = f"/{REPO}/resolve/{COMMIT}/model.safetensors"
    body = hub_files["model.safetensors"]
    with hub_server(hub_files) as hub:
        env = env_for(tmp_path, hub.url)
        # every attempt of the first run drops after a tenth (each resumes the one before)
        hub.truncate[weights] = [len(body) // 10] * 4
        proc, _ = bench("prepare", str(hub_suite(tmp_path)), "--download", "-q", env=env,
                        cwd=tmp_path)
        assert proc.returncode == 2, proc.stdout + proc.stderr
        assert "rerun to resume" in proc.stderr and "Traceback" not in proc.stderr
        parts = list((tmp_path / "hf" / "hub").glob("models--timm--*/blobs/*.part"))
        assert len(parts) == 1 and parts[0].stat().st_size == 4 * (len(body) // 10)
        kept = parts[0].stat().st_size
        first = len(hub.requests)
        proc, _ = bench("prepare", str(hub_suite(tmp_path)), "--download", "-q", env=env,
                        cwd=tmp_path)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        gets = [(p, r) for m, p, r in hub.requests[first:] if m == "GET"]
        assert gets == [(weights, f"bytes={kept}-")]
    blobs = [b for b in (tmp_path / "hf" / "hub").glob("models--timm--*/blobs/*")]
    assert [b.read_bytes() for b in blobs] == [body]
    # huggingface_hub itself (and timm through it) finds the file, the server gone
    proc = subprocess.run([sys.executable, "-c", FEATURES, TAG, json.dumps(KW)],
                          capture_output=True, text=True,
                          env={**env, "HF_HUB_OFFLINE": "1"}, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert Path(json.loads(proc.stdout)["path"]).read_bytes() == body


def _stopped_server_url() -> str:
    server = Server({})
    server.stop()  # never started: its port is closed now
    return server.url


@pytest.mark.parametrize("command", ["run", "prepare"])
def test_no_hub_and_no_cache_fails_fast_with_exit_2(tmp_path, command):
    env = env_for(tmp_path, _stopped_server_url())
    args = ["--results", str(tmp_path / "r")] if command == "run" else ["--download"]
    proc, seconds = bench(command, str(hub_suite(tmp_path)), *args, env=env, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert seconds < 20  # huggingface_hub alone retries for about a minute
    assert "Traceback" not in proc.stderr
    for needed in ("HF_HUB_OFFLINE", "{file: PATH}", TAG, "bench prepare"):
        assert needed in proc.stderr
    assert not (tmp_path / "r").exists()


def test_offline_mode_and_no_cache_is_exit_2(tmp_path):
    env = env_for(tmp_path, _stopped_server_url(), HF_HUB_OFFLINE="1")
    proc, _ = bench("run", str(hub_suite(tmp_path)), "--results", str(tmp_path / "r"), env=env,
                    cwd=tmp_path)
    assert proc.returncode == 2 and "HF_HUB_OFFLINE is set" in proc.stderr


JOB = """
import sys, time
from pathlib import Path
from bench.job.run import run_job
from bench.suites.expand import load_suite
job = load_suite(sys.argv[1]).jobs[0]
t0 = time.perf_counter()
rec = run_job(job.config, job.suite, Path(sys.argv[2]))
print(time.perf_counter() - t0)
print(rec["status"])
print(rec["error"]["reason"])
"""


def test_a_job_without_hub_fails_fast_and_records_why(tmp_path):
    # what a node without network sees when the check ran elsewhere (e.g. on a login node)
    env = env_for(tmp_path, _stopped_server_url())
    proc = subprocess.run([sys.executable, "-c", JOB, str(hub_suite(tmp_path)),
                           str(tmp_path / "r")], capture_output=True, text=True, env=env,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    seconds, status, reason = proc.stdout.strip().split("\n", 2)
    assert float(seconds) < 20 and status == "failed"
    assert "HF_HUB_OFFLINE" in reason and "{file: PATH}" in reason
