"""The reconciler's HTTP endpoint: Prometheus metrics, health, and a push webhook.

``/metrics`` (Prometheus text format), ``/healthz`` (200 while cycles succeed,
503 after a failed one), and ``POST /webhook``: a GitHub (``X-Hub-Signature-256``,
HMAC-SHA256 of the body) or GitLab (``X-Gitlab-Token``) push event, verified
with the secret in ``GITPLANE_WEBHOOK_SECRET``, triggers a cycle at once.
Without a secret the webhook answers 404: an unauthenticated trigger is
never accepted.

The server is exposed to whoever can reach ``--listen``, before any secret is
checked: a body is read only when ``Content-Length`` is a plain decimal number
within :data:`MAX_BODY`, exactly that many bytes are read, a client has
:data:`READ_TIMEOUT` seconds per read, and every bad request gets a 4xx
answer, never a traceback. Bind it to 127.0.0.1 and put a TLS-terminating
reverse proxy in front of it to expose it (docs/operations.md).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from schemas.errors import UsageError

log = logging.getLogger("gitplane.reconciler")

MAX_BODY = 1 << 20
READ_TIMEOUT = 10.0  # seconds a client may take per read: no slow-drip connection holds a thread


@dataclass
class Metrics:
    """The reconciler's Prometheus metrics, in their own registry."""

    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.duration = Histogram(
            "gitplane_reconcile_duration_seconds", "Duration of one reconcile cycle", registry=r
        )
        self.issued = Counter(
            "gitplane_commands_issued_total", "Commands issued, by plane", ["plane"], registry=r
        )
        self.errors = Counter(
            "gitplane_reconcile_errors_total",
            "Cycles that failed, by reason",
            ["reason"],
            registry=r,
        )
        self.flagged = Gauge(
            "gitplane_planes_flagged",
            "Planes whose status is missing, stale, refused or reporting an attack",
            registry=r,
        )
        self.notifications = Counter(
            "gitplane_notifications_total",
            "Notification deliveries, by target and outcome (delivered, retried, failed, dropped)",
            ["target", "outcome"],
            registry=r,
        )
        self.last_success = Gauge(
            "gitplane_last_success_timestamp_seconds", "When the last cycle succeeded", registry=r
        )


@dataclass
class Health:
    """What /healthz reports."""

    ok: bool = True
    detail: dict[str, object] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def set(self, ok: bool, **detail: object) -> None:
        """Record the outcome of a cycle."""
        with self.lock:
            self.ok, self.detail = ok, detail


def verify_webhook(headers: dict[str, str], body: bytes, secret: str) -> bool:
    """Whether a GitHub or GitLab webhook delivery carries the shared secret (compared as
    bytes, in constant time, whatever characters a header holds)."""
    signature = headers.get("x-hub-signature-256", "")
    if signature.startswith("sha256="):
        expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        return hmac.compare_digest(_raw(signature[7:]), expected.encode())
    token = headers.get("x-gitlab-token")
    return token is not None and hmac.compare_digest(_raw(token), secret.encode())


def _refusal(declared: str | None) -> tuple[int, bytes]:
    if declared is None:
        return 411, b"Content-Length required\n"
    if declared.isascii() and declared.isdigit():
        return 413, b"too large\n"
    return 400, b"bad Content-Length\n"


def _raw(header: str) -> bytes:
    """A header value as the bytes received (http.server decodes them as Latin-1)."""
    return header.encode("latin-1", errors="replace")


def body_length(value: str | None) -> int | None:
    """``Content-Length`` as a byte count, or None unless it is a plain decimal number
    (no sign, no spaces, no non-ASCII digits) of at most :data:`MAX_BODY`."""
    if value is None or not (value.isascii() and value.isdigit()) or len(value) > 9:
        return None
    length = int(value)
    return length if length <= MAX_BODY else None


def serve(
    host: str,
    port: int,
    *,
    metrics: Metrics,
    health: Health,
    secret: str | None,
    trigger: Callable[[], None],
) -> ThreadingHTTPServer:
    """Start the endpoint in a daemon thread; ``shutdown()`` the result to stop it."""

    class Handler(BaseHTTPRequestHandler):
        timeout = READ_TIMEOUT

        def do_GET(self) -> None:
            if self.path == "/metrics":
                self._send(200, generate_latest(metrics.registry), CONTENT_TYPE_LATEST)
            elif self.path == "/healthz":
                with health.lock:
                    body = json.dumps({"ok": health.ok, **health.detail}).encode()
                self._send(200 if health.ok else 503, body, "application/json")
            else:
                self._send(404, b"not found\n", "text/plain")

        def do_POST(self) -> None:
            if self.path != "/webhook" or not secret:
                self._send(404, b"not found\n", "text/plain")
                return
            declared = self.headers.get("Content-Length")
            length = body_length(declared)
            if length is None:
                code, why = _refusal(declared)
                self.close_connection = True  # the rest of what it sent is not read
                self._send(code, why, "text/plain")
                return
            body = self.rfile.read(length)
            if len(body) != length:
                self.close_connection = True
                self._send(400, b"short body\n", "text/plain")
                return
            headers = {k.lower(): v for k, v in self.headers.items()}
            if not verify_webhook(headers, body, secret):
                self._send(401, b"bad signature\n", "text/plain")
                return
            trigger()
            self._send(202, b"accepted\n", "text/plain")

        def _send(self, code: int, body: bytes, kind: str) -> None:
            self.send_response(code)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            return  # requests are counted in metrics, not logged line by line

    try:
        server = _Server((host, port), Handler)
    except OSError as exc:
        raise UsageError(f"--listen {host}:{port}: {exc.strerror}") from None
    threading.Thread(target=server.serve_forever, name="gitplane-http", daemon=True).start()
    return server


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: tuple[str, int]) -> None:
        """A client that hangs up or times out costs a log line, never a traceback."""
        log.warning("http request failed", extra={"fields": {"client": client_address[0]}})
