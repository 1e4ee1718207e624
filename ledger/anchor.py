"""The approvers anchor: the first approval rule, signed by the root role's threshold.

A reconciler in signed mode counts approvals only under a rule it trusts, and it never
trusts one on first use (docs/adr/0018-signed-approvals.md): the first rule is this
statement, signed like a root (DSSE, by the threshold of the root keys of the root in
force), stored beside the roots on the root branch as :data:`PATH`. Its ``rule`` is opaque
here (the reconciler's :class:`reconciler.approvals.Rule` as JSON); ``version`` only grows,
so a newer anchor (a rotation of approvers by the root key holders) replaces an older one
and an older one is never taken back.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ledger import envelope, errors, gitrepo, keys, layout, verify
from schemas import signed

PATH = layout.APPROVERS_ANCHOR
"""Where the anchor lives on the root branch."""
PAYLOAD_TYPE = "application/vnd.gitplane.approvers-anchor.v1+json"
TYPE = "gitplane.dev/approvers-anchor/v1"
MAX_FILE = 256 * 1024
"""Bytes: a rule with a few hundred approvers; anything larger is refused unread."""


@dataclass(frozen=True)
class Anchor:
    """A verified anchor."""

    version: int
    repository: str
    """The repository identity it was signed for (``sha256:`` of ``root/1.json``)."""
    rule: dict[str, Any]
    """The approval rule in force from this anchor on, as the reconciler wrote it."""


def sign(
    *, version: int, repository: str, rule: dict[str, Any], signers: Sequence[keys.Signer]
) -> bytes:
    """An anchor envelope signed by ``signers`` (the root keys, at least their threshold)."""
    body = {"_type": TYPE, "version": version, "repository": repository, "rule": rule}
    return envelope.sign(PAYLOAD_TYPE, envelope.dumps(body), signers)


def check(data: bytes, root: signed.Root, *, repository: str) -> Anchor:
    """The anchor in ``data``, once it verifies under the root role of ``root`` and names
    ``repository``; a :class:`errors.VerificationError` otherwise."""
    trusted, threshold = verify.role_keys(root, "root")
    payload = envelope.verify(
        data, payload_type=PAYLOAD_TYPE, trusted=trusted, threshold=threshold, max_bytes=MAX_FILE
    )
    body = envelope.loads(payload)
    if not (
        isinstance(body, dict)
        and set(body) == {"_type", "version", "repository", "rule"}
        and body["_type"] == TYPE
        and isinstance(body["version"], int)
        and body["version"] >= 1
        and isinstance(body["repository"], str)
        and isinstance(body["rule"], dict)
    ):
        raise errors.MalformedError(f"not a {TYPE} statement")
    if body["repository"] != repository:
        raise errors.MixAndMatchError(
            f"the anchor was signed for repository {body['repository']}, not {repository}"
        )
    return Anchor(body["version"], body["repository"], body["rule"])


def read(mirror: gitrepo.Mirror, tip: str | None) -> bytes | None:
    """The anchor file at ``tip`` of the root branch (None when there is none)."""
    if tip is None:
        return None
    try:
        return mirror.read(tip, [PATH], max_bytes=MAX_FILE).get(PATH)
    except gitrepo.BlobTooLargeError as exc:
        raise errors.OversizedError(str(exc)) from None
    except gitrepo.UnsafeEntryError as exc:
        raise errors.MalformedError(str(exc)) from None


def publish(
    mirror: gitrepo.Mirror, data: bytes, *, who: gitrepo.Identity, attempts: int = 5
) -> str:
    """Put ``data`` on the root branch as the anchor; the new tip. Retries on a race."""
    for _ in range(attempts):
        tip = mirror.fetch([layout.ROOT_REF]).get(layout.ROOT_REF)
        if tip is None:
            raise errors.MalformedError(
                f"{mirror.url} has no {layout.ROOT_REF}: the reconciler publishes it on its "
                "first run"
            )
        commit = mirror.commit(tip, {PATH: data}, message="approvers: anchor", who=who)
        try:
            mirror.push(commit, layout.ROOT_REF)
        except gitrepo.PushRejectedError:
            continue
        return commit
    raise gitrepo.GitError("could not publish the approvers anchor: the root branch kept moving")
