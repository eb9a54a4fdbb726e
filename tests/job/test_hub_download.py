"""bench.job.hub_download against a local server that answers like the Hugging Face hub, in
this process (huggingface_hub's endpoint and cache pointed at the test's own): a resumed
download, its place in the cache as huggingface_hub's own ``try_to_load_from_cache`` reads it,
a corrupt file, and a file without a SHA-256 (left to huggingface_hub)."""

from __future__ import annotations

import hashlib

import pytest

from bench.data.fetch import DownloadError
from bench.job.hub_download import fetch_into_cache
from tests.httpserve import Route, Server

REPO = "timm/tiny"
COMMIT = "fedcba9876543210fedcba9876543210fedcba98"
BODY = bytes(range(256)) * 400  # 100 kB


def _gets(server: Server) -> list[tuple[str, str | None]]:
    """The file requests (path, Range header): huggingface_hub's own registry request aside."""
    return [(p, r) for m, p, r in server.requests if m == "GET" and "/resolve/" in p]


def _server(body: bytes, lfs: bool = True, claimed: bytes | None = None) -> Server:
    sha = hashlib.sha256(claimed if claimed is not None else body).hexdigest()
    headers = {"ETag": f'"{sha}"' if lfs else '"0a1b2c3d"', "X-Repo-Commit": COMMIT}
    if lfs:
        headers.update({"X-Linked-Etag": f'"{sha}"', "X-Linked-Size": str(len(body))})
    routes = {f"/{REPO}/resolve/{rev}/model.safetensors": Route(body, headers)
              for rev in ("main", COMMIT)}
    return Server(routes)


@pytest.fixture
def hub(monkeypatch, tmp_path):
    from huggingface_hub import constants

    def point(server: Server) -> None:
        monkeypatch.setattr(constants, "ENDPOINT", server.url)
        monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE",
                            server.url + "/{repo_id}/resolve/{revision}/{filename}")
        monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    return point


def test_a_download_lands_where_huggingface_hub_looks_for_it(hub, tmp_path):
    from huggingface_hub import try_to_load_from_cache

    with _server(BODY) as server:
        hub(server)
        path = fetch_into_cache(REPO, None, "model.safetensors", progress=False)
    assert path is not None and path.read_bytes() == BODY
    assert try_to_load_from_cache(REPO, "model.safetensors",
                                  cache_dir=str(tmp_path / "hf")) == str(path)
    assert try_to_load_from_cache(REPO, "model.safetensors", revision=COMMIT,
                                  cache_dir=str(tmp_path / "hf")) == str(path)
    assert path.is_symlink() and path.resolve().name == hashlib.sha256(BODY).hexdigest()
    assert _gets(server) == [(f"/{REPO}/resolve/{COMMIT}/model.safetensors", None)]


def test_bytes_kept_from_an_earlier_run_are_continued_not_fetched_again(hub, tmp_path):
    sha = hashlib.sha256(BODY).hexdigest()
    blobs = tmp_path / "hf" / "models--timm--tiny" / "blobs"
    blobs.mkdir(parents=True)
    (blobs / f"{sha}.part").write_bytes(BODY[:30_000])  # what a killed run left
    with _server(BODY) as server:
        hub(server)
        path = fetch_into_cache(REPO, None, "model.safetensors", progress=False)
        gets = _gets(server)
    assert gets == [(f"/{REPO}/resolve/{COMMIT}/model.safetensors", "bytes=30000-")]
    assert path.read_bytes() == BODY and not (blobs / f"{sha}.part").exists()


def test_a_dropped_connection_is_resumed_in_the_same_call(hub):
    with _server(BODY) as server:
        server.truncate[f"/{REPO}/resolve/{COMMIT}/model.safetensors"] = [40_000]
        hub(server)
        path = fetch_into_cache(REPO, None, "model.safetensors", progress=False)
        ranges = [r for _, r in _gets(server)]
    assert ranges == [None, "bytes=40000-"] and path.read_bytes() == BODY


def test_a_file_that_is_not_its_sha256_is_refused_and_deleted(hub, tmp_path):
    with _server(BODY, claimed=b"something else") as server:
        hub(server)
        with pytest.raises(DownloadError, match="corrupt or not the expected one"):
            fetch_into_cache(REPO, None, "model.safetensors", progress=False)
    assert not [p for p in (tmp_path / "hf").rglob("*") if p.is_file()]


def test_a_file_without_a_sha256_is_left_to_huggingface_hub(hub, tmp_path):
    with _server(BODY, lfs=False) as server:
        hub(server)
        assert fetch_into_cache(REPO, None, "model.safetensors", progress=False) is None
        assert _gets(server) == []
    assert not (tmp_path / "hf").exists()
