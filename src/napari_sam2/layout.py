"""How an image layer's axes map onto SAM 2's frames: which axis is propagated, which is the channel.

napari stores coordinates as (..., row, col); SAM 2 wants frames (T, H, W[, C]) and points as (x, y).
A :class:`StackLayout` names the propagated axis (time or z), the channel axis if any, and fixes
every other non-spatial axis at the slice the viewer shows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional, Sequence, Tuple, Union

import numpy as np


@dataclass(frozen=True)
class StackLayout:
    """Axes of an ``ndim``-dimensional image for segmentation.

    frame_axis: the propagated axis (None for a single 2D image); channel_axis: None, or an axis
    combined/picked by the frame reader (napari RGB layers: the last axis); fixed: {axis: index}
    for the remaining non-spatial axes (for example z when propagating through time in TZYX).
    The last two non-channel axes are (row, col).
    """

    ndim: int
    frame_axis: Optional[int]
    channel_axis: Optional[int] = None
    fixed: Tuple[Tuple[int, int], ...] = ()

    def __post_init__(self) -> None:
        spatial = self.spatial_axes
        used = {a for a in (self.frame_axis, self.channel_axis) if a is not None} | {a for a, _ in self.fixed}
        if len(spatial) != 2:
            raise ValueError(f"a {self.ndim}-D image needs exactly two spatial axes, found {spatial}")
        if used & set(spatial):
            raise ValueError("the frame, channel and fixed axes must not be the last two (spatial) axes")
        free = set(range(self.ndim)) - used - set(spatial)
        if free:
            raise ValueError(
                f"axes {sorted(free)} are neither propagated, channel nor fixed: choose which axis to "
                "propagate and fix the others at the current slice"
            )

    @property
    def spatial_axes(self) -> Tuple[int, int]:
        axes = [a for a in range(self.ndim) if a != self.channel_axis]
        return tuple(axes[-2:])  # type: ignore[return-value]

    @property
    def labels_ndim(self) -> int:
        """Dimensions of the output labels: the image's, less the channel axis."""
        return self.ndim - (self.channel_axis is not None)

    def labels_axis(self, image_axis: int) -> int:
        """Index in the labels array of an image axis (the channel axis is dropped)."""
        if self.channel_axis is not None and image_axis > self.channel_axis:
            return image_axis - 1
        return image_axis

    def labels_shape(self, image_shape: Sequence[int]) -> Tuple[int, ...]:
        return tuple(n for axis, n in enumerate(image_shape) if axis != self.channel_axis)

    def num_frames(self, image_shape: Sequence[int]) -> int:
        return 1 if self.frame_axis is None else int(image_shape[self.frame_axis])

    def frame_index_in_labels(self, frame: int) -> Tuple[Any, ...]:
        """Index into the labels array selecting the 2D (row, col) plane of ``frame``."""
        index: list = [slice(None)] * self.labels_ndim
        if self.frame_axis is not None:
            index[self.labels_axis(self.frame_axis)] = frame
        for axis, value in self.fixed:
            index[self.labels_axis(axis)] = value
        return tuple(index)

    def point_to_prompt(self, coords: Sequence[float]) -> Optional[Tuple[int, float, float]]:
        """An image-data coordinate (ndim,) -> (frame, x, y), or None if off the fixed slices."""
        coords = np.asarray(coords, dtype=float)
        for axis, value in self.fixed:
            if int(round(coords[axis])) != value:
                return None
        frame = 0 if self.frame_axis is None else int(round(coords[self.frame_axis]))
        row, col = (coords[a] for a in self.spatial_axes)
        return frame, float(col), float(row)


