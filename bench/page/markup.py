"""Text from records, made safe for the pages and tables built from them.

Records may come from strangers (a leaderboard merges results folders made elsewhere), so
every string in them (labels, names, dataset and strategy keys, overrides, failure
reasons, provenance) is text, never markup:

- ``escape_text``: Markdown backslash escapes for the characters that make markup (HTML's
  ``<``, ``>``, ``&``; Markdown's ``\\``, `````, ``*``, ``[``, ``]``, ``~``, and ``_`` where
  it could start or end emphasis; ``$``, which Markdown math and matplotlib's figures read as
  mathematics: ``\\$`` is a dollar sign to both). Any CommonMark renderer shows the text;
  the site (``bench.page.site.inline``) reads the escapes back and HTML-escapes the characters.
  Text without those characters (every committed label) is unchanged;
- ``escaped_record``: a copy of a record with every string escaped, what the tables are
  built from (``bench.page.leaderboard``); curves and plasticity hold numbers and schema-checked
  component names only; dataset and strategy parameters stay as they are, their labels are
  made from the record, then escaped;
- ``csv_cell``: a CSV text cell that a spreadsheet would run as a formula (``=``, ``+``,
  ``-``, ``@``, tab, carriage return first) gets a leading ``'``; numbers stay numbers.
"""

from __future__ import annotations

import re
from typing import Any

from bench.core.strategies import strategy_label
from bench.data.datasets import dataset_label

_SPECIAL = re.compile(r"[\\`*\[\]<>&~$]|(?<![A-Za-z0-9])_|_(?![A-Za-z0-9])")
ESCAPED = re.compile(r"\\([\\`*\[\]<>&~$_])")
_FORMULA = ("=", "+", "-", "@", "\t", "\r")
# numbers only: curves and plasticity (component names are checked by the record schema)
_NOT_TEXT = frozenset({"curves", "plasticity", "plasticity_variants"})


def escape_text(text: str) -> str:
    """``text`` with Markdown backslash escapes wherever a character could make markup."""
    return _SPECIAL.sub(lambda m: "\\" + m.group(), text)


def unescape_text(text: str) -> str:
    """The text ``escape_text`` escaped (for places that escape for themselves: HTML
    attributes, the site's filters)."""
    return ESCAPED.sub(r"\1", text)


def _escaped(value: Any) -> Any:
    if isinstance(value, str):
        return escape_text(value) if _SPECIAL.search(value) else value
    if isinstance(value, dict):
        return {_escaped(k): _escaped(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_escaped(v) for v in value]
    return value


def escaped_record(record: dict) -> dict:
    """A copy of ``record`` whose strings are escaped (``escape_text``), for display.

    The dataset's and strategy's parameters stay as they are (what they mean is computed from
    them) and their labels are made from the record as it is, then escaped."""
    out = {k: (v if k in _NOT_TEXT else _escaped(v)) for k, v in record.items()}
    for part, text in entry_labels(record["config"]).items():
        entry = record["config"][part]
        out["config"][part] = {**{k: v if k == "params" else _escaped(v)
                                  for k, v in entry.items()}, "label": escape_text(text)}
    return out


def entry_labels(config: dict) -> dict[str, str]:
    """The dataset's and the strategy's labels (``dataset_label``, ``strategy_label``), or
    their keys where the parameters of a record from elsewhere do not make one."""
    out = {}
    for part, label in (("dataset", dataset_label), ("strategy", strategy_label)):
        try:
            out[part] = label(config[part])
        except (KeyError, TypeError, ValueError, AttributeError):
            out[part] = str(config[part]["key"])
    return out


def csv_cell(value: Any) -> Any:
    """A CSV cell that no spreadsheet runs as a formula: text starting with ``=``, ``+``,
    ``-``, ``@``, a tab or a carriage return gets a leading ``'``, unless it is a number."""
    if not isinstance(value, str) or not value.startswith(_FORMULA):
        return value
    try:
        float(value)
        return value
    except ValueError:
        return "'" + value
