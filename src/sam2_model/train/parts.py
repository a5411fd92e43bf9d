"""Split a file into parts of bounded size and join them back, checked by SHA-256.

For bringing trained weights home from a machine that only sends back small files (16 MiB each):
``python -m sam2_model.train.package --split runs/x/weights.pt`` writes ``weights.pt.001``,
``weights.pt.002``, ... (each at most ``--part-mib`` MiB, default 15) and ``weights.pt.sha256`` (a JSON
manifest: digest, size, part names); ``python -m sam2_model.train.package --join weights.pt.001
weights.pt.002 --out weights.pt`` writes the original again, after checking its size and digest against
the manifest found beside the parts.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Dict, List, Optional, Sequence

DEFAULT_PART_BYTES = 15 * 2**20
_CHUNK = 2**20


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def manifest_path(path: Path) -> Path:
    """Where the manifest of ``path``'s parts is written: ``path`` + ``.sha256``."""
    return path.with_name(path.name + ".sha256")


def split_file(path: Path, part_bytes: int = DEFAULT_PART_BYTES) -> List[Path]:
    """Write ``path`` as parts ``path.001``, ``path.002``, ... of at most ``part_bytes`` bytes each, and its
    manifest (:func:`manifest_path`). Returns the parts in order. The original is left in place."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"split: {path} is not a file")
    if part_bytes < 1:
        raise ValueError(f"part_bytes must be a positive number of bytes, got {part_bytes}")
    size = path.stat().st_size
    count = max(1, -(-size // part_bytes))
    parts = [path.with_name(f"{path.name}.{index + 1:03d}") for index in range(count)]
    with path.open("rb") as source:
        for part in parts:
            tmp = part.with_name(part.name + ".tmp")
            with tmp.open("wb") as handle:
                left = part_bytes
                while left > 0:
                    block = source.read(min(_CHUNK, left))
                    if not block:
                        break
                    handle.write(block)
                    left -= len(block)
            os.replace(tmp, part)
    manifest = {"file": path.name, "bytes": size, "sha256": _sha256(path), "parts": [p.name for p in parts]}
    manifest_path(path).write_text(json.dumps(manifest, indent=2) + "\n")
    return parts


def _find_manifest(parts: Sequence[Path]) -> Optional[Path]:
    """The manifest beside the first part (``NAME.001`` -> ``NAME.sha256``), if there is one."""
    first = Path(parts[0])
    stem, dot, suffix = first.name.rpartition(".")
    if not dot or not suffix.isdigit():
        return None
    candidate = first.with_name(stem + ".sha256")
    return candidate if candidate.is_file() else None


def join_files(parts: Sequence[Path], output: Path, manifest: Optional[Path] = None) -> Dict[str, object]:
    """Concatenate ``parts`` (in the given order) into ``output`` (its folder made when missing), written
    atomically.

    The result is checked against ``manifest`` (default: the one :func:`split_file` wrote beside the
    parts); a wrong size or digest raises ValueError and leaves no output. Returns a summary: bytes,
    sha256 and whether a manifest checked it.
    """
    parts = [Path(p) for p in parts]
    if not parts:
        raise ValueError("join: give the parts to join, in order (e.g. weights.pt.001 weights.pt.002)")
    missing = [str(p) for p in parts if not p.is_file()]
    if missing:
        raise ValueError(f"join: these parts are not files: {', '.join(missing)}")
    manifest = Path(manifest) if manifest is not None else _find_manifest(parts)
    expected = json.loads(manifest.read_text()) if manifest is not None else None
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(output.name + ".tmp")
    digest, size = hashlib.sha256(), 0
    with tmp.open("wb") as handle:
        for part in parts:
            with part.open("rb") as source:
                for block in iter(lambda: source.read(_CHUNK), b""):
                    digest.update(block)
                    size += len(block)
                    handle.write(block)
    if expected is not None and (size != expected["bytes"] or digest.hexdigest() != expected["sha256"]):
        tmp.unlink()
        raise ValueError(
            f"join: the joined parts ({size} bytes) do not match {manifest} ({expected['bytes']} bytes, "
            f"sha256 {expected['sha256'][:12]}...): a part is missing, damaged or out of order; "
            f"expected the parts {expected['parts']} in that order")
    os.replace(tmp, output)
    return {"bytes": size, "sha256": digest.hexdigest(), "checked": expected is not None}
