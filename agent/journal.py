"""The agent's journal: which commands were applied, and what each resource looks like.

A command is marked *started* before it is applied and *applied* (or
*failed*) after, each step persisted atomically. After a crash, a command
found *started* is applied again: every runtime apply is idempotent (a model
build finds its registered version by its spec digest instead of registering
twice), so "at least once" never becomes "twice with effect".
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from agent.runtimes.base import ApplyContext, CancelToken
from schemas import dataplane, files, signed


@dataclass
class Journal:
    """Persistent per-command progress and per-resource observed state."""

    path: Path
    steps: dict[str, str] = field(default_factory=dict)
    resources: dict[str, signed.ResourceStatus] = field(default_factory=dict)
    sources: dict[str, Source] = field(default_factory=dict)
    """Per resource, the command it was last applied from (what ``observe`` compares with)."""
    self_heal: bool = True
    """The newest verified bundle's ``self_heal``."""
    kubernetes: dataplane.KubernetesRuntime | None = None
    """The newest verified bundle's Kubernetes settings (ADR 0016): what the runtime builds
    its objects with, also between polls and after a restart."""

    @classmethod
    def load(cls, path: Path) -> Journal:
        """The journal at ``path`` (empty if there is none yet)."""
        if not path.exists():
            return cls(path)
        body = json.loads(path.read_bytes())
        resources = {
            k: signed.ResourceStatus.model_validate(v) for k, v in body["resources"].items()
        }
        sources = {
            k: Source(
                signed.Command.model_validate(v["command"]),
                v["spec_commit"],
                v.get("issued_at", ""),
            )
            for k, v in body.get("sources", {}).items()
        }
        kubernetes = body.get("kubernetes")
        return cls(
            path,
            dict(body["steps"]),
            resources,
            sources,
            body.get("self_heal", True),
            None if kubernetes is None else dataplane.KubernetesRuntime.model_validate(kubernetes),
        )

    def step(self, sequence: int, command: signed.Command) -> str | None:
        """``started``, ``applied`` or ``failed`` for a command, or None if never seen."""
        return self.steps.get(_key(sequence, command))

    def record(
        self,
        sequence: int,
        command: signed.Command,
        step: str,
        resource: signed.ResourceStatus | None = None,
        source: Source | None = None,
    ) -> None:
        """Persist a step (and the resource's new state, applied from ``source``) before
        going on."""
        self.steps[_key(sequence, command)] = step
        if resource is not None:
            key = f"{resource.kind}/{resource.name}"
            self.resources[key] = resource
            if command.action != "delete":
                self.sources[key] = source or Source(command, "")
        self.save()

    def observed(self, resource: signed.ResourceStatus) -> None:
        """Persist a resource's newly observed state."""
        self.resources[f"{resource.kind}/{resource.name}"] = resource
        self.save()

    def forget(self, kind: str, name: str) -> None:
        """Drop a deleted resource from the report."""
        self.resources.pop(f"{kind}/{name}", None)
        self.sources.pop(f"{kind}/{name}", None)

    def save(self) -> None:
        """Write the journal atomically."""
        body = {
            "steps": self.steps,
            "resources": {k: v.model_dump(mode="json") for k, v in self.resources.items()},
            "sources": {
                k: {
                    "command": v.command.model_dump(mode="json"),
                    "spec_commit": v.spec_commit,
                    "issued_at": v.issued_at,
                }
                for k, v in self.sources.items()
            },
            "self_heal": self.self_heal,
        }
        if self.kubernetes is not None:
            body["kubernetes"] = self.kubernetes.model_dump(mode="json", by_alias=True)
        files.atomic_write(self.path, json.dumps(body, sort_keys=True, indent=1).encode())


@dataclass(frozen=True)
class Source:
    """The command a resource was applied from, with the spec commit and the issue time of
    the bundle that carried it."""

    command: signed.Command
    spec_commit: str
    issued_at: str = ""
    """The bundle's signed ``issued_at``; empty in a journal written before it was kept."""

    @classmethod
    def of(cls, command: signed.Command, bundle: signed.Bundle) -> Source:
        """``command`` as ``bundle`` carried it."""
        return cls(command, bundle.spec_commit, bundle.issued_at)

    def context(
        self, scratch: Path, self_heal: bool, *, now: datetime, cancel: CancelToken
    ) -> ApplyContext:
        """What the runtime is given to apply or observe the command at ``now``."""
        issued = datetime.fromisoformat(self.issued_at) if self.issued_at else None  # 'Z': 3.11
        return ApplyContext(
            self.spec_commit, scratch, self_heal, now=now, cancel=cancel, issued_at=issued
        )


def _key(sequence: int, command: signed.Command) -> str:
    return f"{sequence}:{command.id}"
