"""Dataset downloads for real, from a local server standing in for a mirror of the official
hosts: archives fabricated here in the official formats (``cifar-10-python.tar.gz`` with its
``cifar-10-batches-py/`` inside; Flowers102's ``102flowers.tgz`` with ``jpg/`` inside and its
two ``.mat`` files as they are), a ``manifest.json`` with their sha256s, and
``bench prepare --download --mirror URL`` fetching, verifying, extracting and preparing them.
Truncated, corrupted and interrupted transfers are tested on ``bench.data.fetch`` directly.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import yaml

from bench.data import datasets, fetch
from tests.conftest import TINY_KWARGS
from tests.httpserve import Route, Server

BENCH = str(Path(sys.executable).with_name("bench"))
PAYLOAD = os.urandom(300_000)  # a file of several chunks


def sha256(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def tar_gz(folder: Path, arcname: str) -> bytes:
    """``folder`` as a gzipped tar whose single top-level entry is ``arcname``."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        tar.add(folder, arcname=arcname)
    return buf.getvalue()


def tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file()}


@pytest.fixture(scope="module")
def official(tmp_path_factory):
    """The fabricated official files (mirror path -> bytes) and the layouts they hold."""
    src = tmp_path_factory.mktemp("official")
    cifar = datasets.write_fake_layout("cifar10", src, n_per_class=2, n_classes=10)
    flowers = datasets.write_fake_layout("flowers102", src, n_per_class=1, n_classes=3)
    files = {
        "cifar10/cifar-10-python.tar.gz": tar_gz(cifar, "cifar-10-batches-py"),
        "flowers102/102flowers.tgz": tar_gz(flowers / "jpg", "jpg"),
        "flowers102/imagelabels.mat": (flowers / "imagelabels.mat").read_bytes(),
        "flowers102/setid.mat": (flowers / "setid.mat").read_bytes(),
    }
    layouts = {"cifar-10-batches-py": tree(cifar), "flowers-102": tree(flowers)}
    return files, layouts


def mirror(files: dict[str, bytes], manifest: bool = True, **kw) -> Server:
    routes = {f"/{k}": Route(v) for k, v in files.items()}
    if manifest:
        routes["/manifest.json"] = Route(json.dumps(
            {k: {"sha256": sha256(v)} for k, v in files.items()}).encode())
    return Server(routes, **kw)


def suite_file(tmp: Path) -> Path:
    suite = {"name": "dl", "models": [{"name": "vit_tiny_patch16_224", "label": "tiny",
                                       "kwargs": {**TINY_KWARGS, "img_size": 32},
                                       "weights": "random"}],
             "datasets": ["cifar10", "flowers102"], "strategies": ["linear"], "lrs": [0.1],
             "seeds": [0], "recipe": {"steps": 2, "batch_size": 8, "warmup_steps": 1},
             "plasticity": {"reference": "digits_source", "pairs": 8, "batch_size": 8}}
    path = tmp / "dl.yaml"
    path.write_text(yaml.safe_dump(suite))
    return path


def prepare(tmp: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    e = {**os.environ, "BENCH_CACHE": str(tmp / "cache"), "HOME": str(tmp),
         "BENCH_VERIFY_MD5": "0", **env}  # fabricated CIFAR files are not the official ones
    return subprocess.run([BENCH, "prepare", str(suite_file(tmp)), "--data-root",
                           str(tmp / "data"), "-q", *args], capture_output=True, text=True,
                          env=e, cwd=tmp, timeout=300)


def leftovers(root: Path) -> list[str]:
    """Anything a download leaves beside the datasets: temporary folders, partial files."""
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")
                  if p.name.startswith(".extract-") or p.suffix == ".part")


@pytest.mark.slow
def test_prepare_download_from_a_mirror_fetches_verifies_extracts_and_prepares(official,
                                                                               tmp_path):
    files, layouts = official
    with mirror(files) as m:
        proc = prepare(tmp_path, "--download", "--mirror", m.url)
        assert proc.returncode == 0, proc.stderr
        assert sorted(m.paths("GET")) == sorted(["/manifest.json", *(f"/{k}" for k in files)])
    data = tmp_path / "data"
    for folder, content in layouts.items():  # exactly the archives' content, in the layout
        assert tree(data / folder) == content
    assert leftovers(data) == [] and not (data / ".downloads").exists()  # no .lock left
    for k in files:
        assert f"{k.split('/')[1]} from {m.url}/{k} (sha256 (mirror manifest) checksum" \
            in proc.stdout
    assert "cifar10" in proc.stdout and "flowers102" in proc.stdout  # the prepared entries
    # a second run finds everything in place: no request (the server is gone)
    again = prepare(tmp_path, "--download", "--mirror", m.url)
    assert again.returncode == 0, again.stderr
    assert "fetched" not in again.stdout


