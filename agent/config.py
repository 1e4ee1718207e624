"""The agent's configuration file (docs/agent.md documents every field)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated, Any, Literal, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

from schemas import hints, parse
from schemas.common import Duration, Name, parse_duration
from schemas.errors import UsageError

log = logging.getLogger("gitplane.agent")

RENAMED = {"remote": "repo", "specBranch": "branch"}
"""Old field names still read, with a deprecation warning: one name per concept, as the
reconciler's ``--repo`` and ``--branch``."""


class _Config(BaseModel):
    model_config = ConfigDict(extra="forbid", alias_generator=to_camel, frozen=True)


class LocalRuntimeConfig(_Config):
    """The embedded ``local`` runtime."""

    type: Literal["local"] = "local"
    mlflow_tracking_uri: str | None = None
    """Default: a SQLite store in the state directory (``sqlite:///<stateDir>/mlflow.db``)."""
    data_dir: Path | None = None
    """Where relative data paths in specs resolve (feature sources, DAG data); default
    ``<stateDir>/data``."""
    ports: Annotated[str, Field(pattern=r"^\d{1,5}-\d{1,5}$")] = "20000-29999"
    """Inclusive TCP port range endpoints are given from (``START-END``)."""
    standby_replicas: Annotated[int, Field(ge=0, le=8)] = 1
    """Warm replicas each endpoint keeps outside its pool: a scale-up takes one at once
    instead of waiting seconds for a cold start (0 to save the memory)."""

    @field_validator("ports")
    @classmethod
    def _port_range(cls, value: str) -> str:
        start, end = (int(p) for p in value.split("-"))
        if not 1024 <= start <= end <= 65535:
            raise ValueError(f"{value!r}: expected START-END with 1024 <= START <= END <= 65535")
        return value

    def port_range(self) -> tuple[int, int]:
        """``ports`` as two integers."""
        start, end = (int(p) for p in self.ports.split("-"))
        return start, end

    def data_path(self, state_dir: Path) -> Path:
        """Where relative data paths in specs resolve."""
        return self.data_dir or state_dir / "data"

    def tracking_uri(self, state_dir: Path) -> str:
        """The MLflow tracking URI builds are logged to."""
        return self.mlflow_tracking_uri or f"sqlite:///{(state_dir / 'mlflow.db').resolve()}"


class KubernetesRuntimeConfig(_Config):
    """The ``kubernetes`` runtime: how the agent reaches its cluster. Everything else about
    the plane (namespace, images, source) is its signed ``spec.kubernetes`` (ADR 0016)."""

    type: Literal["kubernetes"]
    kubeconfig: Path | None = None
    """A kubeconfig file (relative to this file); its context is the one the plane's
    ``spec.kubernetes.context`` names, else its current context. Default: the pod's
    service account (the agent runs in the cluster it manages)."""


def _runtime_type(value: Any) -> str:
    """A runtime's ``type``; ``local`` when it is left out."""
    if isinstance(value, dict):
        kind = value.get("type", "local")
        return kind if isinstance(kind, str) else ""
    return str(getattr(value, "type", ""))


RuntimeConfig = Annotated[
    Annotated[LocalRuntimeConfig, Tag("local")]
    | Annotated[KubernetesRuntimeConfig, Tag("kubernetes")],
    Discriminator(
        _runtime_type,
        custom_error_type="runtime_type",
        custom_error_message="unknown runtime type (this release has: local, kubernetes)",
    ),
]
"""The runtime a plane runs on, chosen by ``type`` (:mod:`agent.runtimes.select` builds it):
each runtime's settings are a member of this union."""


RUNTIMES: dict[str, type[BaseModel]] = {
    "local": LocalRuntimeConfig,
    "kubernetes": KubernetesRuntimeConfig,
}
"""Each runtime's settings by ``type``: where a problem under ``runtime`` is explained."""


