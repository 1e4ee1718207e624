"""The one module that runs git: plumbing reads of trees and blobs at a commit.

Hot reads use git plumbing directly (``ls-tree`` then a single
``cat-file --batch`` for every blob), which is several times faster than
reading objects one by one through GitPython (reference/performance.md B5).
Every invocation runs with hooks, fsmonitor and external protocols disabled,
whatever the repository's own configuration says, and with a timeout. All
failures surface as :class:`GitError`.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from schemas import errors
from schemas.tree import TreeEntry

TIMEOUT_SECONDS = 120.0

_HARDENING = (
    "-c",
    "core.hooksPath=/dev/null",
    "-c",
    "core.fsmonitor=false",
    "-c",
    "protocol.ext.allow=never",
    "-c",
    "submodule.recurse=false",
    "-c",
    "core.quotePath=false",
    "-c",
    "transfer.fsckObjects=true",
    "-c",
    "fetch.recurseSubmodules=false",
    "-c",
    "http.lowSpeedLimit=1000",
    "-c",
    "http.lowSpeedTime=30",
)
NAMED_PATHS = 64
"""Up to this many, :meth:`Mirror.read` lists the files it reads by name, not the whole tree."""
_ENV = {
    "GIT_TERMINAL_PROMPT": "0",
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_HTTP_LOW_SPEED_LIMIT": "1000",
    "GIT_HTTP_LOW_SPEED_TIME": "30",
    "LC_ALL": "C",
}


class GitError(errors.GitplaneError):
    """A git command failed, timed out, or git returned data we cannot use."""


@dataclass(frozen=True)
class CommitInfo:
    """What planning needs to know of a commit besides its tree."""

    parents: int
    trailers: dict[str, frozenset[str]]


@dataclass(frozen=True)
class Change:
    """One path that differs between two commits (``git diff-tree --raw``)."""

    path: str
    old_mode: str
    new_mode: str
    old_oid: str
    new_oid: str
    status: str
    """``A`` added, ``D`` deleted, ``M`` modified, ``T`` type changed."""


@dataclass(frozen=True)
class GitRepo:
    """A repository on disk, working or bare."""

    path: Path

    def run(
        self, *args: str, stdin: bytes | None = None, env: dict[str, str] | None = None
    ) -> bytes:
        """Run ``git args`` hardened; return stdout or raise :class:`GitError`."""
        done = self.execute(*args, stdin=stdin, env=env)
        if done.returncode != 0:
            raise GitError(f"git {args[0]}: {_reason(done.stderr)}")
        return done.stdout

    def execute(
        self, *args: str, stdin: bytes | None = None, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[bytes]:
        """Run ``git args`` hardened and return the finished process, whatever its exit code."""
        command = ["git", *_HARDENING, *args]
        try:
            return subprocess.run(
                command,
                cwd=self.path,
                input=stdin,
                capture_output=True,
                timeout=TIMEOUT_SECONDS,
                env={**os.environ, **_ENV, **(env or {})},
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise GitError(f"git {args[0]}: {exc}") from None

    def start(self, *args: str) -> Callable[[], bytes]:
        """Start ``git args`` hardened and go on; the returned call waits for it and returns
        its stdout or raises :class:`GitError`. Only for small outputs: nothing reads the
        pipe until the call."""
        command = ["git", *_HARDENING, *args]
        try:
            process = subprocess.Popen(
                command,
                cwd=self.path,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env={**os.environ, **_ENV},
            )
        except OSError as exc:
            raise GitError(f"git {args[0]}: {exc}") from None

        def result() -> bytes:
            try:
                out, err = process.communicate(timeout=TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired as exc:
                process.kill()
                process.communicate()
                raise GitError(f"git {args[0]}: {exc}") from None
            if process.returncode != 0:
                raise GitError(f"git {args[0]}: {_reason(err)}")
            return out

        return result

    def logs_url(self) -> str:
        """Where this repository's ``gitplane/*`` logs are: here when it holds them (the
        server's repository), else its ``origin`` (a clone only has them as remote
        branches), else here."""
        here = self.execute("rev-parse", "--verify", "--quiet", "refs/heads/gitplane/root")
        if here.returncode == 0:
            return str(self.path)
        origin = self.execute("config", "--get", "remote.origin.url")
        url = origin.stdout.decode().strip()
        if origin.returncode != 0 or not url:
            return str(self.path)
        if "://" in url or ":" in url.split("/", 1)[0]:  # a URL, or scp-like host:path
            return url
        return str((self.path / url).resolve())  # a local path, relative to the repository

    def resolve(self, rev: str) -> str:
        """The full commit id ``rev`` names."""
        if rev.startswith("-"):
            raise GitError(f"invalid revision {rev!r}")
        return (
            self.run("rev-parse", "--verify", "--end-of-options", f"{rev}^{{commit}}")
            .decode()
            .strip()
        )

    def list_tree(
        self, commit: str, prefix: str = "", paths: Sequence[str] = ()
    ) -> list[TreeEntry]:
        """Every entry below ``prefix`` at ``commit``, paths relative to ``prefix``; only
        those at or below ``paths`` (taken literally, no wildcards) when any are given."""
        treeish = f"{commit}:{prefix}" if prefix else commit
        literally = {"GIT_LITERAL_PATHSPECS": "1"}
        out = self.run("ls-tree", "-r", "-z", "--long", treeish, "--", *paths, env=literally)
        return [_tree_entry(record) for record in out.split(b"\0") if record]

    def archive(self, commit: str, path: str) -> bytes:
        """A tar of the tree at ``path`` in ``commit`` (regular files only are extracted)."""
        treeish = f"{commit}:{path}" if path else commit
        return self.run("archive", "--format=tar", treeish)

    def diff_tree(self, old: str, new: str, prefix: str = "") -> list[Change]:
        """What changed below ``prefix`` from commit ``old`` to ``new``: every blob, and every
        tree with a changed blob below it, paths relative to ``prefix`` (no rename detection)."""
        out = self.run(
            "diff-tree", "-r", "-t", "-z", "--raw", "--no-renames", old, new, "--", prefix or "."
        )
        fields = out.split(b"\0")
        cut = f"{prefix.strip('/')}/" if prefix.strip("/") else ""
        changes = []
        for meta, path in zip(fields[0:-1:2], fields[1::2], strict=True):
            old_mode, new_mode, old_oid, new_oid, status = meta.lstrip(b":").decode().split()
            name = path.decode("utf-8", "surrogateescape")
            if cut and not name.startswith(cut):
                continue  # the prefix directory itself
            changes.append(Change(name[len(cut) :], old_mode, new_mode, old_oid, new_oid, status))
        return changes

    def object_info(self, names: Sequence[str]) -> dict[str, tuple[str, str, int]]:
        """Id, type and size of objects by name (an id or ``commit:path``), in one
        ``cat-file --batch-check``; names that do not exist are left out."""
        if not names:
            return {}
        if any("\n" in name for name in names):
            raise GitError("git cat-file: an object name holds a newline")
        out = self.run("cat-file", "--batch-check", stdin="\n".join(names).encode() + b"\n")
        found: dict[str, tuple[str, str, int]] = {}
        lines = out.decode("utf-8", "surrogateescape").splitlines()
        for name, line in zip(names, lines, strict=True):
            if line.endswith((" missing", " ambiguous")):
                continue
            oid, kind, size = line.split()
            found[name] = (oid, kind, int(size))
        return found

    def tree_id(self, commit: str, path: str) -> str:
        """The id of the tree at ``path`` in ``commit`` (empty if there is none)."""
        done = self.execute("rev-parse", "--verify", "--quiet", f"{commit}:{path}")
        return done.stdout.decode().strip() if done.returncode == 0 else ""

    def commit_info(self, rev: str) -> CommitInfo:
        """Parents and trailers of a commit (``Approved-by: ...`` lines, unfolded)."""
        return self.start_commit_info(rev)()

    def start_commit_info(self, rev: str) -> Callable[[], CommitInfo]:
        """:meth:`commit_info`, started now and read by the returned call."""
        pending = self.start("show", "-s", "--format=%P%x00%(trailers:unfold,only)", rev, "--")
        return lambda: _commit_info(pending())

    def is_ancestor(self, ancestor: str, commit: str) -> bool:
        """Whether ``ancestor`` is ``commit`` or one of its ancestors (False when either is
        not a commit here)."""
        if not commit or ancestor.startswith("-") or commit.startswith("-"):
            return False
        return self.execute("merge-base", "--is-ancestor", ancestor, commit).returncode == 0

    def is_bare(self) -> bool:
        """Whether this is a bare repository (no working tree)."""
        return self.run("rev-parse", "--is-bare-repository").strip() == b"true"

    def has_changes(self, prefix: str = "") -> bool:
        """Whether the working tree differs from HEAD under ``prefix`` (untracked included)."""
        return bool(self.run("status", "--porcelain", "--", prefix or ".").strip())

    def read_blobs(self, oids: Sequence[str]) -> dict[str, bytes]:
        """The contents of blobs by id, in one ``cat-file --batch`` process."""
        if not oids:
            return {}
        out = self.run("cat-file", "--batch", stdin="\n".join(oids).encode() + b"\n")
        return _parse_batch(out, len(oids))


def _commit_info(out: bytes) -> CommitInfo:
    parents, _, trailers = out.decode(errors="replace").partition("\0")
    found: dict[str, set[str]] = {}
    for line in trailers.splitlines():
        key, sep, value = line.partition(":")
        if sep and value.strip():
            found.setdefault(key.strip(), set()).add(value.strip())
    return CommitInfo(len(parents.split()), {k: frozenset(v) for k, v in found.items()})


def _reason(stderr: bytes) -> str:
    """The line of git's stderr that says what went wrong (``fatal:`` first)."""
    lines = [line.strip() for line in stderr.decode(errors="replace").splitlines() if line.strip()]
    for prefix in ("fatal:", "error:"):
        found = [line for line in lines if line.startswith(prefix)]
        if found:
            return found[0].removeprefix(prefix).strip()
    return lines[-1] if lines else "failed"


