"""Data between the steps of one DAG run, on local disk.

An upstream step's artifacts are downloaded once per run into its *tree*:
``<step>/`` holds its run's artifacts, or ``<step>/part-<k>/`` those of instance
``k`` when the step is partitioned (a failed instance leaves its part out). Each
step instance gets its own copy of its upstream trees in its input directory, so a
project that writes into its inputs cannot change what another instance sees; the
``from`` tree of a partitioned step holds only that instance's share.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from agent.runtimes.local import _mlflow
from schemas.dag import Partition


@dataclass(frozen=True)
class Trees:
    """Where one run downloads its steps' artifacts."""

    tracking_uri: str
    root: Path

    def tree(self, step: str, runs: Sequence[str], *, partitioned: bool) -> Path:
        """The step's artifacts, downloaded on first use (``runs`` has one id per instance,
        empty where an instance failed)."""
        tree = self.root / step
        if not tree.exists():
            for index, run_id in enumerate(runs):
                into = tree / f"part-{index}" if partitioned else tree
                if run_id:
                    _mlflow.download_run_artifacts(self.tracking_uri, run_id, into)
            tree.mkdir(parents=True, exist_ok=True)
        return tree


def files(tree: Path) -> list[str]:
    """Every file below ``tree``, as sorted ``/``-separated relative paths."""
    return sorted(p.relative_to(tree).as_posix() for p in tree.rglob("*") if p.is_file())


def fill(
    target: Path,
    trees: dict[str, Path],
    partition: Partition | None,
    share: Sequence[str],
) -> Path:
    """An input directory: ``<upstream>/`` copies of each tree; for the ``from`` step of
    ``partition``, only the files in ``share``."""
    target.mkdir(parents=True, exist_ok=True)
    for upstream, tree in trees.items():
        if partition is not None and upstream == partition.from_:
            _copy_files(tree, target / upstream, share)
        else:
            shutil.copytree(tree, target / upstream, dirs_exist_ok=True)
    return target


def _copy_files(source: Path, target: Path, names: Sequence[str]) -> None:
    target.mkdir(parents=True, exist_ok=True)
    for name in names:
        (target / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source / name, target / name)
