"""Models: any timm ViT by name, with weights from a hub tag, a local file, or the benchmark's
own pretraining recipe, all loaded through timm's pretrained-weight path.

``vit_architectures`` lists timm's ViTs without importing torch (suites validate without it).
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import json
import re
from pathlib import Path

_REGISTER = re.compile(r"@register_model\s*\ndef\s+(\w+)\s*\(")


@functools.lru_cache(maxsize=1)
def vit_architectures() -> tuple[str, ...]:
    """The ViT architectures timm registers, read from its source (no torch import).

    Only the ``VisionTransformer`` family has the blocks[i].norm1/attn/norm2/mlp names the
    benchmark's components are defined on.
    """
    spec = importlib.util.find_spec("timm")
    if spec is None or not spec.submodule_search_locations:
        return ()
    names: list[str] = []
    for module in ("vision_transformer.py", "deit.py"):
        path = Path(spec.submodule_search_locations[0]) / "models" / module
        if path.is_file():
            names += _REGISTER.findall(path.read_text(encoding="utf-8"))
    return tuple(sorted(set(names)))


def weights_key(model_cfg: dict) -> str:
    """Hash of what determines pretrained weights the benchmark makes itself."""
    what = {"name": model_cfg["name"], "kwargs": model_cfg.get("kwargs", {}),
            "weights": model_cfg["weights"]}
    return hashlib.sha256(json.dumps(what, sort_keys=True).encode()).hexdigest()[:16]


class MissingWeights(FileNotFoundError):
    pass


def weights_file(model_cfg: dict, cache: Path) -> Path | None:
    w = model_cfg["weights"]
    if w["source"] == "file":
        return Path(w["file"]).expanduser()
    if w["source"] == "pretrain":
        return Path(cache) / "pretrained" / f"{weights_key(model_cfg)}.safetensors"
    return None


def create_model(model_cfg: dict, num_classes: int, cache: Path):
    """A timm ViT with the configured weights and a freshly initialised head of num_classes.

    Hub tags and files go through the same call (``pretrained_cfg_overlay``): timm's loader
    drops the source classifier, adapts position embeddings and reads safetensors or
    ``torch.load(weights_only=True)`` files.
    """
    import timm

    w = model_cfg["weights"]
    kwargs = dict(model_cfg.get("kwargs", {}))
    if w["source"] == "random":
        return timm.create_model(model_cfg["name"], pretrained=False, num_classes=num_classes,
                                 **kwargs)
    if w["source"] == "hub":
        return timm.create_model(model_cfg["name"], pretrained=True, num_classes=num_classes,
                                 **kwargs)
    path = weights_file(model_cfg, cache)
    if not path.is_file():
        if w["source"] == "pretrain":
            raise MissingWeights(f"pretrained weights {path} are missing: run `bench run` or "
                                 "`bench prepare` on the suite first (it pretrains once)")
        raise MissingWeights(
            f"weight file {path} (models[].weights.file of model '{model_cfg['name']}') does "
            "not exist. Expected a timm state dict (.safetensors, or .pth/.bin readable by "
            "torch.load(weights_only=True)), e.g. written by `safetensors.torch.save_file("
            "timm.create_model(NAME, pretrained=True).state_dict(), PATH)` on a machine with "
            "hub access")
    overlay = {"file": str(path), "num_classes": 0}
    if w["source"] == "pretrain":
        overlay.update(mean=PRETRAIN_MEAN, std=PRETRAIN_STD)
    model = timm.create_model(model_cfg["name"], pretrained=True, num_classes=num_classes,
                              pretrained_cfg_overlay=overlay, **kwargs)
    _check_all_loaded(model, path)
    return model


PRETRAIN_MEAN = (0.5, 0.5, 0.5)
PRETRAIN_STD = (0.5, 0.5, 0.5)


def _check_all_loaded(model, path: Path) -> None:
    """timm loads non-strictly once it drops a head: make sure nothing else was missing."""
    keys = set(read_state_dict(path))
    missing = [k for k in model.state_dict() if k not in keys and not k.startswith("head.")]
    if missing:
        shown = ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else "")
        raise ValueError(f"weight file {path} lacks {len(missing)} tensors of "
                         f"the model ({shown}): is it a state dict of this architecture?")


def read_state_dict(path: Path) -> dict:
    """Tensors of a weight file; never unpickles arbitrary objects."""
    import torch

    path = Path(path)
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    sd = torch.load(path, map_location="cpu", weights_only=True)
    for key in ("state_dict", "model"):
        if isinstance(sd, dict) and key in sd and isinstance(sd[key], dict):
            sd = sd[key]
    return sd


def save_state_dict(model, path: Path, drop_head: bool = True) -> None:
    """safetensors, atomically; without the classifier (fine-tuning adds its own)."""
    import os
    import tempfile

    from safetensors.torch import save_file

    sd = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()
          if not (drop_head and k.startswith("head."))}
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        save_file(sd, tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def data_config(model) -> dict:
    """Input size and normalisation from the model's own pretrained configuration."""
    from timm.data import resolve_data_config

    cfg = resolve_data_config(model=model)
    # A model built with another img_size keeps its tag's pretrained_cfg: trust the model.
    size = getattr(getattr(model, "patch_embed", None), "img_size", None)
    return {"input_size": int(size[-1]) if size else int(cfg["input_size"][-1]), "mean": list(cfg["mean"]),
            "std": list(cfg["std"]), "crop_pct": float(cfg.get("crop_pct", 0.875)),
            "interpolation": cfg.get("interpolation", "bicubic")}
