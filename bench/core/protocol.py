"""The measurement protocols of protocol.md ("Two protocols"), each one registered object.

A protocol is everything a job does differently from one protocol to another: the model (the
LayerNorms' eps, how a new head is initialised), the data (normalisation and evaluation
transform, how targets are cut into train / validation / test and with which seed, whether
training crops are drawn from the whole image), the training (fixed recipe keys, TF32, whether a
shuffled batch may span two epochs), the plasticity pairs, and whether its records stand
beside the paper's published table. Code elsewhere asks the job's protocol
(``PROTOCOLS[config["protocol"]]``) and never compares protocol names.

``paper`` is the reference code's protocol, exactly: per-seed splits, torchvision's
``Resize(224)`` + ``CenterCrop(224)`` and ``RandomResizedCrop(224)`` on the whole image,
ImageNet mean/std, LayerNorm eps 1e-12, a PyTorch-default head, fp32, the reference's
plasticity pairing, incomplete batches dropped (training and the ``lp`` probe). ``clean`` (the
default) is ours, with the reference's flaws fixed. A suite names one (``protocol:``); it
enters every job's configuration (``config["protocol"]``), hence its id and its record.

Adding a protocol: subclass ``Protocol`` (override the attributes and methods that differ) and
register one instance in ``PROTOCOLS``; suites, jobs, the record schema and the leaderboard then
know it.

Torch-free at import: suites validate against this registry (methods import torch, timm or
numpy when called).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from bench.core.registry import Registry

# The paper protocol's fixed facts (protocol.md, `paper` bullets).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# The reference's linear probe (apps/vit/linear_probing.py): its training loader shuffles
# and drops the incomplete last batch of 512, so the probe trains on that many fewer images.
LP_BATCH = 512
LP_MAX_ITER = 5000

# Training images of folder datasets are kept whole (every pixel of the decoded image can be
# in a random-resized crop) but stored at this side, squeezed to a square; the crop box is
# drawn on the original width and height and mapped onto the stored copy (docs/protocol.md:
# deviations).
TRAIN_STORE_SIDE = 256
# The evaluation transform the whole training images are stored with (no crop beyond the
# square, bilinear): a cache-key fact of those entries, whatever the protocol.
WHOLE_CROP_PCT, WHOLE_INTERPOLATION = 1.0, "bilinear"


class Protocol:
    """The ``clean`` protocol's behaviour; a protocol overrides what it does differently.

    Attributes are facts read by the job, data, training and plasticity code; methods are
    behaviours they call. None of them is switched on the protocol's name.
    """

    name: ClassVar[str] = "clean"
    # Model: None keeps the model's own LayerNorm eps.
    layer_norm_eps: ClassVar[float | None] = None
    # Data: None keeps the model's pretrained configuration (mean, std, crop, interpolation).
    mean: ClassVar[tuple[float, float, float] | None] = None
    std: ClassVar[tuple[float, float, float] | None] = None
    eval_crop_pct: ClassVar[float | None] = None
    eval_interpolation: ClassVar[str | None] = None
    # How a target is cut (the field of bench.data.splits.SplitRule): "seeded", one seeded 80/20 cut
    # of recipe.split_seed; "reference", the reference code's cuts, per run seed.
    split_cuts: ClassVar[str] = "seeded"
    # Training crops drawn from the whole decoded image (else from the stored input-size copy).
    whole_train_images: ClassVar[bool] = False
    # Training: TF32 on CUDA; shuffled batches never span two epochs (incomplete last batch
    # dropped, also by the lp probe's feature pass).
    tf32: ClassVar[bool] = True
    drop_last: ClassVar[bool] = False
    # Recipe keys the protocol fixes ({key: (its value, the values a suite may write)}) and
    # those it has no use for ({key: why}).
    fixed_recipe: ClassVar[Mapping[str, tuple[Any, tuple]]] = {}
    fixed_why: ClassVar[str] = ""
    unused_recipe: ClassVar[Mapping[str, str]] = {}
    # Its records are the ones set beside the paper's published table (leaderboard).
    reproduces_paper: ClassVar[bool] = False

    def __str__(self) -> str:
        return self.name

    def __repr__(self) -> str:
        return f"<protocol {self.name}>"

    # ---- suites: the recipe as this protocol resolves it

    def recipe_problems(self, given: Mapping) -> list[tuple[str, str]]:
        """(recipe key, message) for each key a suite set that this protocol refuses."""
        out = []
        for k, (fixed, accepted) in self.fixed_recipe.items():
            if k in given and given[k] not in accepted:
                out.append((k, f"protocol {self.name} runs with {k} {fixed} ({self.fixed_why}); "
                               f"got {given[k]!r}: remove it, or use protocol: {DEFAULT_PROTOCOL}"))
        for k, why in self.unused_recipe.items():
            if k in given:
                out.append((k, f"not used by protocol {self.name} ({why}); remove it, or use "
                               f"protocol: {DEFAULT_PROTOCOL}"))
        return out

    def resolve_recipe(self, recipe: dict) -> dict:
        """The recipe without the keys this protocol does not use, with those it fixes."""
        out = {k: v for k, v in recipe.items() if k not in self.unused_recipe}
        out.update({k: fixed for k, (fixed, _) in self.fixed_recipe.items()})
        return out

    def precision(self, default: str) -> str:
        """The training precision this protocol runs (``default`` where it fixes none)."""
        return self.fixed_recipe.get("precision", (default,))[0]

    # ---- data

    def split_seed(self, run_seed: int, recipe_split_seed: int | None) -> int:
        """The seed of the target's cut: ``recipe.split_seed`` (one split for every run)."""
        if recipe_split_seed is None:
            raise ValueError(f"protocol {self.name} cuts targets with recipe.split_seed; "
                             "the recipe has none")
        return recipe_split_seed

    def data_config(self, model_config: dict) -> dict:
        """The model's data settings (``bench.job.models.data_config``'s, from its pretrained
        configuration) with what this protocol sets instead."""
        out = dict(model_config)
        for key, value in (("mean", self.mean), ("std", self.std),
                           ("crop_pct", self.eval_crop_pct),
                           ("interpolation", self.eval_interpolation)):
            if value is not None:
                out[key] = list(value) if isinstance(value, tuple) else value
        return out

    # ---- model

    def prepare_model(self, model) -> None:
        """What the protocol changes in a created model (the LayerNorms' eps)."""
        if self.layer_norm_eps is None:
            return
        import torch

        for m in model.modules():
            if isinstance(m, torch.nn.LayerNorm):
                m.eps = self.layer_norm_eps

    def new_head(self, model, num_classes: int) -> None:
        """A fresh classifier of ``num_classes``, initialised as timm initialises a new
        model's head (truncated normal weights, zero bias)."""
        from timm.models.vision_transformer import init_weights_vit_timm

        model.reset_classifier(num_classes)
        init_weights_vit_timm(model.head)

    # ---- plasticity

    def pair_indices(self, n_ref: int, n_tgt: int, pairs: int, batch_size: int,
                     seed: int, repeat_targets: bool = False):
        """(reference indices, target indices) of the plasticity pairs: a seeded shuffle of
        each side, pairs formed by index; at most the smaller side, or, with
        ``repeat_targets``, at most the reference side: the target side is then shuffled
        again for each further pass over it (every target image once per pass)."""
        import numpy as np

        rng = np.random.default_rng(seed)
        ref, tgt = rng.permutation(n_ref), rng.permutation(n_tgt)
        if not repeat_targets or n_tgt == 0:
            n = min(pairs, n_ref, n_tgt)
            return ref[:n], tgt[:n]
        n = min(pairs, n_ref)
        passes = [tgt, *(rng.permutation(n_tgt) for _ in range(-(-n // n_tgt) - 1))]
        return ref[:n], np.concatenate(passes)[:n]


class Paper(Protocol):
    """The reference code's protocol, exactly (protocol.md, `paper`)."""

    name = "paper"
    layer_norm_eps = 1e-12  # the Hugging Face checkpoints' value the reference loads
    mean, std = IMAGENET_MEAN, IMAGENET_STD
    eval_crop_pct = 1.0  # Resize(size) then CenterCrop(size): nothing cut beyond the square
    eval_interpolation = "bilinear"  # torchvision's Resize default, on the PIL image
    split_cuts = "reference"
    whole_train_images = True
    tf32 = False  # fp32: no autocast, no TF32
    drop_last = True
    fixed_recipe = {"precision": ("fp32", ("fp32", "auto"))}
    fixed_why = "the reference's"
    unused_recipe = {"split_seed": "each run seed has its own split, protocol.md"}
    reproduces_paper = True

    def split_seed(self, run_seed: int, recipe_split_seed: int | None) -> int:
        """The run seed: each run has its own validation split, as in the reference."""
        return run_seed

    def new_head(self, model, num_classes: int) -> None:
        """A plain ``nn.Linear`` with PyTorch's default initialisation (the reference's)."""
        model.reset_classifier(num_classes)

    def pair_indices(self, n_ref: int, n_tgt: int, pairs: int, batch_size: int,
                     seed: int, repeat_targets: bool = True):
        """The reference code's pairing, which always repeats targets: reference images in
        their order; target images in their order in batches of ``batch_size``, the incomplete
        last batch dropped, cycled from the start when exhausted. Pair
        ``i = batch_size * b + j`` is reference image ``i`` and target image
        ``(b mod nb) * batch_size + j``, ``nb = n_tgt // batch_size``. At most ``n_ref`` pairs,
        in whole batches; ``seed`` plays no part."""
        import numpy as np

        nb = n_tgt // batch_size
        if nb == 0:
            raise ValueError(f"paper plasticity pairing needs at least one batch of "
                             f"{batch_size} target images; the test split has {n_tgt}")
        n = min(pairs, n_ref) // batch_size * batch_size
        i = np.arange(n)
        return i, (i // batch_size % nb) * batch_size + i % batch_size


# Registration order is the order messages list them in.
PROTOCOLS: Registry[Protocol] = Registry("protocol")
PROTOCOLS.register(Paper.name, Paper())
PROTOCOLS.register(Protocol.name, Protocol())
DEFAULT_PROTOCOL = Protocol.name  # of a suite without `protocol:` (and of records before them)


def default_first() -> list[str]:
    """The registered protocols' names, the default one first (tables, reports)."""
    return sorted(PROTOCOLS.names(), key=lambda n: n != DEFAULT_PROTOCOL)


def reproducing_paper() -> tuple[str, ...]:
    """The protocols whose records stand beside the paper's published table."""
    return tuple(n for n, p in PROTOCOLS.items() if p.reproduces_paper)
