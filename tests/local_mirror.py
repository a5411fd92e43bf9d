"""A checkpoint mirror for tests: a static file server on a free loopback port, and a guard that refuses to resolve
any host but loopback, so a download test can never reach the internet (tests/test_checkpoints.py,
tests/test_session_download.py)."""

from __future__ import annotations

import dataclasses
import hashlib
import http.server
import socket
import threading
import time
from pathlib import Path
from typing import Dict

import pytest

from sam2_model import checkpoints

LOOPBACK = {"127.0.0.1", "localhost", "::1"}


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch):
    """Refuse to resolve any host but loopback (autouse in every module that imports it)."""
    real_getaddrinfo = socket.getaddrinfo

    def guarded(host, *args, **kwargs):
        name = host.decode() if isinstance(host, bytes) else host
        if name not in LOOPBACK:
            raise socket.gaierror(socket.EAI_NONAME, f"test guard: {name} is not loopback")
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", guarded)


class Mirror:
    """Serves the folder ``root`` on a free loopback port (``url``), counting GET requests per path (``counts``);
    ``delay`` seconds after each 1 MB sent (a slow line, so a test can act during a download)."""

    def __init__(self, root: Path, delay: float = 0.0) -> None:
        self.root = root
        self.counts: Dict[str, int] = {}
        counts = self.counts

        class Handler(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *args, **kwargs):
                super().__init__(*args, directory=str(root), **kwargs)

            def do_GET(self):  # noqa: N802 - http.server API
                counts[self.path] = counts.get(self.path, 0) + 1
                super().do_GET()

            def copyfile(self, source, outputfile):  # noqa: D401 - http.server API
                while chunk := source.read(1 << 20):
                    outputfile.write(chunk)
                    if delay:
                        time.sleep(delay)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def expect_official(monkeypatch, name: str, payload: bytes) -> None:
    """Make the registry expect ``payload`` (its SHA-256 and size) as the official file of ``name``."""
    entry = dataclasses.replace(checkpoints.OFFICIAL_CHECKPOINTS[name], sha256=hashlib.sha256(payload).hexdigest(),
                                size=len(payload))
    monkeypatch.setitem(checkpoints.OFFICIAL_CHECKPOINTS, name, entry)
