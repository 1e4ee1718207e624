"""Small git helpers: remote URLs and error messages users see."""

from __future__ import annotations

from pathlib import Path

import pytest

from ledger import gitrepo


def test_local_paths_become_absolute_and_urls_stay(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "specs.git").mkdir()
    monkeypatch.chdir(tmp_path)
    assert gitrepo.remote_url("specs.git") == str(tmp_path / "specs.git")
    for url in (
        "https://git.example.com/ml/specs.git",
        "git@git.example.com:ml/specs.git",
        "file:///srv/specs.git",
        "git://127.0.0.1/specs.git",
    ):
        assert gitrepo.remote_url(url) == url


def test_an_unreachable_remote_says_why(tmp_path: Path) -> None:
    mirror = gitrepo.Mirror.open(tmp_path / "mirror.git", str(tmp_path / "nowhere.git"))
    with pytest.raises(gitrepo.GitError) as failure:
        mirror.remote_heads()
    assert "does not appear to be a git repository" in str(failure.value)
