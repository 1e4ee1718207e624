"""Security scan of a model's files: every file is scanned by a scanner that understands
its format, or is known to hold only data, or is reported unscanned.

Formats are recognised by content, never by file name: a pickle named ``weights.h5`` is a
pickle. Nothing is deserialised here — pickles are read opcode by opcode
(``pickletools``, picklescan, modelscan), skops files through skops' own listing of the
types they would build (``skops.io.get_untrusted_types``), never the file's own claims of
what to trust (MLflow loads skops files trusting the list in the model's ``MLmodel``).

* pickle, numpy ``.npy`` and zip archives of pickles (PyTorch) → **picklescan** (when
  ``scan.tools`` names it, as it does by default): globals it grades dangerous are
  CRITICAL, suspicious ones MEDIUM;
* pickle, numpy, zip archives and HDF5 → **modelscan** (when ``scan.tools`` names it), which
  grades what it finds LOW to CRITICAL itself (``_modelscan``). A file counts as scanned by
  modelscan only when it scanned the whole file: one it skipped (an archive with a member
  whose name it does not know) is not; one it could not read (a broken pickle, HDF5 on a
  plane without h5py, a ``.npy`` under numpy 2 for modelscan 0.8) fails the scan;
* skops (a zip holding ``schema.json``) → **skops**: a type skops does not trust by default
  is HIGH, CRITICAL when it is from a module that runs code (``os``, ``posix``,
  ``subprocess``, ``builtins``…);
* text, JSON, YAML, safetensors, Parquet, UBJSON (xgboost's ``.ubj``) → **data only**;
* anything no scanner asked for read whole (ONNX, an unknown binary, HDF5 without
  modelscan) → **unscanned**: it blocks the model unless the spec's ``scan.allowUnscanned``
  says otherwise.

A file two scanners read is scanned by both, and counted once for each in ``formats``.
Names in ``scan.allowGlobals`` (``module.name``) are accepted from any scanner. An error of
any scanner fails the scan: it never passes.
"""

from __future__ import annotations

import io
import pickletools
import zipfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from agent.runtimes.local.models import _modelscan
from schemas.model import SEVERITIES

_LEVELS = {"dangerous": "CRITICAL", "suspicious": "MEDIUM"}
RUNS_CODE = frozenset(
    {
        "os", "posix", "nt", "subprocess", "builtins", "__builtin__", "sys", "shutil", "socket",
        "runpy", "importlib", "pickle", "_pickle", "marshal", "code", "codeop", "ctypes", "pty",
        "webbrowser", "commands", "asyncio", "multiprocessing", "pdb", "timeit", "operator",
    }
)  # fmt: skip
"""Modules whose callables run code or reach the system: a type from one is CRITICAL."""
DATA_ONLY = "data only"
UNSCANNED = "unscanned"


@dataclass(frozen=True)
class Finding:
    """One global a file would import (or type it would build), or one unscanned file."""

    reference: str
    severity: str


@dataclass(frozen=True)
class Report:
    """What the scan found, and whether it blocks the model."""

    findings: tuple[Finding, ...]
    files: int
    error: str = ""
    """Why the scan could not be completed (it then blocks)."""
    formats: Counter[tuple[str, str]] = field(default_factory=Counter)
    """(format, scanner or ``data only``/``unscanned``) -> how many files (a file two
    scanners read counts for each)."""
    unscanned: tuple[str, ...] = ()
    """Files no scanner understands, by relative path."""

    def worst(self) -> str:
        """The highest severity found, or ``NONE``."""
        order: tuple[str, ...] = SEVERITIES
        found = [f.severity for f in self.findings]
        return max(found, key=order.index) if found else "NONE"

    def blocks(self, fail_on: str, *, allow_unscanned: bool = False) -> bool:
        """Whether a finding reaches ``fail_on``, a file went unscanned (unless allowed),
        or the scan itself failed."""
        order: tuple[str, ...] = SEVERITIES
        limit = order.index(fail_on)
        unscanned = bool(self.unscanned) and not allow_unscanned
        worst = any(order.index(f.severity) >= limit for f in self.findings)
        return bool(self.error) or unscanned or worst

    def summary(self) -> str:
        """Counts per format and scanner: ``pickle 1 (picklescan), text 5 (data only)``."""
        return ", ".join(f"{fmt} {n} ({how})" for (fmt, how), n in sorted(self.formats.items()))

    def reasons(self) -> str:
        """What blocks, in one line."""
        found = [f"{f.severity} {f.reference}" for f in self.findings]
        found += [f"unscanned {path}" for path in self.unscanned]
        return ", ".join([*([self.error] if self.error else []), *found]) or "nothing"


