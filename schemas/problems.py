"""Problems found in a spec repository, each placed at file, line and column."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True, order=True)
class Problem:
    """One thing wrong with one file; ``line``/``column`` are 1-based, 0 when unknown."""

    file: str
    line: int
    column: int
    path: str
    """Field path in the document, Kubernetes style: ``spec.steps[2].dependsOn[0]``."""
    message: str

    def as_dict(self) -> dict[str, Any]:
        """The JSON form used by ``--output json``."""
        return asdict(self)

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}:{self.column}" if self.line else self.file
        field = f" {self.path}:" if self.path else ""
        return f"{where}:{field} {self.message}"


def format_path(path: Iterable[str | int]) -> str:
    """``("spec", "steps", 2, "name")`` -> ``spec.steps[2].name``."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _normal(word: str) -> str:
    return word.replace("_", "").replace("-", "").lower()


def closest(word: str, candidates: Iterable[str]) -> str | None:
    """The candidate ``word`` most likely meant (same letters, or close by edit), if any."""
    options = sorted(set(candidates))
    same = [c for c in options if _normal(c) == _normal(word)]
    close = same or difflib.get_close_matches(word, options, n=1, cutoff=0.6)
    return close[0] if close else None


def did_you_mean(word: str, candidates: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest candidate, or an empty string."""
    match = closest(word, candidates)
    return f" (did you mean {match!r}?)" if match else ""