@pytest.mark.slow
def test_prepare_download_with_a_wrong_file_is_exit_2_and_puts_nothing_in_place(official,
                                                                               tmp_path):
    files, _ = official
    bad = {**files, "flowers102/setid.mat": files["flowers102/setid.mat"][:-7] + b"garbage"}
    manifest = {k: {"sha256": sha256(v)} for k, v in files.items()}  # the good ones
    routes = {f"/{k}": Route(v) for k, v in bad.items()}
    routes["/manifest.json"] = Route(json.dumps(manifest).encode())
    with Server(routes) as m:
        proc = prepare(tmp_path, "--download", "--mirror", m.url)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "setid.mat: sha256" in proc.stderr and "mirror manifest" in proc.stderr
    data = tmp_path / "data"
    assert not (data / "flowers-102").exists() and leftovers(data) == []


def test_without_a_manifest_entry_the_official_md5_is_checked(tmp_path):
    archive = datasets.DATASETS["cifar10"].archives[0]
    src = fetch.source_of("cifar10", archive, "http://m", {})
    assert (src.url, src.algo, src.digest, src.checksum_from) == (
        "http://m/cifar10/cifar-10-python.tar.gz", "md5", "c58f30108f718f92721af3b95e74349a",
        "official")
    with mirror({"cifar10/cifar-10-python.tar.gz": PAYLOAD}, manifest=False) as m:
        with pytest.raises(fetch.DownloadError, match="official checksum"):
            fetch.fetch_dataset("cifar10", (archive,), tmp_path, [], mirror=m.url)
    assert leftovers(tmp_path) == []


def test_official_urls_and_md5s_are_data_in_the_specification():
    got = {n: [(a.url, a.md5) for a in s.archives] for n, s in datasets.DATASETS.items()
           if s.archives}
    assert got["cifar10"] == [("https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
                               "c58f30108f718f92721af3b95e74349a")]
    assert got["cifar10_c"] == [("https://zenodo.org/records/2535967/files/CIFAR-10-C.tar",
                                 "56bf5dcef84df0e2308c6dcbcbbd8499")]
    assert set(got) == {"cifar10", "cifar100", "cifar10_c", "pets", "flowers102"}


def _src(m: Server, name: str = "f.bin", body: bytes = PAYLOAD) -> fetch.Source:
    return fetch.Source(f"{m.url}/{name}", "sha256", sha256(body), "mirror manifest")


def test_an_interrupted_download_resumes_with_a_range_request(tmp_path):
    with mirror({"f.bin": PAYLOAD}) as m:
        m.truncate["/f.bin"] = [100_000, 50_000]  # two dropped connections, then the rest
        out = fetch.download_file(_src(m), tmp_path / "f.bin")
    assert out.read_bytes() == PAYLOAD
    assert [r for _, p, r in m.requests if p == "/f.bin"] == [
        None, "bytes=100000-", "bytes=150000-"]
    assert not (tmp_path / "f.bin.part").exists()


def test_a_server_that_ignores_range_restarts_the_file_cleanly(tmp_path):
    with mirror({"f.bin": PAYLOAD}, ranges=False) as m:
        m.truncate["/f.bin"] = [123_457]
        out = fetch.download_file(_src(m), tmp_path / "f.bin")
    assert out.read_bytes() == PAYLOAD and len(m.paths("GET")) == 2


def test_a_partial_file_left_by_a_killed_run_is_resumed(tmp_path):
    (tmp_path / "f.bin.part").write_bytes(PAYLOAD[:200_000])  # what a killed run left
    with mirror({"f.bin": PAYLOAD}) as m:
        out = fetch.download_file(_src(m), tmp_path / "f.bin")
    assert out.read_bytes() == PAYLOAD and [r for _, _, r in m.requests] == ["bytes=200000-"]


