"""Opening stacks lazily: arrays, multi-page TIFFs and folders of frames become indexable (T, H, W[, C])."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, List, Sequence, Tuple, Union

import numpy as np

FRAME_SUFFIXES = (".tif", ".tiff", ".png", ".jpg", ".jpeg")
PathLike = Union[str, os.PathLike]


def natural_key(name: str) -> Tuple[Any, ...]:
    """Sort key that orders 't2' before 't10'."""
    return tuple(int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name))


def read_image_file(path: Path) -> np.ndarray:
    """One frame from a .tif/.tiff (tifffile) or .png/.jpg (Pillow), as stored."""
    if path.suffix.lower() in (".tif", ".tiff"):
        import tifffile

        return tifffile.imread(path)
    from PIL import Image

    with Image.open(path) as image:
        return np.asarray(image)


class FolderStack:
    """A folder of single-frame images read one at a time; all frames must share shape and dtype."""

    def __init__(self, folder: Path) -> None:
        files = sorted(
            (p for p in folder.iterdir() if p.suffix.lower() in FRAME_SUFFIXES and not p.name.startswith(".")),
            key=lambda p: natural_key(p.name),
        )
        if not files:
            raise ValueError(f"frames: the folder {folder} holds no {'/'.join(FRAME_SUFFIXES)} files")
        self.files: List[Path] = files
        first = read_image_file(files[0])
        self.frame_shape = first.shape
        self.dtype = first.dtype
        self.shape = (len(files),) + tuple(first.shape)
        self.ndim = len(self.shape)

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> np.ndarray:
        frame = read_image_file(self.files[index])
        if frame.shape != self.frame_shape or frame.dtype != self.dtype:
            raise ValueError(
                f"frames: {self.files[index].name} is {frame.shape} {frame.dtype}, but the first frame "
                f"{self.files[0].name} is {self.frame_shape} {self.dtype}; all frames must match"
            )
        return frame


def open_stack(source: Any) -> Any:
    """A lazily indexable stack from a path or an array-like (numpy, dask, zarr, memmap).

    Paths: a multi-page TIFF (opened through tifffile's zarr store, read page by page) or a folder
    of frames. Array-likes are returned as they are.
    """
    if isinstance(source, (str, os.PathLike)):
        path = Path(source).expanduser()
        if not path.exists():
            raise FileNotFoundError(f"frames: no such file or folder: {path}")
        if path.is_dir():
            return FolderStack(path)
        if path.suffix.lower() in (".tif", ".tiff"):
            import tifffile
            import zarr

            try:
                return zarr.open(tifffile.imread(path, aszarr=True), mode="r")
            except Exception as error:  # not a TIFF, truncated, unsupported layout
                raise ValueError(f"frames: cannot read {path} as a TIFF stack: {error}") from error
        raise ValueError(f"frames: {path} is neither a folder of frames nor a .tif/.tiff stack")
    if not hasattr(source, "shape") or not hasattr(source, "__getitem__"):
        source = np.asarray(source)
    return source


def read_frame(stack: Any, index: int) -> np.ndarray:
    """One frame of any supported stack as a numpy array (dask slices are computed)."""
    frame = stack[index]
    if hasattr(frame, "compute"):
        frame = frame.compute()
    return np.asarray(frame)


def sample_indices(num_frames: int, count: int = 16) -> Sequence[int]:
    """Up to ``count`` evenly spaced frame indices, always including the first and the last."""
    if num_frames <= count:
        return range(num_frames)
    return sorted({int(round(i)) for i in np.linspace(0, num_frames - 1, count)})
