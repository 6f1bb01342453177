"""A real HTTP receiver for webhook deliveries: http.server on a free port in a thread. Each POST is
recorded (headers and raw body) and answered with the next scripted status (then 200)."""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from workers.config import WorkerConfig


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    url: str
    requests: list[Received] = field(default_factory=list)
    answers: deque = field(default_factory=deque)  # statuses to answer, in order; then 200

    def answer(self, *statuses: int) -> None:
        self.answers.extend(statuses)


@pytest.fixture
def receiver():
    state = Receiver(url="")
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", 0))
            body = self.rfile.read(length)
            with lock:
                state.requests.append(Received(self.path, dict(self.headers.items()), body))
                status = state.answers.popleft() if state.answers else 200
            reply = (b"x" * 10_000) if status >= 500 else b"ok"  # a long body: only an excerpt is kept
            self.send_response(status)
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, *args) -> None:  # quiet
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/softserve"
    yield state
    server.shutdown()
    server.server_close()


@pytest.fixture
def allow_local(settings):
    """The operator allows http and the loopback address (as a test deployment would)."""
    settings.WEBHOOK_ALLOW_PRIVATE_HOSTS = "127.0.0.1"
    settings.WEBHOOK_ALLOW_HTTP = True


def worker_config(**overrides) -> WorkerConfig:
    values = {
        "webhook_allow_private_hosts": "127.0.0.1",
        "webhook_allow_http": True,
        "webhook_backoff_s": 1.0,
        **overrides,
    }
    return WorkerConfig.from_env({}, **values)
