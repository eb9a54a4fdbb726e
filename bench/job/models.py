"""Models: any timm ViT by name, with weights from a hub tag, a local file, or the benchmark's
own pretraining recipe, all loaded through timm's pretrained-weight path.

``vit_architectures`` lists timm's ViTs without importing torch (suites validate without it).
"""

from __future__ import annotations

import ast
import functools
import hashlib
import importlib.util
import json
from pathlib import Path

from bench.core.protocol import Protocol

# timm's modules of the VisionTransformer family: only these have the blocks[i].norm1/attn/
# norm2/mlp names the benchmark's components are defined on.
VIT_MODULES = ("vision_transformer", "deit")


@functools.lru_cache(maxsize=1)
def vit_architectures() -> tuple[str, ...]:
    """The architectures timm registers in ``VIT_MODULES``: ``timm.list_models(module=
    VIT_MODULES)``, read from timm's source instead (``block_designs``), because importing
    timm imports torch and suites validate without it (a test checks that both give the same
    names)."""
    return tuple(sorted(block_designs()))


# Keyword arguments the benchmark sets itself: a suite's `kwargs` may not.
RESERVED_KWARGS = {"num_classes": "the benchmark sets it from the dataset",
                   "pretrained": "set by `weights:`", "device": "set by --device",
                   "dtype": "set by recipe.precision",
                   "block_fn": "the block design comes from the model name (protocol.md: "
                               "only blocks with norm1, attn, norm2, mlp.fc1, mlp.fc2)",
                   "mlp_layer": "the block design comes from the model name (protocol.md: "
                                "only blocks with norm1, attn, norm2, mlp.fc1, mlp.fc2)"}

# Blocks and MLPs of timm's ViT family that are not the benchmark's five components
# (protocol.md, "Other members"): why a model built with them is refused at validation.
UNSUPPORTED_DESIGN = {
    "ResPostBlock": "its norms come after attention and MLP (res-post-norm), so norm1 and "
                    "norm2 are not the pre-norm LayerNorms the components are defined on",
    "ParallelScalingBlock": "its attention and MLP run in parallel from one fused input "
                            "projection: no norm1, attn, norm2 or mlp modules",
    "DiffParallelScalingBlock": "its attention and MLP run in parallel from one fused input "
                                "projection: no norm1, attn, norm2 or mlp modules",
    "ParallelThingsBlock": "its blocks hold parallel lists of attentions and MLPs: no norm1, "
                           "attn, norm2 or mlp modules",
    "SwiGLU": "its SwiGLU MLP has mlp.fc1_g and mlp.fc1_x instead of mlp.fc1",
}


@functools.lru_cache(maxsize=1)
def block_designs() -> dict[str, tuple[str, ...]]:
    """Per architecture timm registers in ``VIT_MODULES`` (its ``@register_model`` functions),
    the block and MLP classes the function passes (``block_fn=``, ``mlp_layer=``; none: timm's
    ``Block`` and ``Mlp``), read from timm's source with ``ast`` (no torch import; a test
    builds every architecture on the meta device and checks its blocks agree)."""
    spec = importlib.util.find_spec("timm")
    if spec is None or not spec.submodule_search_locations:
        return {}
    out: dict[str, tuple[str, ...]] = {}
    for module in VIT_MODULES:
        path = Path(spec.submodule_search_locations[0]) / "models" / f"{module}.py"
        if not path.is_file():
            continue
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if not isinstance(node, ast.FunctionDef) or not any(
                    getattr(d, "id", None) == "register_model" for d in node.decorator_list):
                continue
            out[node.name] = tuple(sorted({
                k.value.id for k in ast.walk(node) if isinstance(k, ast.keyword)
                and k.arg in ("block_fn", "mlp_layer") and isinstance(k.value, ast.Name)}))
    return out


