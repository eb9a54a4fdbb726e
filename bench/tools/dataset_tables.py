"""The dataset tables of docs/data.md, generated from the registry: every dataset's role,
parameters, classes and splits, and the official layouts under the data root.

``python -m bench.tools.docparts`` rewrites them in docs/data.md; a test checks that they
match.
"""

from __future__ import annotations

from bench.core import protocol as protocols
from bench.core.protocol import PROTOCOLS
from bench.data.datasets import DATASETS
from bench.data.spec import DatasetSpec
from bench.data.splits import SPLIT_RULES


def _param_text(spec: DatasetSpec) -> str:
    parts = []
    for name, (choices, default) in spec.params.items():
        valid = ", ".join(f"`{c}`" for c in choices) if choices else spec.param_docs.get(
            name, "any value")
        parts.append(f"`{name}`: {valid}" + (f" (default `{default}`)" if default is not None
                                              else " (required)"))
    return "<br>".join(parts)


def _splits_text(spec: DatasetSpec) -> str:
    if spec.splits is None:
        return "not cut: every image"
    rule = SPLIT_RULES[spec.splits]
    per = "; ".join(f"{name}: " + " ".join((rule(PROTOCOLS[name]).__doc__ or "").split())
                    .rstrip(".").replace("``", "`") for name in protocols.default_first())
    return f"`{spec.splits}`: {per}" + (
        f" (training split: `{spec.train_split}`)" if spec.train_split != "train" else "")


def datasets_table() -> str:
    """The table of every registered dataset: role, parameters and their valid values,
    classes, how it is split."""
    rows = ["| dataset | use as | what | parameters (valid values) | classes | splits |",
            "|---|---|---|---|---|---|"]
    for name, spec in DATASETS.items():
        classes = str(spec.num_classes) if spec.num_classes else "class folders"
        rows.append(f"| `{name}` | {', '.join(spec.kinds)} | {spec.description} | "
                    f"{_param_text(spec) or 'none'} | {classes} | {_splits_text(spec)} |")
    return "\n".join(rows) + "\n"


def layouts_table() -> str:
    """The table of the datasets read from the data root: each one's official layout
    and where to get it, from the same specification the error messages print."""
    rows = ["| dataset | layout under the data root | where to get it |", "|---|---|---|"]
    for name, spec in DATASETS.items():
        if spec.folder is None:
            continue
        layout = "<br>".join(f"`{line.strip()}`" for line in spec.layout.splitlines()
                             if line.strip())
        rows.append(f"| `{name}` | {layout} | {spec.source} |")
    return "\n".join(rows) + "\n"