class AgentConfig(_Config):
    """One agent serves one data plane."""

    plane: Name
    """The DataPlane's ``metadata.name``."""
    repo: str
    """The spec repository holding the logs (and the specs): a path or any git URL."""
    branch: str = "main"
    """The protected branch the agent fetches MLflow Projects from (at the commit each
    command names)."""
    root_file: Path
    """The pinned root of trust (``root.json`` from ``gitplane keys init``)."""
    key_file: Path | None = None
    """The agent's private key (``gitplane keys agent``); its public half is in the DataPlane."""
    key_uri: Annotated[str, Field(min_length=1, max_length=2048)] | None = None
    """Instead of ``keyFile``: a securesystemslib signer URI holding the agent's Ed25519 key
    (``hv:`` for a Vault transit key, ``file2:``); the private key never enters the agent."""
    public_key: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")] | None = None
    """With ``keyUri``: the key's public half, as the DataPlane's ``spec.agentKey.public``."""
    state_dir: Path
    """Trust state, journal, mirror, MLflow store and scratch space: keep it private."""
    poll_interval: Duration = "10s"
    runtime: RuntimeConfig = Field(default_factory=LocalRuntimeConfig)

    @model_validator(mode="after")
    def _one_key(self) -> Self:
        """``keyFile``, or ``keyUri`` with its ``publicKey``: exactly one way to sign."""
        if (self.key_file is None) == (self.key_uri is None):
            raise ValueError("give keyFile, or keyUri with publicKey (one of them)")
        if (self.key_uri is None) != (self.public_key is None):
            raise ValueError("keyUri and publicKey go together (the URI's key and its public half)")
        return self

    @field_validator("poll_interval")
    @classmethod
    def _poll_bounds(cls, value: str) -> str:
        """1s to 7d, as the reconciler's ``--interval``: 0s was a busy loop against git."""
        if not 1 <= parse_duration(value) <= 7 * 24 * 3600:
            raise ValueError(f"{value!r}: expected between 1s and 7d")
        return value

    @property
    def poll_seconds(self) -> float:
        """``poll_interval`` in seconds."""
        return parse_duration(self.poll_interval)


def load_config(path: Path) -> AgentConfig:
    """Read and validate a config file; relative paths are relative to the file."""
    raw = _load_raw(path)
    for note in _rename_deprecated(raw, path):
        log.warning(note)
    for key in ("rootFile", "keyFile", "stateDir"):
        if isinstance(raw.get(key), str):
            raw[key] = str((path.parent / raw[key]).resolve())
    runtime = raw.get("runtime")
    for key in ("dataDir", "kubeconfig"):
        if isinstance(runtime, dict) and isinstance(runtime.get(key), str):
            runtime[key] = str((path.parent / runtime[key]).resolve())
    repo = raw.get("repo")
    if isinstance(repo, str) and (path.parent / repo).exists():
        raw["repo"] = str((path.parent / repo).resolve())  # a repository beside the file
    try:
        return AgentConfig.model_validate(raw)
    except ValidationError as exc:
        raise UsageError(f"{path}: {_first_problem(exc)}") from None


def _load_raw(path: Path) -> dict[str, Any]:
    try:
        return parse.load_mapping(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise UsageError(f"{path}: {exc}") from None


def _rename_deprecated(raw: dict[str, Any], path: Path) -> list[str]:
    """Move each old field name of :data:`RENAMED` to its new one; a line per rename."""
    notes = []
    for old, new in RENAMED.items():
        if old not in raw:
            continue
        if new in raw:
            raise UsageError(f"{path}: {old} and {new} are the same field; keep {new}")
        raw[new] = raw.pop(old)
        notes.append(f"warning: {path}: {old} is deprecated; rename it {new}")
    return notes


def _first_problem(exc: ValidationError) -> str:
    """``field: message`` of the first error, in the words ``validate`` uses for specs
    (an unknown field gets a "did you mean")."""
    first = exc.errors(include_url=False)[0]
    loc = first["loc"]
    runtime = RUNTIMES.get(str(loc[1])) if loc[:1] == ("runtime",) and len(loc) > 2 else None
    if runtime is None:
        found = hints.explain(AgentConfig, first)
        return f"{'.'.join(str(p) for p in found.path)}: {found.message}"
    found = hints.explain(runtime, {**first, "loc": loc[2:]})  # runtime.<type>.x: the tag is noise
    return f"{'.'.join(str(p) for p in ('runtime', *found.path))}: {found.message}"
