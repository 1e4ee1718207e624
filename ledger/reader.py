"""The agent's side of a command log: follow one plane's log, trusting only what verifies.

The reader verifies the root chain, the timestamp and every new bundle against the
agent's persisted trust state, and persists the new state only when all of it verified.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path

from ledger import envelope, errors, gitrepo, layout, logcheck, roots, state, verify
from schemas import signed


@dataclass
class CommandReader:
    """The agent's side: follow one plane's log, trusting only what verifies."""

    mirror: gitrepo.Mirror
    plane: str
    state_path: Path
    pinned_root: bytes
    limits: verify.Limits = verify.DEFAULT_LIMITS

    def load(self) -> state.TrustState:
        """The persisted trust state (a fresh one on first start)."""
        return state.load_state(self.state_path, pinned_root=self.pinned_root)

    def update(self, now: datetime) -> list[tuple[signed.Head, signed.Bundle]]:
        """Fetch, verify and persist; return every bundle verified but not yet applied.

        On any verification error nothing is persisted and the error is raised.
        """
        trust = self.load()
        refs = self.mirror.fetch([layout.ROOT_REF, layout.commands_ref(self.plane)])
        logcheck.check_fetched(refs, layout.ROOT_REF, layout.commands_ref(self.plane))
        chain = roots.follow(self.mirror, trust.root, refs.get(layout.ROOT_REF), limits=self.limits)
        root = chain.newest
        verify.check_root_fresh(root, now)
        tip = refs.get(layout.commands_ref(self.plane))
        if tip is None:
            if trust.timestamp is not None:
                raise errors.RollbackError("the command log disappeared from the remote")
            return []
        stamp_bytes = self._timestamp(tip)
        trusted_stamp = self._trusted_timestamp(trust, root)
        stamp = verify.update_timestamp(
            root, trusted_stamp, stamp_bytes, plane=self.plane, now=now, limits=self.limits
        )
        pending, _ = logcheck.verify_chain(
            self.mirror,
            tip,
            chain=chain.roots,
            start=trust.applied,
            head=stamp.head,
            plane=self.plane,
            limits=self.limits,
        )
        _check_passes_through(pending, trust)
        latest = max([trust.latest_signed, *(b.issued_at for _, b in pending)])
        _check_clock(latest, now)
        verified = pending[-1][0] if pending else trust.applied
        updated = replace(
            trust,
            root=chain.newest_bytes,
            timestamp=stamp_bytes,
            verified=verified,
            latest_signed=latest,
        )
        if updated != trust:  # an idle cycle writes nothing, not even locally
            state.persist_state(self.state_path, updated)
        return pending

    def mark_applied(self, head: signed.Head) -> state.TrustState:
        """Persist that every bundle up to ``head`` is applied."""
        updated = self.load().with_applied(head)
        state.persist_state(self.state_path, updated)
        return updated

    def _timestamp(self, tip: str) -> bytes:
        files = roots.read_signed(self.mirror, tip, [layout.TIMESTAMP], self.limits.timestamp_bytes)
        if layout.TIMESTAMP not in files:
            raise errors.MalformedError("the command log has no timestamp")
        return files[layout.TIMESTAMP]

    def _trusted_timestamp(
        self, trust: state.TrustState, root: signed.Root
    ) -> signed.Timestamp | None:
        """The trusted timestamp, unless the timestamp keys rotated (fast-forward recovery)."""
        if trust.timestamp is None:
            return None
        payload = envelope.peek(trust.timestamp, max_bytes=self.limits.timestamp_bytes)
        old = verify.parse_payload(payload, signed.Timestamp)
        if old.root_version != root.version:
            previous_root = verify.load_trusted_root(trust.root, limits=self.limits)
            if previous_root.roles.timestamp != root.roles.timestamp:
                return None
        return old


def _check_passes_through(
    pending: list[tuple[signed.Head, signed.Bundle]], trust: state.TrustState
) -> None:
    """The chain re-verified from the applied bundle must contain the verified one."""
    if trust.verified.sequence == trust.applied.sequence:
        return
    heads = {h.sequence: h.digest for h, _ in pending}
    if heads.get(trust.verified.sequence) != trust.verified.digest:
        raise errors.MixAndMatchError(
            f"the log was rewritten at or before bundle {trust.verified.sequence}"
        )


CLOCK_SKEW = timedelta(minutes=10)
"""How far the agent's clock may lag a time it verified as signed (the reconciler's clock)."""


def _check_clock(latest: str, now: datetime) -> None:
    """ClockSkewError when ``now`` is earlier than ``latest`` (a signed time, possibly "")
    by more than :data:`CLOCK_SKEW`."""
    if latest and now + CLOCK_SKEW < verify.parse_time(latest):
        raise errors.ClockSkewError(
            f"this machine's clock ({verify.format_time(now)}) is earlier than {latest}, "
            f"when a bundle it verified was signed: fix the clock (NTP)"
        )


def timestamp_of(data: bytes, limits: verify.Limits = verify.DEFAULT_LIMITS) -> signed.Timestamp:
    """The payload of a timestamp envelope already verified and persisted by the reader."""
    return verify.parse_payload(
        envelope.peek(data, max_bytes=limits.timestamp_bytes), signed.Timestamp
    )