def block_design_problem(arch: str) -> str | None:
    """Why the blocks of timm architecture ``arch`` are not the benchmark's (its block or MLP
    class is in ``UNSUPPORTED_DESIGN``), or None."""
    for cls in block_designs().get(arch, ()):
        if cls in UNSUPPORTED_DESIGN:
            return f"built with timm's {cls}: {UNSUPPORTED_DESIGN[cls]}"
    return None


@functools.lru_cache(maxsize=1)
def vit_kwargs() -> tuple[str, ...]:
    """The keyword arguments of timm's ``VisionTransformer.__init__``, read from its source
    (no torch import), less those the benchmark sets; () when timm cannot be found."""
    spec = importlib.util.find_spec("timm")
    if spec is None or not spec.submodule_search_locations:
        return ()
    path = Path(spec.submodule_search_locations[0]) / "models" / "vision_transformer.py"
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name == "VisionTransformer":
            for f in node.body:
                if isinstance(f, ast.FunctionDef) and f.name == "__init__":
                    args = [a.arg for a in f.args.args[1:] + f.args.kwonlyargs]
                    return tuple(a for a in args if a not in RESERVED_KWARGS)
    return ()


@functools.lru_cache(maxsize=32)
def parameter_names(name: str, kwargs_json: str = "{}") -> tuple[str, ...]:
    """The parameter names of a timm model with a head (``kwargs_json``: its keyword arguments
    as JSON, for the cache), built on the meta device: no weights, no memory, no download."""
    import timm
    import torch

    with torch.device("meta"):
        model = timm.create_model(name, pretrained=False, num_classes=2,
                                  **json.loads(kwargs_json))
    return tuple(n for n, _ in model.named_parameters())


@functools.lru_cache(maxsize=64)
def parameter_count(name: str, kwargs_json: str = "{}") -> int:
    """Parameters of a timm model as its pretrained configuration builds it (its own
    classifier included), on the meta device: no weights, no memory, no download."""
    import timm
    import torch

    with torch.device("meta"):
        model = timm.create_model(name, pretrained=False, **json.loads(kwargs_json))
    return sum(p.numel() for p in model.parameters())


def weights_key(model_cfg: dict) -> str:
    """Hash of what determines pretrained weights the benchmark makes itself."""
    what = {"name": model_cfg["name"], "kwargs": model_cfg.get("kwargs", {}),
            "weights": model_cfg["weights"]}
    return hashlib.sha256(json.dumps(what, sort_keys=True).encode()).hexdigest()[:16]


class MissingWeights(FileNotFoundError):
    """A weight file that a suite names (or that pretraining should have made) is missing.

    ``str()`` is the whole user-facing message: the expected path and what the file must be.
    """

    def __str__(self) -> str:  # OSError would format errno/filename instead
        return str(self.args[0])


def weights_file(model_cfg: dict, cache: Path) -> Path | None:
    w = model_cfg["weights"]
    if w["source"] == "file":
        return Path(w["file"]).expanduser()
    if w["source"] == "pretrain":
        return Path(cache) / "pretrained" / f"{weights_key(model_cfg)}.safetensors"
    return None


def create_model(model_cfg: dict, num_classes: int, cache: Path):
    """A timm ViT with the configured weights and a freshly initialised head of num_classes.

    Hub tags and files go through the same call (``pretrained_cfg_overlay``): a hub tag's file
    is first found in (or fetched into) the Hugging Face cache by ``hub_weights``; timm's
    loader drops the source classifier, adapts position embeddings and reads safetensors or
    ``torch.load(weights_only=True)`` files.
    """
    import timm

    w = model_cfg["weights"]
    kwargs = dict(model_cfg.get("kwargs", {}))
    if w["source"] == "random":
        return timm.create_model(model_cfg["name"], pretrained=False, num_classes=num_classes,
                                 **kwargs)
    if w["source"] == "hub":
        path = hub_weights(model_cfg)
        if path is None:  # a tag timm fetches from a plain URL, not the hub: timm's own path
            return timm.create_model(model_cfg["name"], pretrained=True,
                                     num_classes=num_classes, **kwargs)
    else:
        path = check_weights(model_cfg, cache)
    model = timm.create_model(model_cfg["name"], pretrained=True, num_classes=num_classes,
                              pretrained_cfg_overlay=_overlay(model_cfg, path), **kwargs)
    _check_all_loaded(model, path)
    return model


