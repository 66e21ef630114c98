"""A fault-injecting reverse proxy for tests: sits between boto3 and moto on loopback.

Faults fall on a share of requests: connection resets before or after the request reaches the
service, 500/503 replies, slow replies, and truncated replies (the headers and part of the body,
then the connection closes). Each request's fate is drawn from an RNG seeded by the proxy's seed,
the request (method, path without the bucket, random ids masked) and how many times that same
request came before, so the faults are the same on every run, whatever order concurrent requests
arrive in. A `rule` can force a fault for chosen requests (403 AccessDenied, 507 full …), and
`strip_conditions` removes If-None-Match/If-Match to imitate a service that ignores them
(`strip_headers` removes only the named ones: a service that honours one but not the other).
A rule may also answer "corrupt": the whole body, with some bytes flipped (what a checksum must
catch; never drawn at random, since TCP makes it rare on a real network).
"""

from __future__ import annotations

import contextlib
import http.client
import random
import re
import socket
import struct
import threading
import time
from collections import Counter
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

__all__ = ["FaultProxy", "RANDOM_FAULTS"]

RANDOM_FAULTS = ("reset_before", "reset_after", "500", "503", "slow", "truncate")
# Random names in request paths (the test's bucket, uuid hex, multipart upload ids) would make the
# draws differ from run to run.
_BUCKET = re.compile(r"^/[^/?]*")
_UUID_HEX = re.compile(r"(?<![0-9a-f])[0-9a-f]{32}(?![0-9a-f])")
_UPLOAD_ID = re.compile(r"uploadId=[^&]*")
_HOP = {
    "connection",
    "keep-alive",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
    "proxy-connection",
    "expect",
    "content-length",
}
_ERRORS = {
    "500": (500, "InternalError", "We encountered an internal error. Please try again."),
    "503": (503, "SlowDown", "Please reduce your request rate."),
    "403": (403, "AccessDenied", "Access Denied"),
    "507": (507, "InsufficientStorage", "The store is out of space."),
}
Rule = Callable[[str, str], "str | None"]


class FaultProxy:
    def __init__(
        self,
        upstream: str,
        *,
        rate: float = 0.0,
        seed: int = 0,
        kinds: tuple[str, ...] = RANDOM_FAULTS,
        slow_s: float = 0.3,
        strip_conditions: bool = False,
        strip_headers: tuple[str, ...] = (),
        rule: Rule | None = None,
    ):
        parts = urlsplit(upstream)
        self.upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.rate = rate
        self.kinds = kinds
        self.slow_s = slow_s
        self.strip = {name.lower() for name in strip_headers}
        if strip_conditions:
            self.strip |= {"if-none-match", "if-match"}
        self.rule = rule
        self.injected: Counter[str] = Counter()
        # Replies actually cut short, by method (a reply without a body has nothing to cut).
        self.truncated: Counter[str] = Counter()
        # Every fault injected, in order: (fault, method, path).
        self.faults: list[tuple[str, str, str]] = []
        self.requests = 0
        self.largest_body = 0  # the largest request body relayed (multipart parts stay small)
        self.seed = seed
        self._seen: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.proxy = self
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FaultProxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def decide(self, method: str, path: str) -> str | None:
        with self._lock:
            self.requests += 1
            fault = self.rule(method, path) if self.rule else None
            if fault is None and self.rate:
                request = f"{method} {_stable(path)}"
                draw = random.Random(f"{self.seed}|{request}|{self._seen[request]}")
                self._seen[request] += 1
                if draw.random() < self.rate:
                    fault = draw.choice(self.kinds)
            if fault:
                self.injected[fault] += 1
                self.faults.append((fault, method, path))
            return fault


def _stable(path: str) -> str:
    return _UPLOAD_ID.sub("uploadId=*", _UUID_HEX.sub("*", _BUCKET.sub("/bucket", path)))


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    proxy: FaultProxy

    def handle_error(self, request, client_address) -> None:
        pass  # reset connections are the point; keep the test output clean


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        self._relay()

    do_PUT = do_POST = do_DELETE = do_HEAD = do_GET

    def _relay(self) -> None:
        proxy = self.server.proxy
        body = self._read_body()
        with proxy._lock:
            proxy.largest_body = max(proxy.largest_body, len(body))
        fault = proxy.decide(self.command, self.path)
        if fault == "reset_before":
            return self._reset()
        if fault in _ERRORS:
            return self._error(*_ERRORS[fault])
        headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP | proxy.strip}
        if body or self.command in ("PUT", "POST"):
            headers["Content-Length"] = str(len(body))
        upstream = http.client.HTTPConnection(*proxy.upstream, timeout=60)
        try:
            upstream.request(self.command, self.path, body=body, headers=headers)
            response = upstream.getresponse()
            data = response.read()
            reply_headers = response.getheaders()
        finally:
            upstream.close()
        if fault == "reset_after":
            return self._reset()
        if fault == "slow":
            time.sleep(proxy.slow_s)
        self.send_response(response.status, response.reason)
        length = str(len(data))
        for name, value in reply_headers:
            if name.lower() == "content-length" and self.command == "HEAD":
                length = value
            elif name.lower() not in _HOP:
                self.send_header(name, value)
        self.send_header("Content-Length", length)
        self.end_headers()
        if self.command == "HEAD":
            return
        if fault == "truncate":
            # Promise the whole body, send part of it, then close (a clean FIN, not a reset).
            self.close_connection = True
            if data:
                with proxy._lock:
                    proxy.truncated[self.command] += 1
            data = data[: len(data) // 2]
        elif fault == "corrupt" and data:
            flipped = bytearray(data)
            for index in range(len(data) // 2, min(len(data), len(data) // 2 + 16)):
                flipped[index] ^= 0xFF
            data = bytes(flipped)
        self.wfile.write(data)

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _reset(self) -> None:
        # SO_LINGER 0 turns close() into a TCP RST: the client sees "connection reset by peer".
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RD)
        self.connection.close()

    def _error(self, status: int, code: str, message: str) -> None:
        body = (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f"<Error><Code>{code}</Code><Message>{message}</Message>"
            "<RequestId>proxy</RequestId></Error>"
        ).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
