"""Failures as the real API server reports them: an HTTP code and a ``kind: Status`` body.

The official client turns any of these into ``ApiException(status=code)`` with the body
as JSON; a runtime reads ``reason`` (``NotFound``, ``AlreadyExists``, ``Conflict``,
``Invalid``) and ``details.causes``, so the double fills them as the real server does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tests.kubeapi.resources import Resource


@dataclass(frozen=True)
class Cause:
    """One entry of ``details.causes``: what is wrong with which field."""

    reason: str
    message: str
    field: str

    def as_json(self) -> dict[str, str]:
        return {"reason": self.reason, "message": self.message, "field": self.field}


class ApiError(Exception):
    """A request the server refuses; :meth:`status` is the body it answers with."""

    def __init__(self, code: int, reason: str, message: str, details: dict[str, Any] | None = None):
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details

    def status(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details is not None:
            body["details"] = self.details
        return body


def _details(resource: Resource, name: str) -> dict[str, Any]:
    return {"name": name, "group": resource.group, "kind": resource.plural}


def not_found(resource: Resource, name: str) -> ApiError:
    return ApiError(
        404, "NotFound", f'{resource.qualified} "{name}" not found', _details(resource, name)
    )


def already_exists(resource: Resource, name: str) -> ApiError:
    return ApiError(
        409,
        "AlreadyExists",
        f'{resource.qualified} "{name}" already exists',
        _details(resource, name),
    )


def modified(resource: Resource, name: str) -> ApiError:
    """A write that names a ``resourceVersion`` which is no longer the latest."""
    message = (
        f'Operation cannot be fulfilled on {resource.qualified} "{name}": the object has'
        " been modified; please apply your changes to the latest version and try again"
    )
    return ApiError(409, "Conflict", message, _details(resource, name))


def invalid(resource: Resource, name: str, causes: list[Cause]) -> ApiError:
    listed = ", ".join(f"{c.field}: {c.message}" for c in causes)
    message = f'{resource.kind_qualified} "{name}" is invalid: {listed}'
    details = {
        "name": name,
        "group": resource.group,
        "kind": resource.kind,
        "causes": [c.as_json() for c in causes],
    }
    return ApiError(422, "Invalid", message, details)


def apply_conflict(conflicts: list[tuple[str, str]], api_version: str) -> ApiError:
    """Server-side apply found fields another manager owns with other values:
    ``conflicts`` is ``(manager, ".field.path")`` pairs."""
    causes = [
        Cause("FieldManagerConflict", f'conflict with "{m}" using {api_version}', f)
        for m, f in conflicts
    ]
    if len(conflicts) == 1:
        summary = f"Apply failed with 1 conflict: {causes[0].message}: {causes[0].field}"
    else:
        lines = "".join(f"\n- {c.message}: {c.field}" for c in causes)
        summary = f"Apply failed with {len(conflicts)} conflicts:{lines}"
    return ApiError(409, "Conflict", summary, {"causes": [c.as_json() for c in causes]})


def bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


def expired(message: str) -> ApiError:
    return ApiError(410, "Expired", message)


def unauthorized() -> ApiError:
    return ApiError(401, "Unauthorized", "Unauthorized")


def method_not_allowed(resource: Resource) -> ApiError:
    return ApiError(
        405,
        "MethodNotAllowed",
        f"the server does not allow this method on the requested resource "
        f"({resource.qualified} are written only by the double's controllers)",
    )


def unsupported_media_type(content_type: str) -> ApiError:
    return ApiError(
        415,
        "UnsupportedMediaType",
        f"the body of the request was in an unknown format - accepted media types"
        f" include: application/json, application/merge-patch+json,"
        f" application/apply-patch+yaml (got {content_type!r})",
    )
