"""What a signed command carries, typed: one model per kind, shared by both sides.

The reconciler signs a command's spec as exact JSON text: the document's
declared fields (``apiVersion``, ``kind``, ``metadata``, ``spec``: only what
the author wrote, so that a default changing in a new release is no change),
plus what it resolved for the plane (``inputs``: the tree id of each project
the resource builds or runs; ``resolved.model``: the model version a
deployment serves, pinned). A runtime reads that text back with :func:`read`
into the kind's model here, so every default comes from the same schema that
validated the spec in git, and no runtime reads the text as a dict.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from pydantic import ConfigDict, Field, ValidationError

from schemas import signed
from schemas.common import Strict
from schemas.dag import DAG
from schemas.deployment import Deployment
from schemas.errors import GitplaneError
from schemas.featureset import FeatureSet
from schemas.model import Model


class CommandSpecError(GitplaneError):
    """A command whose spec does not fit its kind (a reconciler of another version, say)."""


class PinnedModel(Strict):
    """The model version a Deployment serves, pinned by the reconciler for one plane."""

    model_config = ConfigDict(populate_by_name=True)

    name: str
    """The registered model's name."""
    version: str
    """The Model spec's version (``1.2.0``)."""
    registry_version: int
    """The version number the plane's registry gave it."""
    digest: str | None = None
    """sha256 of the model's artifacts as the plane reported them after its scan."""
    uri: str
    """``models:/<name>/<registry version>``."""


class Resolved(Strict):
    """What the reconciler resolved for the plane a Deployment command goes to."""

    model: PinnedModel


class ModelCommand(Model):
    """A Model command: the document, and the tree id of its project (``inputs``)."""

    inputs: dict[str, str] = Field(default_factory=dict)


class DeploymentCommand(Deployment):
    """A Deployment command: the document, and the model version it serves, pinned."""

    resolved: Resolved


class FeatureSetCommand(FeatureSet):
    """A FeatureSet command: the document as declared."""


class DAGCommand(DAG):
    """A DAG command: the document, and the tree id of each step's project (``inputs``)."""

    inputs: dict[str, str] = Field(default_factory=dict)


Typed = ModelCommand | DeploymentCommand | FeatureSetCommand | DAGCommand

BY_KIND: Mapping[str, type[Typed]] = {
    "Model": ModelCommand,
    "Deployment": DeploymentCommand,
    "FeatureSet": FeatureSetCommand,
    "DAG": DAGCommand,
}


T = TypeVar("T", ModelCommand, DeploymentCommand, FeatureSetCommand, DAGCommand)


def read(command: signed.Command, kind: type[T]) -> T:
    """The command's spec as ``kind``, every default applied; CommandSpecError when it does
    not fit (the command's kind must be ``kind``'s)."""
    if BY_KIND.get(command.kind) is not kind:
        raise CommandSpecError(f"a {command.kind} command is not a {kind.__name__}")
    try:
        return kind.model_validate_json(command.spec)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "(top)"
        raise CommandSpecError(
            f"the command's spec is not a valid {command.kind}: invalid at {where}: {first['msg']}"
        ) from None


def resolved(model: PinnedModel) -> dict[str, Any]:
    """The ``resolved`` part of a Deployment command's spec, as the JSON it is signed as."""
    return {"resolved": Resolved(model=model).model_dump(by_alias=True)}
