"""``gitplane audit``: read one resource's history from git, for :mod:`reconciler.audit`.

What is read, and how:

* The spec branch's head is loaded (``desired.load_commit``): the files that declare
  KIND/NAME there, and the ``DataPlane`` specs whose ``agentKey`` status is checked under;
  each plane's file is followed back along the branch's first-parent line for the keys
  it registered before, under which older reports verify.
* Files the branch deleted are searched too: every file a commit of the branch deleted
  whose last content declares ``kind: KIND`` with ``metadata.name: NAME`` (a text match:
  an old file may not validate under today's schemas). A resource removed from git, or
  moved to another file, keeps its history this way.
* ``git log BRANCH -- FILE`` gives the commits that changed those files, with git's
  default history simplification (the commits of a pull request, not the merge that only
  carried them). The merge that brought a commit to the branch is the oldest commit of
  the branch's first-parent line that descends from it.
* Each plane's command and status branches are fetched into a scratch bare mirror, and
  their first-parent history is walked with ``git log --raw``: every version of every
  bundle file and of ``status.json``, mode- and size-checked before it is read.
"""

from __future__ import annotations

import itertools
import re
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Literal

from ledger import errors, gitrepo, keyring, keys, layout, roots, verify
from reconciler import approval_gate, desired
from reconciler.audit import _git as _audit_git
from reconciler.audit import model as audit
from schemas import kinds, parse, signed
from schemas.dataplane import DataPlane
from schemas.errors import UsageError

_FORMAT = "%x00" + "%x1f".join(("%H", "%an", "%ae", "%aI", "%cn", "%ce", "%cI", "%s"))


@dataclass(frozen=True)
class AuditRequest:
    """Which resource to audit, where, and under which root of trust."""

    path: Path
    resource: str
    """``KIND/NAME``; the kind in any case (``deployment/churn-prod``)."""
    root: Path
    branch: str = "main"
    state_repo: str | None = None
    plane: str | None = None
    since: datetime | None = None


@dataclass(frozen=True)
class AuditReport:
    """The audit, and where it was read from."""

    branch: str
    head: str
    files: tuple[str, ...]
    audit: audit.Audit


def load_audit(request: AuditRequest) -> AuditReport:
    """Every spec change, command and status transition of ``request.resource``."""
    kind, name = parse_resource(request.resource)
    repo, prefix = _repo(request.path)
    head = _resolve(repo, request.branch)
    loaded = desired.load_commit(repo, head, prefix=prefix)
    files = _spec_files(repo, head, prefix, loaded, (kind, name))
    if not files:
        raise UsageError(f"no spec on {request.branch} or in its history declares {kind}/{name}")
    branch = _lines(repo.run("rev-list", "--first-parent", "--reverse", head))
    changes = [c for path in files for c in _changes(repo, head, path, branch)]
    planes = _planes(loaded, request.plane, request.branch)
    earlier = {p.name: _earlier_keys(repo, head, prefix, loaded, p) for p in planes}
    at = datetime.fromisoformat(repo.run("show", "-s", "--format=%cI", head).decode().strip())
    logs, chain, changes = _read_logs(request, repo, planes, earlier, at, specs=(prefix, changes))
    data = audit.AuditInput(kind, name, branch, changes, chain, logs)
    return AuditReport(request.branch, head, files, audit.build(data, since=request.since))


def parse_resource(text: str) -> tuple[str, str]:
    """``deployment/churn-prod`` -> ``("Deployment", "churn-prod")``."""
    kind, _, name = text.partition("/")
    found = next((k for k in kinds.KINDS if k.lower() == kind.lower()), None)
    if found is None or not name:
        known = ", ".join(sorted(kinds.KINDS))
        raise UsageError(f"{text!r}: expected KIND/NAME with KIND one of {known}")
    return found, name


def _repo(path: Path) -> tuple[gitrepo.GitRepo, str]:
    found = gitrepo.find_repo(path) if path.is_dir() else None
    if found is None:
        raise UsageError(f"{path}: not a directory inside a git repository")
    return found


def _resolve(repo: gitrepo.GitRepo, branch: str) -> str:
    try:
        return repo.resolve(branch)
    except gitrepo.GitError as exc:
        raise UsageError(f"cannot read branch {branch}: {exc}") from None


def _lines(out: bytes) -> list[str]:
    return out.decode().split()


