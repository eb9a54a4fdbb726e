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
import sys
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
    size: int | None = None  # bytes, where the host documents it: a transfer that ends
    # short of it without a Content-Length is a dropped connection, resumed

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
    size: int | None = None  # bytes, when the specification or the manifest says


def source_of(dataset: str, archive: Archive, mirror: str | None,
              manifest: dict[str, dict[str, str]]) -> Source:
    if mirror is None:
        return Source(archive.url, "md5", archive.md5, "official", archive.size)
    key = f"{dataset}/{archive.filename}"
    url = f"{mirror}/{key}"
    listed = manifest.get(key) or {}
    size = listed.get("size")
    for algo in ("sha256", "md5"):
        if listed.get(algo):
            return Source(url, algo, str(listed[algo]).lower(), "mirror manifest",
                          int(size) if size is not None else None)
    return Source(url, "md5", archive.md5, "official", archive.size)


def hash_file(path: Path, algo: str) -> str:
    h = hashlib.new(algo)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def download_file(src: Source, dest: Path, progress: bool = False,
                  headers: dict[str, str] | None = None, label: str | None = None) -> Path:
    """``src`` into ``dest`` (a complete, verified file), through ``dest.part``: resumed when
    the connection drops (and by a later call, from the part file), deleted when the complete
    file has the wrong checksum. ``headers`` go with every request (e.g. a hub token);
    ``label`` names the file in progress lines (default: its name)."""
    if dest.is_file() and hash_file(dest, src.algo) == src.digest:
        return dest  # an earlier run got it
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    last: BaseException | None = None
    for attempt in range(ATTEMPTS):
        try:
            _transfer(src.url, part, progress, src.size, headers or {}, label)
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
    n = part.stat().st_size
    got = hash_file(part, src.algo)
    if got != src.digest:
        part.unlink()
        unknown = "" if src.size is not None else (
            f", or the connection dropped before its end ({n} bytes arrived, and the server "
            "said no length)")
        raise DownloadError(
            f"{src.url}: {src.algo} {got}, expected {src.digest} ({src.checksum_from} "
            f"checksum): the file is corrupt or not the expected one{unknown}; deleted, rerun "
            "to download it again")
    os.replace(part, dest)
    return dest


class Dropped(OSError):
    """A transfer that ended before the file's end: ``str()`` says how far it got."""

    def __init__(self, got: int, total: int | None):
        of = f" of {total}" if total is not None else " (of an unknown total)"
        super().__init__(f"connection dropped after {got}{of} bytes")

    def __str__(self) -> str:
        return str(self.args[0])


def _total(resp, have: int, size: int | None) -> int | None:
    """The whole file's size: what the server says (Content-Range of a 206, Content-Length
    of a 200), else what the specification or manifest says."""
    if resp.status == 206:
        total = (resp.headers.get("Content-Range") or "").rpartition("/")[2]
        if total.isdigit():
            return int(total)
    length = resp.headers.get("Content-Length")
    if length is not None and length.isdigit():
        return int(length) + (have if resp.status == 206 else 0)
    return size


def _transfer(url: str, part: Path, progress: bool, size: int | None = None,
              headers: dict[str, str] | None = None, label: str | None = None) -> None:
    """One request: resume ``part`` from its size (Range), or write it from the start when
    the server sends the whole file; ``Dropped`` if the body ends before the file's end."""
    have = part.stat().st_size if part.exists() else 0
    req = urllib.request.Request(url, headers={**(headers or {}),
                                               **({"Range": f"bytes={have}-"} if have else {})})
    try:
        resp = urllib.request.urlopen(req, timeout=TIMEOUT_S)
    except urllib.error.HTTPError as e:
        if e.code != 416 or not have:  # 416: nothing after `have`; restart the file
            raise
        part.unlink()
        return _transfer(url, part, progress, size, headers, label)
    with resp:
        resumed = resp.status == 206
        total = _total(resp, have, size)
        start = have if resumed else 0
        bar = _bar(label or part.name.removesuffix(".part"), total, start, progress)
        with open(part, "ab" if resumed else "wb") as f:
            try:
                while block := resp.read(CHUNK):
                    f.write(block)
                    bar.update(len(block))
            except http.client.IncompleteRead as e:  # the server's length, cut short
                f.write(e.partial)
            finally:
                bar.close()
    got = part.stat().st_size
    if total is not None and got < total:
        raise Dropped(got, total)


QUIET_AFTER_S = 5.0  # without a bar (-q): a first line after this long, then every ...
QUIET_EVERY_S = 30.0


class _Lines:
    """Progress without a bar (``-q``): a line on stderr once a transfer has lasted
    ``QUIET_AFTER_S``, then every ``QUIET_EVERY_S``, and one when it ends; a short transfer
    prints nothing."""

    def __init__(self, name: str, total: int | None, initial: int):
        self.name, self.total, self.done = name, total, initial
        self.t0 = time.monotonic()
        self.next = self.t0 + QUIET_AFTER_S
        self.said = False

    def _amount(self) -> str:
        mb = f"{self.done / 1e6:.1f}"
        if self.total:
            return f"{mb} of {self.total / 1e6:.1f} MB ({100 * self.done / self.total:.0f}%)"
        return f"{mb} MB"

    def update(self, n: int) -> None:
        self.done += n
        now = time.monotonic()
        if now >= self.next:
            rate = self.done / max(now - self.t0, 1e-9) / 1e6
            print(f"downloading {self.name}: {self._amount()}, {rate:.1f} MB/s",
                  file=sys.stderr, flush=True)
            self.said, self.next = True, now + QUIET_EVERY_S

    def close(self) -> None:
        if self.said:
            print(f"downloading {self.name}: {self._amount()} after "
                  f"{time.monotonic() - self.t0:.0f} s", file=sys.stderr, flush=True)


def _bar(name: str, total: int | None, initial: int, progress: bool):
    if not progress:
        return _Lines(name, total, initial)
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, unit="B", unit_scale=True, desc=name,
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
