"""Security scan of a model directory with picklescan (the one module that imports it).

picklescan lists the globals every pickle in the directory would import and
grades them; Gitplane maps "dangerous" to CRITICAL and "suspicious" to
MEDIUM, and blocks at the model's ``scan.failOn`` severity. Globals named in
``scan.allowGlobals`` are accepted.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from schemas.model import SEVERITIES

_LEVELS = {"dangerous": "CRITICAL", "suspicious": "MEDIUM"}


@dataclass(frozen=True)
class Finding:
    """One global a pickle would import."""

    reference: str
    severity: str


@dataclass(frozen=True)
class Report:
    """What the scan found, and whether it blocks the model."""

    findings: tuple[Finding, ...]
    files: int
    error: bool

    def worst(self) -> str:
        """The highest severity found, or ``NONE``."""
        order: tuple[str, ...] = SEVERITIES
        found = [f.severity for f in self.findings]
        return max(found, key=order.index) if found else "NONE"

    def blocks(self, fail_on: str) -> bool:
        """Whether a finding reaches ``fail_on`` (or the scan itself failed)."""
        order: tuple[str, ...] = SEVERITIES
        limit = order.index(fail_on)
        return self.error or any(order.index(f.severity) >= limit for f in self.findings)


def scan(directory: Path, *, allow: list[str]) -> Report:
    """Scan every file under ``directory``."""
    from picklescan import scanner  # noqa: PLC0415 - scanner imports are heavy; builds only

    result = scanner.scan_directory_path(str(directory))
    findings = tuple(
        Finding(f"{g.module}.{g.name}", _LEVELS[g.safety.value])
        for g in result.globals
        if g.safety.value in _LEVELS and f"{g.module}.{g.name}" not in allow
    )
    return Report(findings, result.scanned_files, bool(result.scan_err))
