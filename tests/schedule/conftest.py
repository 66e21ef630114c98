"""Fixtures for the schedule tests: the `previz` command with the `jobs` group, and a real HTTP
server on loopback that receives webhooks."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest


@dataclass
class Result:
    code: int
    out: str
    err: str


@pytest.fixture
def previz(capsys: pytest.CaptureFixture[str]):
    """Run `previz ...` in-process and capture its exit code and output."""
    from previz import cli

    def run(*argv: object) -> Result:
        capsys.readouterr()
        code = cli.main([str(a) for a in argv])
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return run


@dataclass
class Hooks:
    """A webhook receiver: /ok answers 200, /fail 500, /gone 404, /flaky 500 then 200, and
    /hang holds the request until the test ends."""

    url: str
    received: dict[str, list[dict]] = field(default_factory=dict)
    hits: dict[str, int] = field(default_factory=dict)
    release: threading.Event = field(default_factory=threading.Event)


@pytest.fixture
def hooks() -> Iterator[Hooks]:
    state = Hooks(url="")
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - the http.server API
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            path = self.path
            with lock:
                state.hits[path] = state.hits.get(path, 0) + 1
                hit = state.hits[path]
            if path == "/hang":
                state.release.wait(30)
                self._answer(200)
                return
            status = {"/ok": 200, "/fail": 500, "/gone": 404}.get(path, 200)
            if path == "/flaky":
                status = 500 if hit == 1 else 200
            if status == 200:
                with lock:
                    state.received.setdefault(path, []).append(json.loads(body))
            self._answer(status)

        def _answer(self, status: int) -> None:
            try:
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()
            except OSError:
                pass  # the client gave up (the hanging hook)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield state
    finally:
        state.release.set()
        server.shutdown()
        server.server_close()
