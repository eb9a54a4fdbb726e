"""The data commands: ``splits`` (the exact images of each split) and ``prepare`` (decode
every dataset once into the cache, download with ``--download``, pretrain).
"""

from __future__ import annotations

import json
from pathlib import Path

from bench.cli.common import UserError
from bench.suites.expand import load_suite


def cmd_splits(args) -> int:
    from bench.data import splits

    suite = load_suite(args.suite)
    out = splits.suite_splits([j.config for j in suite.jobs], args.data_root)
    if args.json:
        print(json.dumps(out, indent=1))
        return 0
    for e in out:
        how = (f"split seed {e['split_seed']}" if e["split_seed"] is not None
               else "its own split")
        print(f"{e['dataset']} | protocol {e['protocol']} | seed {e['seed']} ({how})")
        for name, sp in e["splits"].items():
            print(f"  {name}: n={sp['n']} checksum={sp['checksum']} ids: "
                  + " ".join(map(str, sp["ids"])))
    return 0


def cmd_prepare(args) -> int:
    from tabulate import tabulate

    from bench.data import formats
    from bench.job import models
    from bench.job.run import default_cache, prepare_shared
    from bench.run import prepare

    suite = load_suite(args.suite)
    if args.mirror and not args.download:
        raise UserError("--mirror is where --download fetches from: give both")
    if args.mirror and args.mirror.split("://", 1)[0] not in ("http", "https", "file"):
        raise UserError(f"--mirror {args.mirror}: expected an http://, https:// or file:// URL")
    cache = Path(args.cache).expanduser() if args.cache else default_cache()
    configs = [j.config for j in suite.jobs]
    model_cfgs = {json.dumps(c["model"], sort_keys=True): c["model"] for c in configs}
    for m in model_cfgs.values():  # a missing weight file is reported before any work
        if m["weights"]["source"] == "file":
            models.check_weights(m, cache)
        elif m["weights"]["source"] == "hub" and args.download:
            models.hub_check(m)  # a hub that does not answer: exit 2 in seconds
    if args.download:
        download_weights(list(model_cfgs.values()), quiet=args.quiet)
        for r in _fetch_data(configs, args):
            print(f"fetched {r['dataset']}: {r['file']} from {r['url']} ({r['checksum']} "
                  "checksum verified)")
    prepare.check_data(configs, args.data_root, after_download=args.download)  # all at once
    prepare_shared(configs, cache, args.device, progress=not args.quiet)  # pretraining
    try:
        rows = prepare.prepare(configs, cache, root=args.data_root, progress=not args.quiet)
    except formats.ChecksumMismatch as e:
        raise UserError(str(e)) from None
    print(tabulate([(r["dataset"], r["kind"], r["size"],
                     " ".join(f"{k}={n}" for k, n in r["counts"].items()), r["checksum"],
                     "decoded" if r["fresh"] else "cached", r["cache_dir"]) for r in rows],
                   headers=["dataset", "kind", "size", "images", "checksum", "now", "cache"]))
    fresh = [r for r in rows if r["fresh"]]
    decoded = sum(n for r in fresh for n in r["counts"].values())
    print(f"\n{suite.name}: {len(rows)} data cache entries: {len(fresh)} decoded now "
          f"({decoded:,} images), {len(rows) - len(fresh)} already there; under "
          f"{cache / 'data'}")
    for m in model_cfgs.values():
        print(f"  {m['label']}: {_weights_note(m, cache)}")
    return 0


def download_weights(model_cfgs: list[dict], quiet: bool = False) -> None:
    """`prepare --download`: every hub checkpoint of the suite once, into the Hugging Face
    cache, one line each (a progress bar while one downloads, unless ``quiet``; a dropped
    connection is resumed), then the disk they take. Run again after an interruption, it
    skips every checkpoint already in the cache and resumes the one it was fetching from the
    bytes that arrived."""
    from huggingface_hub import constants

    from bench.job import models

    hub = {m["name"]: m for m in model_cfgs if m["weights"]["source"] == "hub"}
    if not hub:
        return
    if quiet:
        from huggingface_hub.utils import disable_progress_bars

        disable_progress_bars()
    total = fetched = 0
    for i, (name, m) in enumerate(hub.items(), 1):
        path = models.hub_cached(name)
        print(f"[{i}/{len(hub)}] {name}: " + ("already in the cache" if path else "fetching"),
              flush=True)
        if path is None:
            path = models.download_hub_weights(m, progress=not quiet)
            fetched += path.stat().st_size if path else 0
        total += path.stat().st_size if path else 0
    print(f"hub weights: {len(hub)} checkpoint(s), {total / 1e9:.2f} GB in "
          f"{constants.HF_HUB_CACHE} ({fetched / 1e9:.2f} GB fetched now)", flush=True)


def _fetch_data(configs: list[dict], args) -> list[dict]:
    """`prepare --download`: the missing datasets from their official hosts or the mirror."""
    from bench.data.fetch import DownloadError
    from bench.run import prepare

    try:
        return prepare.download_missing(configs, args.data_root, args.mirror,
                                        progress=not args.quiet)
    except DownloadError as e:
        raise UserError(str(e)) from None


def _weights_note(model_cfg: dict, cache: Path) -> str:
    """Where a model's weights come from, for `bench prepare`'s summary."""
    from bench.job import models

    source = model_cfg["weights"]["source"]
    if source == "random":
        return "random initialisation"
    if source != "hub":
        return f"{source} weights {models.weights_file(model_cfg, cache)}"
    if models.hub_location(model_cfg["name"]) is None:
        return "hub weights from timm's URL (torch hub cache)"
    path = models.hub_cached(model_cfg["name"])
    if path is None:
        return "hub weights not in the Hugging Face cache (jobs fetch them; or --download)"
    return f"hub weights in the Hugging Face cache: {path}"
