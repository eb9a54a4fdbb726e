"""Command-line overrides of a suite: ``--set KEY=VALUE`` applied to its document.

Keys are dotted paths (``recipe.steps``, ``datasets[0].overrides.lrs``), values YAML. The
document with the overrides applied is then validated exactly like the file; each job's
configuration records the texts (``overrides_text`` shows them as the command line had them).
"""

from __future__ import annotations

from typing import Any

import yaml

from bench.suites.read import join_key, type_name


def overrides_text(overrides: list[str] | tuple[str, ...]) -> str:
    """A configuration's ``overrides`` as the command line had them: ``--set K=V ...``."""
    return " ".join(f"--set {o}" for o in overrides)


def _key_path(key: str) -> list[str | int]:
    """`datasets[0].overrides.steps` or `datasets.0.overrides.steps` -> its segments."""
    out: list[str | int] = []
    for part in key.replace("[", ".[").split("."):
        if part.startswith("[") and part.endswith("]") and part[1:-1].isdigit():
            out.append(int(part[1:-1]))
        elif part.isdigit():
            out.append(int(part))
        else:
            out.append(part)
    return out


def _path_text(segments: list[str | int]) -> str:
    text = ""
    for seg in segments:
        text = f"{text}[{seg}]" if isinstance(seg, int) else join_key(text, seg)
    return text


def apply_overrides(doc: Any, overrides, file: str) -> tuple[Any, dict[str, str], list[str]]:
    """``KEY=VALUE`` texts applied to a copy of a suite document: (document, key path -> the
    text that set it, problems). A missing mapping on the way is created; lists are indexed."""
    import copy

    doc = copy.deepcopy(doc) if isinstance(doc, dict) else {}
    overridden: dict[str, str] = {}
    problems: list[str] = []
    for text in overrides:
        where = f"{file} (--set {text})"
        key, eq, value_text = text.partition("=")
        segments = _key_path(key.strip())
        if not eq or not key.strip() or "" in segments:
            problems.append(f"{where}: expected KEY=VALUE with a dotted key, e.g. "
                            "recipe.steps=20 or datasets[0].overrides.lrs=[0.01]")
            continue
        try:
            value = yaml.safe_load(value_text)
        except yaml.YAMLError as e:
            problems.append(f"{where}: the value is not YAML: {str(e).splitlines()[0]}")
            continue
        node: Any = doc
        for i, seg in enumerate(segments):
            last = i == len(segments) - 1
            at = _path_text(segments[:i]) or "<top>"
            if isinstance(seg, int):
                if not isinstance(node, list) or seg >= len(node):
                    size = f"a list of {len(node)}" if isinstance(node, list) else type_name(node)
                    problems.append(f"{where}: {at} is {size}, no entry [{seg}]")
                    break
            elif not isinstance(node, dict):
                problems.append(f"{where}: {at} is {type_name(node)}, not a mapping")
                break
            if last:
                node[seg] = value
                overridden[_path_text(segments)] = text
                _drop_dataset_overrides(doc, segments, value)
            else:
                if isinstance(seg, str) and seg not in node:
                    node[seg] = {}  # validation says whether this key exists at all
                node = node[seg]
    return doc, overridden, problems


def _drop_dataset_overrides(doc: dict, segments: list, value: Any) -> None:
    """The command line has the last word: ``--set recipe.steps=20`` (or ``lrs``, or a whole
    ``recipe``) applies to every dataset, also to one whose ``overrides`` set that key."""
    if segments == ["lrs"]:
        keys = ["lrs"]
    elif segments[0] == "recipe" and len(segments) == 2:
        keys = [segments[1]]
    elif segments == ["recipe"] and isinstance(value, dict):
        keys = list(value)
    else:
        return
    for d in doc.get("datasets") or [] if isinstance(doc.get("datasets"), list) else []:
        if isinstance(d, dict) and isinstance(d.get("overrides"), dict):
            for k in keys:
                d["overrides"].pop(k, None)
