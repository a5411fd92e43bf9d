"""Writing masklets into a labels array, frame by frame, with an undo journal per run.

Each frame is written whole in one assignment, so a run that is cancelled or fails leaves every
frame either as it was or fully updated (never half-written); the journal keeps the previous
content of every frame a run touched, so "Undo" restores the layer exactly.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, Sequence, Tuple

import numpy as np


def compose_frame(
    current: np.ndarray, obj_ids: Sequence[int], logits: np.ndarray, session_ids: Iterable[int]
) -> np.ndarray:
    """The new content of one (H, W) labels plane.

    Pixels that held any of the session's objects are cleared, then each pixel where some object's
    logit is > 0 takes the id of the object with the highest logit. Labels that do not belong to
    the session (painted by hand, other tools) are kept where no object covers them.
    logits: (n_obj, H, W) float, in the order of ``obj_ids``.
    """
    plane = np.array(current, copy=True)
    owned = np.isin(plane, np.fromiter(session_ids, dtype=np.int64))
    plane[owned] = 0
    if len(obj_ids):
        logits = np.asarray(logits)
        best = np.argmax(logits, axis=0)
        covered = np.take_along_axis(logits, best[None], axis=0)[0] > 0
        ids = np.asarray(obj_ids, dtype=plane.dtype)
        plane[covered] = ids[best[covered]]
    return plane


@dataclass
class _SavedPlane:
    shape: Tuple[int, ...]
    dtype: np.dtype
    payload: bytes

    @classmethod
    def of(cls, plane: np.ndarray) -> "_SavedPlane":
        plane = np.ascontiguousarray(plane)
        return cls(plane.shape, plane.dtype, zlib.compress(plane.tobytes(), 1))

    def restore(self) -> np.ndarray:
        return np.frombuffer(zlib.decompress(self.payload), dtype=self.dtype).reshape(self.shape)


@dataclass
class RunJournal:
    """Previous contents of every plane one run wrote, compressed (labels are mostly background)."""

    saved: Dict[Tuple[Any, ...], Tuple[Tuple[Any, ...], _SavedPlane]] = field(default_factory=dict)

    def write(self, labels: Any, index: Tuple[Any, ...], plane: np.ndarray) -> None:
        """Write ``plane`` at ``labels[index]``, remembering what was there the first time."""
        key = _hashable(index)
        if key not in self.saved:
            self.saved[key] = (index, _SavedPlane.of(np.asarray(labels[index])))
        labels[index] = plane

    def undo(self, labels: Any) -> list:
        """Restore every plane this run wrote; returns the indices restored."""
        restored = []
        for index, saved in self.saved.values():
            labels[index] = saved.restore()
            restored.append(index)
        self.saved.clear()
        return restored

    def __len__(self) -> int:
        return len(self.saved)


def _hashable(index: Tuple[Any, ...]) -> Tuple[Any, ...]:
    """slice objects are not hashable before Python 3.12."""
    return tuple((item.start, item.stop, item.step) if isinstance(item, slice) else item for item in index)
