"""``gitplane agent render``: what a plane's agent would apply for its current verified log.

The log is verified as the agent verifies it (:class:`ledger.reader.CommandReader`: the
root chain from the pinned root, signatures, the timestamp's freshness, the hash chain),
in a scratch directory, so the agent's own state is never touched; and it must not be
behind what the agent itself verified (a rollback to an older log is refused). The current
commands are the newest of each resource, deleted ones left out; the settings are the
newest bundle's (ADR 0016). The runtime renders them (:func:`agent.runtimes.select.renderer`).
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from agent.config import AgentConfig
from agent.journal import Source
from agent.runtimes import select
from ledger import errors, gitrepo, keyring, state
from ledger import reader as log_reader
from schemas import dataplane, signed
from schemas.errors import GitplaneError


@dataclass(frozen=True)
class Current:
    """A plane's current commands and settings, verified."""

    sources: list[Source]
    """The newest command of every resource not deleted, by kind and name, with the spec
    commit and issue time of the bundle that carried it (what apply is given)."""
    kubernetes: dataplane.KubernetesRuntime | None


def render(
    config: AgentConfig, now: datetime, output: str, *, api_versions: Sequence[str] = ()
) -> tuple[str, list[str]]:
    """The manifests for the plane's current commands as ``output`` text, and what to warn
    of (commands not rendered, with why). A local plane has nothing to render.
    ``api_versions``: what the cluster serves beyond the built-in APIs (KEDA's)."""
    draw = select.renderer(config)
    found = current(config, now)
    if found.kubernetes is None:
        raise GitplaneError(
            f"no kubernetes settings signed for plane {config.plane!r} yet: nothing to render "
            "(its DataPlane's spec.kubernetes reaches the log with the next reconcile)"
        )
    return draw(found.kubernetes, found.sources, output, frozenset(api_versions))


def current(config: AgentConfig, now: datetime) -> Current:
    """The plane's log verified from its pinned root, folded into what is current."""
    root = keyring.read_root(config.root_file)
    with tempfile.TemporaryDirectory(prefix="gitplane-render-") as scratch:
        mirror = gitrepo.Mirror.open(Path(scratch) / "mirror.git", config.repo)
        reader = log_reader.CommandReader(mirror, config.plane, Path(scratch) / "trust", root)
        bundles = reader.update(now)
    if not bundles:
        raise GitplaneError(
            f"no command log for plane {config.plane!r} in {config.repo}: nothing to render"
        )
    _check_not_behind(config, bundles, root)
    newest: dict[tuple[str, str], Source] = {}
    for _, bundle in bundles:
        for command in bundle.commands:
            newest[(command.kind, command.name)] = Source.of(command, bundle)
    kept = [s for _, s in sorted(newest.items()) if s.command.action != "delete"]
    return Current(kept, bundles[-1][1].kubernetes)


def _check_not_behind(
    config: AgentConfig, bundles: list[tuple[signed.Head, signed.Bundle]], root: bytes
) -> None:
    """The log must hold the newest bundle this plane's agent verified, where it verified it."""
    seen = state.load_state(config.state_dir / "trust.json", pinned_root=root).verified
    heads = {head.sequence: head.digest for head, _ in bundles}
    if seen.sequence and heads.get(seen.sequence) != seen.digest:
        raise errors.RollbackError(
            f"the log is behind or rewritten from what this plane's agent verified (bundle "
            f"{seen.sequence}): refusing to render it"
        )
