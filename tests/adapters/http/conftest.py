"""A stdlib HTTP server on 127.0.0.1 that serves a target state with an ETag."""

from __future__ import annotations

import http.server
import json
import threading
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from collections.abc import Iterator


class TargetServer(http.server.ThreadingHTTPServer):
    """Serves ``{"version": n, "target": ...}`` at /target with ETag ``"n"``; 304 when matched."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.version = 1
        self.target: dict[str, Any] = {"web": "v1"}
        self.seen: list[tuple[int, str | None]] = []  # (status, If-None-Match)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/target"


class _Handler(http.server.BaseHTTPRequestHandler):
    server: TargetServer

    def do_GET(self) -> None:
        etag = f'"{self.server.version}"'
        asked = self.headers.get("If-None-Match")
        body = b""
        if self.path != "/target":
            status = 404
        elif asked == etag:
            status = 304
        else:
            status = 200
            document = {"version": self.server.version, "target": self.server.target}
            body = json.dumps(document).encode()
        self.server.seen.append((status, asked))
        self.send_response(status)
        self.send_header("ETag", etag)
        if status == 200:
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if status == 200:
            self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep the test output quiet


@pytest.fixture
def server() -> Iterator[TargetServer]:
    serving = TargetServer()
    thread = threading.Thread(target=serving.serve_forever, daemon=True)
    thread.start()
    yield serving
    serving.shutdown()
    serving.server_close()
    thread.join(timeout=5)
