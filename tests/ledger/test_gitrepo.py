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


class _Recording(gitrepo.GitRepo):
    """A GitRepo that records the git subcommands it runs."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.ran: list[str] = []

    def execute(self, *args: str, **kwargs: object) -> object:  # type: ignore[override]
        self.ran.append(args[0])
        return super().execute(*args, **kwargs)  # type: ignore[arg-type]


def test_fetch_all_snapshots_every_gitplane_branch_and_fetches_only_what_moved(
    tmp_path: Path,
) -> None:
    remote = tmp_path / "remote.git"
    gitrepo.GitRepo(tmp_path).run("init", "--quiet", "--bare", str(remote))
    writer = gitrepo.Mirror.open(tmp_path / "writer", f"file://{remote}")
    who = gitrepo.Identity("writer", "writer@gitplane.invalid")
    refs = ["refs/heads/gitplane/commands/a", "refs/heads/gitplane/status/a", "refs/heads/main"]
    for ref in refs:
        writer.push(writer.commit(None, {"f": ref.encode()}, message=ref, who=who), ref)
    gitrepo.Mirror.open(tmp_path / "reader", f"file://{remote}")
    recording = _Recording(tmp_path / "reader")
    reader = gitrepo.Mirror(recording, f"file://{remote}")

    snapshot = reader.fetch_all()
    assert recording.ran == ["ls-remote", "for-each-ref", "fetch"]  # one fetch for all
    assert sorted(snapshot) == refs[:2]  # only gitplane/ branches
    for ref, commit in snapshot.items():
        assert reader.read(commit, ["f"], max_bytes=100) == {"f": ref.encode()}

    recording.ran.clear()
    assert reader.fetch_all() == snapshot
    assert recording.ran == ["ls-remote", "for-each-ref"]  # nothing moved: no fetch


def test_push_many_updates_every_ref_that_did_not_move_in_one_push(tmp_path: Path) -> None:
    remote = tmp_path / "remote.git"
    gitrepo.GitRepo(tmp_path).run("init", "--quiet", "--bare", str(remote))
    who = gitrepo.Identity("writer", "writer@gitplane.invalid")
    mine = gitrepo.Mirror.open(tmp_path / "mine", f"file://{remote}")
    theirs = gitrepo.Mirror.open(tmp_path / "theirs", f"file://{remote}")
    refs = [f"refs/heads/gitplane/commands/p{i}" for i in range(3)]
    for ref in refs:
        mine.push(mine.commit(None, {"f": b"1"}, message="1", who=who), ref)
    tips = theirs.fetch(refs)
    moved = refs[1]
    theirs.push(theirs.commit(tips[moved], {"f": b"theirs"}, message="2", who=who), moved)

    updates = {ref: mine.commit(tips[ref], {"f": b"mine"}, message="2", who=who) for ref in refs}
    recording = _Recording(mine.repo.path)
    refused = gitrepo.Mirror(recording, mine.url).push_many(updates)

    assert refused == {moved}  # the race lost; the others landed all the same
    assert recording.ran.count("push") == 1
    now = mine.remote_heads()
    assert {ref: now[ref] for ref in refs if ref != moved} == {
        ref: updates[ref] for ref in refs if ref != moved
    }
    assert now[moved] != updates[moved]
    assert mine.fetch([refs[0]])[refs[0]] == updates[refs[0]]
    with pytest.raises(gitrepo.PushRejectedError):
        mine.push(updates[moved], moved)
