"""The HTTP side of the API server test double: parse a request, check its token, hand
it to :class:`tests.kubeapi.api.Api` under the store's lock, answer in JSON; watches are
a chunked stream of JSON lines, as the real server sends them."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

import yaml

from tests.kubeapi import errors, routes
from tests.kubeapi.errors import ApiError
from tests.kubeapi.routes import Route

if TYPE_CHECKING:
    from tests.kubeapi.server import KubeApiDouble

Json = dict[str, Any]
APPLY = "application/apply-patch+yaml"
MERGE = ("application/merge-patch+json", "application/strategic-merge-patch+json")
WATCH_TIMEOUT = 1800.0
"""Seconds a watch stays open when the client names no ``timeoutSeconds``."""


def parse_body(content_type: str, raw: bytes) -> Any:
    """The request body; 400 with the decoder's words when it cannot be read."""
    if not raw:
        return None
    try:
        parsed = yaml.safe_load(raw) if content_type == APPLY else json.loads(raw)
    except (yaml.YAMLError, ValueError) as bad:
        kind = "YAML" if content_type == APPLY else "JSON"
        raise errors.bad_request(f"error decoding {kind}: {bad}") from None
    if not isinstance(parsed, dict):
        raise errors.bad_request(f"the body must be an object, not {type(parsed).__name__}")
    return parsed


def manager_of(query: dict[str, str], user_agent: str) -> str:
    """``?fieldManager=``, else the user agent's first word, as the real server names it."""
    return query.get("fieldManager") or user_agent.split("/", maxsplit=1)[0] or "unknown"


def _check_name(route: Route, body: Json) -> None:
    named = (body.get("metadata") or {}).get("name")
    if named and named != route.name:
        raise errors.bad_request(
            f"the name of the object ({named}) does not match the name on the URL ({route.name})"
        )


def _patch(
    double: KubeApiDouble,
    route: Route,
    *,
    content_type: str,
    body: Json,
    query: dict[str, str],
    manager: str,
) -> tuple[int, Json]:
    api, name = double.api, route.name or ""
    if content_type == APPLY:
        if not query.get("fieldManager"):
            raise errors.ApiError(
                422,
                "Invalid",
                'PatchOptions.meta.k8s.io "" is invalid: '
                "fieldManager: Required value: is required for apply patch",
            )
        _check_name(route, body)
        if route.subresource:
            return 200, api.write_status(
                route.resource, route.namespace, name, body, manager=manager, operation="Apply"
            )
        existed = api.store.get(route.resource, route.namespace, name) is not None
        force = query.get("force", "") in {"true", "1"}
        made = api.apply(route.resource, route.namespace, name, body, manager=manager, force=force)
        return (200 if existed else 201), made
    if content_type not in MERGE:
        raise errors.unsupported_media_type(content_type)
    if route.subresource:
        return 200, api.status_patch(route.resource, route.namespace, name, body, manager=manager)
    return 200, api.merge_patch(route.resource, route.namespace, name, body, manager)


@dataclass(frozen=True)
class Call:
    """One non-watch request on a resource, as parsed."""

    method: str
    route: Route
    query: dict[str, str]
    content_type: str
    body: Json | None
    manager: str


def _read(double: KubeApiDouble, call: Call) -> tuple[int, Json]:
    route, query = call.route, call.query
    if route.name is not None:
        return 200, double.api.get(route.resource, route.namespace, route.name)
    labels, field_selector = query.get("labelSelector", ""), query.get("fieldSelector", "")
    found = double.api.list(
        route.resource, route.namespace, labels=labels, field_selector=field_selector
    )
    return 200, found


def _write(double: KubeApiDouble, call: Call, name: str, body: Json) -> tuple[int, Json]:
    api, route = double.api, call.route
    if call.method == "DELETE":
        policy = call.query.get("propagationPolicy") or body.get("propagationPolicy")
        return 200, api.delete(route.resource, route.namespace, name, policy)
    if call.method == "PUT":
        _check_name(route, body)
        if route.subresource:
            made = api.write_status(
                route.resource, route.namespace, name, body, manager=call.manager
            )
            return 200, made
        return 200, api.replace(route.resource, route.namespace, name, body, call.manager)
    return _patch(
        double,
        route,
        content_type=call.content_type,
        body=body,
        query=call.query,
        manager=call.manager,
    )


def dispatch(double: KubeApiDouble, call: Call) -> tuple[int, Json]:
    """One non-watch request on a resource: its HTTP code and JSON answer."""
    route = call.route
    if route.resource.read_only and call.method != "GET":
        raise errors.method_not_allowed(route.resource)
    if call.method == "GET":
        return _read(double, call)
    if call.method == "POST" and route.name is None:
        return 201, double.api.create(
            route.resource, route.namespace, call.body or {}, call.manager
        )
    if route.name is None or (call.body is None and call.method in {"PUT", "PATCH"}):
        raise errors.ApiError(405, "MethodNotAllowed", f"{call.method} needs a name and a body")
    return _write(double, call, route.name, call.body or {})


