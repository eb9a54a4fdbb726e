"""A local HTTP server for tests: files from a dict, on 127.0.0.1 at a free port, in a thread.

It answers HEAD and GET, honours ``Range: bytes=N-`` (206) unless told not to, and records
every request, so tests can serve the Hugging Face hub or a dataset mirror without a network.
``truncate`` makes the server send only the first bytes of a file and then close the
connection (a dropped download), once per entry in the count. ``lengths=False`` sends no
Content-Length (the body ends when the connection closes, as some servers do).
"""

from __future__ import annotations

import http.server
import threading
from dataclasses import dataclass, field


@dataclass
class Route:
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


class Server:
    """``routes``: URL path -> Route. ``not_found(path)`` gives the headers of a 404."""

    def __init__(self, routes: dict[str, Route], not_found=None, ranges: bool = True,
                 lengths: bool = True):
        self.routes, self.not_found, self.ranges = routes, not_found, ranges
        self.lengths = lengths
        self.requests: list[tuple[str, str, str | None]] = []  # (method, path, Range header)
        self.truncate: dict[str, list[int]] = {}  # path -> bytes to send, one entry per request
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:  # quiet
                pass

            def do_HEAD(self) -> None:
                outer._answer(self, body=False)

            def do_GET(self) -> None:
                outer._answer(self, body=True)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> Server:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def stop(self) -> None:
        if self.thread.is_alive():
            self.httpd.shutdown()
        self.httpd.server_close()

    def paths(self, method: str = "GET") -> list[str]:
        return [p for m, p, _ in self.requests if m == method]

    def _answer(self, h: http.server.BaseHTTPRequestHandler, body: bool) -> None:
        path = h.path.split("?", 1)[0]
        rng = h.headers.get("Range")
        self.requests.append((h.command, path, rng))
        route = self.routes.get(path)
        if route is None:
            h.send_response(404)
            for k, v in (self.not_found(path) if self.not_found else {}).items():
                h.send_header(k, v)
            h.send_header("Content-Length", "0")
            h.end_headers()
            return
        data, start, status = route.body, 0, 200
        if rng and self.ranges and rng.startswith("bytes=") and rng.endswith("-"):
            start, status = int(rng[len("bytes="):-1]), 206
        h.send_response(status)
        for k, v in route.headers.items():
            h.send_header(k, v)
        h.send_header("Accept-Ranges", "bytes" if self.ranges else "none")
        if status == 206:
            h.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        if self.lengths:
            h.send_header("Content-Length", str(len(data) - start))
        else:  # the body ends when the connection closes
            h.send_header("Connection", "close")
            h.close_connection = True
        h.end_headers()
        if not body:
            return
        cut = self.truncate.get(path)
        if cut:  # a dropped connection: part of the body, then close
            h.wfile.write(data[start:start + cut.pop(0)])
            h.wfile.flush()
            h.close_connection = True
            return
        h.wfile.write(data[start:])