def check_weights(model_cfg: dict, cache: Path) -> Path | None:
    """The weight file of a `file` or `pretrain` model, or ``MissingWeights`` saying what it
    should be; None for hub and random weights (nothing local to check)."""
    w = model_cfg["weights"]
    path = weights_file(model_cfg, cache)
    if path is None or path.is_file():
        return path
    if w["source"] == "pretrain":
        raise MissingWeights(f"pretrained weights {path} are missing: run `bench prepare` or "
                             "`bench run` on the suite first (it pretrains once)")
    raise MissingWeights(
        f"weight file {path} (models[].weights.file of model '{model_cfg['name']}') does not "
        f"exist. Expected: a state dict of the timm model '{model_cfg['name']}' with timm's "
        "parameter names (blocks.0.attn.qkv.weight, ...), as .safetensors or as a .pth/.bin "
        "file that torch.load(weights_only=True) reads (a bare state dict, or one under "
        "'state_dict' or 'model'); the classifier head, if any, is dropped. For example, on a "
        "machine with hub access: `safetensors.torch.save_file(timm.create_model(NAME, "
        "pretrained=True).state_dict(), PATH)`")


def _overlay(model_cfg: dict, path: Path | None) -> dict:
    """What a weight file changes in the tag's pretrained configuration.

    ``num_classes: 0`` makes timm drop the file's classifier (the benchmark adds its own);
    ``custom_load: False`` because a file is a timm state dict even when the tag's own weights
    are in another format (e.g. the .npz files of vit_tiny_patch16_224's default tag); recent
    timm resets it itself when a file is given, older releases do not.
    """
    overlay: dict = {"num_classes": 0, "custom_load": False}
    if path is not None:
        overlay["file"] = str(path)
    if model_cfg["weights"]["source"] == "pretrain":
        overlay.update(mean=PRETRAIN_MEAN, std=PRETRAIN_STD)
    return overlay


def input_config(model_cfg: dict, protocol: Protocol | None = None) -> dict:
    """``data_config`` of the model ``create_model`` would build, without weights or memory.

    The architecture is built on the meta device (no allocation, no download); input size,
    crop and normalisation come from the same pretrained configuration as in ``create_model``.
    """
    import timm
    import torch

    kwargs = dict(model_cfg.get("kwargs", {}))
    overlay = None
    if model_cfg["weights"]["source"] in ("file", "pretrain"):
        overlay = _overlay(model_cfg, None)
    with torch.device("meta"):
        model = timm.create_model(model_cfg["name"], pretrained=False, num_classes=0,
                                  pretrained_cfg_overlay=overlay, **kwargs)
    return data_config(model, protocol)


def download_hub_weights(model_cfg: dict, progress: bool = True) -> Path | None:
    """Fetch a hub model's weights into the local Hugging Face cache (``bench prepare
    --download``), so that jobs on machines without network find them; an interrupted
    download resumes where it stopped (``hub_download``)."""
    if model_cfg["weights"]["source"] != "hub":
        return None
    path = hub_weights(model_cfg, progress)
    if path is None:  # a plain-URL tag: timm downloads it into torch's hub cache
        import timm

        timm.create_model(model_cfg["name"], pretrained=True, num_classes=0,
                          **model_cfg.get("kwargs", {}))
    return path


class HubUnavailable(MissingWeights):
    """Hub weights that are neither in the Hugging Face cache nor reachable: exit 2 at check
    time, a failed record inside a job. ``str()`` says what to do instead."""


