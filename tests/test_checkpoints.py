"""Checkpoint download against a real HTTP server on 127.0.0.1 (never the internet)."""

from __future__ import annotations

import dataclasses
import hashlib
import http.server
import socket
import threading
import time
from pathlib import Path

import pytest
import torch

import sam2_model as sm
from sam2_model import checkpoints


class _Server:
    """A static file server on a free loopback port that counts GET requests per path."""

    def __init__(self, root: Path) -> None:
        counts: dict[str, int] = {}
        self.counts = counts

        class Handler(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *args, **kwargs):
                super().__init__(*args, directory=str(root), **kwargs)

            def do_GET(self):  # noqa: N802 - http.server API
                counts[self.path] = counts.get(self.path, 0) + 1
                super().do_GET()

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server(tmp_path):
    root = tmp_path / "served"
    root.mkdir()
    srv = _Server(root)
    srv.root = root
    yield srv
    srv.close()


@pytest.fixture
def cache(tmp_path, monkeypatch):
    folder = tmp_path / "cache"
    monkeypatch.setenv(checkpoints.CACHE_ENV, str(folder))
    monkeypatch.delenv(checkpoints.MIRROR_ENV, raising=False)
    return folder


def _register_hash(monkeypatch, name: str, payload: bytes) -> None:
    entry = checkpoints.OFFICIAL_CHECKPOINTS[name]
    digest = hashlib.sha256(payload).hexdigest()
    monkeypatch.setitem(checkpoints.OFFICIAL_CHECKPOINTS, name, dataclasses.replace(entry, sha256=digest))


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_registry_knows_all_official_files():
    assert set(checkpoints.OFFICIAL_CHECKPOINTS) == {n for n in sm.list_models() if n.startswith("sam2")}
    entry = checkpoints.official("sam2.1_hiera_tiny")
    assert entry.url == "https://dl.fbaipublicfiles.com/segment_anything_2/092824/sam2.1_hiera_tiny.pt"
    assert checkpoints.official("sam2_hiera_large").url.endswith("/072824/sam2_hiera_large.pt")
    with pytest.raises(ValueError, match="known: .*sam2.1_hiera_base_plus"):
        checkpoints.official("sam3_hiera_tiny")


def test_download_verifies_hash_and_is_cached(server, cache, monkeypatch):
    payload = b"pretend checkpoint bytes" * 5000
    (server.root / "sam2.1_hiera_tiny.pt").write_bytes(payload)
    _register_hash(monkeypatch, "sam2.1_hiera_tiny", payload)
    seen = []
    path = checkpoints.download("sam2.1_hiera_tiny", progressbar=lambda d, t: seen.append((d, t)), base_url=server.url)
    assert path == cache / "sam2.1_hiera_tiny.pt" and path.read_bytes() == payload
    assert checkpoints.find_cached("sam2.1_hiera_tiny") == path
    assert seen and seen[-1] == (len(payload), len(payload))
    assert all(a[0] <= b[0] for a, b in zip(seen, seen[1:]))
    again = checkpoints.download("sam2.1_hiera_tiny", base_url=server.url)
    assert again == path and server.counts["/sam2.1_hiera_tiny.pt"] == 1


def test_corrupted_download_is_rejected_and_not_kept(server, cache, monkeypatch):
    _register_hash(monkeypatch, "sam2_hiera_small", b"the real bytes")
    (server.root / "sam2_hiera_small.pt").write_bytes(b"bytes damaged in transit")
    with pytest.raises(checkpoints.CheckpointDownloadError, match="corrupted.*nothing was saved"):
        checkpoints.download("sam2_hiera_small", base_url=server.url)
    assert checkpoints.find_cached("sam2_hiera_small") is None
    assert not any(cache.glob("**/*sam2_hiera_small*")) if cache.exists() else True


def test_mirror_environment_variable(server, cache, monkeypatch):
    payload = b"mirror"
    (server.root / "sam2.1_hiera_small.pt").write_bytes(payload)
    _register_hash(monkeypatch, "sam2.1_hiera_small", payload)
    monkeypatch.setenv(checkpoints.MIRROR_ENV, server.url)
    assert checkpoints.download("sam2.1_hiera_small").read_bytes() == payload


def test_offline_fails_fast_and_says_where_to_put_the_file(cache):
    url = f"http://127.0.0.1:{_closed_port()}"
    start = time.perf_counter()
    with pytest.raises(checkpoints.CheckpointDownloadError) as info:
        checkpoints.download("sam2.1_hiera_large", base_url=url)
    assert time.perf_counter() - start < 5
    message = str(info.value)
    assert f"{url}/sam2.1_hiera_large.pt" in message
    assert str(cache / "sam2.1_hiera_large.pt") in message


def test_file_put_by_hand_is_found_and_loads(cache):
    """A file copied into the cache by hand is used by build_model(checkpoint="download")."""
    model = sm.build_model("sam2.1_hiera_tiny", device="cpu", image_size=256)
    cache.mkdir(parents=True)
    torch.save({"model": model.state_dict()}, cache / "sam2.1_hiera_tiny.pt")
    assert checkpoints.find_cached("sam2.1_hiera_tiny") == cache / "sam2.1_hiera_tiny.pt"
    loaded = sm.build_model("sam2.1_hiera_tiny", checkpoint="download", device="cpu", image_size=256)
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in loaded.state_dict().items())
