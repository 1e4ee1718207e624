"""The reconciler's notifications file (``gitplane reconcile --notifications FILE``).

A Kubernetes-style document that lists where state changes go. Secrets are never
in the file: each target names the environment variable that holds its secret
(a webhook's HMAC key, a forge token, or a Slack URL, which is itself the
secret), and :func:`resolve` reads them once at start, so a missing one stops
the reconciler before its first cycle rather than failing every delivery.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
)
from pydantic.alias_generators import to_camel
from pydantic_core import ErrorDetails

from schemas import hints, parse
from schemas.errors import UsageError

EventName = Literal["issued", "applied", "failed", "stalled", "blocked", "attack"]
EVENTS: tuple[EventName, ...] = ("issued", "applied", "failed", "stalled", "blocked", "attack")


def _matching(pattern: str, words: str) -> AfterValidator:
    """A string check whose error says in ``words`` what was expected."""

    def check(value: str) -> str:
        if re.fullmatch(pattern, value) is None:
            raise ValueError(f"{value!r} is not {words}")
        return value

    return AfterValidator(check)


def _id_as_text(value: object) -> object:
    """A GitLab project id written as a number in YAML, as the API's path takes it."""
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


EnvName = Annotated[str, _matching(r"[A-Za-z_][A-Za-z0-9_]*", "an environment variable name")]
Url = Annotated[str, _matching(r"https?://[^\s/]+\S*", "an http:// or https:// URL")]
Repository = Annotated[str, _matching(r"[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+", "OWNER/NAME")]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", alias_generator=to_camel, frozen=True)


class _Target(_Model):
    events: Annotated[tuple[EventName, ...], Field(min_length=1)] = EVENTS
    """Which events this target receives (default: all of them)."""
    planes: Annotated[tuple[str, ...], Field(min_length=1)] | None = None
    """Which planes' events it receives (default: every plane)."""

    def wants(self, event: str, plane: str) -> bool:
        """Whether an ``event`` on ``plane`` goes to this target."""
        return event in self.events and (self.planes is None or plane in self.planes)


class WebhookTarget(_Target):
    """A generic JSON webhook, signed with HMAC-SHA256 (``X-Gitplane-Signature``)."""

    type: Literal["webhook"]
    url: Url
    secret_env: EnvName


class SlackTarget(_Target):
    """A Slack-compatible incoming webhook: its URL is its secret."""

    type: Literal["slack"]
    url_env: EnvName


class GitHubTarget(_Target):
    """Commit statuses on the spec commit, in a GitHub repository."""

    type: Literal["github"]
    api_url: Url = "https://api.github.com"
    repository: Repository
    token_env: EnvName


class GitLabTarget(_Target):
    """Commit statuses on the spec commit, in a GitLab project (by id or path)."""

    type: Literal["gitlab"]
    api_url: Url = "https://gitlab.com/api/v4"
    project: Annotated[str, BeforeValidator(_id_as_text), Field(min_length=1)]
    """The numeric id (``42``) or the path (``group/name``)."""
    token_env: EnvName


_BY_TYPE: dict[str, type[_Target]] = {
    "webhook": WebhookTarget,
    "slack": SlackTarget,
    "github": GitHubTarget,
    "gitlab": GitLabTarget,
}


def _type_of(value: object) -> str | None:
    """A target's ``type``, or None (pydantic then says which types there are)."""
    kind = value.get("type") if isinstance(value, dict) else getattr(value, "type", None)
    return kind if isinstance(kind, str) and kind in _BY_TYPE else None


Target = Annotated[
    Annotated[WebhookTarget, Tag("webhook")]
    | Annotated[SlackTarget, Tag("slack")]
    | Annotated[GitHubTarget, Tag("github")]
    | Annotated[GitLabTarget, Tag("gitlab")],
    Discriminator(
        _type_of,
        custom_error_type="target_type",
        custom_error_message=f"type must be one of {', '.join(_BY_TYPE)}",
    ),
]


class NotificationsSpec(_Model):
    """Where notifications go."""

    targets: Annotated[list[Target], Field(min_length=1)]


class Notifications(_Model):
    """The whole file."""

    api_version: Literal["gitplane.dev/v1alpha1"]
    kind: Literal["Notifications"]
    spec: NotificationsSpec


@dataclass(frozen=True)
class Destination:
    """One target with its secret read from the environment: what the sender needs."""

    name: str
    """``<type>[<index>]``, as logs and metrics name it."""
    target: WebhookTarget | SlackTarget | GitHubTarget | GitLabTarget
    secret: str


def load(path: Path) -> Notifications:
    """Read and validate the file; a problem is one line, ``file:line:column: field: why``."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UsageError(f"{path}: cannot read: {exc.strerror}") from None
    try:
        raw = parse.load_mapping(data)
    except ValueError as exc:  # already ``line:column: why``
        raise UsageError(f"{path}:{exc}") from None
    try:
        return Notifications.model_validate(raw)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        inner = [  # an item refused also empties its list: the item's error says why
            e
            for e in errors
            if not any(o["loc"][: len(e["loc"])] == e["loc"] != o["loc"] for o in errors)
        ]
        found = hints.without_typo_fallout([_explain(e) for e in inner])
        first = parse.locate(str(path), data, found)[0]
        raise UsageError(str(first)) from None


def _explain(error: ErrorDetails) -> hints.Found:
    """pydantic puts a target's tag in the path (``targets.0.webhook.url``): the file has no
    such key, so explain the error on that target's own model and drop the tag."""
    loc = tuple(error["loc"])
    if len(loc) > 3 and loc[:2] == ("spec", "targets") and loc[3] in _BY_TYPE:
        inner = hints.explain(_BY_TYPE[str(loc[3])], {**error, "loc": loc[4:]})
        meant = (*loc[:3], *inner.meant) if inner.meant else None
        return replace(inner, path=(*loc[:3], *inner.path), meant=meant)
    return hints.explain(Notifications, error)


def resolve(config: Notifications, path: Path, env: Mapping[str, str]) -> list[Destination]:
    """Each target with its secret; a variable that is not set is a usage error naming it."""
    destinations = []
    for index, target in enumerate(config.spec.targets):
        field = _secret_field(target)
        variable = getattr(target, field)
        secret = env.get(variable, "").strip()
        where = f"{path}: spec.targets[{index}].{to_camel(field)}: environment variable {variable}"
        if not secret:
            raise UsageError(f"{where} is not set (or empty); export it before starting")
        if field == "url_env" and re.fullmatch(r"https?://[^\s/]+\S*", secret) is None:
            raise UsageError(f"{where} is not an http:// or https:// URL (the webhook's URL)")
        destinations.append(Destination(f"{target.type}[{index}]", target, secret))
    return destinations


def _secret_field(target: BaseModel) -> str:
    return next(f for f in ("secret_env", "url_env", "token_env") if f in type(target).model_fields)