def remote_url(url: str) -> str:
    """A git URL as given, or a local path made absolute (git runs in the mirror)."""
    if "://" in url or (":" in url.split("/", 1)[0] and not Path(url).exists()):
        return url
    return str(Path(url).resolve())


def _tree_entry(record: bytes) -> TreeEntry:
    meta, _, path = record.partition(b"\t")
    mode, kind, oid, size = meta.split()
    return TreeEntry(
        path.decode("utf-8", "surrogateescape"),
        mode.decode(),
        0 if size == b"-" else int(size),
        oid.decode() if kind == b"blob" else None,
    )


def _parse_batch(out: bytes, count: int) -> dict[str, bytes]:
    blobs: dict[str, bytes] = {}
    at = 0
    for _ in range(count):
        end = out.index(b"\n", at)
        header = out[at:end].split()
        if len(header) != 3 or header[1] != b"blob":
            raise GitError(f"git cat-file: unexpected object {out[at:end]!r}")
        size = int(header[2])
        blobs[header[0].decode()] = out[end + 1 : end + 1 + size]
        at = end + 2 + size
    return blobs


def find_repo(path: Path) -> tuple[GitRepo, str] | None:
    """The repository containing ``path`` and ``path``'s prefix inside it, or None."""
    probe = GitRepo(path if path.is_dir() else path.parent)
    try:
        if probe.run("rev-parse", "--is-bare-repository").strip() == b"true":
            return probe, ""
        top = probe.run("rev-parse", "--show-toplevel").decode().strip()
    except GitError:
        return None
    prefix = path.resolve().relative_to(Path(top).resolve()).as_posix()
    return GitRepo(Path(top)), "" if prefix == "." else prefix


