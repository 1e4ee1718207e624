"""Per-plane command logs, the reconciler's side: read, verify and append.

Appends are compare-and-swap: build on the fetched tip, push fast-forward only,
and on a race fetch, verify and decide again. The agent's side is
:mod:`ledger.reader` (as python-tuf keeps its repository and client apart);
the checks both run on what they fetched are :mod:`ledger.logcheck`.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from ledger import (
    envelope,
    errors,
    gitrepo,
    keys,
    layout,
    logcheck,
    roots,
    state,
    verify,
    watermark,
)
from schemas import dataplane, signed

DEFAULT_LIFETIME = timedelta(days=7)


def new_command(
    kind: str,
    name: str,
    spec: str,
    *,
    action: str = "apply",
    command_id: str = "",
    reason: str = "",
) -> signed.Command:
    """The command ``action`` on ``kind/name`` with the resolved ``spec`` (JSON text) and
    its digest; its id ``kind/name`` unless given. Validated as a signed command is."""
    return signed.Command.model_validate(
        {
            "id": command_id or f"{kind}/{name}",
            "action": action,
            "kind": kind,
            "name": name,
            "spec": spec,
            "digest": envelope.digest(spec.encode()),
            "reason": reason,
        }
    )


@dataclass(frozen=True)
class LogView:
    """A plane's command log as verified at one pinned commit."""

    commit: str | None
    timestamp: signed.Timestamp | None
    bundles: tuple[signed.Bundle, ...] = ()
    issued: dict[int, str] = field(default_factory=dict)
    """Sequence -> digest of every bundle in the log."""
    root_version: int = 1
    """The newest root in the verified chain: what new documents are signed under."""

    @property
    def head(self) -> signed.Head:
        """The newest bundle, or the empty head."""
        return self.timestamp.head if self.timestamp else state.EMPTY


Decide = Callable[[LogView], list[signed.Command]]


@dataclass(frozen=True)
class Settings:
    """What a bundle carries of the plane besides commands: a change of it alone is signed
    as a bundle of no commands (ADR 0008, 0016)."""

    self_heal: bool = True
    kubernetes: dataplane.KubernetesRuntime | None = None

    @classmethod
    def of(cls, bundle: signed.Bundle) -> Settings:
        """The settings ``bundle`` was issued with."""
        return cls(bundle.self_heal, bundle.kubernetes)


@dataclass(frozen=True)
class Update:
    """A new commit of one plane's log, built on the commit it was read at, not yet pushed."""

    plane: str
    commit: str
    head: signed.Head | None = None
    """The bundle it appends; None when it only re-signs the timestamp."""