def _spec_files(
    repo: gitrepo.GitRepo,
    head: str,
    prefix: str,
    loaded: desired.DesiredState,
    key: tuple[str, str],
) -> tuple[str, ...]:
    here = {f"{prefix}/{f}".strip("/") for f, d in loaded.documents if (d.KIND, d.name) == key}
    return tuple(sorted(here | _deleted_files(repo, head, prefix, key)))


def _deleted_files(repo: gitrepo.GitRepo, head: str, prefix: str, key: tuple[str, str]) -> set[str]:
    """Files the branch deleted whose last content declared ``key``."""
    deletions = ("--no-renames", "--diff-filter=D", "--raw", "--no-abbrev", "--format=")
    out = repo.run("log", *deletions, head, "--", prefix or ".")
    gone = {(r.path, r.old) for r in _audit_git.raw_changes(out.decode(errors="replace"), "", "")}
    blobs = _audit_git.read_capped(
        repo, sorted({oid for _, oid in gone}), parse.DEFAULT_LIMITS.max_bytes
    )
    return {path for path, oid in gone if oid in blobs and _declares(blobs[oid], key)}


def _declares(data: bytes, key: tuple[str, str]) -> bool:
    text = data.decode(errors="replace")
    kind, name = (re.escape(part) for part in key)
    quoted = rf"[\"']?{name}[\"']?"
    kind_line = re.search(rf"(?m)^kind:\s*[\"']?{kind}[\"']?\s*(#.*)?$", text)
    block = rf"(?m)^metadata:\s*(#.*)?\n(?:[ \t]+.*\n|[ \t]*\n)*?[ \t]+name:\s*{quoted}\s*(#.*)?$"
    flow = rf"(?m)^metadata:\s*\{{[^}}]*\bname:\s*{quoted}\s*[,}}]"
    return bool(kind_line and (re.search(block, text) or re.search(flow, text)))


def _changes(
    repo: gitrepo.GitRepo, head: str, path: str, branch: Sequence[str]
) -> list[audit.SpecChange]:
    out = repo.run("log", f"--format={_FORMAT}", head, "--", path)
    commits = [_commit(repo, record) for record in _records(out)]
    return [audit.SpecChange(c, path, _merge(repo, c.commit, head, branch)) for c in commits]


def _records(out: bytes) -> list[str]:
    """The records of ``git log --format=_FORMAT``."""
    return [r.strip() for r in out.decode(errors="replace").split("\0") if r.strip()]


def _commit(repo: gitrepo.GitRepo, record: str) -> audit.GitCommit:
    sha, a_name, a_mail, a_time, c_name, c_mail, c_time, subject = record.split("\x1f")
    return audit.GitCommit(
        commit=sha,
        author=audit.Person(a_name, a_mail),
        authored_at=datetime.fromisoformat(a_time),
        committer=audit.Person(c_name, c_mail),
        committed_at=datetime.fromisoformat(c_time),
        subject=subject,
        trailers=repo.commit_info(sha).trailers,
    )


def _merge(
    repo: gitrepo.GitRepo, commit: str, head: str, branch: Sequence[str]
) -> audit.GitCommit | None:
    """The oldest first-parent commit of the branch that contains ``commit``."""
    if commit in branch:
        return None
    descendants = set(_lines(repo.run("rev-list", "--ancestry-path", f"{commit}..{head}")))
    merge = next((sha for sha in branch if sha in descendants), None)
    if merge is None:
        return None
    return _commit(repo, _records(repo.run("log", "-1", f"--format={_FORMAT}", merge))[0])


def _planes(loaded: desired.DesiredState, only: str | None, branch: str) -> list[DataPlane]:
    planes = [d for _, d in loaded.documents if isinstance(d, DataPlane)]
    chosen = [p for p in planes if only in (None, p.name)]
    if only is not None and not chosen:
        raise UsageError(f"no DataPlane named {only!r} on {branch}")
    return chosen


def _agent_key(plane: DataPlane) -> audit.AgentKey:
    if plane.spec.agent_key is None:
        return errors.SignatureError(f"no agentKey is registered for {plane.name} on the branch")
    try:
        return keys.load_public_key(plane.spec.agent_key.public)
    except errors.BadKeyError as exc:
        return exc


