"""Registries that explain themselves: an unknown name lists what exists and the closest match.

Every vocabulary of the benchmark (components, strategies, datasets, optimizers) is one
``Registry``; suites, runner, aggregator and plots import names from there and nowhere else.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator
from typing import Generic, TypeVar

T = TypeVar("T")


def did_you_mean(name: str, choices: list[str] | tuple[str, ...]) -> str:
    """' (did you mean 'x'?)' for the closest choice, or '' when nothing is close."""
    close = difflib.get_close_matches(str(name), list(choices), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def unknown_name_message(kind: str, name: object, choices: list[str] | tuple[str, ...]) -> str:
    return f"unknown {kind} '{name}'{did_you_mean(str(name), choices)}; valid: {', '.join(choices)}"


class UnknownName(KeyError):
    """A name that is not in a registry; ``str()`` is the whole user-facing message."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class Registry(Generic[T]):
    """An ordered name -> entry mapping whose misses say what exists."""

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, T] = {}

    def register(self, name: str, entry: T) -> T:
        if name in self._entries:
            raise ValueError(f"{self.kind} '{name}' registered twice")
        self._entries[name] = entry
        return entry

    def __getitem__(self, name: str) -> T:
        try:
            return self._entries[name]
        except KeyError:
            raise UnknownName(unknown_name_message(self.kind, name, self.names())) from None

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def names(self) -> tuple[str, ...]:
        return tuple(self._entries)

    def items(self):
        return self._entries.items()
