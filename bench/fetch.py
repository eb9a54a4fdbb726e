"""Downloading a dataset's official files into its layout under the data root (``bench prepare
--download``), with the standard library only: a mirror, resumable transfers, checksums, and
extraction that never leaves half a dataset behind.

- Where: each file's official URL (``Archive.url``, data in the dataset's specification), or,
  with a mirror (``bench prepare --mirror URL`` or ``BENCH_MIRROR``), ``<mirror>/<dataset>/
  <file name>``: the mirror replaces every official host.
- Checksums: the official md5 from the specification; a file listed in the mirror's
  ``<mirror>/manifest.json`` (``{"<dataset>/<file name>": {"sha256": ..., "md5": ...}}``) is
  checked against the manifest instead (a mirror of other files than the official ones, e.g.
  fabricated ones in tests: the summary says which checksum was used).
- Transfers go to ``<root>/.downloads/<dataset>/<file>.part``; a dropped connection is resumed
  with an HTTP Range request (a few times, then the error says a rerun resumes); a server that
  ignores Range restarts the file from its start. A complete file whose checksum is wrong is
  deleted and reported.
- Archives are extracted (tar filters: no absolute paths, no links out) into a temporary
  folder under the data root, checked against the files the readers need, and only then
  renamed into place: a dataset appears whole or not at all. The archives are deleted after.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import shutil
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
import zlib
from dataclasses import dataclass
from pathlib import Path

TIMEOUT_S = 30.0
ATTEMPTS = 4  # a transfer that drops is resumed this many times in all
CHUNK = 1 << 20


@dataclass(frozen=True)
class Archive:
    """One official file of a dataset: where it is, its md5, and where its content goes."""

    url: str
    md5: str
    into: str = ""  # folder under the data root that receives its content ("" = the root)
    extract: bool = True  # a tar archive (.tar, .tar.gz, .tgz) to unpack; else placed as is

    @property
    def filename(self) -> str:
        return self.url.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1]


class DownloadError(OSError):
    """A download that failed: ``str()`` says which file, why, and what a rerun does."""

    def __str__(self) -> str:
        return str(self.args[0])


def mirror_url(mirror: str | None = None) -> str | None:
    """The mirror to use: the argument, else ``BENCH_MIRROR``, else None (official hosts)."""
    m = mirror or os.environ.get("BENCH_MIRROR") or None
    return m.rstrip("/") if m else None


def read_manifest(mirror: str) -> dict[str, dict[str, str]]:
    """The mirror's ``manifest.json`` (file -> checksums), or {} when it has none."""
    try:
        with urllib.request.urlopen(f"{mirror}/manifest.json", timeout=TIMEOUT_S) as r:
            manifest = json.loads(r.read())
    except urllib.error.HTTPError as e:
        if e.code == 404:
            return {}
        raise DownloadError(f"mirror {mirror}: manifest.json: HTTP {e.code}") from None
    except (urllib.error.URLError, OSError) as e:
        raise DownloadError(f"mirror {mirror} does not answer ({_reason(e)}); check the URL "
                            "(--mirror or BENCH_MIRROR)") from None
    except ValueError as e:
        raise DownloadError(f"mirror {mirror}: manifest.json is not JSON ({e})") from None
    if not isinstance(manifest, dict):
        raise DownloadError(f"mirror {mirror}: manifest.json must map files to checksums")
    return manifest


def _reason(e: BaseException) -> str:
    return str(getattr(e, "reason", None) or e)


@dataclass(frozen=True)
class Source:
    """Where one file comes from and what it must hash to."""

    url: str
    algo: str  # md5 | sha256
    digest: str
    checksum_from: str  # "official" | "mirror manifest"


def source_of(dataset: str, archive: Archive, mirror: str | None,
              manifest: dict[str, dict[str, str]]) -> Source:
    if mirror is None:
        return Source(archive.url, "md5", archive.md5, "official")
    key = f"{dataset}/{archive.filename}"
    url = f"{mirror}/{key}"
    listed = manifest.get(key) or {}
    for algo in ("sha256", "md5"):
        if listed.get(algo):
            return Source(url, algo, str(listed[algo]).lower(), "mirror manifest")
    return Source(url, "md5", archive.md5, "official")


def hash_file(path: Path, algo: str) -> str:
    h = hashlib.new(algo)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def download_file(src: Source, dest: Path, progress: bool = False) -> Path:
    """``src`` into ``dest`` (a complete, verified file), through ``dest.part``: resumed when
    the connection drops, deleted when the complete file has the wrong checksum."""
    if dest.is_file() and hash_file(dest, src.algo) == src.digest:
        return dest  # an earlier run got it
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    last: BaseException | None = None
    for attempt in range(ATTEMPTS):
        try:
            _transfer(src.url, part, progress)
            break
        except urllib.error.HTTPError as e:
            raise DownloadError(f"{src.url}: HTTP {e.code} {e.reason}") from None
        except (urllib.error.URLError, OSError, http.client.HTTPException) as e:  # dropped,
            # reset, timed out, truncated: resumed from what arrived
            last = e
            if attempt + 1 < ATTEMPTS:
                time.sleep(min(0.1 * 2 ** attempt, 2.0))
    else:
        got = part.stat().st_size if part.exists() else 0
        raise DownloadError(
            f"{src.url}: download incomplete after {ATTEMPTS} attempts ({_reason(last)}); "
            f"{got} bytes kept in {part}: rerun to resume") from None
    got = hash_file(part, src.algo)
    if got != src.digest:
        part.unlink()
        raise DownloadError(
            f"{src.url}: {src.algo} {got}, expected {src.digest} ({src.checksum_from} "
            "checksum): the file is corrupt or not the expected one; deleted, rerun to "
            "download it again")
    os.replace(part, dest)
    return dest


