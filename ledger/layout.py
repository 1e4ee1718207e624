"""Branch and file names of the logs in git (docs/adr/0005-ledger-git-layout.md)."""

from __future__ import annotations

ROOT_REF = "refs/heads/gitplane/root"
APPROVALS_REF = "refs/heads/gitplane/approvals"
"""Signed approval records (docs/adr/0018-signed-approvals.md)."""
APPROVERS_ANCHOR = "approvers/anchor.json"
"""On the root branch: the root-signed first approval rule (ledger/anchor.py)."""
TIMESTAMP = "timestamp.json"
STATUS = "status.json"


def commands_ref(plane: str) -> str:
    """The branch holding ``plane``'s command log."""
    return f"refs/heads/gitplane/commands/{plane}"


def status_ref(plane: str) -> str:
    """The branch holding ``plane``'s status log."""
    return f"refs/heads/gitplane/status/{plane}"


def root_path(version: int) -> str:
    """The file of root version ``version`` on the root branch."""
    return f"root/{version}.json"


def bundle_path(sequence: int) -> str:
    """The file of bundle ``sequence`` on a command branch."""
    return f"bundles/{sequence:010d}.json"