def test_a_download_that_keeps_dropping_says_a_rerun_resumes(tmp_path):
    with mirror({"f.bin": PAYLOAD}) as m:
        m.truncate["/f.bin"] = [10_000] * fetch.ATTEMPTS
        with pytest.raises(fetch.DownloadError, match="rerun to resume") as e:
            fetch.download_file(_src(m), tmp_path / "f.bin")
    assert f"{10_000 * fetch.ATTEMPTS} bytes kept" in str(e.value)
    assert not (tmp_path / "f.bin").exists()
    assert (tmp_path / "f.bin.part").read_bytes() == PAYLOAD[:10_000 * fetch.ATTEMPTS]


def test_a_corrupted_download_is_deleted_and_reported(tmp_path):
    corrupt = PAYLOAD[:1000] + b"x" + PAYLOAD[1001:]
    with mirror({"f.bin": corrupt}) as m:
        with pytest.raises(fetch.DownloadError, match="corrupt") as e:
            fetch.download_file(_src(m), tmp_path / "f.bin")
    assert sha256(PAYLOAD) in str(e.value) and sha256(corrupt) in str(e.value)
    assert list(tmp_path.iterdir()) == []


def test_a_truncated_archive_extracts_nothing(tmp_path):
    folder = tmp_path / "src" / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    (folder / "data_batch_1").write_bytes(PAYLOAD)
    truncated = tar_gz(folder, "cifar-10-batches-py")[:-5000]  # verified, yet broken
    root = tmp_path / "root"
    root.mkdir()
    archive = fetch.Archive("https://example.org/cifar-10-python.tar.gz", "0" * 32)
    with mirror({"cifar10/cifar-10-python.tar.gz": truncated}) as m:
        with pytest.raises(fetch.DownloadError, match="cannot be extracted.*nothing was put"):
            fetch.fetch_dataset("cifar10", (archive,), root, ["cifar-10-batches-py"],
                                mirror=m.url)
    assert not (root / "cifar-10-batches-py").exists() and leftovers(root) == []


def test_an_archive_without_the_official_layout_is_refused(tmp_path):
    folder = tmp_path / "src" / "something-else"
    folder.mkdir(parents=True)
    (folder / "x").write_bytes(b"x")
    archive = fetch.Archive("https://example.org/cifar-10-python.tar.gz", "0" * 32)
    with mirror({"cifar10/cifar-10-python.tar.gz": tar_gz(folder, "something-else")}) as m:
        with pytest.raises(fetch.DownloadError, match="lack cifar-10-batches-py/data_batch_1"):
            fetch.fetch_dataset("cifar10", (archive,), tmp_path / "root",
                                ["cifar-10-batches-py/data_batch_1"], mirror=m.url)
    assert sorted(p.name for p in (tmp_path / "root").iterdir()) == [".downloads"]


def test_mirror_comes_from_the_option_else_the_environment(monkeypatch):
    monkeypatch.setenv("BENCH_MIRROR", "http://env/m/")
    assert fetch.mirror_url(None) == "http://env/m"
    assert fetch.mirror_url("http://opt") == "http://opt"
    monkeypatch.delenv("BENCH_MIRROR")
    assert fetch.mirror_url(None) is None


# ---------------------------------------------------------------- issue 21: what a user sees


def test_a_dropped_connection_says_how_far_it_got_with_or_without_a_length(tmp_path):
    for lengths in (True, False):
        with mirror({"f.bin": PAYLOAD}, lengths=lengths) as m:
            m.truncate["/f.bin"] = [10_000] * fetch.ATTEMPTS
            # without a Content-Length, the size comes from the manifest (or specification)
            src = fetch.Source(f"{m.url}/f.bin", "sha256", sha256(PAYLOAD), "mirror manifest",
                               None if lengths else len(PAYLOAD))
            with pytest.raises(fetch.DownloadError) as e:
                fetch.download_file(src, tmp_path / str(lengths) / "f.bin")
        got = 10_000 * fetch.ATTEMPTS
        assert f"connection dropped after {got} of {len(PAYLOAD)} bytes" in str(e.value)
        assert "corrupt" not in str(e.value) and "rerun to resume" in str(e.value)