HUB_TIMEOUT = 5.0  # seconds for the one metadata request that decides whether the hub answers


def hub_location(name: str) -> tuple[str, str | None, list[str]] | None:
    """(repo id, revision, candidate file names in timm's order) of a tag's hub weights, or
    None when timm fetches the tag from a plain URL (or it has a custom hub loader)."""
    from timm.models import get_pretrained_cfg
    from timm.models._hub import HF_WEIGHTS_NAME, _get_safe_alternatives, hf_split

    cfg = get_pretrained_cfg(name)
    if cfg is None or not cfg.hf_hub_id or cfg.custom_load == "hf":
        return None
    repo, revision = hf_split(cfg.hf_hub_id)
    if cfg.hf_hub_filename:
        return repo, revision, [cfg.hf_hub_filename]
    return repo, revision, [*_get_safe_alternatives(HF_WEIGHTS_NAME), HF_WEIGHTS_NAME]


def hub_cached(name: str) -> Path | None:
    """The tag's weight file in the Hugging Face cache, found without any network request."""
    from huggingface_hub import try_to_load_from_cache

    loc = hub_location(name)
    if loc is None:
        return None
    repo, revision, files = loc
    for f in files:
        hit = try_to_load_from_cache(repo, f, revision=revision)
        if isinstance(hit, str):  # else None (unknown) or a marker for "does not exist"
            return Path(hit)
    return None


def hub_weights(model_cfg: dict, progress: bool = False) -> Path | None:
    """The local path of a hub tag's weights: from the Hugging Face cache when they are there
    (no network request at all), else fetched after one quick metadata request, so that a hub
    that does not answer fails in seconds with ``HubUnavailable`` instead of a minute of
    huggingface_hub's retries. The transfer resumes a dropped or interrupted download
    (``hub_download``; ``progress``: a bar, else a line now and then). None for tags timm
    fetches from a plain URL."""
    name = model_cfg["name"]
    loc = hub_location(name)
    if loc is None:
        return None
    cached = hub_cached(name)
    if cached is not None:
        return cached
    repo, revision, files = loc
    filename = _hub_probe(name, repo, revision, files)
    from huggingface_hub import hf_hub_download

    from bench.job.hub_download import fetch_into_cache

    try:
        path = fetch_into_cache(repo, revision, filename, progress)
        if path is None:  # not an LFS file: nothing to resume against
            path = Path(hf_hub_download(repo, filename, revision=revision, library_name="timm"))
        return path
    except Exception as e:  # noqa: BLE001 - the connection dropped after the probe answered
        raise HubUnavailable(_hub_message(name, repo, f"the download failed ({e})")) from None


def hub_check(model_cfg: dict) -> None:
    """``HubUnavailable`` now (bench run / prepare, before any work) if a hub model's weights
    are neither cached nor reachable; downloads nothing."""
    name = model_cfg["name"]
    loc = hub_location(name)
    if loc is not None and hub_cached(name) is None:
        _hub_probe(name, *loc)


def _hub_probe(name: str, repo: str, revision: str | None, files: list[str]) -> str:
    """The first of ``files`` the hub has, asked once per file without retries."""
    from huggingface_hub import constants, get_hf_file_metadata, hf_hub_url
    from huggingface_hub.errors import EntryNotFoundError, HfHubHTTPError

    if constants.HF_HUB_OFFLINE:  # read from the environment when huggingface_hub is imported
        raise HubUnavailable(_hub_message(name, repo, "HF_HUB_OFFLINE is set"))
    for f in files:
        url = hf_hub_url(repo, f, revision=revision)
        try:
            get_hf_file_metadata(url, timeout=HUB_TIMEOUT, retry_on_errors=False)
            return f
        except EntryNotFoundError:
            continue
        except HfHubHTTPError as e:
            raise HubUnavailable(_hub_message(name, repo, f"the hub answered {url}: {e}")) \
                from None
        except Exception as e:  # noqa: BLE001 - any network failure means the same here
            raise HubUnavailable(_hub_message(
                name, repo, f"{constants.ENDPOINT} does not answer ({type(e).__name__}: {e})")) \
                from None
    raise HubUnavailable(_hub_message(name, repo, f"the hub has none of {', '.join(files)}"))