def make(double: KubeApiDouble) -> type[BaseHTTPRequestHandler]:
    """The request handler class of one double."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body go out as they are written

        def do_GET(self) -> None:
            self._serve("GET")

        def do_POST(self) -> None:
            self._serve("POST")

        def do_PUT(self) -> None:
            self._serve("PUT")

        def do_PATCH(self) -> None:
            self._serve("PATCH")

        def do_DELETE(self) -> None:
            self._serve("DELETE")

        def log_message(self, format: str, *args: object) -> None:
            """Quiet: the double's requests are in ``double.requests``."""

        def _serve(self, method: str) -> None:
            from tests.kubeapi.server import Request  # noqa: PLC0415 - server imports this module

            url = urlsplit(self.path)
            query = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            content_type = (self.headers.get("Content-Type") or "").split(";")[0].strip()
            try:
                body = parse_body(content_type, raw)
                double.requests.append(Request(method, url.path, query, content_type, body))
                if not double.is_authorized(self.headers.get("Authorization", "")):
                    raise errors.unauthorized()
                self._answer(method, url.path, query, content_type, body)
            except ApiError as refused:
                self._send(refused.code, refused.status())

        def _answer(
            self,
            method: str,
            path: str,
            query: dict[str, str],
            content_type: str,
            body: Json | None,
        ) -> None:
            document = routes.discovery(double.served, path)
            if document is not None and method == "GET":
                self._send(200, document)
                return
            route = routes.route(double.served, path)
            if method == "GET" and query.get("watch") in {"1", "true"}:
                self._watch(route, query)
                return
            manager = manager_of(query, self.headers.get("User-Agent", ""))
            with double.store.lock:
                call = Call(method, route, query, content_type, body, manager)
                code, answer = dispatch(double, call)
            self._send(code, answer)

        def _send(self, code: int, payload: Json) -> None:
            data = json.dumps(payload).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _chunk(self, data: bytes) -> None:
            self.wfile.write(f"{len(data):X}\r\n".encode() + data + b"\r\n")
            self.wfile.flush()

        def _watch(self, route: Route, query: dict[str, str]) -> None:
            wanted = double.api.selectors(
                query.get("labelSelector", ""), query.get("fieldSelector", "")
            )
            timeout = float(query.get("timeoutSeconds") or WATCH_TIMEOUT)
            stream = Watch(double, route, wanted, query.get("resourceVersion", ""))
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            self.close_connection = True
            try:
                for line in stream.lines(time.monotonic() + timeout):
                    self._chunk(line)
                self.wfile.write(b"0\r\n\r\n")
            except (BrokenPipeError, ConnectionResetError):
                return

    return Handler


class Watch:
    """One watch: the events of one resource (in one namespace, through the selectors)
    after a resourceVersion, or the current objects as ADDED first when it names none."""

    def __init__(self, double: KubeApiDouble, route: Route, wanted: Any, since: str) -> None:
        self.double, self.route, self.wanted = double, route, wanted
        self.since = since

    def _matches(self, event: Any) -> bool:
        namespace = event.object["metadata"].get("namespace")
        return (
            event.resource is self.route.resource
            and self.route.namespace in {None, namespace}
            and (self.route.name is None or event.object["metadata"]["name"] == self.route.name)
            and self.double.api.matches(self.wanted, event.object)
        )

    def _start(self) -> tuple[int, list[Json]]:
        """The revision to follow from, and the synthetic ADDED events of a fresh watch."""
        store = self.double.store
        if self.since not in {"", "0"}:
            return int(self.since), []
        objects = store.list(self.route.resource, self.route.namespace)
        added = [
            {"type": "ADDED", "object": o}
            for o in objects
            if self.double.api.matches(self.wanted, o)
        ]
        return store.revision, added

    def _next(self, revision: int, deadline: float) -> tuple[int, list[Json]]:
        store = self.double.store
        with store.lock:
            events = store.events_after(revision)
            if not events and not store.closed:
                store.lock.wait(max(0.0, deadline - time.monotonic()))
                events = store.events_after(revision)
        last = events[-1].revision if events else revision
        return last, [{"type": e.type, "object": e.object} for e in events if self._matches(e)]

    def lines(self, deadline: float) -> Any:
        """JSON lines until the deadline, the server's close, or a 410 for an old version."""
        with self.double.store.lock:
            revision, first = self._start()
        batch = first
        while True:
            for event in batch:
                yield json.dumps(event).encode() + b"\n"
            if time.monotonic() >= deadline or self.double.store.closed:
                return
            try:
                revision, batch = self._next(revision, deadline)
            except ValueError as too_old:
                status = errors.expired(str(too_old)).status()
                yield json.dumps({"type": "ERROR", "object": status}).encode() + b"\n"
                return
