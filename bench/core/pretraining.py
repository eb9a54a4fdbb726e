"""How public checkpoints were pretrained: objective and data per timm tag, and the size of
an architecture, for the page to say what independent models (replicates of a claim about
the components' ranking) differ in and what they share.

One registry, ``PRETRAINED`` (timm name -> ``Pretraining``), holding the checkpoints of the
committed suites (``suites/survey.yaml``, ``suites/paper-lite.yaml``, the paper's); a test
checks that every hub model of a committed suite has its entry. Facts from the model cards
timm links (``timm.models.get_pretrained_cfg(name)``). Torch-free.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from bench.core.registry import Registry


@dataclass(frozen=True)
class Pretraining:
    """A checkpoint's pretraining: its objective (the paradigm) and its data."""

    objective: str
    data: str


PRETRAINED: Registry[Pretraining] = Registry("pretrained checkpoint")

_SUPERVISED = "supervised classification"
for _name, _p in (
    ("vit_base_patch16_224.orig_in21k", Pretraining(_SUPERVISED, "ImageNet-21k")),
    ("vit_large_patch16_224.orig_in21k", Pretraining(_SUPERVISED, "ImageNet-21k")),
    ("vit_huge_patch14_224.orig_in21k", Pretraining(_SUPERVISED, "ImageNet-21k")),
    ("vit_small_patch16_224.augreg_in21k", Pretraining(_SUPERVISED + " (AugReg)",
                                                       "ImageNet-21k")),
    ("vit_base_patch16_224.augreg_in21k", Pretraining(_SUPERVISED + " (AugReg)",
                                                      "ImageNet-21k")),
    ("deit_base_patch16_224.fb_in1k", Pretraining(_SUPERVISED + " (DeiT)", "ImageNet-1k")),
    ("deit3_base_patch16_224.fb_in1k", Pretraining(_SUPERVISED + " (DeiT-III)",
                                                   "ImageNet-1k")),
    ("vit_small_patch16_224.dino", Pretraining("self-distillation (DINO)", "ImageNet-1k")),
    ("vit_base_patch16_224.dino", Pretraining("self-distillation (DINO)", "ImageNet-1k")),
    ("vit_small_patch14_dinov2.lvd142m", Pretraining("self-distillation (DINOv2)",
                                                     "LVD-142M")),
    ("vit_base_patch16_224.mae", Pretraining("masked image modelling (MAE)", "ImageNet-1k")),
    ("vit_large_patch16_224.mae", Pretraining("masked image modelling (MAE)", "ImageNet-1k")),
    ("vit_base_patch16_clip_224.openai", Pretraining("contrastive language-image (CLIP)",
                                                     "WIT-400M")),
    ("vit_base_patch16_clip_224.laion2b", Pretraining("contrastive language-image (CLIP)",
                                                      "LAION-2B")),
    ("vit_base_patch16_siglip_224.webli", Pretraining("sigmoid language-image (SigLIP)",
                                                      "WebLI")),
):
    PRETRAINED.register(_name, _p)

# timm's width names, smallest first, and how tables write them.
SIZES = {"tiny": "Ti", "small": "S", "medium": "M", "base": "B", "large": "L", "huge": "H",
         "giant": "g", "gigantic": "G"}
_SIZE = re.compile(r"(?:^|_)(" + "|".join(SIZES) + r")(?:_|$)")


def size_of(name: str) -> str | None:
    """The width of a timm architecture (``vit_base_patch16_224.dino`` -> ``B``), None when
    its name does not say."""
    m = _SIZE.search(name.split(".", 1)[0])
    return SIZES[m.group(1)] if m else None


def replicates_note(models: Iterable[Mapping]) -> str | None:
    """What public checkpoints (model configurations with hub weights, all in ``PRETRAINED``)
    are independent in and what they share, for the page; None when any model is not such a
    checkpoint (the page then says it from the configurations)."""
    models = list(models)
    if not models or any(m.get("weights", {}).get("source") != "hub"
                         or m.get("name") not in PRETRAINED for m in models):
        return None
    facts = [PRETRAINED[m["name"]] for m in models]
    parts = [(what, sorted({v for v in values if v})) for what, values in (
        ("pretraining data", [f.data for f in facts]),
        ("objective", [f.objective for f in facts]),
        ("size", [size_of(m["name"]) for m in models]))]
    varied = [f"{what} ({len(vals)}: {', '.join(vals)})" for what, vals in parts if len(vals) > 1]
    same = [f"{what} ({vals[0]})" for what, vals in parts if len(vals) == 1]
    text = (f"{len(models)} public checkpoints, independent in "
            + ("; ".join(varied) if varied else "pretraining only (seed)"))
    shared = ["the ViT block design (norm1, attn, norm2, mlp.fc1, mlp.fc2)",
              "the reference images", *same]
    return text + "; they share " + ", ".join(shared)
