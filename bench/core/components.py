"""The components of a ViT block, named as timm names them (protocol.md, first table).

This module is the single vocabulary for components: suites, strategies, plasticity,
aggregator and plots import ``BLOCK_COMPONENTS`` and ``COMPONENTS`` from here.
No torch import: the leaderboard uses these names too.
"""

from __future__ import annotations

from dataclasses import dataclass
from operator import attrgetter

from bench.core.registry import Registry


@dataclass(frozen=True)
class Component:
    name: str
    paper: str  # the paper's spelling, for tables
    modules: tuple[str, ...]  # timm module paths inside blocks[i] (or at the top level for emb)
    in_block: bool = True
    # Modules that train with the component but whose output plasticity does not measure:
    # LayerScale after the branch's last operation (protocol.md: ``ls1`` with ``mha``,
    # ``ls2`` with ``fc2``).
    also_trains: tuple[str, ...] = ()

    def owns(self, param_name: str) -> bool:
        """Whether a full parameter name (``blocks.3.mlp.fc1.weight``) belongs to this component."""
        if self.in_block:
            parts = param_name.split(".", 2)
            if len(parts) < 3 or parts[0] != "blocks" or not parts[1].isdigit():
                return False
            local = parts[2]
        else:
            local = param_name
        return any(local == m or local.startswith(m + ".")
                   for m in (*self.modules, *self.also_trains))


COMPONENTS: Registry[Component] = Registry("component")
for _c in (
    Component("ln1", "LN1", ("norm1",)),
    Component("mha", "MHA", ("attn",), also_trains=("ls1",)),
    Component("ln2", "LN2", ("norm2",)),
    Component("fc1", "FC1", ("mlp.fc1",)),
    Component("fc2", "FC2", ("mlp.fc2",), also_trains=("ls2",)),
    # norm_pre (CLIP) is part of the embedding e(x) that feeds blocks[0]
    Component("emb", "Emb", ("patch_embed", "cls_token", "pos_embed", "reg_token", "norm_pre"),
              in_block=False),
):
    COMPONENTS.register(_c.name, _c)

# The five per-block components whose plasticity is measured, in forward order.
BLOCK_COMPONENTS: tuple[str, ...] = ("ln1", "mha", "ln2", "fc1", "fc2")
# The paper's theoretical ranking, most plastic first.
PAPER_PLASTICITY_RANKING: tuple[str, ...] = ("mha", "fc1", "fc2", "ln2", "ln1")
# How plasticity is measured: the paper's definition (a record's `plasticity`) and the
# variants recorded next to it under `plasticity_variants` (bench.job.plasticity says what each is).
PAPER_VARIANT = "paper"
IN_SITU = "in_situ"  # each component on its real input
AFTER_FINETUNING = "after_finetuning"  # the paper's definition on the fine-tuned model
PLASTICITY_VARIANTS: tuple[str, ...] = (PAPER_VARIANT, IN_SITU, AFTER_FINETUNING)
# Outside the blocks, trained by every strategy except `linear` (protocol.md).
FINAL_NORM_MODULES: tuple[str, ...] = ("norm", "fc_norm")
# The classifier; an attention-pool head (SigLIP's ``attn_pool``) is part of it (protocol.md).
HEAD_MODULES: tuple[str, ...] = ("head", "attn_pool")


def block_module(block, component: str):
    """The module of ``component`` inside a timm block (``blocks[i]``), by its registered
    path: ``block_module(blk, "fc1") is blk.mlp.fc1``."""
    c = COMPONENTS[component]
    if not c.in_block or len(c.modules) != 1:
        raise ValueError(f"component '{component}' is not one module inside a block")
    return attrgetter(c.modules[0])(block)


def block_modules(block) -> list:
    """The modules of the five block components of a timm block, in BLOCK_COMPONENTS order."""
    return [block_module(block, c) for c in BLOCK_COMPONENTS]


def is_under(param_name: str, modules: tuple[str, ...]) -> bool:
    return any(param_name == m or param_name.startswith(m + ".") for m in modules)
