"""Checkpoint registry and download, against a real HTTP server on 127.0.0.1 (never the internet)."""

from __future__ import annotations

import dataclasses
import re
import socket
import time
from pathlib import Path

import pooch
import pytest
import torch

import sam2_model as sm
import local_mirror
from local_mirror import Mirror, expect_official
from sam2_model import checkpoints

loopback_only = local_mirror.loopback_only  # autouse: no test here can reach the internet


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv(checkpoints.CACHE_ENV, str(folder))
    monkeypatch.delenv(checkpoints.MIRROR_ENV, raising=False)
    return folder


@pytest.fixture
def server(tmp_path):
    root = tmp_path / "served"
    root.mkdir()
    srv = Mirror(root)
    yield srv
    srv.close()


def _payload(n_bytes: int, seed: int = 0) -> bytes:
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n_bytes,), dtype=torch.uint8, generator=generator).numpy().tobytes()


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _files(folder: Path) -> list:
    return sorted(p.name for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


# --- the registry -------------------------------------------------------------------------------


def test_registry_lists_the_eight_official_files():
    registry = checkpoints.OFFICIAL_CHECKPOINTS
    assert set(registry) == {n for n in sm.list_models() if n.startswith("sam2")}
    assert len(registry) == 8
    for name, entry in registry.items():
        release = "092824" if name.startswith("sam2.1") else "072824"
        assert entry.url == f"https://dl.fbaipublicfiles.com/segment_anything_2/{release}/{name}.pt"
        assert entry.filename == f"{name}.pt"
        assert re.fullmatch(r"[0-9a-f]{64}", entry.sha256), name
    assert len({e.sha256 for e in registry.values()}) == 8
    for family in ("sam2", "sam2.1"):
        sizes = [registry[f"{family}_hiera_{s}"].size for s in ("tiny", "small", "base_plus", "large")]
        assert sizes == sorted(sizes) and 150e6 < sizes[0] and sizes[-1] < 1e9


def test_unknown_name_lists_the_known_ones(cache):
    for call in (checkpoints.official, checkpoints.checkpoint_path, checkpoints.find_cached, checkpoints.download):
        with pytest.raises(ValueError) as info:
            call("sam3_hiera_tiny")
        assert all(name in str(info.value) for name in checkpoints.OFFICIAL_CHECKPOINTS)


def test_cache_dir_from_environment_or_platform_default(tmp_path, monkeypatch):
    monkeypatch.setenv(checkpoints.CACHE_ENV, str(tmp_path / "mine"))
    assert checkpoints.cache_dir() == tmp_path / "mine"
    assert checkpoints.checkpoint_path("sam2_hiera_small") == tmp_path / "mine" / "sam2_hiera_small.pt"
    monkeypatch.delenv(checkpoints.CACHE_ENV)
    assert checkpoints.cache_dir() == Path(pooch.os_cache("napari-sam2"))


def test_in_cache_tells_downloaded_files_from_the_users_own(cache, tmp_path):
    assert checkpoints.in_cache(checkpoints.checkpoint_path("sam2.1_hiera_tiny"))
    assert checkpoints.in_cache(cache / "subfolder" / ".." / "anything.pt")
    assert not checkpoints.in_cache(tmp_path / "run" / "last.pt")
    assert not checkpoints.in_cache(tmp_path / "sam2.1_hiera_tiny.pt")  # an official name elsewhere is the user's


# --- downloading --------------------------------------------------------------------------------


def test_download_lands_in_the_cache_once(server, cache, monkeypatch):
    payload = _payload(300_000)
    (server.root / "sam2.1_hiera_tiny.pt").write_bytes(payload)
    expect_official(monkeypatch, "sam2.1_hiera_tiny", payload)

    path = checkpoints.download("sam2.1_hiera_tiny", base_url=server.url)
    assert path == cache / "sam2.1_hiera_tiny.pt" and path.read_bytes() == payload
    assert _files(cache) == ["sam2.1_hiera_tiny.pt"]  # no temporary file left behind
    assert checkpoints.find_cached("sam2.1_hiera_tiny") == path
    assert checkpoints.file_matches("sam2.1_hiera_tiny")

    assert checkpoints.download("sam2.1_hiera_tiny", base_url=server.url) == path
    assert server.counts == {"/sam2.1_hiera_tiny.pt": 1}


def test_progress_callback_counts_up_to_the_total(server, cache, monkeypatch):
    payload = _payload(5 * (1 << 20) // 2)  # 2.5 MiB: three 1 MiB chunks
    (server.root / "sam2_hiera_tiny.pt").write_bytes(payload)
    expect_official(monkeypatch, "sam2_hiera_tiny", payload)
    seen = []
    checkpoints.download("sam2_hiera_tiny", progressbar=lambda *args: seen.append(args), base_url=server.url)
    assert len(seen) >= 3
    assert {total for _, total in seen} == {len(payload)}
    done = [d for d, _ in seen]
    assert done == sorted(done) and 0 < done[0] < len(payload) and done[-1] == len(payload)


def test_cancel_from_the_progress_callback_leaves_nothing(server, cache, monkeypatch):
    payload = _payload(3 << 20)
    (server.root / "sam2_hiera_tiny.pt").write_bytes(payload)
    expect_official(monkeypatch, "sam2_hiera_tiny", payload)

    class Cancelled(Exception):
        pass

    def cancel(done, total):
        raise Cancelled

    with pytest.raises(Cancelled):
        checkpoints.download("sam2_hiera_tiny", progressbar=cancel, base_url=server.url)
    assert _files(cache) == []


def test_corrupted_download_is_rejected_and_not_kept(server, cache, monkeypatch):
    expect_official(monkeypatch, "sam2_hiera_small", _payload(200_000, seed=1))
    (server.root / "sam2_hiera_small.pt").write_bytes(_payload(200_000, seed=2))  # same size, other bytes
    with pytest.raises(checkpoints.CheckpointDownloadError) as info:
        checkpoints.download("sam2_hiera_small", base_url=server.url)
    message = str(info.value)
    assert "not the official sam2_hiera_small.pt" in message and "Nothing was saved" in message
    assert "hash" in message.lower()
    assert str(cache / "sam2_hiera_small.pt") in message
    assert checkpoints.find_cached("sam2_hiera_small") is None
    assert _files(cache) == []


def test_without_a_hash_the_size_is_checked(server, cache, monkeypatch):
    payload = _payload(50_000)
    (server.root / "sam2_hiera_large.pt").write_bytes(payload)
    entry = checkpoints.OFFICIAL_CHECKPOINTS["sam2_hiera_large"]
    unhashed = dataclasses.replace(entry, sha256=None, size=len(payload) + 1)
    monkeypatch.setitem(checkpoints.OFFICIAL_CHECKPOINTS, "sam2_hiera_large", unhashed)
    with pytest.raises(checkpoints.CheckpointDownloadError, match=f"has {len(payload)} bytes"):
        checkpoints.download("sam2_hiera_large", base_url=server.url)
    assert _files(cache) == []
    exact = dataclasses.replace(unhashed, size=len(payload))
    monkeypatch.setitem(checkpoints.OFFICIAL_CHECKPOINTS, "sam2_hiera_large", exact)
    assert checkpoints.download("sam2_hiera_large", base_url=server.url).read_bytes() == payload


def test_unreachable_server_fails_fast_and_says_where_to_put_the_file(cache):
    url = f"http://127.0.0.1:{_closed_port()}"
    start = time.perf_counter()
    with pytest.raises(checkpoints.CheckpointDownloadError) as info:
        checkpoints.download("sam2.1_hiera_large", base_url=url)
    assert time.perf_counter() - start < 5
    message = str(info.value)
    assert f"{url}/sam2.1_hiera_large.pt" in message
    assert checkpoints.official("sam2.1_hiera_large").url in message  # the official source too
    assert str(cache / "sam2.1_hiera_large.pt") in message
    assert _files(cache) == []


def test_offline_default_url_names_meta_and_the_target(cache):
    """No base URL: Meta's URL is used; with name resolution failing (offline) the error says what to do."""
    start = time.perf_counter()
    with pytest.raises(checkpoints.CheckpointDownloadError) as info:
        checkpoints.download("sam2.1_hiera_tiny")
    assert time.perf_counter() - start < 5
    message = str(info.value)
    assert "https://dl.fbaipublicfiles.com/segment_anything_2/092824/sam2.1_hiera_tiny.pt" in message
    assert str(cache / "sam2.1_hiera_tiny.pt") in message and checkpoints.CACHE_ENV in message


def test_server_error_status_is_a_download_error(server, cache):
    with pytest.raises(checkpoints.CheckpointDownloadError, match="404") as info:
        checkpoints.download("sam2_hiera_base_plus", base_url=server.url)
    assert f"{server.url}/sam2_hiera_base_plus.pt" in str(info.value)
    assert _files(cache) == []


def test_mirror_environment_variable(server, cache, monkeypatch):
    payload = _payload(10_000)
    (server.root / "sam2.1_hiera_small.pt").write_bytes(payload)
    expect_official(monkeypatch, "sam2.1_hiera_small", payload)
    monkeypatch.setenv(checkpoints.MIRROR_ENV, server.url + "/")
    assert checkpoints.download("sam2.1_hiera_small").read_bytes() == payload
    assert server.counts == {"/sam2.1_hiera_small.pt": 1}


# --- files put in the cache by hand ---------------------------------------------------------------


def test_file_put_by_hand_is_found_and_loads(cache):
    """A file copied into the cache by hand is used by build_model(checkpoint="download") as is."""
    model = sm.build_model("sam2.1_hiera_tiny", device="cpu", image_size=256)
    cache.mkdir(parents=True)
    torch.save({"model": model.state_dict()}, cache / "sam2.1_hiera_tiny.pt")
    assert checkpoints.find_cached("sam2.1_hiera_tiny") == cache / "sam2.1_hiera_tiny.pt"
    assert checkpoints.download("sam2.1_hiera_tiny") == cache / "sam2.1_hiera_tiny.pt"  # no network needed
    assert not checkpoints.file_matches("sam2.1_hiera_tiny")  # not Meta's bytes, but usable
    loaded = sm.build_model("sam2.1_hiera_tiny", checkpoint="download", device="cpu", image_size=256)
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in loaded.state_dict().items())


def test_empty_or_missing_file_is_not_cached(cache):
    assert checkpoints.find_cached("sam2_hiera_tiny") is None
    assert not checkpoints.file_matches("sam2_hiera_tiny")
    cache.mkdir(parents=True)
    (cache / "sam2_hiera_tiny.pt").write_bytes(b"")
    assert checkpoints.find_cached("sam2_hiera_tiny") is None
