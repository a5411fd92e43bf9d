"""A least-recently-used cache of per-frame image features, bounded in megabytes."""

from __future__ import annotations

from collections import OrderedDict
from typing import Callable, Optional

from .modeling.sam2 import FrameFeatures


def feature_bytes(features: FrameFeatures) -> int:
    """Bytes held by one frame's features."""
    tensors = [features.image_embed, features.image_pos, *features.high_res]
    return sum(t.numel() * t.element_size() for t in tensors)


class FeatureCache:
    """frame index -> :class:`FrameFeatures`, evicting the least recently used beyond ``max_mb``.

    The most recent frame is always kept, even when it alone exceeds the budget.
    """

    def __init__(self, max_mb: float = 512.0) -> None:
        if max_mb < 0:
            raise ValueError(f"feature_cache_mb must be >= 0, got {max_mb}")
        self.max_bytes = int(max_mb * 1024 * 1024)
        self._items: "OrderedDict[int, FrameFeatures]" = OrderedDict()
        self._bytes = 0
        self.hits = 0
        self.misses = 0

    def get(self, frame: int, compute: Callable[[int], FrameFeatures]) -> FrameFeatures:
        found: Optional[FrameFeatures] = self._items.get(frame)
        if found is not None:
            self.hits += 1
            self._items.move_to_end(frame)
            return found
        self.misses += 1
        features = compute(frame)
        self._items[frame] = features
        self._bytes += feature_bytes(features)
        while self._bytes > self.max_bytes and len(self._items) > 1:
            _, evicted = self._items.popitem(last=False)
            self._bytes -= feature_bytes(evicted)
        return features

    @property
    def nbytes(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, frame: int) -> bool:
        return frame in self._items

    def clear(self) -> None:
        self._items.clear()
        self._bytes = 0
