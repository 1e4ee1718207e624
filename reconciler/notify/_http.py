"""The only module that speaks HTTP for notifications (stdlib urllib).

Every answer, 2xx to 5xx, comes back as a :class:`Response`; anything that is
not an answer (refused connection, timeout, reset, a bad URL) is a
:class:`DeliveryError`. No urllib or socket exception escapes.
"""

from __future__ import annotations

import http.client
import urllib.error
import urllib.request
from typing import NamedTuple

from reconciler.notify.targets import Request

MAX_READ = 64 * 1024  # bytes of an answer read before the connection is closed


class Response(NamedTuple):
    """A receiver's answer: its status and its ``Retry-After`` header, if any."""

    status: int
    retry_after: str | None = None


class DeliveryError(Exception):
    """No answer came."""


def post(request: Request, timeout: float) -> Response:
    """POST ``request``; ``timeout`` bounds the connection and each read, in seconds."""
    try:
        sent = urllib.request.Request(  # noqa: S310 - the URL's scheme is checked at load
            request.url, data=request.body, headers=dict(request.headers), method="POST"
        )
        with urllib.request.urlopen(sent, timeout=timeout) as answer:  # noqa: S310
            answer.read(MAX_READ)
            return Response(answer.status)
    except urllib.error.HTTPError as exc:
        with exc:
            return Response(exc.code, exc.headers.get("Retry-After"))
    except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as exc:
        raise DeliveryError(_why(exc)) from None


def _why(exc: Exception) -> str:
    reason = getattr(exc, "reason", None)
    return str(reason or exc) or type(exc).__name__