def _transfer(url: str, part: Path, progress: bool) -> None:
    """One request: resume ``part`` from its size (Range), or write it from the start when
    the server sends the whole file; raise OSError if the body ends early."""
    have = part.stat().st_size if part.exists() else 0
    req = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        resp = urllib.request.urlopen(req, timeout=TIMEOUT_S)
    except urllib.error.HTTPError as e:
        if e.code != 416 or not have:  # 416: nothing after `have`; restart the file
            raise
        part.unlink()
        return _transfer(url, part, progress)
    with resp:
        resumed = resp.status == 206
        length = resp.headers.get("Content-Length")
        expected = int(length) if length is not None else None
        written = 0
        bar = _bar(part.name, (expected or 0) + (have if resumed else 0),
                   have if resumed else 0, progress)
        with open(part, "ab" if resumed else "wb") as f:
            while block := resp.read(CHUNK):
                f.write(block)
                written += len(block)
                bar.update(len(block))
        bar.close()
    if expected is not None and written < expected:
        raise OSError(f"connection closed after {written} of {expected} bytes")


class _NoBar:
    def update(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass


def _bar(name: str, total: int, initial: int, progress: bool):
    if not progress:
        return _NoBar()
    from tqdm import tqdm

    return tqdm(total=total or None, initial=initial, unit="B", unit_scale=True, desc=name,
                dynamic_ncols=True)


def fetch_dataset(dataset: str, archives: tuple[Archive, ...], root: Path, need: list[str],
                  mirror: str | None = None, progress: bool = False,
                  manifest: dict | None = None) -> list[dict]:
    """Download, verify and extract ``archives`` under ``root``; ``need`` are the paths (under
    ``root``) the readers need, checked in the extracted copy before it is renamed into place.
    ``manifest``: the mirror's, when the caller has read it already. Returns one row per
    file: name, url, checksum used."""
    root = Path(root)
    mirror = mirror_url(mirror)
    if manifest is None:
        manifest = read_manifest(mirror) if mirror else {}
    downloads = root / ".downloads" / dataset
    sources = [source_of(dataset, a, mirror, manifest) for a in archives]
    files = [download_file(s, downloads / a.filename, progress)
             for a, s in zip(archives, sources)]
    tmp = Path(tempfile.mkdtemp(dir=root, prefix=f".extract-{dataset}-"))
    try:
        for a, f in zip(archives, files):
            _unpack(a, f, tmp / a.into)
        missing = [p for p in need if not (tmp / p).exists()]
        if missing:
            raise DownloadError(f"{dataset}: the downloaded files lack {', '.join(missing)} "
                                "(not the official archives?); nothing was put in place")
        _move_into_place(tmp, root, {a.into for a in archives})
    finally:  # in place or not, the archives and the extracted copy go
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(downloads, ignore_errors=True)
    return [{"file": a.filename, "url": s.url, "checksum": f"{s.algo} ({s.checksum_from})"}
            for a, s in zip(archives, sources)]


def _unpack(archive: Archive, path: Path, into: Path) -> None:
    into.mkdir(parents=True, exist_ok=True)
    if not archive.extract:
        shutil.copyfile(path, into / archive.filename)
        return
    try:
        with tarfile.open(path) as tar:
            tar.extractall(into, filter="data")  # refuses absolute paths and links out
    except (tarfile.TarError, OSError, EOFError, zlib.error) as e:  # EOFError: cut gzip
        raise DownloadError(f"{archive.url.split('?')[0]}: the downloaded file cannot be "
                            f"extracted ({e}); deleted, nothing was put in place") from None


def _move_into_place(tmp: Path, root: Path, intos: set[str]) -> None:
    """Rename every entry of the extracted copy to its place; refuse (moving nothing) when
    one is already there, so that nothing of the user's is overwritten."""
    moves = []
    for into in sorted(intos):
        if into and not (root / into).exists():  # the dataset's folder in one rename
            moves.append((tmp / into, root / into))
        else:
            moves += [(e, root / into / e.name) for e in sorted((tmp / into).iterdir())
                      if not (into == "" and e.name in intos)]
    clash = [str(dst) for _, dst in moves if dst.exists()]
    if clash:
        raise DownloadError(f"{', '.join(clash)} already exist(s) but the dataset is "
                            "incomplete: move it away (or complete it by hand) and rerun")
    for src, dst in moves:
        dst.parent.mkdir(parents=True, exist_ok=True)
        os.replace(src, dst)
