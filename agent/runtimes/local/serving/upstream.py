"""A minimal HTTP/1.1 client for the proxy's hop to a replica on loopback.

``http.client`` parses every response's headers through the ``email``
package; on a 1-row prediction that was a third of the proxy's CPU. The
replicas are our own uvicorn processes on 127.0.0.1, so this reads just what
the proxy needs — status, ``Content-Length`` or chunked framing,
``Content-Type`` and ``Connection: close`` — from the bytes. Every failure
is an ``OSError``, which the proxy treats as "try another replica".
"""

from __future__ import annotations

import socket
from typing import BinaryIO

MAX_LINE = 65_536
MAX_HEADERS = 100
DROPPED = frozenset({"host", "content-length", "expect", "connection", "keep-alive"})
JSON = "application/json"


class ProtocolError(ConnectionError):
    """The replica answered something that is not HTTP/1.1 as expected."""


class Connection:
    """One kept-alive connection to a replica."""

    def __init__(self, port: int, timeout: float) -> None:
        self.port, self.timeout = port, timeout
        self.sock: socket.socket | None = None
        self._rfile: BinaryIO | None = None

    def request(
        self, method: str, path: str, headers: list[tuple[str, str]], body: bytes
    ) -> tuple[int, bytes, str]:
        """Send one request and read its whole response: (status, body, content type)."""
        sock, rfile = self._open()
        lines = [f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\n"]
        lines.append(f"Content-Length: {len(body)}\r\n")
        lines += [f"{k}: {v}\r\n" for k, v in headers if k.lower() not in DROPPED]
        sock.sendall("".join(lines).encode("latin-1") + b"\r\n" + body)
        return self._response(rfile, head=method == "HEAD")

    def close(self) -> None:
        """Close the socket (a new one is opened by the next request)."""
        if self._rfile is not None:
            self._rfile.close()
        if self.sock is not None:
            self.sock.close()
        self.sock, self._rfile = None, None

    def _open(self) -> tuple[socket.socket, BinaryIO]:
        if self.sock is None or self._rfile is None:
            sock = socket.create_connection(("127.0.0.1", self.port), timeout=self.timeout)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.sock, self._rfile = sock, sock.makefile("rb")
        return self.sock, self._rfile

    def _response(self, rfile: BinaryIO, *, head: bool) -> tuple[int, bytes, str]:
        status = _status(rfile.readline(MAX_LINE))
        fields = _fields(rfile)
        kind = fields.get(b"content-type", JSON.encode()).decode("latin-1")
        if head or status in (204, 304):
            body = b""
        elif b"chunked" in fields.get(b"transfer-encoding", b"").lower():
            body = _chunks(rfile)
        elif b"content-length" in fields:
            body = _exactly(rfile, int(fields[b"content-length"]))
        else:
            body = rfile.read()
            self.close()
        if fields.get(b"connection", b"").lower() == b"close":
            self.close()
        return status, body, kind


def _status(line: bytes) -> int:
    if not line:
        raise ConnectionResetError("the replica closed the connection")
    parts = line.split(None, 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
        raise ProtocolError(f"bad status line from the replica: {line[:80]!r}")
    return int(parts[1])


def _fields(rfile: BinaryIO) -> dict[bytes, bytes]:
    fields: dict[bytes, bytes] = {}
    for _ in range(MAX_HEADERS):
        line = rfile.readline(MAX_LINE)
        if line in (b"\r\n", b"\n", b""):
            return fields
        name, _, value = line.partition(b":")
        fields[name.strip().lower()] = value.strip()
    raise ProtocolError("too many header lines from the replica")


def _exactly(rfile: BinaryIO, size: int) -> bytes:
    data = rfile.read(size)
    if len(data) != size:
        raise ConnectionResetError("the replica closed the connection mid-response")
    return data


def _chunks(rfile: BinaryIO) -> bytes:
    parts: list[bytes] = []
    while True:
        size = int(rfile.readline(MAX_LINE).split(b";", 1)[0].strip() or b"0", 16)
        if size == 0:
            while rfile.readline(MAX_LINE) not in (b"\r\n", b"\n", b""):
                pass  # trailers
            return b"".join(parts)
        parts.append(_exactly(rfile, size))
        rfile.readline(MAX_LINE)
