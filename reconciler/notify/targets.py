"""Each target's HTTP request for one event: pure, so every format is table-tested.

* ``webhook``: the event as JSON, signed like GitHub's ``X-Hub-Signature-256``:
  ``X-Gitplane-Signature: sha256=<hex HMAC-SHA256 of the raw body>``, with
  ``X-Gitplane-Delivery`` (the same on every retry, for receivers to deduplicate)
  and ``X-Gitplane-Event``.
* ``slack``: ``{"text": ...}``, one short line (Slack's control characters escaped).
* ``github``: ``POST /repos/{owner}/{repo}/statuses/{sha}``, context ``gitplane/<plane>``.
* ``gitlab``: ``POST /projects/{id}/statuses/{sha}``, name ``gitplane/<plane>``.

A forge status is per plane and spec commit; the newest event on it sets it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import quote

from reconciler.notify.config import (
    Destination,
    GitHubTarget,
    GitLabTarget,
    SlackTarget,
    WebhookTarget,
)
from reconciler.notify.events import Event

USER_AGENT = "gitplane-notify"
GITHUB_STATES = {"issued": "pending", "applied": "success", "attack": "error"}
"""GitHub commit states by event; any other event is a ``failure``."""
GITLAB_STATES = {"issued": "pending", "applied": "success"}
"""GitLab commit states by event; any other event is ``failed``."""
DESCRIPTION_MAX = 140  # characters: GitHub refuses a longer description
SIGNATURE_HEADER = "X-Gitplane-Signature"
_BASE = {"Content-Type": "application/json", "User-Agent": USER_AGENT}
_SLACK_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;"})
"""Slack reads ``<...>`` as links and mentions: text from a plane must not make one."""


@dataclass(frozen=True)
class Request:
    """One HTTP POST, ready to send."""

    url: str
    body: bytes
    headers: Mapping[str, str] = field(default_factory=dict)


def request(destination: Destination, event: Event, delivery: str) -> Request:
    """The request that tells ``destination`` of ``event``; ``delivery`` identifies it."""
    target, secret = destination.target, destination.secret
    if isinstance(target, WebhookTarget):
        return _webhook(target, secret, event, delivery)
    if isinstance(target, SlackTarget):
        return _json(secret, {"text": line(event).translate(_SLACK_ESCAPES)})
    if isinstance(target, GitHubTarget):
        return _github(target, secret, event)
    return _gitlab(target, secret, event)


def sign(secret: str, body: bytes) -> str:
    """The signature header's value for ``body``: ``sha256=<hex HMAC>``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def line(event: Event) -> str:
    """The event as one short readable line."""
    what = f"{event.resource} {event.event}" if event.resource else event.event
    detail = f": {event.detail}" if event.detail else ""
    return f"gitplane {event.plane}: {what} at {event.commit[:12]}{detail}"


def describe(event: Event) -> str:
    """A forge status description: the line without plane and commit (the status says
    them), cut to :data:`DESCRIPTION_MAX` characters."""
    what = f"{event.resource} {event.event}" if event.resource else event.event
    text = f"{what}: {event.detail}" if event.detail else what
    return text if len(text) <= DESCRIPTION_MAX else text[: DESCRIPTION_MAX - 1] + "…"


def _webhook(target: WebhookTarget, secret: str, event: Event, delivery: str) -> Request:
    body = _dump({**event.as_dict(), "delivery": delivery})
    headers = {
        SIGNATURE_HEADER: sign(secret, body),
        "X-Gitplane-Delivery": delivery,
        "X-Gitplane-Event": event.event,
    }
    return Request(target.url, body, {**_BASE, **headers})


def _github(target: GitHubTarget, token: str, event: Event) -> Request:
    url = f"{target.api_url.rstrip('/')}/repos/{target.repository}/statuses/{event.commit}"
    body = {
        "state": GITHUB_STATES.get(event.event, "failure"),
        "context": f"gitplane/{event.plane}",
        "description": describe(event),
    }
    headers = {
        "Authorization": f"Bearer {token}",
        "Accept": "application/vnd.github+json",
        "X-GitHub-Api-Version": "2022-11-28",
    }
    return Request(url, _dump(body), {**_BASE, **headers})


def _gitlab(target: GitLabTarget, token: str, event: Event) -> Request:
    project = quote(str(target.project), safe="")  # a path's "/" is %2F in GitLab's API
    url = f"{target.api_url.rstrip('/')}/projects/{project}/statuses/{event.commit}"
    body = {
        "state": GITLAB_STATES.get(event.event, "failed"),
        "name": f"gitplane/{event.plane}",
        "description": describe(event),
    }
    return Request(url, _dump(body), {**_BASE, "PRIVATE-TOKEN": token})


def _json(url: str, body: Mapping[str, object]) -> Request:
    return Request(url, _dump(body), _BASE)


def _dump(body: Mapping[str, object]) -> bytes:
    return json.dumps(body, sort_keys=True, ensure_ascii=False).encode()
