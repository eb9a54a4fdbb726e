"""Reading a suite file strictly: safe YAML, limits, plain values only.

``read_yaml_checked`` reads a suite (or a SLURM profile) with PyYAML's safe loader after
checking the file's kind, size and encoding, and notes keys written twice; ``plain_data`` drops
the values a suite never holds (dates, sets, non-string keys, NaN, documents blown up by
aliases) and says where they were. Every problem is a line of a ``SuiteError``.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import yaml

MAX_SUITE_BYTES = 1_000_000  # a suite is a page of YAML; anything larger is a mistake
MAX_VALUES = 100_000  # values in a suite once YAML aliases are expanded (no "billion laughs")
MAX_DEPTH = 32  # nesting of mappings and lists in a suite


class SuiteError(ValueError):
    """Every problem of one or more suite files; ``str()`` lists them all."""

    def __init__(self, problems: list[str]):
        super().__init__("\n".join(problems))
        self.problems = problems


def join_key(path: str, key: str) -> str:
    """A key path one key deeper: ``recipe`` + ``steps`` -> ``recipe.steps``."""
    return f"{path}.{key}" if path else key


def type_name(obj: Any) -> str:
    """A value's kind as messages name it: a mapping, a list, a string, ..."""
    return {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean",
            int: "an integer", float: "a number", type(None): "null"}.get(type(obj),
                                                                          type(obj).__name__)


class _SuiteLoader(yaml.SafeLoader):
    """PyYAML's safe loader (plain values only, never Python objects) that also notes a key
    written twice in one mapping, which plain YAML loading would let the last one win."""

    def __init__(self, text: str):
        super().__init__(text)
        self.duplicates: list[str] = []

    def construct_mapping(self, node, deep=False):
        seen: dict[tuple[str, str], int] = {}
        for key, _ in node.value:
            if isinstance(key, yaml.ScalarNode) and key.tag != "tag:yaml.org,2002:merge":
                line = key.start_mark.line + 1
                if (key.tag, key.value) in seen:
                    self.duplicates.append(
                        f"line {line}: key '{key.value}' is given twice in one mapping (first "
                        f"on line {seen[key.tag, key.value]}); keep one")
                seen.setdefault((key.tag, key.value), line)
        return super().construct_mapping(node, deep)


def _yaml_error(path: Path, e: yaml.YAMLError) -> str:
    where = getattr(e, "problem_mark", None)
    at = f"line {where.line + 1}, column {where.column + 1}: " if where else ""
    what = getattr(e, "problem", None) or str(e).splitlines()[0]
    tag = re.search(r"constructor for the tag '([^']*)'", what)
    if tag:
        name = tag.group(1).replace("tag:yaml.org,2002:", "!!")
        what = (f"tag '{name}' is refused: suites are read with safe loading, which builds "
                "plain values only (never Python objects); write a plain value")
    return f"{path}: YAML error: {at}{what}"


def read_yaml_checked(path: Path, kind: str = "suite",
                      example: str = "suites/digits.yaml") -> tuple[Any, list[str]]:
    """A suite file's YAML document and the problems found while reading it (duplicate keys).

    Safe loading only; the file's kind, size and encoding are checked first. A file that
    cannot be read at all raises ``SuiteError``. ``kind`` and ``example`` name what the file
    should be in messages (SLURM profiles are read the same way).
    """
    path = Path(path)
    if path.is_dir():
        raise SuiteError([f"{path}: is a directory; give a {kind} file (e.g. {example})"])
    if not path.is_file():
        what = "no such file" if not path.exists() else "not a regular file"
        raise SuiteError([f"{path}: {what}; give a {kind} file (e.g. {example})"])
    try:
        size = path.stat().st_size
        if size > MAX_SUITE_BYTES:
            raise SuiteError([f"{path}: {size} bytes; a {kind} file is at most "
                              f"{MAX_SUITE_BYTES} (is this the right file?)"])
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as e:
        raise SuiteError([f"{path}: not UTF-8 text ({e.reason} at byte {e.start}); "
                          f"a {kind} is a YAML text file"]) from None
    except OSError as e:
        raise SuiteError([f"{path}: cannot be read ({e.strerror or e})"]) from None
    loader = None
    try:
        loader = _SuiteLoader(text)  # the reader rejects control characters right here
        doc = loader.get_single_data()
    except yaml.YAMLError as e:
        raise SuiteError([_yaml_error(path, e)]) from None
    except RecursionError:
        raise SuiteError([f"{path}: YAML nested too deeply to be a {kind} "
                          f"(at most {MAX_DEPTH} levels)"]) from None
    finally:
        if loader is not None:
            loader.dispose()
    return doc, [f"{path}: {d}" for d in loader.duplicates]


def plain_data(raw: Any, file: str) -> tuple[list[str], tuple[str, ...], Any]:
    """Problems of values a suite never holds, the key paths they are at, and the document
    with those values dropped (so the other checks still run, and report nothing there).

    YAML can make dates, bytes, sets, non-string keys, NaN, and, through aliases, documents
    far larger than their text: none of these is a setting, and some would break the job id.
    """
    problems: list[str] = []
    bad: list[str] = []
    count = 0

    def clean(v: Any, path: str, depth: int) -> Any:
        nonlocal count
        count += 1
        if count > MAX_VALUES:
            raise SuiteError([f"{file}: more than {MAX_VALUES} values once YAML aliases are "
                              "expanded; a suite is a page of settings"])
        if depth > MAX_DEPTH:
            problems.append(f"{file}: {path or '<top>'}: nested more than {MAX_DEPTH} levels")
            bad.append(path)
            return None
        if isinstance(v, dict):
            out = {}
            for k, x in v.items():
                if not isinstance(k, str):
                    kp = join_key(path, str(k))
                    problems.append(f"{file}: {kp}: key {k!r} is {type_name(k)}; keys are names "
                                    "(strings)")
                    bad.append(kp)
                    continue
                out[k] = clean(x, join_key(path, k), depth + 1)
            return out
        if isinstance(v, list):
            return [clean(x, f"{path}[{i}]", depth + 1) for i, x in enumerate(v)]
        if isinstance(v, float) and not math.isfinite(v):
            problems.append(f"{file}: {path or '<top>'}: must be a finite number, got {v}")
        elif v is None or isinstance(v, (str, int, float)):
            return v
        else:
            problems.append(f"{file}: {path or '<top>'}: {type_name(v)} ({v!r:.40}) is not a plain "
                            "value (string, number, true/false, null, list, mapping); quote it "
                            "if it is text")
        bad.append(path)
        return None

    cleaned = clean(raw, "", 0)
    return problems, tuple(bad), cleaned