def test_without_a_length_a_dropped_connection_is_resumed_not_called_corrupt(tmp_path):
    with mirror({"f.bin": PAYLOAD}, lengths=False) as m:
        m.truncate["/f.bin"] = [123_456]
        src = fetch.Source(f"{m.url}/f.bin", "sha256", sha256(PAYLOAD), "mirror manifest",
                           len(PAYLOAD))
        out = fetch.download_file(src, tmp_path / "f.bin")
        assert out.read_bytes() == PAYLOAD
        assert [r for _, p, r in m.requests if p == "/f.bin"] == [None, "bytes=123456-"]
    # no size anywhere: the short file fails its checksum, and the message says it may be cut
    with mirror({"f.bin": PAYLOAD}, lengths=False) as m:
        m.truncate["/f.bin"] = [123_456]
        with pytest.raises(fetch.DownloadError) as e:
            fetch.download_file(_src(m), tmp_path / "g.bin")
    assert "the connection dropped before its end (123456 bytes arrived" in str(e.value)


def test_the_manifest_may_give_a_size():
    src = fetch.source_of("cifar10", fetch.Archive("https://x/a.tar.gz", "0" * 32), "http://m",
                          {"cifar10/a.tar.gz": {"sha256": "ab", "size": 12}})
    assert src.size == 12 and src.digest == "ab"


def test_a_long_transfer_prints_progress_lines_without_a_bar(tmp_path, monkeypatch, capsys):
    with mirror({"f.bin": PAYLOAD}) as m:
        fetch.download_file(_src(m), tmp_path / "quick.bin")  # a short transfer: silent
        assert capsys.readouterr().err == ""
        monkeypatch.setattr(fetch, "QUIET_AFTER_S", 0.0)  # as if it lasted long
        monkeypatch.setattr(fetch, "QUIET_EVERY_S", 3600.0)
        fetch.download_file(_src(m), tmp_path / "long.bin", progress=False)
    lines = capsys.readouterr().err.splitlines()
    assert lines[0].startswith("downloading long.bin: ") and "of 0.3 MB" in lines[0]
    assert lines[-1] == "downloading long.bin: 0.3 of 0.3 MB (100%) after 0 s"


def test_the_lock_file_goes_with_the_lock(tmp_path):
    import threading

    from bench.core.files import file_lock

    lock, inside, overlaps = tmp_path / "x.lock", [], []

    def take(i: int) -> None:
        for _ in range(20):
            with file_lock(lock, remove=True):
                if inside:
                    overlaps.append(i)
                inside.append(i)
                inside.remove(i)

    threads = [threading.Thread(target=take, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert overlaps == [] and not lock.exists()


def _run_cli(argv: list[str]) -> int:
    from bench import cli

    try:
        return cli.main(argv)
    except SystemExit as e:
        return e.code


def test_a_truncated_official_file_in_the_data_root_is_exit_2_naming_it(tmp_path, capsys,
                                                                       monkeypatch):
    monkeypatch.setenv("BENCH_VERIFY_MD5", "0")  # fabricated CIFAR files
    data = tmp_path / "data"
    datasets.write_fake_layout("cifar10", data, n_per_class=2, n_classes=10)
    flowers = datasets.write_fake_layout("flowers102", data, n_per_class=1, n_classes=3)
    setid = flowers / "setid.mat"
    setid.write_bytes(setid.read_bytes()[:100])
    suite = str(suite_file(tmp_path))
    for argv in (["splits", suite], ["prepare", suite, "-q", "--cache", str(tmp_path / "c")]):
        assert _run_cli([*argv, "--data-root", str(data)]) == 2
        err = capsys.readouterr().err
        assert f"error: {setid}: cannot be read (" in err and "Traceback" not in err, err


def test_splits_is_exit_2_on_a_checksum_failure_like_prepare(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("BENCH_VERIFY_MD5", "1")
    data = tmp_path / "data"
    cifar = datasets.write_fake_layout("cifar10", data, n_per_class=2, n_classes=10)
    datasets.write_fake_layout("flowers102", data, n_per_class=1, n_classes=3)
    assert _run_cli(["splits", str(suite_file(tmp_path)), "--data-root", str(data)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and f"{cifar}/data_batch_1: md5" in err, err