@dataclass
class CommandLog:
    """The reconciler's side: read and append the logs of every plane."""

    mirror: gitrepo.Mirror
    root: bytes
    """The root envelope the reconciler was installed with; newer ones are followed."""
    commands_signers: Sequence[keys.Signer]
    timestamp_signers: Sequence[keys.Signer]
    who: gitrepo.Identity
    lifetime: timedelta = DEFAULT_LIFETIME
    attempts: int = 8
    sleep: Callable[[float], None] = time.sleep
    limits: verify.Limits = verify.DEFAULT_LIMITS
    watermarks: watermark.Watermarks = field(default_factory=watermark.Watermarks)
    """The newest head seen per plane: a log that no longer holds it is a rollback."""

    _verified: dict[str, tuple[LogView, bytes]] = field(
        default_factory=dict, init=False, repr=False
    )
    """Per plane, the log as last verified and its timestamp's bytes: the next read checks
    only what was added."""
    _chain: tuple[str | None, roots.Chain] | None = field(default=None, init=False, repr=False)
    """The root chain as last followed, and the root branch's commit it was read at."""
    _prepared: dict[str, tuple[LogView, bytes | None, bytes]] = field(
        default_factory=dict, init=False, repr=False
    )
    """Per prepared commit: the view it was built on, its bundle and its timestamp."""

    def read(self, plane: str, *, refs: Mapping[str, str] | None = None) -> LogView:
        """Fetch ``plane``'s log and verify what this object has not verified before.

        ``refs`` is a snapshot of the remote's branches already fetched into the mirror
        (:meth:`gitrepo.Mirror.fetch_all`): given, the read asks the remote nothing, so
        a cycle over many planes asks it once.

        The root chain and the timestamp are verified on every read (the timestamp is
        not read from git again while the log's commit is the same), except for the
        timestamp's expiry: the reconciler re-signs an expired timestamp, and a
        read-only view flags it (:func:`verify.is_expired`); only the agent refuses it. Bundles are
        verified once: while the log still runs through the head last verified, only
        the bundles after it are read, each chained to the one before as the agent
        follows its log from the bundle it last applied, so a cycle costs what was
        appended since, not the whole history. A log that does not run through that
        head (rewritten, or force-pushed to an older commit) is verified whole again,
        as on the first read.
        """
        if refs is None:
            refs = self.mirror.fetch([layout.ROOT_REF, layout.commands_ref(plane)])
        chain = self._follow(refs.get(layout.ROOT_REF))
        logcheck.check_fetched(refs, layout.commands_ref(plane))
        tip = refs.get(layout.commands_ref(plane))
        if tip is None:
            self._verified.pop(plane, None)
            self.watermarks.check_present(plane)
            return LogView(None, None, root_version=chain.newest.version)
        known, stamp_bytes = self._verified.get(plane, (None, b""))
        if known is None or known.commit != tip:  # a commit id names its files for good
            stamp_bytes = self._timestamp_bytes(tip, plane)
        stamp = self._own_timestamp(chain, stamp_bytes, plane)
        view = None
        if known is not None and stamp.head.sequence >= known.head.sequence:
            try:
                view = self._verify_after(known, tip, stamp, chain, plane)
            except errors.VerificationError:
                view = None  # not the log verified before: verify it whole, as the first time
        if view is None:
            view = self._verify_after(LogView(None, None), tip, stamp, chain, plane)
        self.watermarks.check(plane, view.head, view.issued)
        self.watermarks.raise_to(plane, view.head)
        self._verified[plane] = (view, stamp_bytes)
        return view

    def follow_roots(self, refs: Mapping[str, str] | None = None) -> roots.Chain:
        """The verified root chain, at ``refs`` (a snapshot, see :meth:`read`) or as fetched."""
        if refs is None:
            refs = self.mirror.fetch([layout.ROOT_REF])
        return self._follow(refs.get(layout.ROOT_REF))

    def _follow(self, tip: str | None) -> roots.Chain:
        """The root chain at ``tip`` of the root branch (followed again only when it moved)."""
        if self._chain is None or self._chain[0] != tip:
            self._chain = (tip, roots.follow(self.mirror, self.root, tip, limits=self.limits))
        return self._chain[1]

    def _timestamp_bytes(self, tip: str, plane: str) -> bytes:
        files = roots.read_signed(self.mirror, tip, [layout.TIMESTAMP], self.limits.timestamp_bytes)
        if layout.TIMESTAMP not in files:
            raise errors.MalformedError(f"command log of {plane} has no timestamp")
        return files[layout.TIMESTAMP]

    def _verify_after(
        self,
        known: LogView,
        tip: str,
        stamp: signed.Timestamp,
        chain: roots.Chain,
        plane: str,
        *,
        files: Mapping[str, bytes] | None = None,
    ) -> LogView:
        """``known`` and the bundles after its head up to ``stamp``'s, verified at ``tip``
        (or in ``files``, bundle envelopes in hand by path, instead of read from git)."""
        bundles, issued = logcheck.verify_chain(
            self.mirror,
            tip,
            chain=chain.roots,
            start=known.head,
            head=stamp.head,
            plane=plane,
            limits=self.limits,
            files=files,
            floor=known.bundles[-1].root_version if known.bundles else 1,
        )
        return LogView(
            tip,
            stamp,
            known.bundles + tuple(b for _, b in bundles),
            known.issued | issued,
            chain.newest.version,
        )

    def _own_timestamp(self, chain: roots.Chain, data: bytes, plane: str) -> signed.Timestamp:
        """Our timestamp, verified under the root it names: after a rotation the old one
        is still ours until it is re-signed (``refresh`` does that at once). Its expiry is
        not checked: it is ours to re-sign, and a reconciler that was stopped for longer
        than its lifetime must refresh it, not refuse it (:attr:`LogView.timestamp` tells
        when it expires).

        Nothing of it is parsed before a signature verifies: it is tried under the roots of
        the chain, newest first (one signature check unless a rotation is under way)."""
        return verify.read_timestamp_under(chain.roots, data, plane=plane, limits=self.limits)

    def append(
        self,
        plane: str,
        decide: Decide,
        *,
        spec_commit: str,
        now: datetime,
        status_seen: int = 0,
        self_heal: bool = True,
        kubernetes: dataplane.KubernetesRuntime | None = None,
        refs: Mapping[str, str] | None = None,
    ) -> signed.Head | None:
        """Append what ``decide`` returns for the current log; None when it returns nothing.

        ``decide`` runs again after every lost race, on the log as it then is,
        so concurrent reconcilers never issue the same command twice. The first
        attempt reads the log from ``refs`` when given (see :meth:`read`): if the log
        has moved since, the push is refused and the next attempt fetches.
        """
        for attempt in range(self.attempts):
            update = self.prepare_append(
                plane,
                decide,
                spec_commit=spec_commit,
                now=now,
                status_seen=status_seen,
                self_heal=self_heal,
                kubernetes=kubernetes,
                refs=refs if attempt == 0 else None,
            )
            if update is None:
                return None
            if not self.publish([update]):
                return update.head
            self.sleep(min(2.0, 0.05 * 2**attempt) * random.random())  # noqa: S311 - jitter only
        raise gitrepo.GitError(f"could not append to {plane}'s log: it kept moving")

    def prepare_append(
        self,
        plane: str,
        decide: Decide,
        *,
        spec_commit: str,
        now: datetime,
        status_seen: int = 0,
        self_heal: bool = True,
        kubernetes: dataplane.KubernetesRuntime | None = None,
        refs: Mapping[str, str] | None = None,
    ) -> Update | None:
        """The commit appending what ``decide`` returns to the log as read now, not yet
        pushed (:meth:`publish`); None when it returns nothing and the plane's settings are
        those of its newest bundle. A change of settings alone (``selfHeal`` turned off to
        change something by hand, a Kubernetes plane's images: ADR 0016) is a bundle of no
        commands: it reaches the agent at once, not with whatever command comes next."""
        view = self.read(plane, refs=refs)
        commands = decide(view)
        settings = Settings(self_heal, kubernetes)
        moved = bool(view.bundles) and Settings.of(view.bundles[-1]) != settings
        if not commands and not moved:
            return None
        bundle = self._sign_bundle(
            plane, view, commands, spec_commit=spec_commit, now=now, settings=settings
        )
        head = signed.Head(sequence=view.head.sequence + 1, digest=envelope.digest(bundle))
        stamp = self._sign_timestamp(plane, view, head, now, status_seen)
        files = {layout.bundle_path(head.sequence): bundle, layout.TIMESTAMP: stamp}
        message = f"commands: {plane} #{head.sequence} from {spec_commit[:12]}"
        commit = self._commit(view, files, message)
        self._prepared[commit] = (view, bundle, stamp)
        return Update(plane, commit, head)

    def refresh(
        self,
        plane: str,
        now: datetime,
        *,
        status_seen: int = 0,
        refs: Mapping[str, str] | None = None,
    ) -> bool:
        """Re-sign the timestamp if it is in the last half of its life; True if it did.

        False also when the log moved since ``refs`` (the push is refused): the next
        cycle re-signs it, long before it expires."""
        update = self.prepare_refresh(plane, now, status_seen=status_seen, refs=refs)
        return update is not None and not self.publish([update])

    def prepare_refresh(
        self,
        plane: str,
        now: datetime,
        *,
        status_seen: int = 0,
        refs: Mapping[str, str] | None = None,
    ) -> Update | None:
        """The commit re-signing the timestamp if :meth:`refresh` would, not yet pushed."""
        view = self.read(plane, refs=refs)
        if view.timestamp is None:
            return None
        expires = verify.parse_time(view.timestamp.expires)
        current = (
            expires - now > self.lifetime / 2
            and status_seen <= view.timestamp.status_seen
            and view.timestamp.root_version == view.root_version
        )
        if current:
            return None
        stamp = self._sign_timestamp(plane, view, view.head, now, status_seen)
        commit = self._commit(view, {layout.TIMESTAMP: stamp}, f"timestamp: {plane}")
        self._prepared[commit] = (view, None, stamp)
        return Update(plane, commit)

    def publish(self, updates: Sequence[Update]) -> set[str]:
        """Push the prepared updates of many logs at once, each ref compare-and-swap; the
        planes whose log moved since it was read (refused: prepare again and retry).

        A log that took its update is known without reading it back from git: its new
        bundle and timestamp are verified here, from the bytes just signed.
        """
        refused_refs = self.mirror.push_many(
            {layout.commands_ref(u.plane): u.commit for u in updates}
        )
        refused = {u.plane for u in updates if layout.commands_ref(u.plane) in refused_refs}
        for update in updates:
            prepared = self._prepared.pop(update.commit, None)
            if update.plane not in refused and prepared is not None:
                self._learn(update, *prepared)
        self._prepared.clear()  # anything prepared and not published was built on a stale read
        self.watermarks.flush()  # what was pushed is remembered before anything else happens
        return refused

    def _learn(self, update: Update, view: LogView, bundle: bytes | None, stamp: bytes) -> None:
        """Remember ``update``'s log as verified, as a read of its commit would."""
        chain = self._chain[1] if self._chain else None
        try:
            if chain is None or chain.newest.version != view.root_version:
                raise errors.MixAndMatchError("the root chain moved since the update was built")
            timestamp = self._own_timestamp(chain, stamp, update.plane)
            files = {} if bundle is None else {layout.bundle_path(view.head.sequence + 1): bundle}
            after = self._verify_after(
                view, update.commit, timestamp, chain, update.plane, files=files
            )
        except errors.VerificationError:
            self._verified.pop(update.plane, None)  # the next read verifies it from git
            return
        self.watermarks.raise_to(update.plane, after.head)
        self._verified[update.plane] = (after, stamp)

    def _commit(self, view: LogView, files: dict[str, bytes], message: str) -> str:
        return self.mirror.commit(view.commit, files, message=message, who=self.who)

    def _sign_bundle(
        self,
        plane: str,
        view: LogView,
        commands: list[signed.Command],
        *,
        spec_commit: str,
        now: datetime,
        settings: Settings,
    ) -> bytes:
        payload = {
            "_type": "commands",
            "spec_version": signed.SPEC_VERSION,
            "plane": plane,
            "sequence": view.head.sequence + 1,
            "previous": view.head.digest,
            "root_version": view.root_version,
            "spec_commit": spec_commit,
            "issued_at": verify.format_time(now),
            "commands": [c.model_dump() for c in commands],
            "self_heal": settings.self_heal,
        }
        if settings.kubernetes is not None:  # absent, not null: older bundles stay as signed
            payload["kubernetes"] = settings.kubernetes.model_dump(mode="json", by_alias=True)
        data = envelope.dumps(payload)
        return envelope.sign(verify.PAYLOAD_TYPES["commands"], data, self.commands_signers)

    def _sign_timestamp(
        self, plane: str, view: LogView, head: signed.Head, now: datetime, status_seen: int
    ) -> bytes:
        previous = view.timestamp
        payload = {
            "_type": "timestamp",
            "spec_version": signed.SPEC_VERSION,
            "plane": plane,
            "version": previous.version + 1 if previous else 1,
            "expires": verify.format_time(now + self.lifetime),
            "root_version": view.root_version,
            "head": head.model_dump(),
            "status_seen": max(status_seen, previous.status_seen if previous else 0),
        }
        data = envelope.dumps(payload)
        return envelope.sign(verify.PAYLOAD_TYPES["timestamp"], data, self.timestamp_signers)
