"""A hub checkpoint fetched into the Hugging Face cache so that an interrupted download resumes.

huggingface_hub (2.5, the version set up here) downloads every attempt into a fresh temporary
file and deletes it when the attempt fails: a checkpoint of a gigabyte that drops at 90% (or a
``bench prepare --download`` stopped with Ctrl-C) starts again from byte 0. Here the
transfer goes through the benchmark's own resumable download (``bench.data.fetch.
download_file``: a ``.part`` file beside the blob, continued with an HTTP Range request by the
same call and by the next run),
is verified against the file's SHA-256 (the hub's ETag of an LFS file), and is placed where
huggingface_hub's own ``try_to_load_from_cache`` finds it, in the documented cache layout
(https://huggingface.co/docs/huggingface_hub/guides/manage-cache):

    <HF_HUB_CACHE>/models--<org>--<name>/blobs/<sha256>
    <HF_HUB_CACHE>/models--<org>--<name>/snapshots/<commit>/<file>  -> ../../blobs/<sha256>
    <HF_HUB_CACHE>/models--<org>--<name>/refs/<revision>            (the commit)

A file the hub does not describe by a SHA-256 (not stored in LFS: nothing to verify against) is
left to ``hf_hub_download`` (``fetch_into_cache`` returns None).
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

from bench.data.fetch import Source, download_file

SHA256 = re.compile(r"[0-9a-f]{64}")


def fetch_into_cache(repo: str, revision: str | None, filename: str,
                     progress: bool = True) -> Path | None:
    """The cached path of ``filename`` of hub ``repo`` at ``revision`` (default ``main``),
    downloaded resumably (see the module's docstring); None when the hub gives no SHA-256 to
    check it by. Network and checksum failures raise ``bench.data.fetch.DownloadError``
    (its message says what a rerun does); the hub's metadata errors propagate."""
    from huggingface_hub import constants, get_hf_file_metadata, hf_hub_url
    from huggingface_hub.file_download import repo_folder_name
    from huggingface_hub.utils import build_hf_headers

    headers = build_hf_headers(library_name="timm")
    meta = get_hf_file_metadata(hf_hub_url(repo, filename, revision=revision),
                                headers=headers)
    etag = (meta.etag or "").strip('"').lower()
    if not SHA256.fullmatch(etag) or not meta.commit_hash:
        return None
    folder = Path(constants.HF_HUB_CACHE) / repo_folder_name(repo_id=repo, repo_type="model")
    blob = folder / "blobs" / etag
    url = hf_hub_url(repo, filename, revision=meta.commit_hash)
    download_file(Source(url, "sha256", etag, "the hub's ETag", meta.size), blob,
                  progress=progress, headers=headers, label=f"{repo}/{filename}")
    snapshot = folder / "snapshots" / meta.commit_hash / filename
    _link(blob, snapshot)
    ref = revision or "main"
    if ref != meta.commit_hash:  # a branch or tag name: which commit it meant
        (folder / "refs").mkdir(parents=True, exist_ok=True)
        (folder / "refs" / ref).write_text(meta.commit_hash)
    return snapshot


def _link(blob: Path, snapshot: Path) -> None:
    """``snapshot`` pointing at ``blob`` (a relative symlink, as huggingface_hub makes; a copy
    where the file system has no symlinks)."""
    snapshot.parent.mkdir(parents=True, exist_ok=True)
    if snapshot.is_symlink() or snapshot.exists():
        snapshot.unlink()
    try:
        snapshot.symlink_to(os.path.relpath(blob, snapshot.parent))
    except OSError:
        shutil.copyfile(blob, snapshot)