def _hub_message(name: str, repo: str, why: str) -> str:
    from huggingface_hub import constants

    return (f"hub weights of '{name}' ({repo}) are not in the Hugging Face cache "
            f"({constants.HF_HUB_CACHE}) and cannot be fetched: {why}. Either run `bench "
            "prepare SUITE --download` where the network is, share that cache (HF_HOME) and set "
            "HF_HUB_OFFLINE=1 on machines without network, or save the weights to a file once "
            "and name it in the suite: `weights: {file: PATH}` (see docs/data.md)")


PRETRAIN_MEAN = (0.5, 0.5, 0.5)
PRETRAIN_STD = (0.5, 0.5, 0.5)


def _check_all_loaded(model, path: Path) -> None:
    """timm loads non-strictly once it drops a head: make sure nothing else was missing."""
    sd = read_state_dict(path)
    try:  # the names timm's loader sees after converting other formats
        from timm.models.vision_transformer import checkpoint_filter_fn

        sd = checkpoint_filter_fn(sd, model)
    except Exception:  # noqa: BLE001 - a filter that fails here leaves the names as they are
        pass
    keys = set(sd)
    missing = [k for k in model.state_dict() if k not in keys and not k.startswith("head.")]
    if missing:
        shown = ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else "")
        raise ValueError(f"weight file {path} lacks {len(missing)} tensors of "
                         f"the model ({shown}): is it a state dict of this architecture?")


def read_state_dict(path: Path) -> dict:
    """Tensors of a weight file as timm's loader reads them (safetensors, or torch.load with
    weights_only: never unpickles arbitrary objects; EMA / 'state_dict' / 'model' wrappers and
    'module.' prefixes handled the same way)."""
    from timm.models import load_state_dict

    return load_state_dict(str(path), weights_only=True)


def save_state_dict(model, path: Path, drop_head: bool = True) -> None:
    """safetensors, atomically; without the classifier (fine-tuning adds its own)."""
    from safetensors.torch import save_file

    from bench.core.files import atomic_write

    sd = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()
          if not (drop_head and k.startswith("head."))}
    with atomic_write(path) as tmp:
        save_file(sd, tmp)


def weights_checksum(model) -> str:
    """16 hex digits of a hash of the pretrained weights a job starts from (every tensor of
    the state dict but the fresh classifier, by name, dtype, shape and bytes): two runs with
    the same checksum started from the same weights (``bench verify`` checks it first)."""
    import torch

    h = hashlib.sha256()
    for k, v in sorted(model.state_dict().items()):
        if k.startswith("head."):
            continue
        t = v.detach().cpu().contiguous()
        h.update(f"{k}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.view(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:16]


def data_config(model, protocol: Protocol | None = None) -> dict:
    """Input size, evaluation resize and normalisation: from the model's own pretrained
    configuration, with what ``protocol`` sets instead (``Protocol.data_config``)."""
    from timm.data import resolve_data_config

    cfg = resolve_data_config(model=model)
    # A model built with another img_size keeps its tag's pretrained_cfg: trust the model.
    size = getattr(getattr(model, "patch_embed", None), "img_size", None)
    out = {"input_size": int(size[-1]) if size else int(cfg["input_size"][-1]),
           "mean": list(cfg["mean"]), "std": list(cfg["std"]),
           "crop_pct": float(cfg.get("crop_pct", 0.875)),
           "interpolation": cfg.get("interpolation", "bicubic")}
    return protocol.data_config(out) if protocol is not None else out