class FrameView:
    """A lazy (T, H, W[, C]) view of an image layer's data under a :class:`StackLayout`.

    Indexing with a frame number reads only that plane (numpy, dask, zarr all slice lazily).
    """

    def __init__(self, data: Any, layout: StackLayout) -> None:
        self.data = data
        self.layout = layout
        shape = tuple(int(n) for n in data.shape)
        rows, cols = (shape[a] for a in layout.spatial_axes)
        channels = () if layout.channel_axis is None else (shape[layout.channel_axis],)
        self.shape = (layout.num_frames(shape), rows, cols) + channels
        self.dtype = np.dtype(data.dtype)
        self.ndim = len(self.shape)

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, key: Any) -> np.ndarray:
        """view[t] -> (H, W[, C]) plane; view[t, rows, cols, channel] indexes within the plane.

        Rows, columns and the channel given as integers or slices are read as asked (``view[t, :, :, 1]`` reads
        channel 1 of plane t only, not every channel); other in-plane indices (lists, masks, ``...``) index the
        plane after it is read."""
        if isinstance(key, tuple) and key and isinstance(key[0], (int, np.integer)):
            frame, inner = key[0], key[1:]
            limit = 2 if self.layout.channel_axis is None else 3
            if len(inner) > limit or not all(isinstance(k, (slice, int, np.integer)) for k in inner):
                return self[frame][inner]
            rows, cols, channel = tuple(inner) + (slice(None),) * (3 - len(inner))
            return self._read(self._frame(frame), rows, cols, channel)
        return self._read(self._frame(key), slice(None), slice(None))

    def _frame(self, frame: Any) -> int:
        """A frame number as 0 <= frame < len (negative numbers count from the end); TypeError / IndexError."""
        if not isinstance(frame, (int, np.integer)):
            raise TypeError("FrameView is indexed by a frame number, optionally followed by in-plane indices")
        if not -len(self) <= frame < len(self):
            raise IndexError(f"frame {frame} is out of range 0..{len(self) - 1}")
        return int(frame) % len(self)

    def central(self, frame: int, side: int) -> np.ndarray:
        """The central ``side`` x ``side`` px (at most) of plane ``frame``, (h, w[, C]): only those are read (a lazy
        dask or zarr array, a pyramid's level 0, reads just the chunks under them)."""
        if not 0 <= frame < len(self):
            raise IndexError(f"frame {frame} is out of range 0..{len(self) - 1}")
        rows, cols = self.shape[1:3]
        top, left = max(0, (rows - side) // 2), max(0, (cols - side) // 2)
        return self._read(int(frame), slice(top, top + side), slice(left, left + side))

    def _read(self, frame: int, rows: Union[slice, int], cols: Union[slice, int],
              channel: Union[slice, int] = slice(None)) -> np.ndarray:
        """Plane ``frame`` (0 <= frame < len), rows, columns and channels as given, (h, w[, c]) (an integer drops its
        axis): only those are read from the data (one channel of a lazy (T, C, Y, X) array reads that channel's
        chunks alone)."""
        layout = self.layout
        index: list = [slice(None)] * layout.ndim
        if layout.frame_axis is not None:
            index[layout.frame_axis] = frame
        for axis, value in layout.fixed:
            index[axis] = value
        index[layout.spatial_axes[0]], index[layout.spatial_axes[1]] = rows, cols
        if layout.channel_axis is not None:
            index[layout.channel_axis] = channel
        plane = np.asarray(self.data[tuple(index)])
        if layout.channel_axis is not None and isinstance(channel, slice):
            remaining = [a for a in range(layout.ndim) if isinstance(index[a], slice)]
            plane = np.moveaxis(plane, remaining.index(layout.channel_axis), -1)
        return plane

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        stacked = np.stack([self[t] for t in range(len(self))])
        return stacked.astype(dtype) if dtype is not None else stacked


def world_to_data(
    coords: np.ndarray,
    from_scale: Sequence[float],
    from_translate: Sequence[float],
    to_scale: Sequence[float],
    to_translate: Sequence[float],
) -> np.ndarray:
    """Data coordinates (N, D) of one layer -> data coordinates of another, through world space.

    napari maps data to world as ``world = data * scale + translate`` (no rotation or shear here).
    """
    coords = np.asarray(coords, dtype=float)
    world = coords * np.asarray(from_scale, float) + np.asarray(from_translate, float)
    return (world - np.asarray(to_translate, float)) / np.asarray(to_scale, float)