def scan(directory: Path, *, allow: list[str], tools: list[str] | None = None) -> Report:
    """Scan every file under ``directory`` with the scanners ``tools`` names (default
    picklescan)."""
    wanted = tools or ["picklescan"]
    findings: list[Finding] = []
    errors: list[str] = []
    kinds: dict[str, str] = {}
    read_by: dict[str, list[str]] = {}
    files = sorted(p for p in directory.rglob("*") if p.is_file() and not p.is_symlink())
    for path in files:
        relative = path.relative_to(directory).as_posix()
        data = path.read_bytes()
        kinds[relative] = kind = recognise(data)
        read_by[relative] = []
        if kind in DATA_FORMATS:
            read_by[relative].append(DATA_ONLY)
        elif kind == "skops":
            read_by[relative].append("skops")
            findings += _skops(data, relative, allow, errors)
        elif kind in PICKLESCAN_FORMATS and "picklescan" in wanted:
            read_by[relative].append("picklescan")
            findings += _picklescan(data, relative, kind, allow, errors)
    if "modelscan" in wanted:
        findings += _run_modelscan(directory, kinds, read_by, allow, errors)
    formats = Counter((kinds[f], how) for f, by in read_by.items() for how in by or [UNSCANNED])
    unscanned = tuple(f"{f} ({kinds[f]})" for f, by in read_by.items() if not by)
    return Report(tuple(findings), len(files), "; ".join(errors), formats, unscanned)


DATA_FORMATS = frozenset({"text", "safetensors", "parquet", "ubjson", "empty"})
PICKLESCAN_FORMATS = frozenset({"pickle", "numpy", "zip"})
MODELSCAN_FORMATS = frozenset(_modelscan.SUFFIXES)


def recognise(data: bytes) -> str:
    """The format of a file, by its content (the first test that holds, in this order: a
    pickle is tried before text, as protocol 0 pickles are ASCII)."""
    if not data:
        return "empty"
    if data.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return _zip_kind(data)
    tests: list[tuple[str, bool]] = [
        ("numpy", data.startswith(b"\x93NUMPY")),
        ("hdf5", data.startswith(b"\x89HDF\r\n\x1a\n")),
        ("parquet", data.startswith(b"PAR1") and data.endswith(b"PAR1")),
    ]
    found = next((name for name, holds in tests if holds), None)
    if found is not None:
        return found
    later = (("pickle", _is_pickle), ("safetensors", _is_safetensors), ("text", _is_text))
    found = next((name for name, test in later if test(data)), None)
    if found is not None:
        return found
    ubjson = data[:1] in (b"{", b"[") and data[1:2] in _UBJ_MARKERS
    return "ubjson" if ubjson else "binary"


_UBJ_MARKERS = frozenset(bytes([c]) for c in b"iUIlLdDSHCTFZN{[$#}]")


def _zip_kind(data: bytes) -> str:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError, ValueError):
        return "binary"
    return "skops" if "schema.json" in names else "zip"


def _is_pickle(data: bytes) -> bool:
    """Whether ``data`` reads as pickle opcodes through a STOP (read, never executed)."""
    if data[:1] == b"\x80" and data[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        return True
    try:
        for opcode, _, _ in pickletools.genops(io.BytesIO(data)):
            if opcode.name == "STOP":
                return True
    except Exception:  # not pickle opcodes, whatever pickletools raises
        return False
    return False


def _is_safetensors(data: bytes) -> bool:
    size = int.from_bytes(data[:8], "little") if len(data) >= 8 else 0
    return 2 <= size <= len(data) - 8 and data[8:9] == b"{"


def _is_text(data: bytes) -> bool:
    if b"\x00" in data:
        return False
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _picklescan(
    data: bytes, relative: str, kind: str, allow: list[str], errors: list[str]
) -> list[Finding]:
    from picklescan import scanner  # noqa: PLC0415 - scanner imports are heavy; builds only

    scan_with = {
        "pickle": scanner.scan_pickle_bytes,
        "numpy": scanner.scan_numpy,
        "zip": scanner.scan_zip_bytes,
    }[kind]
    result = scan_with(io.BytesIO(data), relative)
    if result.scan_err:
        errors.append(f"picklescan could not read {relative}")
    return [
        Finding(f"{g.module}.{g.name}", _LEVELS[g.safety.value])
        for g in result.globals
        if g.safety.value in _LEVELS and f"{g.module}.{g.name}" not in allow
    ]


def _skops(data: bytes, relative: str, allow: list[str], errors: list[str]) -> list[Finding]:
    import skops.io  # noqa: PLC0415 - imported by builds only

    try:
        untrusted = skops.io.get_untrusted_types(data=data)
    except Exception as exc:  # a broken file is not a passed scan, whatever skops raises
        errors.append(f"skops could not read {relative}: {type(exc).__name__}")
        return []
    return [
        Finding(name, "CRITICAL" if name.split(".")[0] in RUNS_CODE else "HIGH")
        for name in untrusted
        if name not in allow
    ]


def _run_modelscan(
    directory: Path,
    kinds: dict[str, str],
    read_by: dict[str, list[str]],
    allow: list[str],
    errors: list[str],
) -> list[Finding]:
    """Run modelscan over the files in formats it reads; record the ones it scanned whole."""
    outcome = _modelscan.run(
        directory, {f: kind for f, kind in kinds.items() if kind in MODELSCAN_FORMATS}
    )
    errors += outcome.errors
    for relative in sorted(outcome.scanned):
        read_by[relative].append("modelscan")
    return [Finding(i.reference, i.severity) for i in outcome.issues if i.reference not in allow]
