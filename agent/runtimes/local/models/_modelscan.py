"""The one module that runs modelscan (``modelscan.modelscan.ModelScan``, default settings).

modelscan picks its scanners by file extension; the scan recognises formats by content. So
modelscan is shown each file under a name that states the format the scan found in it
(``SUFFIXES``): a pickle named ``weights.h5`` is shown as a ``.pkl``, not handed to the HDF5
scanner. The names are links in a temporary directory; the model's files are not copied.

modelscan never deserialises what it scans: pickles are read opcode by opcode
(``pickletools.genops``), ``.npy`` headers by numpy's header parser, HDF5 attributes by
h5py; it runs in this process. Whatever modelscan raises becomes an error of the scan.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SUFFIXES = {"pickle": ".pkl", "numpy": ".npy", "zip": ".zip", "hdf5": ".h5"}
"""Format (by content) -> the extension under which modelscan scans it."""


@dataclass(frozen=True)
class Issue:
    """One operator modelscan grades unsafe in a file."""

    path: str
    """The file, relative to the model directory."""
    reference: str
    """``module.operator``, as ``scan.allowGlobals`` names it."""
    severity: str


@dataclass(frozen=True)
class Outcome:
    """What modelscan found, which files it scanned whole, and what it could not do."""

    issues: tuple[Issue, ...] = ()
    scanned: frozenset[str] = frozenset()
    """Files modelscan scanned whole (every member, for an archive): not skipped, no error."""
    errors: tuple[str, ...] = ()


def run(directory: Path, kinds: dict[str, str]) -> Outcome:
    """Scan the files ``kinds`` names (relative path -> format, each in ``SUFFIXES``)."""
    try:
        from modelscan.modelscan import ModelScan  # noqa: PLC0415 - heavy; builds only
    except ImportError as exc:
        return Outcome(errors=(f"modelscan cannot run on this plane: {exc}",))
    with tempfile.TemporaryDirectory(prefix="gitplane-modelscan-") as staging:
        shown = _show(directory, kinds, Path(staging))
        try:
            return _outcome(ModelScan().scan(Path(staging)), shown)
        except Exception as exc:  # a crash inside modelscan is a failed scan, never a pass
            return Outcome(errors=(f"modelscan failed: {type(exc).__name__}: {exc}",))


def _show(directory: Path, kinds: dict[str, str], staging: Path) -> dict[str, str]:
    """Link each file into ``staging`` as ``<n><suffix>``; shown name -> relative path."""
    shown = {}
    for number, (relative, kind) in enumerate(sorted(kinds.items())):
        name = f"{number}{SUFFIXES[kind]}"
        (staging / name).symlink_to((directory / relative).absolute())
        shown[name] = relative
    return shown


def _outcome(results: dict[str, Any], shown: dict[str, str]) -> Outcome:
    """modelscan's report, in the model directory's paths."""
    summary = results["summary"]

    def original(source: str) -> str:  # "3.zip:archive/data.pkl" -> the archive's path
        return shown[source.split(":", 1)[0]]

    issues = tuple(
        Issue(original(i["source"]), f"{i['module']}.{i['operator']}", i["severity"])
        for i in results["issues"]
    )
    errors = tuple(
        f"modelscan could not scan {original(e['source'])}: {e['description']}"
        if "source" in e
        else f"modelscan: {e['description']}"
        for e in results["errors"]
    )
    unfinished = {original(e["source"]) for e in results["errors"] if "source" in e}
    unfinished |= {original(s["source"]) for s in summary["skipped"]["skipped_files"]}
    read = {original(s) for s in summary["scanned"].get("scanned_files", [])}
    return Outcome(issues, frozenset(read - unfinished), errors)
