"""A webhook receiver for tests: a real HTTP server on 127.0.0.1 in a thread, recording each
POST (headers and body) and answering with the statuses it is told to, then 200."""

import socket
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """Start with `start()` (or as a context manager); `url` is where to POST."""

    port: int = 0
    requests: list[Received] = field(default_factory=list)
    answers: deque = field(default_factory=deque)  # statuses to answer first, then 200
    decide: Callable[["Received"], int] | None = None  # or: a status for each request
    _server: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def start(self) -> "Receiver":
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's name
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                received = Received(self.path, dict(self.headers), body)
                if receiver.decide is not None:
                    status = receiver.decide(received)
                else:
                    status = receiver.answers.popleft() if receiver.answers else 200
                receiver.requests.append(received)
                self.send_response(status)
                self.send_header("Content-Type", "text/plain")
                self.end_headers()
                self.wfile.write(b"ok" if status == 200 else b"receiver says no")

            def log_message(self, format, *args):  # quiet
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def events(self) -> list[dict]:
        import json

        return [json.loads(r.body) for r in self.requests]

    def stop(self) -> None:
        """Stop listening (the port is then closed: deliveries fail to connect)."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> "Receiver":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
