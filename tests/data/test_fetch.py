"""bench.data.fetch, its parts one by one (whole downloads into a layout:
tests/e2e/test_download.py): file names from URLs, the mirror and its manifest, which checksum a
file is held to, hashing, and a wrong or missing file refused with what a rerun does. The server is
tests.httpserve."""

from __future__ import annotations

import hashlib
import json

import pytest

from bench.data import fetch
from tests.httpserve import Route, Server

BODY = b"0123456789" * 1000
MD5, SHA = hashlib.md5(BODY).hexdigest(), hashlib.sha256(BODY).hexdigest()
ARCHIVE = fetch.Archive("https://example.org/data/files/set.tar.gz?dl=1", MD5, size=len(BODY))


def test_archive_filename_is_the_urls_last_part():
    assert ARCHIVE.filename == "set.tar.gz"
    assert fetch.Archive("https://x.org/a/b/", "0").filename == "b"


def test_the_mirror_is_the_argument_else_the_environment(monkeypatch):
    monkeypatch.delenv("BENCH_MIRROR", raising=False)
    assert fetch.mirror_url() is None and fetch.mirror_url("") is None
    monkeypatch.setenv("BENCH_MIRROR", "http://env/m/")
    assert fetch.mirror_url() == "http://env/m"
    assert fetch.mirror_url("http://arg/") == "http://arg"


@pytest.mark.parametrize("manifest,expect", [
    ({}, ("md5", MD5, "official", len(BODY))),
    ({"cifar10/set.tar.gz": {"sha256": SHA.upper(), "size": "7"}},
     ("sha256", SHA, "mirror manifest", 7)),
    ({"cifar10/set.tar.gz": {"md5": "ABC"}}, ("md5", "abc", "mirror manifest", None)),
    ({"other/set.tar.gz": {"sha256": "x"}}, ("md5", MD5, "official", len(BODY)))])
def test_a_file_is_checked_against_the_manifest_when_it_lists_it(manifest, expect):
    src = fetch.source_of("cifar10", ARCHIVE, "http://m", manifest)
    assert src.url == "http://m/cifar10/set.tar.gz"
    assert (src.algo, src.digest, src.checksum_from, src.size) == expect


def test_without_a_mirror_the_official_url_and_md5():
    src = fetch.source_of("cifar10", ARCHIVE, None, {"cifar10/set.tar.gz": {"sha256": SHA}})
    assert src == fetch.Source(ARCHIVE.url, "md5", MD5, "official", len(BODY))


def test_hash_file(tmp_path, monkeypatch):
    monkeypatch.setattr(fetch, "CHUNK", 7)  # several blocks
    (tmp_path / "f").write_bytes(BODY)
    assert fetch.hash_file(tmp_path / "f", "md5") == MD5
    assert fetch.hash_file(tmp_path / "f", "sha256") == SHA


def test_read_manifest():
    listed = {"d/f": {"sha256": SHA}}
    with Server({"/manifest.json": Route(json.dumps(listed).encode())}) as m:
        assert fetch.read_manifest(m.url) == listed
    with Server({}) as m:
        assert fetch.read_manifest(m.url) == {}  # a mirror without one
    with Server({"/manifest.json": Route(b"{nope")}) as m, \
            pytest.raises(fetch.DownloadError, match="manifest.json is not JSON"):
        fetch.read_manifest(m.url)
    with Server({"/manifest.json": Route(b"[1]")}) as m, \
            pytest.raises(fetch.DownloadError, match="must map files to checksums"):
        fetch.read_manifest(m.url)
    with pytest.raises(fetch.DownloadError, match="does not answer .*--mirror or BENCH_MIRROR"):
        fetch.read_manifest("http://127.0.0.1:9")  # nothing listens on the discard port


def test_download_file_verifies_and_skips_a_file_already_there(tmp_path):
    with Server({"/f": Route(BODY)}) as m:
        src = fetch.Source(f"{m.url}/f", "sha256", SHA, "mirror manifest")
        out = fetch.download_file(src, tmp_path / "d" / "f")
        assert out.read_bytes() == BODY and not (tmp_path / "d" / "f.part").exists()
        fetch.download_file(src, out)
        assert len(m.requests) == 1  # verified on disk: not fetched again


def test_a_wrong_file_is_deleted_and_said(tmp_path):
    with Server({"/f": Route(BODY)}) as m:
        src = fetch.Source(f"{m.url}/f", "md5", "0" * 32, "official", len(BODY))
        with pytest.raises(fetch.DownloadError) as e:
            fetch.download_file(src, tmp_path / "f")
    assert str(e.value) == (f"{m.url}/f: md5 {MD5}, expected {'0' * 32} (official checksum): "
                            "the file is corrupt or not the expected one; deleted, rerun to "
                            "download it again")
    assert list(tmp_path.iterdir()) == []


def test_a_missing_file_is_its_http_error(tmp_path):
    with Server({}) as m, pytest.raises(fetch.DownloadError, match=r"/f: HTTP 404"):
        fetch.download_file(fetch.Source(f"{m.url}/f", "md5", MD5, "official"), tmp_path / "f")
