"""A path under a results root: the one check that nothing is read, written, moved or deleted
through a symbolic link that leaves the root.

A results folder may come from someone else (a leaderboard merges folders made on other
clusters), so its links are not trusted: ``inside(root, path)`` walks ``path`` from ``root``
down, and a component that is a link whose real path is outside the root's real path (or a
``..`` that climbs out) raises ``OutsideRoot``, which names the link and where it points and
says what to do instead: point ``--results`` at the real folder. The root itself may be a
link (the user chose it); links that stay inside the root are followed as usual.

Every command that writes under a results folder (``leaderboard`` with its site and figures,
``prune``, ``run``, ``submit``) and every reader of records and logs goes through here; a
path that is not below the root lexically (a ``--site`` elsewhere, given by the user) is not
this module's to judge and is returned as it is.
"""

from __future__ import annotations

import os
from pathlib import Path


class OutsideRoot(ValueError):
    """A path under a results root whose real path leaves it through a link (exit 2)."""

    def __init__(self, root: Path, link: Path, target: str):
        self.root, self.link, self.target = root, link, target
        super().__init__(
            f"{link} is a symbolic link to {target}, outside the results folder {root}; "
            "bench does not read, write, move or delete through a link that leaves it. "
            f"Keep the folder inside {root}, or point --results at the real folder "
            f"(a folder of its own on that disk, e.g. --results {Path(target).parent}).")


def _below(real: str, real_root: str) -> bool:
    return real == real_root or real.startswith(real_root.rstrip(os.sep) + os.sep)


def outside(root: str | os.PathLike, path: str | os.PathLike) -> OutsideRoot | None:
    """The problem with ``path`` under ``root`` (the first link that leaves it), else None."""
    root, path = Path(root), Path(path)
    try:  # absolute, but not normalised: a `..` below the root is seen
        rel = path.absolute().relative_to(root.absolute())
    except ValueError:
        return None  # not under the root: the caller's own choice, not a results folder's
    real_root = os.path.realpath(root)
    cur = root
    for part in rel.parts:
        cur = cur / part
        if part == "..":
            return OutsideRoot(root, cur, os.path.realpath(cur))
        if os.path.islink(cur):
            real = os.path.realpath(cur)
            if not _below(real, real_root):
                return OutsideRoot(root, cur, os.readlink(cur))
        elif not os.path.lexists(cur):
            break  # nothing below a missing component exists to lead out
    return None


def inside(root: str | os.PathLike, path: str | os.PathLike) -> Path:
    """``path``, after checking that it stays inside ``root``; ``OutsideRoot`` otherwise."""
    problem = outside(root, path)
    if problem is not None:
        raise problem
    return Path(path)
