"""A component's process for the reconciler end-to-end tests: a tiny HTTP server on 127.0.0.1.

Run as ``python component_server.py NAME VERSION``. It binds a free port, prints it on one
line, and answers every GET with ``{"name": ..., "version": ..., "pid": ...}``. A version that
starts with ``broken`` cannot start: it prints why on stderr and exits with status 1.
"""

from __future__ import annotations

import http.server
import json
import os
import sys
from typing import Any


def main(argv: list[str]) -> None:
    name, version = argv[1], argv[2]
    if version.startswith("broken"):
        sys.stderr.write(f"{name} {version}: missing configuration, cannot start\n")
        sys.exit(1)
    body = json.dumps({"name": name, "version": version, "pid": os.getpid()}).encode()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    sys.stdout.write(f"{server.server_address[1]}\n")
    sys.stdout.flush()
    server.serve_forever()


if __name__ == "__main__":
    main(sys.argv)
