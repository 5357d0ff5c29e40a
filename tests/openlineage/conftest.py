"""Transports for OpenLineage tests, configured the client's usual way (environment variables) so
that they reach every subprocess a test starts (Snakemake, the CLI, scripts):

- `ol_file`: the client's file transport appending newline-delimited events to a file in tmp_path;
- `ol_http`: a real HTTP receiver on 127.0.0.1 (POST /api/v1/lineage), OPENLINEAGE_URL at it.

No test leaves an OPENLINEAGE_* variable behind: every one is cleared before the test and, after
it, also those the client sets by itself (it turns OPENLINEAGE_URL into
OPENLINEAGE__TRANSPORT__TRANSPORTS__DEFAULT_HTTP__* in os.environ).
"""

from __future__ import annotations

import gzip
import json
import os
import socket
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.conftest import wait_until
from tests.openlineage.schema import read_ndjson


def _openlineage_vars() -> list[str]:
    return [k for k in os.environ if k.startswith("OPENLINEAGE")]


def _reset_emitter() -> None:
    """Forget the process's OpenLineage emitter (its client holds the transport it was made with;
    once spooling it spools for the rest of the process): tests in one process configure
    different transports."""
    from flowprov.openlineage import emitter

    emitter.reset()


@pytest.fixture(autouse=True)
def _openlineage_env_isolated(monkeypatch):
    for name in _openlineage_vars():
        monkeypatch.delenv(name)
    _reset_emitter()
    yield
    _reset_emitter()  # after sending what this test queued: nothing reaches the next test
    for name in _openlineage_vars():  # set by the client itself, unknown to monkeypatch
        os.environ.pop(name, None)


@dataclass
class FileTransport:
    path: Path

    def events(self) -> list[dict]:
        return read_ndjson(self.path) if self.path.exists() else []


@pytest.fixture
def ol_file(tmp_path, monkeypatch) -> FileTransport:
    """The client's file transport, appending one event per line to tmp_path/ol/events.ndjson."""
    path = tmp_path / "ol" / "events.ndjson"
    path.parent.mkdir()
    monkeypatch.setenv("OPENLINEAGE__TRANSPORT__TYPE", "file")
    monkeypatch.setenv("OPENLINEAGE__TRANSPORT__LOG_FILE_PATH", str(path))
    monkeypatch.setenv("OPENLINEAGE__TRANSPORT__APPEND", "true")
    monkeypatch.setenv("OPENLINEAGE_NAMESPACE", "oltest")
    _reset_emitter()
    return FileTransport(path)


@dataclass
class Receiver:
    """An OpenLineage HTTP endpoint: every POST body in order of arrival."""

    port: int = 0
    bodies: list[dict] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                data = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.headers.get("Content-Encoding") == "gzip":
                    data = gzip.decompress(data)
                with receiver.lock:
                    receiver.paths.append(self.path)
                    receiver.bodies.append(json.loads(data))
                self.send_response(200 if self.path == "/api/v1/lineage" else 404)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def events(self) -> list[dict]:
        with self.lock:
            assert set(self.paths) <= {"/api/v1/lineage"}, self.paths
            return list(self.bodies)

    def wait_for(self, n: int, timeout: float = 60) -> list[dict]:
        wait_until(lambda: len(self.bodies) >= n, timeout, f"{n} OpenLineage events at {self.url}")
        return self.events()


def free_port() -> int:
    """A loopback port nothing listens on (closed again at once)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def ol_http(monkeypatch):
    """A running receiver; OPENLINEAGE_URL points at it."""
    receiver = Receiver().start()
    monkeypatch.setenv("OPENLINEAGE_URL", receiver.url)
    monkeypatch.setenv("OPENLINEAGE_NAMESPACE", "oltest")
    _reset_emitter()
    yield receiver
    receiver.stop()


@pytest.fixture
def ol_http_down(monkeypatch):
    """OPENLINEAGE_URL at a closed loopback port; `.start()` brings a receiver up there later."""
    receiver = Receiver(port=free_port())
    monkeypatch.setenv("OPENLINEAGE_URL", receiver.url)
    monkeypatch.setenv("OPENLINEAGE_NAMESPACE", "oltest")
    _reset_emitter()
    yield receiver
    receiver.stop()
