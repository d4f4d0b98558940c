"""HTTP/1.1 in front of the routes, read the way the real front end reads it.

Each rule follows a documented behaviour of the Functions host or of Kestrel, its web server:
- sizes: "Azure Functions HTTP trigger", section Limits (learn.microsoft.com/azure/
  azure-functions/functions-bindings-http-webhook-trigger#limits): a request of at most 100 MB
  (104,857,600 bytes) -> 413, a URL of at most 4 KB (4,096 bytes) -> 414;
- headers: KestrelServerLimits (learn.microsoft.com/dotnet/api/
  microsoft.aspnetcore.server.kestrel.core.kestrelserverlimits): MaxRequestLineSize 8 KB -> 414,
  MaxRequestHeadersTotalSize 32 KB and MaxRequestHeaderCount 100 -> 431;
- slow clients: the same page, RequestHeadersTimeout (30 s for the request line and headers) and
  MinRequestBodyDataRate (240 bytes/s after a 5 s grace period): past either, 408 and the
  connection is closed, so a slowloris client holds one thread for 30 s at most;
- bodies: Content-Length or Transfer-Encoding: chunked (RFC 9112 sections 6 and 7.1); both at
  once, a coding other than chunked, or conflicting lengths are refused with 400 (RFC 9112
  section 6.3: they are how requests are smuggled);
- duplicate headers: ASP.NET Core keeps every value, and the host gives a language worker one
  string per header, `pair.Value.ToString()` under the lower-cased name (azure-functions-host,
  GrpcMessageConversionExtensions.ToRpcHttp), which is StringValues.ToString (learn.microsoft.com/
  dotnet/api/microsoft.extensions.primitives.stringvalues.tostring): the values joined with ","
  (no space), empty values skipped. Every header reaches the function; a header or request line
  that is not visible ASCII is a 400 (see _ascii).
"""

from __future__ import annotations

import io
import logging
import re
import socket
import socketserver
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

from reclaim.safe_output import one_line

log = logging.getLogger("reclaim.host")

Dispatch = Callable[[str, str, Mapping[str, str], bytes], tuple[int, dict[str, str], bytes]]

_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_VISIBLE_ASCII = re.compile(rb"^[\t\x20-\x7e]*$")
_CHUNK_SIZE = re.compile(rb"^([0-9A-Fa-f]{1,16})[ \t]*(?:;.*)?$")


@dataclass(frozen=True)
class HttpLimits:
    max_body_bytes: int = 100 * 1024 * 1024
    max_url_bytes: int = 4096
    max_request_line_bytes: int = 8 * 1024
    max_header_bytes: int = 32 * 1024
    max_header_count: int = 100
    headers_timeout: float = 30.0
    keep_alive_timeout: float = 130.0  # an idle connection between two requests
    body_grace: float = 5.0
    min_body_rate: float = 240.0  # bytes per second


class RequestRejected(Exception):
    def __init__(self, status: HTTPStatus, reason: str) -> None:
        super().__init__(reason)
        self.status = status


class _DeadlineReader(io.RawIOBase):
    """Socket reads that fail with TimeoutError once the deadline has passed, however slowly
    the bytes trickle in (a per-read timeout alone lets one byte every few seconds through)."""

    def __init__(self, connection: socket.socket) -> None:
        self.connection = connection
        self.deadline = time.monotonic()
        self.rate: float | None = None  # reading a body: each byte received buys 1/rate seconds

    def expect(self, seconds: float, rate: float | None = None) -> None:
        self.deadline, self.rate = time.monotonic() + seconds, rate

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("request read deadline passed")
        self.connection.settimeout(remaining)
        received = self.connection.recv_into(buffer)
        if self.rate:
            self.deadline += received / self.rate
        return received


def join_headers(fields: Iterable[tuple[str, str]]) -> dict[str, str]:
    """One value per lower-cased name, repeated values joined as the host joins them."""
    values: dict[str, list[str]] = {}
    for name, value in fields:
        values.setdefault(name.lower(), []).append(value)
    return {name: ",".join(v for v in vs if v) for name, vs in values.items()}