def _earlier_keys(
    repo: gitrepo.GitRepo,
    head: str,
    prefix: str,
    loaded: desired.DesiredState,
    plane: DataPlane,
) -> list[audit.EarlierKey]:
    """The agent keys the plane's file registered on the branch's first-parent line before
    the current one, oldest first, each with the commit that registered the next one.

    Only the file that declares the plane at the head is followed (a plane moved from
    another file keeps the keys of its current file's history only)."""
    file = next((f for f, d in loaded.documents if d is plane), None)
    if file is None:
        return []
    path = f"{prefix}/{file}".strip("/")
    walk = ("--reverse", "--first-parent", "--no-renames", "--raw", "--no-abbrev")
    out = repo.run("log", *walk, "--format=%x00%H %cI", head, "--", path).decode(errors="replace")
    changes = [
        change
        for chunk in out.split("\0")[1:]
        for change in _audit_git.raw_changes(chunk, *chunk.split("\n", 1)[0].split(" "))
    ]
    blobs = _audit_git.read_capped(
        repo, sorted({c.new for c in changes if c.status != "D"}), parse.DEFAULT_LIMITS.max_bytes
    )
    registered: list[tuple[str, keys.PublicKey]] = []  # (commit, key), each a change of key
    for change in changes:
        key = _registered_key(path, blobs.get(change.new))
        if key is not None and (not registered or registered[-1][1] != key):
            registered.append((change.commit, key))
    return [
        audit.EarlierKey(key, replaced)
        for (_, key), (replaced, _) in itertools.pairwise(registered)
    ]


def _registered_key(path: str, data: bytes | None) -> keys.PublicKey | None:
    """The agent key a version of a DataPlane file registers, if it parses and has one."""
    if data is None:
        return None
    document = parse.parse_spec(path, data).document
    if not isinstance(document, DataPlane) or document.spec.agent_key is None:
        return None
    try:
        return keys.load_public_key(document.spec.agent_key.public)
    except errors.BadKeyError:
        return None


def _read_logs(
    request: AuditRequest,
    repo: gitrepo.GitRepo,
    planes: Sequence[DataPlane],
    earlier: dict[str, list[audit.EarlierKey]],
    at: datetime,
    *,
    specs: tuple[str, Sequence[audit.SpecChange]],
) -> tuple[list[audit.PlaneLog], tuple[signed.Root, ...], list[audit.SpecChange]]:
    """Each plane's logs, the root chain, and ``specs`` (prefix, changes) with the signed
    approvals of each change."""
    root = _read_root(request.root)
    wanted = [r for p in planes for r in (layout.commands_ref(p.name), layout.status_ref(p.name))]
    with tempfile.TemporaryDirectory(prefix="gitplane-audit-") as scratch:
        mirror = gitrepo.Mirror.open(Path(scratch), request.state_repo or repo.logs_url())
        refs = mirror.fetch([layout.ROOT_REF, layout.APPROVALS_REF, *wanted])
        chain = roots.follow(mirror, root, refs.get(layout.ROOT_REF))
        logs = [_plane_log(mirror.repo, refs, plane, earlier[plane.name], at) for plane in planes]
        prefix, changes = specs
        landed = {c.landed.commit for c in changes}
        found = {c: approval_gate.audited(repo, prefix, c, mirror, refs) for c in landed}
    approved = [replace(c, approvals=found[c.landed.commit]) for c in changes]
    return logs, chain.roots, approved


def _plane_log(
    repo: gitrepo.GitRepo,
    refs: gitrepo.Snapshot,
    plane: DataPlane,
    earlier: Sequence[audit.EarlierKey],
    at: datetime,
) -> audit.PlaneLog:
    limits = verify.DEFAULT_LIMITS
    refused: list[tuple[Literal["commands", "status"], str]] = [
        ("commands", layout.commands_ref(plane.name)),
        ("status", layout.status_ref(plane.name)),
    ]
    gaps = [
        audit.GapEvent(
            at,
            plane.name,
            log,
            "",
            audit.Verdict("malformed", f"git refused the objects of {ref}: {refs.broken[ref]}"),
        )
        for log, ref in refused
        if ref in refs.broken
    ]  # dated at the audited commit: the newest time the audit knows
    commands_tip = refs.get(layout.commands_ref(plane.name))
    status_tip = refs.get(layout.status_ref(plane.name))
    return audit.PlaneLog(
        plane.name,
        _agent_key(plane),
        bundles=_audit_git.history(repo, commands_tip, "bundles/", limits.bundle_bytes),
        reports=_audit_git.history(repo, status_tip, layout.STATUS, limits.status_bytes),
        earlier_keys=earlier,
        timestamp=_current(
            _audit_git.history(repo, commands_tip, layout.TIMESTAMP, limits.timestamp_bytes)
        ),
        gaps=gaps,
    )


def _current(versions: Sequence[audit.LogFile]) -> audit.LogFile | None:
    return versions[-1] if versions else None


def _read_root(path: Path) -> bytes:
    return keyring.read_root(path)