@dataclass(frozen=True)
class Identity:
    """Who commits: the reconciler, or one plane's agent."""

    name: str
    email: str

    def env(self) -> dict[str, str]:
        """Author and committer variables for git."""
        return {
            "GIT_AUTHOR_NAME": self.name,
            "GIT_AUTHOR_EMAIL": self.email,
            "GIT_COMMITTER_NAME": self.name,
            "GIT_COMMITTER_EMAIL": self.email,
        }


class UnsafeEntryError(GitError):
    """A tree entry that is not a regular file (a symlink or a submodule)."""


class BlobTooLargeError(GitError):
    """A blob above its size cap, refused by its recorded size before reading."""


class PushRejectedError(GitError):
    """The remote moved since it was fetched: fetch, decide again, retry."""


class Snapshot(dict[str, str]):
    """Ref -> pinned commit of the branches fetched, without those git refused to take:
    :attr:`broken` names them, with git's reason (a hostile object that fails its fsck)."""

    broken: dict[str, str]

    def __init__(self, heads: Mapping[str, str], broken: Mapping[str, str] | None = None) -> None:
        super().__init__({r: c for r, c in heads.items() if r not in (broken or {})})
        self.broken = dict(broken or {})


@dataclass(frozen=True)
class Mirror:
    """A bare local mirror of a remote's ``gitplane/`` branches: read, commit, push."""

    repo: GitRepo
    url: str

    @classmethod
    def open(cls, path: Path, url: str) -> Mirror:
        """Create the bare mirror at ``path`` if needed, pointing ``origin`` at ``url``."""
        if not (path / "HEAD").exists():
            path.mkdir(parents=True, exist_ok=True)
            GitRepo(path).run("init", "--quiet", "--bare")
        return cls(GitRepo(path), remote_url(url))

    def remote_heads(self, *patterns: str) -> dict[str, str]:
        """Ref -> commit on the remote (one cheap ``ls-remote``); default all ``gitplane/`` refs."""
        wanted = patterns or ("refs/heads/gitplane/*",)
        out = self.repo.run("ls-remote", "--refs", self.url, *wanted).decode()
        return {ref: sha for sha, ref in (line.split("\t") for line in out.splitlines())}

    def fetch(self, refs: Sequence[str]) -> Snapshot:
        """Fetch ``refs`` that exist on the remote; return ref -> pinned commit id.

        Refs already at the advertised commit are not fetched again.
        """
        heads = self.remote_heads(*refs)
        wanted = {ref: heads[ref] for ref in refs if ref in heads}
        return Snapshot(wanted, self._fetch_moved(wanted))

    def fetch_all(self) -> Snapshot:
        """Fetch every ``gitplane/`` branch of the remote (one ``ls-remote``, and one
        ``fetch`` of those that moved); return ref -> pinned commit id: a snapshot to
        read many logs from without asking the remote again."""
        heads = self.remote_heads()
        return Snapshot(heads, self._fetch_moved(heads))

    def _fetch_moved(self, heads: Mapping[str, str]) -> dict[str, str]:
        """Fetch the refs of ``heads`` whose local copy is not at the given commit; the refs
        git refused to take (objects failing its fsck), each with why.

        One fetch takes them all. When git's fsck refuses what it received, each ref is
        fetched alone, so that one hostile branch fails only itself; any other failure (an
        unreachable remote) is raised at once, not once per ref."""
        have = self._locals() if heads else {}
        stale = [ref for ref, commit in heads.items() if have.get(_local(ref)) != commit]
        try:
            self._fetch_refs(stale)
        except GitError as together:
            if not _is_fsck(str(together)):
                raise
            broken = {}
            for ref in stale:
                try:
                    self._fetch_refs([ref])
                except GitError as alone:
                    broken[ref] = str(alone)
            return broken
        return {}

    def _fetch_refs(self, refs: Sequence[str]) -> None:
        if refs:
            specs = [f"+{ref}:{_local(ref)}" for ref in refs]
            self.repo.run(
                "fetch", "--quiet", "--no-tags", "--no-write-fetch-head", self.url, *specs
            )

    def _locals(self) -> dict[str, str]:
        out = self.repo.run("for-each-ref", "--format=%(objectname) %(refname)", "refs/remotes/")
        return {ref: sha for sha, ref in (line.split(" ", 1) for line in out.decode().splitlines())}

    def read(self, commit: str, paths: Sequence[str], *, max_bytes: int) -> dict[str, bytes]:
        """Files at ``commit`` (regular blobs of at most ``max_bytes``); missing ones are absent.

        A few files are listed by name, so that reading the newest bundle of a long log
        does not list the whole log; many are picked from one listing of the tree.
        """
        if not paths:
            return {}
        named = paths if len(paths) <= NAMED_PATHS else ()
        entries = {e.path: e for e in self.repo.list_tree(commit, paths=named)}
        wanted = [entries[p] for p in paths if p in entries]
        for entry in wanted:
            if entry.mode not in ("100644", "100755") or entry.oid is None:
                raise UnsafeEntryError(f"{entry.path}: mode {entry.mode} is not a regular file")
            if entry.size > max_bytes:
                raise BlobTooLargeError(
                    f"{entry.path}: {entry.size} bytes, above the {max_bytes}-byte cap"
                )
        blobs = self.repo.read_blobs([e.oid for e in wanted if e.oid])
        return {e.path: blobs[e.oid] for e in wanted if e.oid}

    def list_paths(self, commit: str) -> list[str]:
        """Every file path at ``commit``."""
        return [e.path for e in self.repo.list_tree(commit)]

    def commit(
        self,
        parent: str | None,
        files: dict[str, bytes],
        *,
        message: str,
        who: Identity,
        only: bool = False,
    ) -> str:
        """A commit of ``parent``'s tree with ``files`` added or replaced (with ``only``: a
        tree of ``files`` alone, still a child of ``parent``)."""
        with tempfile.TemporaryDirectory() as tmp:
            env = {**who.env(), "GIT_INDEX_FILE": str(Path(tmp) / "index")}
            if parent and not only:
                self.repo.run("read-tree", parent, env=env)
            paths = sorted(files)
            if any(c in path for path in paths for c in '\t\n"\\'):
                raise ValueError(f"a path git would have to quote: {paths!r}")
            blobs = []  # one hash-object and one update-index for all the files
            for i, path in enumerate(paths):
                blobs.append(Path(tmp) / f"blob-{i}")
                blobs[-1].write_bytes(files[path])
            listed = "".join(f"{blob}\n" for blob in blobs).encode()
            oids = self.repo.run("hash-object", "-w", "--stdin-paths", stdin=listed).split()
            entries = "".join(
                f"100644 {oid.decode()}\t{path}\n" for oid, path in zip(oids, paths, strict=True)
            )
            self.repo.run("update-index", "--index-info", stdin=entries.encode(), env=env)
            tree = self.repo.run("write-tree", env=env).decode().strip()
            parents = ["-p", parent] if parent else []
            return (
                self.repo.run("commit-tree", tree, *parents, "-m", message, env=env)
                .decode()
                .strip()
            )

    def push(self, commit: str, ref: str) -> None:
        """Fast-forward ``ref`` on the remote to ``commit``; never forces.

        Raises :class:`PushRejectedError` when the remote moved (a race).
        """
        if self.push_many({ref: commit}):
            raise PushRejectedError(f"{ref}: the remote moved; fetch and retry")

    def replace(self, commit: str, ref: str, *, expected: str) -> None:
        """Move ``ref`` on the remote to ``commit``, which does not descend from it, only if
        the remote still has it at ``expected`` (a compare-and-swap; PushRejectedError if
        not). For a writer replacing what git refused to fetch from its own branch."""
        spec = f"--force-with-lease={ref}:{expected}"
        done = self.repo.execute("push", "--porcelain", spec, self.url, f"{commit}:{ref}")
        if _refused(done.stdout) & {ref} or done.returncode != 0:
            raise PushRejectedError(f"{ref}: the remote moved; fetch and retry")

    def push_many(self, updates: Mapping[str, str]) -> set[str]:
        """Fast-forward each ref of ``updates`` to its commit, never forcing, in as few
        pushes as the command line allows (:data:`PUSH_BATCH` refs each); return the
        refs the remote refused because they moved (a race). Each ref is its own
        compare-and-swap: one refused does not hold back the others."""
        items = list(updates.items())
        refused: set[str] = set()
        for start in range(0, len(items), PUSH_BATCH):
            batch = dict(items[start : start + PUSH_BATCH])
            refused |= self._push_batch(batch)
        return refused

    def _push_batch(self, updates: dict[str, str]) -> set[str]:
        specs = [f"{commit}:{ref}" for ref, commit in updates.items()]
        done = self.repo.execute("push", "--porcelain", self.url, *specs)
        refused = _refused(done.stdout) & updates.keys()
        if done.returncode != 0 and not refused:
            lines = done.stderr.decode(errors="replace").strip().splitlines()
            raise GitError(f"git push: {lines[-1] if lines else 'failed'}")
        pushed = "".join(
            f"update {_local(ref)} {commit}\n"
            for ref, commit in updates.items()
            if ref not in refused
        )
        if pushed:
            self.repo.run("update-ref", "--stdin", stdin=pushed.encode())
        return refused


PUSH_BATCH = 500
"""Refs per ``git push`` in :meth:`Mirror.push_many` (about 50 KB of arguments)."""


def _refused(porcelain: bytes) -> set[str]:
    """The refs ``git push --porcelain`` reports as refused: lines ``!<TAB>from:to<TAB>why``."""
    refused = set()
    for line in porcelain.decode(errors="replace").splitlines():
        flag, _, rest = line.partition("\t")
        if flag == "!" and ":" in rest:
            refused.add(rest.split("\t", 1)[0].split(":", 1)[1])
    return refused


def _local(ref: str) -> str:
    return "refs/remotes/origin/" + ref.removeprefix("refs/heads/")


def _is_fsck(reason: str) -> bool:
    """Whether git refused objects it received (a hostile or broken object, not the network)."""
    return "fsck" in reason or "index-pack failed" in reason
