"""Per-plane status logs: the agent reports, the reconciler verifies.

The agent commits a new report only when something other than the time
changed, so an idle plane writes nothing. The reconciler accepts a report
only under the key registered for that plane in its ``DataPlane`` spec, only
if its counter is newer than any it accepted, and only if it claims a
bundle that was actually issued.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path

from ledger import envelope, errors, gitrepo, keys, layout, roots, state, verify
from schemas import signed


@dataclass
class StatusWriter:
    """The agent's side: sign and publish its plane's status when it changes."""

    mirror: gitrepo.Mirror
    plane: str
    signer: keys.Signer
    who: gitrepo.Identity
    state_path: Path
    pinned_root: bytes
    attempts: int = 5

    def write(
        self, *, applied: signed.Head, timestamp_version: int,
        resources: Sequence[signed.ResourceStatus], error: signed.StatusError | None, now: datetime,
        capabilities: signed.PlaneCapabilities | None = None,
    ) -> bool:  # fmt: skip
        """Publish a report unless it would only repeat the current one; True if written.

        What the branch holds that is not a report of ours is replaced by this report. When
        it is not a report at all (a link, an oversized or malformed file, objects git's
        fsck refuses), the report says so if it has no other error to report (code
        ``malformed``): an attack on the status log is neither silent nor a reason to stop
        reporting."""
        ref = layout.status_ref(self.plane)
        for _ in range(self.attempts):
            refs = self.mirror.fetch([ref])
            tip, lease, found = refs.get(ref), None, None
            if ref in refs.broken:
                lease, found = self.mirror.remote_heads(ref).get(ref), refs.broken[ref]
            current, foreign = self._current(tip)
            found = found or foreign
            if found is not None and error is None:
                error = signed.StatusError(
                    code=errors.MalformedError.code,
                    message=f"the status branch held what is not a report: {found}"[:4000],
                )
            body = {
                "applied": applied,
                "timestamp_version": timestamp_version,
                "resources": list(resources),
                "error": error,
                "capabilities": capabilities,
            }
            if current is not None and _same(current, body):
                return False
            trust = state.load_state(self.state_path, pinned_root=self.pinned_root)
            counter = max(trust.status_counter, current.counter if current else 0) + 1
            data = self._sign(counter, now, body)
            message = f"status: {self.plane} #{counter} applied {applied.sequence}"
            commit = self.mirror.commit(tip, {layout.STATUS: data}, message=message, who=self.who)
            try:
                if lease is None:
                    self.mirror.push(commit, ref)
                else:  # what git refused cannot be built on: replace it, if it is still there
                    self.mirror.replace(commit, ref, expected=lease)
            except gitrepo.PushRejectedError:
                continue
            state.persist_state(self.state_path, replace(trust, status_counter=counter))
            return True
        raise gitrepo.GitError(f"could not publish status of {self.plane}: the branch kept moving")

    def _current(self, tip: str | None) -> tuple[signed.Status | None, str | None]:
        """The report at ``tip`` if it is ours, else what is there instead (None: nothing)."""
        if tip is None:
            return None, None
        try:
            files = self.mirror.read(
                tip, [layout.STATUS], max_bytes=verify.DEFAULT_LIMITS.status_bytes
            )
        except (gitrepo.UnsafeEntryError, gitrepo.BlobTooLargeError) as exc:
            return None, str(exc)
        if layout.STATUS not in files:
            return None, None
        try:
            payload = envelope.verify(
                files[layout.STATUS],
                payload_type=verify.PAYLOAD_TYPES["status"],
                trusted={self.signer.public_key.keyid: self.signer.public_key},
                threshold=1,
                max_bytes=verify.DEFAULT_LIMITS.status_bytes,
            )
            return verify.parse_payload(payload, signed.Status), None
        except errors.SignatureError:  # another key's (a re-keyed plane): overwrite it
            return None, None
        except errors.VerificationError as exc:  # not a report at all: overwrite it, and say so
            return None, f"{layout.STATUS} that is not a report ({exc.code}: {exc})"

    def _sign(self, counter: int, now: datetime, body: dict[str, object]) -> bytes:
        report = signed.Status.model_validate(
            {
                "_type": "status",
                "spec_version": signed.SPEC_VERSION,
                "plane": self.plane,
                "counter": counter,
                "time": verify.format_time(now),
                **body,
            }
        )
        payload = envelope.dumps(report.model_dump(by_alias=True, mode="json"))
        return envelope.sign(verify.PAYLOAD_TYPES["status"], payload, [self.signer])


def _same(current: signed.Status, body: dict[str, object]) -> bool:
    """Whether a report would repeat the current one. A newer timestamp alone is no change:
    the reconciler re-signs its timestamp when it sees a new report, so reporting that
    would make the two answer each other forever."""
    return (
        current.applied == body["applied"]
        and list(current.resources) == body["resources"]
        and current.error == body["error"]
        and current.capabilities == body["capabilities"]
    )


@dataclass(frozen=True)
class StatusRead:
    """A plane's latest status as the reconciler sees it: verified, or refused with a reason."""

    commit: str | None
    status: signed.Status | None
    error: errors.VerificationError | None = None


def read_status(
    mirror: gitrepo.Mirror, plane: str, *, key: keys.PublicKey | None, seen: int,
    head: signed.Head, issued: dict[int, str], limits: verify.Limits = verify.DEFAULT_LIMITS,
    refs: Mapping[str, str] | None = None, read: dict[str, tuple[str, bytes]] | None = None,
) -> StatusRead:  # fmt: skip
    """The newest status of ``plane``, verified under its registered ``key``.

    Never raises for bad data: a refused report is returned with its error so
    that the plane is flagged, not silently trusted.

    ``refs``: a snapshot of the remote's branches already fetched into the mirror
    (:meth:`gitrepo.Mirror.fetch_all`); without it the status branch is fetched.
    ``read``: per plane, the status branch's commit and report last read, kept across
    calls by the caller, so that a report is not read from git again while the branch
    has not moved (it is verified again every time).
    """
    ref = layout.status_ref(plane)
    snapshot = refs if refs is not None else mirror.fetch([ref])
    broken = getattr(snapshot, "broken", {})
    if ref in broken:
        return StatusRead(None, None, errors.MalformedError(f"git refused {ref}: {broken[ref]}"))
    tip = snapshot.get(ref)
    if tip is None:
        return StatusRead(None, None)
    if key is None:
        return StatusRead(tip, None, errors.SignatureError(f"no agentKey registered for {plane}"))
    try:
        known = read.get(plane) if read is not None else None
        data = known[1] if known and known[0] == tip else _report(mirror, tip, limits)
        if read is not None:
            read[plane] = (tip, data)
        status = verify.verify_status(
            data, plane=plane, key=key, seen=seen, head=head, issued=issued, limits=limits
        )
    except errors.VerificationError as exc:
        return StatusRead(tip, None, exc)
    return StatusRead(tip, status)


def _report(mirror: gitrepo.Mirror, tip: str, limits: verify.Limits) -> bytes:
    data = roots.read_signed(mirror, tip, [layout.STATUS], limits.status_bytes).get(layout.STATUS)
    if data is None:
        raise errors.MalformedError("the status branch has no status.json")
    return data