def _ascii(line: bytes) -> str:
    """A request or header line without its CRLF. Kestrel answers 400 to a non-ASCII header byte
    unless RequestHeaderEncodingSelector is set (dotnet/aspnetcore#61189: the default rejects
    even UTF-8, whatever its page says) and always to ASCII control characters (#17399)."""
    text = line.rstrip(b"\r\n")
    if not _VISIBLE_ASCII.match(text):
        raise RequestRejected(HTTPStatus.BAD_REQUEST, "a header or request line is not ASCII")
    return text.decode("ascii")


class _Request:
    def __init__(self, method: str, target: str, version: str, fields: list[tuple[str, str]]):
        self.method, self.target, self.version = method, target, version
        self.headers = join_headers(fields)
        self.lengths = {v.strip() for n, v in fields if n.lower() == "content-length"}


def handler_class(
    dispatch: Dispatch, limits: HttpLimits
) -> type[socketserver.StreamRequestHandler]:
    class Handler(socketserver.StreamRequestHandler):
        def setup(self) -> None:
            super().setup()
            self.reader = _DeadlineReader(self.connection)
            self.buffered = io.BufferedReader(self.reader)
            self.rfile = self.buffered

        def handle(self) -> None:
            first, keep_open = True, True
            while keep_open:
                try:
                    if not first and not self._next_request_starts():
                        return
                    first = False
                    self.reader.expect(limits.headers_timeout)
                    keep_open = self._one_request()
                except RequestRejected as rejected:
                    self._respond(rejected.status, {}, f"{rejected}\n".encode(), close=True)
                    return
                except TimeoutError:
                    self._respond(HTTPStatus.REQUEST_TIMEOUT, {}, b"request timeout\n", close=True)
                    return
                except (ConnectionError, OSError):
                    return

        def _next_request_starts(self) -> bool:
            """Wait for the first byte of the next request on a kept-alive connection; an idle
            connection is closed without an answer after the keep-alive timeout."""
            self.reader.expect(limits.keep_alive_timeout)
            try:
                return bool(self.buffered.peek(1))
            except TimeoutError:
                return False

        def _one_request(self) -> bool:
            line = self.rfile.readline(limits.max_request_line_bytes + 1)
            if not line:
                return False  # the client closed the connection
            if len(line) > limits.max_request_line_bytes:
                raise RequestRejected(HTTPStatus.REQUEST_URI_TOO_LONG, "request line too long")
            if not line.endswith(b"\n"):
                return False  # closed in the middle of the request line
            request = self._parse(line, self._header_fields())
            body = self._body(request)
            status, headers, payload = dispatch(
                request.method, request.target, request.headers, body
            )
            log.info("%s %s %s -> %d", self.client_address[0], request.method,
                     one_line(request.target), status)  # fmt: skip
            close = request.version == "HTTP/1.0" or "close" in request.headers.get(
                "connection", ""
            ).lower().split(",")
            self._respond(status, headers, payload, close=close)
            return not close

        def _header_fields(self) -> list[tuple[str, str]]:
            fields: list[tuple[str, str]] = []
            total = 0
            while True:
                line = self.rfile.readline(limits.max_header_bytes - total + 1)
                total += len(line)
                if total > limits.max_header_bytes:
                    raise RequestRejected(
                        HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, "request headers too large"
                    )
                if not line.endswith(b"\n"):
                    raise ConnectionError("the connection closed inside the headers")
                if line in (b"\r\n", b"\n"):
                    return fields
                if len(fields) >= limits.max_header_count:
                    raise RequestRejected(
                        HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, "too many request headers"
                    )
                name, colon, value = _ascii(line).partition(":")
                if not colon or not _TOKEN.match(name):  # also obs-fold and "name :" forms
                    raise RequestRejected(HTTPStatus.BAD_REQUEST, "malformed header line")
                fields.append((name, value.strip(" \t")))

        @staticmethod
        def _parse(line: bytes, fields: list[tuple[str, str]]) -> _Request:
            parts = _ascii(line).split(" ")
            versions = ("HTTP/1.1", "HTTP/1.0")
            if len(parts) != 3 or not _TOKEN.match(parts[0]) or parts[2] not in versions:
                raise RequestRejected(HTTPStatus.BAD_REQUEST, "malformed request line")
            if len(parts[1]) > limits.max_url_bytes:
                raise RequestRejected(HTTPStatus.REQUEST_URI_TOO_LONG, "URL too long")
            return _Request(parts[0], parts[1], parts[2], fields)

        def _body(self, request: _Request) -> bytes:
            coding = request.headers.get("transfer-encoding")
            if coding is not None and request.lengths:
                raise RequestRejected(
                    HTTPStatus.BAD_REQUEST, "both Transfer-Encoding and Content-Length"
                )
            if coding is not None:
                if [c.strip().lower() for c in coding.split(",")] != ["chunked"]:
                    raise RequestRejected(HTTPStatus.BAD_REQUEST, "only chunked is supported")
                self._continue(request)
                return self._chunked()
            if len(request.lengths) > 1:
                raise RequestRejected(HTTPStatus.BAD_REQUEST, "conflicting Content-Length")
            length_text = next(iter(request.lengths), "0")
            if not length_text.isdigit():
                raise RequestRejected(HTTPStatus.BAD_REQUEST, "malformed Content-Length")
            length = int(length_text)
            if length > limits.max_body_bytes:
                raise RequestRejected(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "request too large")
            if not length:
                return b""
            self._continue(request)
            self.reader.expect(limits.body_grace, limits.min_body_rate)
            return self._exactly(length)

        def _chunked(self) -> bytes:
            body = bytearray()
            self.reader.expect(limits.body_grace, limits.min_body_rate)
            while True:
                match = _CHUNK_SIZE.match(self.rfile.readline(1024).rstrip(b"\r\n"))
                if not match:
                    raise RequestRejected(HTTPStatus.BAD_REQUEST, "malformed chunk size")
                size = int(match.group(1), 16)
                if len(body) + size > limits.max_body_bytes:
                    raise RequestRejected(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "request too large")
                if size == 0:
                    self._header_fields()  # trailers: read and dropped, as Kestrel keeps them apart
                    return bytes(body)
                body += self._exactly(size)
                if self.rfile.readline(3) not in (b"\r\n", b"\n"):
                    raise RequestRejected(HTTPStatus.BAD_REQUEST, "malformed chunk")

        def _exactly(self, size: int) -> bytes:
            data = self.rfile.read(size)
            if len(data) < size:
                raise ConnectionError("the connection closed inside the body")
            return data

        def _continue(self, request: _Request) -> None:
            if request.headers.get("expect", "").lower() == "100-continue":
                self.wfile.write(b"HTTP/1.1 100 Continue\r\n\r\n")

        def _respond(
            self, status: int, headers: Mapping[str, str], payload: bytes, *, close: bool
        ) -> None:
            lines = [f"HTTP/1.1 {status} {HTTPStatus(status).phrase}"]
            if not any(n.lower() == "content-type" for n in headers):
                lines.append("Content-Type: text/plain; charset=utf-8")
            lines += [
                f"{name}: {value}"
                for name, value in headers.items()
                if name.lower() not in ("content-length", "connection", "transfer-encoding")
            ]
            lines += [
                f"Content-Length: {len(payload)}",
                f"Connection: {'close' if close else 'keep-alive'}",
            ]
            head = "\r\n".join(lines).encode("latin-1", errors="replace")
            with_body = head + b"\r\n\r\n" + payload
            try:
                self.connection.settimeout(limits.headers_timeout)
                self.wfile.write(with_body)
            except OSError:
                pass

    return Handler


class HttpServer(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True

    def __init__(self, port: int, dispatch: Dispatch, limits: HttpLimits) -> None:
        super().__init__(("127.0.0.1", port), handler_class(dispatch, limits))
