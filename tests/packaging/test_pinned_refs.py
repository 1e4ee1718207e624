"""The refs the templates and docs tell users to install pin a commit that exists.

Nothing is published, so the CI and pre-commit templates install Gitplane from the user's
mirror of this repository at a pinned commit: every such pin is a full 40-hex commit id of
this repository's history (a tag is a movable name, and ``v0.1.0`` never existed). A
placeholder (``<commit>``) or a variable (``$GITPLANE_COMMIT``) is not a pin.
"""

from __future__ import annotations

import re
import subprocess

import pytest

from tests.conftest import ROOT, git

PINNING = (
    ".pre-commit-hooks.yaml",
    "example-repo/.pre-commit-config.yaml",
    "example-repo/.github/workflows/gitplane.yml",
    "example-repo/.gitlab-ci.yml",
    "example-repo/.github/workflows/gitplane-attest.yml",
    "example-repo/.gitlab/gitplane-attest.gitlab-ci.yml",
    "docs/validate.md",
)
"""Files that pin a commit; each must pin at least one."""
MENTIONING = ("docs/workflow.md", "README.md", "docs/operations.md")
"""Files that tell how to install: whatever they pin is checked too."""

PIN = re.compile(
    r"""\brev:\s*["']?(?P<rev>[^\s"'#]+)"""
    r"""|\bGITPLANE_COMMIT:\s*["']?(?P<commit>[^\s"'#]+)"""
    r"""|\bgit\+[^\s"'`@]+@(?P<url_ref>[^\s"'`]+)"""
)
FULL_ID = re.compile(r"[0-9a-f]{40}")


def pins(text: str) -> list[str]:
    """Every ref ``text`` pins: ``rev:``, ``GITPLANE_COMMIT:`` and ``git+URL@REF``, leaving
    out placeholders and variables."""
    found = (next(g for g in m.groups() if g) for m in PIN.finditer(text))
    return [ref for ref in found if not ref.startswith(("<", "$"))]


def _is_commit(ref: str) -> bool:
    done = subprocess.run(
        ["git", "cat-file", "-e", f"{ref}^{{commit}}"], cwd=ROOT, capture_output=True, check=False
    )
    return done.returncode == 0


@pytest.mark.parametrize("name", PINNING + MENTIONING)
def test_every_pinned_ref_is_a_full_commit_id_of_this_repository(name: str) -> None:
    refs = pins((ROOT / name).read_text())
    if name in PINNING:
        assert refs, f"{name} pins no commit"
    for ref in refs:
        assert FULL_ID.fullmatch(ref), f"{name} pins {ref!r}: pin a full 40-hex commit id"
        shallow = git(ROOT, "rev-parse", "--is-shallow-repository") == "true"
        assert _is_commit(ref), f"{name} pins {ref}, which is not a commit of this repository" + (
            " (this clone is shallow: `git fetch --unshallow` to check pins)" if shallow else ""
        )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("    rev: v0.1.0\n", ["v0.1.0"]),
        ('  GITPLANE_COMMIT: "abc"  # tested\n', ["abc"]),
        ('pip install "gitplane @ git+https://h/g.git@v1"', ["v1"]),
        ("git+$GITPLANE_REPO@$GITPLANE_COMMIT and git+https://h/g@<commit>", []),
    ],
    ids=["pre-commit-rev", "ci-variable", "pip-url", "placeholders"],
)
def test_pins_are_found_where_users_would_copy_them(text: str, expected: list[str]) -> None:
    assert pins(text) == expected
