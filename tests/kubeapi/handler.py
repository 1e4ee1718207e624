"""The HTTP side of the API server test double: parse a request, check its token, hand
it to :class:`tests.kubeapi.api.Api` under the store's lock, answer in JSON; watches are
a chunked stream of JSON lines, as the real server sends them."""

from __future__ import annotations

import json
import time
import traceback
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

import yaml

from tests.kubeapi import errors, logs, resources, routes, watches
from tests.kubeapi.api import timestamp
from tests.kubeapi.errors import ApiError
from tests.kubeapi.routes import Route

if TYPE_CHECKING:
    from tests.kubeapi.server import KubeApiDouble

Json = dict[str, Any]
APPLY = "application/apply-patch+yaml"
MERGE = ("application/merge-patch+json", "application/strategic-merge-patch+json")
WATCH_TIMEOUT = 1800.0
"""Seconds a watch stays open when the client names no ``timeoutSeconds``."""


@dataclass(frozen=True)
class Request:
    """One request as the double received it (the body parsed when it was JSON or YAML)."""

    method: str
    path: str
    query: dict[str, str]
    content_type: str
    body: Any


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


def _deleted_pod(double: KubeApiDouble, route: Route, name: str, policy: str | None) -> Json:
    """A pod's DELETE (kubelet mode) answers with the pod, marked for deletion, as the real
    server answers a graceful deletion (the double removes it at once)."""
    pod = double.api.get(route.resource, route.namespace, name)
    double.api.delete(route.resource, route.namespace, name, policy)
    grace = (pod.get("spec") or {}).get("terminationGracePeriodSeconds", 30)
    pod["metadata"]["deletionTimestamp"] = timestamp(double.clock())
    pod["metadata"]["deletionGracePeriodSeconds"] = grace
    return pod


def _write(double: KubeApiDouble, call: Call, name: str, body: Json) -> tuple[int, Json]:
    api, route = double.api, call.route
    if call.method == "DELETE":
        policy = call.query.get("propagationPolicy") or body.get("propagationPolicy")
        if route.resource is resources.PODS:  # deleted gracefully: the pod is the answer
            return 200, _deleted_pod(double, route, name, policy)
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
    if route.resource.read_only and call.method not in double.read_only_verbs:
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
            url = urlsplit(self.path)
            query = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            content_type = (self.headers.get("Content-Type") or "").split(";")[0].strip()
            try:
                body = parse_body(content_type, raw)
                double.requests.append(Request(method, url.path, query, content_type, body))
                double.authorize(self.headers.get("Authorization", ""))
                self._answer(method, url.path, query, content_type, body)
            except ApiError as refused:
                self._send(refused.code, refused.status())
            except Exception as bug:  # a fault of the double: say so, as a 500 Status
                traceback.print_exc()
                failed = ApiError(500, "InternalError", f"the API server double failed: {bug!r}")
                self._send(500, failed.status())

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
            pod_log = logs.route(path)
            if pod_log is not None and method == "GET":
                if query.get("follow") in {"1", "true"} and double.node is not None:
                    double.node.wait(*pod_log, timeout=WATCH_TIMEOUT)
                with double.store.lock:
                    text = logs.read(double.api, double.node, *pod_log, query)
                self._send(200, text)
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

        def _send(self, code: int, payload: Json | str) -> None:
            """JSON, or plain text (a pod's log) for a string."""
            text = isinstance(payload, str)
            data = payload.encode() if text else json.dumps(payload).encode()
            self.send_response(code)
            self.send_header("Content-Type", "text/plain" if text else "application/json")
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
            since = query.get("resourceVersion", "")
            if not since.isdigit() and since != "":
                raise errors.bad_request(f'invalid resource version "{since}"')
            stream = watches.Watch(double, route, wanted, since)
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
