"""Exports: labels as TIFF, a per-object per-frame measurement table (CSV), napari Tracks data."""

from __future__ import annotations

import csv
import hashlib
import sys
import uuid
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import AbstractSet, Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import tifffile
from skimage.measure import regionprops_table

from sam2_model.atomic_files import atomic_file
from sam2_model.object_boxes import object_boxes

from .units import unit_in  # None for an unknown unit: that size is left out of the TIFF

COLUMNS = ["frame", "obj_id", "area", "centroid_y", "centroid_x", "bbox_y0", "bbox_x0", "bbox_y1", "bbox_x1",
           "mean_intensity", "object_score", "check"]
# With a Calibration: the same in physical units (napari's layer scale and units).
CALIBRATED_COLUMNS = ["time", "time_unit", "z", "z_unit", "area_scaled", "centroid_y_scaled", "centroid_x_scaled",
                      "length_unit"]
Step = Tuple[str, int, Any, Any]  # a worker's step: (kind, number, detail, None)


@dataclass(frozen=True)
class Calibration:
    """Physical size of a pixel (rows, cols) in ``length_unit`` and of a frame step in ``time_unit`` (and of the
    labels' other non-spatial axis, :attr:`other_steps`).

    frames_through_z: the frames are the slices of a volume, not time points (the image's frame axis is in a length
    unit, or named z): the table then gives each row's ``z`` and ``z_unit`` instead of ``time`` and ``time_unit``.
    origin: where frame 0's pixel (0, 0) lies (t, y, x) in those units, napari's layer ``translate`` along the
    frame, row and column axes (pixel i is drawn at ``origin + size * i``): added to the table's scaled positions and
    written as the GEFF axes' offset.
    other_steps: the step of each non-spatial axis the labels keep besides the frame axis, as (letter, step, unit):
    ("Z", 2.0, "micrometer") for the slice spacing of a time-lapse of volumes (TZYX labels propagated through time,
    z fixed at a slice), ("T", 60.0, "second") for the time interval of volumes segmented through z. Only the labels
    TIFF's metadata reads them (:func:`tiff_calibration`: TimeIncrement and PhysicalSizeZ both); the table, GEFF and
    OME-Zarr outputs hold the frame axis only. Empty: none known (the labels have no other axis, or it has no size).
    """

    pixel_size: Tuple[float, float] = (1.0, 1.0)
    length_unit: str = "pixel"
    frame_interval: float = 1.0
    time_unit: str = "frame"
    frames_through_z: bool = False
    origin: Tuple[float, float, float] = (0.0, 0.0, 0.0)
    other_steps: Tuple[Tuple[str, float, str], ...] = ()

    def __post_init__(self) -> None:
        if len(self.pixel_size) != 2 or not all(np.isfinite(v) and v > 0 for v in self.pixel_size):
            raise ValueError(f"pixel_size must be two positive numbers (row, col), got {self.pixel_size}")
        if not (np.isfinite(self.frame_interval) and self.frame_interval > 0):
            raise ValueError(f"frame_interval must be a positive number, got {self.frame_interval}")
        origin = tuple(self.origin)
        if len(origin) != 3 or not all(isinstance(v, (int, float, np.integer, np.floating))
                                       and not isinstance(v, (bool, np.bool_)) and np.isfinite(v) for v in origin):
            raise ValueError(f"origin must be three finite numbers (t, y, x), got {self.origin!r}")
        object.__setattr__(self, "origin", tuple(float(v) for v in origin))
        object.__setattr__(self, "other_steps", self._checked_other_steps())

    @property
    def frame_letter(self) -> str:
        """The frame axis's letter: "Z" where the frames are a volume's slices, else "T"."""
        return "Z" if self.frames_through_z else "T"

    def step(self, letter: str) -> Optional[Tuple[float, str]]:
        """(step, unit) of the labels' axis ``letter`` ("T" or "Z"): the frame step for the frame axis's letter
        (:attr:`frame_letter`), else that axis's entry of :attr:`other_steps`; None where none is known."""
        letter = letter.upper()
        if letter == self.frame_letter:
            return self.frame_interval, self.time_unit
        return next(((step, unit) for name, step, unit in self.other_steps if name == letter), None)

    def _checked_other_steps(self) -> Tuple[Tuple[str, float, str], ...]:
        """:attr:`other_steps` as a tuple of (letter in upper case, float step, unit), or ValueError naming what is
        wrong: each entry three items, a one-letter axis other than the frame axis's and the spatial Y / X, given
        once, a positive finite step and a unit name."""
        checked: List[Tuple[str, float, str]] = []
        for entry in tuple(self.other_steps):
            if not (isinstance(entry, (tuple, list)) and len(entry) == 3):
                raise ValueError(f"other_steps must hold (letter, step, unit) triples, e.g. ('Z', 2.0, "
                                 f"'micrometer'), got {entry!r}")
            letter, step, unit = entry
            if not (isinstance(letter, str) and len(letter) == 1 and letter.isalpha()) or \
                    letter.upper() in ("Y", "X", self.frame_letter) or \
                    letter.upper() in (name for name, _, _ in checked):
                raise ValueError(f"other_steps: axis letter {letter!r} must be one letter, given once, other than Y, "
                                 f"X and the frame axis's {self.frame_letter!r} (e.g. 'Z' or 'T')")
            if isinstance(step, (bool, np.bool_)) or not isinstance(step, (int, float, np.integer, np.floating)) \
                    or not (np.isfinite(step) and step > 0):
                raise ValueError(f"other_steps: the step of axis {letter!r} must be a positive number, got {step!r}")
            if not isinstance(unit, str):
                raise ValueError(f"other_steps: the unit of axis {letter!r} must be a name (e.g. 'micrometer'), "
                                 f"got {unit!r}")
            checked.append((letter.upper(), float(step), unit))
        return tuple(checked)

    def columns(self, row: Dict[str, Any]) -> Dict[str, Any]:
        sy, sx = self.pixel_size
        t0, y0, x0 = self.origin
        step = "z" if self.frames_through_z else "time"
        return {step: t0 + row["frame"] * self.frame_interval, f"{step}_unit": self.time_unit,
                "area_scaled": row["area"] * sy * sx, "centroid_y_scaled": y0 + row["centroid_y"] * sy,
                "centroid_x_scaled": x0 + row["centroid_x"] * sx, "length_unit": self.length_unit}


def save_labels_tiff(labels: Any, path: Path, axes: Optional[str] = None,
                     calibration: Optional[Calibration] = None,
                     on_plane: Optional[Callable[[int, int], None]] = None) -> None:
    """Write labels (T, Y, X) or (Y, X) (or any axes ``axes`` names, e.g. "TZYX") as a zlib-compressed greyscale TIFF.

    labels: a numpy array, or a stack of three or more axes read a frame at a time (anything with ``shape`` whose
    ``labels[t]`` gives frame t: a :class:`~sam2_model.tracking.lineage.ConsistentLabels`, a
    :class:`~.track_all.FramesView`, a zarr or dask array; :class:`FrameStack`): the same file, byte for byte, as its
    whole array gives, with no copy of the stack (other array-likes, e.g. lists, are read with ``np.asarray``).

    axes: the labels' axis letters (e.g. "TZYX", "ZYX"), recorded in the file so that readers (Fiji, tifffile, napari)
    give them back; None (or letters that do not fit the labels): "TYX" ("ZYX" where the calibration's frames are a
    volume's slices) for 3-D labels, "YX" for 2-D ones, none for others.
    calibration: the image's pixel size, frame step and origin (:class:`Calibration`), recorded as below.
    on_plane: called as ``on_plane(done, total)`` as the (Y, X) planes are written (progress; ``total`` planes).

    The file is an ImageJ hyperstack (:func:`imagej_labels`: Fiji's plain File > Open gives frames as frames, slices
    as slices, the pixel size, slice spacing, frame interval and origin; Bio-Formats, tifffile and napari read it too)
    wherever it can be one: ids that fit 16 bits (0 to 65535; written as uint16, or uint8 as given), axes among
    T, Z, Y, X in that order, at most 2 GiB of pixels. Otherwise (an id of 65536 or more, other axes, a bigger stack)
    it is the TIFF of before, in the labels' own dtype (this project's are uint32): an OME-TIFF where the calibration records a known unit (:func:`tiff_calibration`;
    Fiji's plain opener then shows the frames as 32-bit slices with the pixel size only: its Bio-Formats importer
    reads the rest), else a plain TIFF with its axes (BigTIFF over 2 GiB). OME has no 64-bit integers: int64 / uint64
    labels are a uint32 OME-TIFF (:func:`ome_labels`), and one with an id outside 0 to 2**32 - 1 is refused with a
    ValueError naming it, with no file written (they are written whole without a calibration).
    A calibration that records no known unit (napari's "pixel" / "frame") writes the file exactly as without one.
    The planes are written one at a time (:func:`label_planes`): the memory the write takes beyond ``labels`` is that
    of a plane or two, whatever the number of frames (a uint16 copy of one plane at a time for the hyperstack). A stack
    read a frame at a time is read once, one frame made at a time: a wider dtype than 16 bits whose ids the stack does
    not know (:meth:`FrameStack.known_max`) has its last frame read first (a tracking's ids grow with time: an id that
    does not fit 16 bits is likeliest there), and held until the write reaches it (one frame more in memory). An id
    there that does not fit writes the other TIFF at once; else the hyperstack is written while each plane is checked,
    and a plane with an id that does not fit stops that write, and the other TIFF is written (the frames up to that one
    read and compressed twice).
    The OME UUID is hashed from the planes as they are written and put in the file's description at the end (a
    placeholder of its length until then: the same bytes). The labels must not change while written.
    Written to a temporary name beside ``path`` and renamed: a failed write (a frame that cannot be read included)
    leaves the old file (or none) and no temporary file behind.
    """
    path = Path(path)
    labels = labels_stack(labels)
    letters = axes.upper() if isinstance(axes, str) and len(axes) == labels.ndim else \
        _default_axes(labels.ndim, calibration)
    on_plane = _forward_only(on_plane)  # (the other TIFF's planes after a hyperstack stopped part-way)
    unknown = isinstance(labels, FrameStack) and not labels.range_known()  # ids found by reading: checked as written
    imagej = imagej_labels(labels, letters, calibration, check_ids=not unknown)
    checked = unknown and imagej is not None and imagej[0] != labels.dtype
    if checked:
        labels = labels.with_last_read()  # (the write takes it from there: read once)
        if not ids_fit_16_bits(labels.frame(len(labels) - 1)):
            imagej = None  # an id over 16 bits in the last frame: no hyperstack begun and thrown away part-way
    if imagej is not None:
        dtype, arguments = imagej
        try:
            with atomic_file(path) as temporary:  # the final file gets the mode of a plain open() (umask)
                pixels = _pixels(labels, dtype, on_plane, checked=checked)
                tifffile.imwrite(temporary, **pixels, imagej=True, compression="zlib", photometric="minisblack",
                                 **arguments)
        except _IdsDoNotFit:
            pass  # (no file left behind): the TIFF in the labels' own dtype below
        else:
            _done(labels, on_plane)
            return
    metadata: Dict[str, Any] = {"axes": letters} if letters else {}
    calibrated = tiff_calibration(calibration, letters)
    digest = None
    dtype, check = labels.dtype, False
    if calibrated:
        labels, dtype, check = ome_labels(labels)  # (a ValueError here, before any file, for ids it cannot hold)
        metadata = calibrated.pop("metadata")
        digest = hashlib.sha1()
        hashed = f"{labels.shape}{dtype}{sorted(metadata.items())}".encode()  # (after the pixels' bytes)
        metadata["UUID"] = UUID_PLACEHOLDER  # the content UUID's length: a rerun writes the same bytes
    with atomic_file(path) as temporary:
        tifffile.imwrite(temporary, **_pixels(labels, dtype, on_plane, digest=digest, ome_ids=check),
                         compression="zlib", photometric="minisblack",  # never read as RGB
                         bigtiff=labels.size * dtype.itemsize > 2**31, metadata=metadata, **calibrated)
        if digest is not None:
            if labels.ndim <= 2 or labels.size == 0:  # (written whole, not a plane at a time: hashed here)
                digest.update(np.ascontiguousarray(labels.astype(dtype, copy=False)).view(np.uint8).reshape(-1).data)
            digest.update(hashed)
            _put_uuid(temporary, f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_OID, digest.hexdigest())}")
    _done(labels, on_plane)


#: the OME UUID a labels TIFF is written with until its pixels are hashed (:func:`_put_uuid`): a content UUID's length
UUID_PLACEHOLDER = f"urn:uuid:{uuid.UUID(int=0)}"


#: the highest id of 64-bit labels in an OME-TIFF (which has no 64-bit integer pixels): they are written as uint32
OME_MAX_ID = int(np.iinfo(np.uint32).max)


def ome_labels(labels: Labels) -> Tuple[Labels, np.dtype, bool]:
    """(labels, dtype, check): ``labels`` as an OME-TIFF writes them, in ``dtype``, each plane's ids checked as it is
    written where ``check``. OME has no 64-bit integers: int64 / uint64 labels (a napari layer's, whatever their ids)
    are written as uint32, ids 0 to :data:`OME_MAX_ID` kept whole; other labels in their own dtype, unchecked.
    An array's ids are read here, a :class:`FrameStack`'s known range (:meth:`FrameStack.known_max`) is looked at, or
    else its last frame read first (returned held: :meth:`FrameStack.with_last_read`; a tracking's ids grow with
    time) and the others checked as written. ValueError naming an id outside 0 to :data:`OME_MAX_ID` found here,
    before any file is written (one found by the write's check stops it: no file either)."""
    if labels.dtype.kind not in "iu" or labels.dtype.itemsize < 8:
        return labels, labels.dtype, False
    check = False
    if not isinstance(labels, FrameStack):
        check_ome_ids(labels, None)
    elif labels.range_known():
        check_ome_ids(np.asarray([labels.known_max() or 0], labels.dtype), None)
    else:
        labels = labels if labels.held is not None else labels.with_last_read()
        check_ome_ids(labels.held[1], labels.held[0])
        check = True
    return labels, np.dtype(np.uint32), check


def check_ome_ids(values: np.ndarray, frame: Optional[int]) -> None:
    """ValueError naming the highest (else the lowest) id of ``values`` outside 0 to :data:`OME_MAX_ID` (on frame
    ``frame`` of the labels, where given), and what a calibrated TIFF takes; None where every id lies within."""
    if not values.size:
        return
    high, low = int(values.max()), int(values.min())
    if 0 <= low and high <= OME_MAX_ID:
        return
    where = "" if frame is None else f" on frame {frame}"
    if high > OME_MAX_ID:
        why = (f"labels with an id over 65535 are written as an OME-TIFF, whose pixels take ids 0 to {OME_MAX_ID} "
               "(uint32; it has no 64-bit integers)")
    else:  # a negative id: not a 16-bit hyperstack, so an OME-TIFF, and 64-bit labels are uint32 there
        why = (f"labels with a negative id are written as an OME-TIFF, which has no 64-bit integers: {values.dtype} "
               f"labels are written there as uint32, ids 0 to {OME_MAX_ID} (uint32; int32 or int16 labels keep "
               "negative ids)")
    raise ValueError(
        f"the labels hold id {high if high > OME_MAX_ID else low}{where}, which a calibrated labels TIFF cannot "
        f"hold: {why}; relabel the objects with ids in that range, or save the labels "
        "without a calibration (a TIFF in their own dtype)")


class _IdsDoNotFit(Exception):
    """A plane written as an ImageJ hyperstack holds an id outside 0 to 65535 (raised by :func:`_pixels`' check)."""


def _put_uuid(path: Path, value: str) -> None:
    """Write ``value`` over :data:`UUID_PLACEHOLDER` in the ImageDescription (the OME-XML) of the TIFF at ``path``:
    the same length, so the file is byte for byte what writing it with ``value`` gives (RuntimeError where the
    description does not hold the placeholder)."""
    with tifffile.TiffFile(path) as tiff:
        tag = tiff.pages[0].tags["ImageDescription"]
        start, count = int(tag.valueoffset), int(tag.count)
    old, new = UUID_PLACEHOLDER.encode("ascii"), value.encode("ascii")
    if len(old) != len(new):
        raise ValueError(f"an OME UUID must have {len(old)} characters like {UUID_PLACEHOLDER!r}, got {value!r}")
    with open(path, "r+b") as handle:
        handle.seek(start)
        description = handle.read(count)
        if old not in description:
            raise RuntimeError(f"{path}: the OME description does not hold the UUID placeholder {UUID_PLACEHOLDER}")
        handle.seek(start)
        handle.write(description.replace(old, new))  # (every place tifffile wrote it: the file's UUID)


def _forward_only(on_plane: Optional[Callable[[int, int], None]]) -> Optional[Callable[[int, int], None]]:
    """``on_plane``, told only of a count above the highest it was told (a write started again goes on from there)."""
    if on_plane is None:
        return None
    told = [0]

    def forward(done: int, total: int) -> None:
        if done > told[0]:
            told[0] = done
            on_plane(done, total)

    return forward


@dataclass(frozen=True)
class FrameStack:
    """Labels of three or more axes (T, ..., Y, X) read a frame at a time, as :func:`save_labels_tiff` reads an
    array: ``shape``, ``ndim``, ``dtype``, ``size``, ``nbytes``, :meth:`planes` (the (Y, X) planes in C order, frame
    t's made when reached: ``np.asarray(source[t])`` in ``dtype``) and :meth:`known_max` (the highest id where it is
    known without reading). Nothing is copied whole; the stack must not change while it is read. Make one with
    :func:`labels_stack`.

    source: anything indexable by one frame (``source[t]``, t an int) with a ``shape``: a
    :class:`~sam2_model.tracking.lineage.ConsistentLabels`, a :class:`~.track_all.FramesView`, a zarr, dask or h5py
    array. dtype: the source's ``dtype``, else that of its frame 0. held: (t, frame t) already read
    (:meth:`with_last_read`), given by :meth:`frame` instead of reading it again."""

    source: Any
    shape: Tuple[int, ...]
    dtype: np.dtype
    held: Optional[Tuple[int, np.ndarray]] = field(default=None, compare=False, repr=False)

    @classmethod
    def of(cls, source: Any) -> "FrameStack":
        """The stack of ``source`` (ValueError for fewer than three axes: a (Y, X) image is not read by frame)."""
        shape = tuple(int(n) for n in source.shape)
        if len(shape) < 3:
            raise ValueError(f"labels read a frame at a time must have three or more axes (T, ..., Y, X), got "
                             f"shape {shape}")
        try:
            dtype = np.dtype(getattr(source, "dtype"))
        except (AttributeError, TypeError):  # none, or not numpy's (a torch tensor): that of its frame 0
            dtype = np.asarray(source[0]).dtype
        return cls(source, shape, dtype)

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def nbytes(self) -> int:
        return self.size * self.dtype.itemsize

    def __len__(self) -> int:
        return self.shape[0]

    def frame(self, t: int) -> np.ndarray:
        """Frame ``t`` (shape ``shape[1:]``, in ``dtype``; ValueError naming the frame where the source gives another
        shape); the :attr:`held` frame without reading it again."""
        if self.held is not None and self.held[0] == int(t):
            return self.held[1]
        frame = np.asarray(self.source[int(t)], dtype=self.dtype)
        if frame.shape != self.shape[1:]:
            raise ValueError(f"frame {t} of the labels has shape {frame.shape}, not {self.shape[1:]} as the stack's "
                             f"shape {self.shape} says")
        return frame

    def with_last_read(self) -> "FrameStack":
        """This stack with its last frame read now and :attr:`held` (the caller looks at it first; a later
        :meth:`frame` of it, e.g. by :meth:`planes`, does not read it again)."""
        last = len(self) - 1
        return replace(self, held=(last, self.frame(last)))

    def planes(self) -> Iterator[np.ndarray]:
        """The (Y, X) planes in C order (frame 0's first), one frame held at a time."""
        for t in range(len(self)):
            frame = self.frame(t)
            for index in np.ndindex(*frame.shape[:-2]):
                yield frame[index]

    def known_max(self) -> Optional[int]:
        """The highest value where it is known without reading a plane: a
        :class:`~sam2_model.tracking.lineage.ConsistentLabels`'s ``ids`` (each frame's sorted ids > 0, all within the
        dtype); else None."""
        lineage = sys.modules.get("sam2_model.tracking.lineage")  # (loaded wherever a ConsistentLabels was made)
        if lineage is not None and isinstance(self.source, lineage.ConsistentLabels):
            found = [ids for ids in self.source.ids if len(ids)]
            low = min((int(np.min(ids)) for ids in found), default=0)
            high = max((int(np.max(ids)) for ids in found), default=0)
            if 0 <= low and high <= np.iinfo(self.dtype).max:  # (else its planes hold them wrapped: read those)
                return high
        return None

    def range_known(self) -> bool:
        """Whether the lowest and highest ids are known without reading a plane (unsigned labels, none below 0,
        whose :meth:`known_max` is known)."""
        return self.dtype.kind in "ub" and self.known_max() is not None


Labels = Any  # a numpy array or a :class:`FrameStack` (what :func:`labels_stack` gives)


def labels_stack(labels: Any) -> Labels:
    """``labels`` as :func:`save_labels_tiff` reads them: a numpy array as it is; a stack of three or more axes that
    is not one (it has a ``shape`` and is indexed by frame: :class:`FrameStack`) read a frame at a time, or as a
    zero-filled array where it holds no pixel; anything else through ``np.asarray`` (a list, a (Y, X) array-like)."""
    if isinstance(labels, np.ndarray):
        return labels
    shape = getattr(labels, "shape", None)
    if shape is None or not hasattr(labels, "__getitem__") or len(tuple(shape)) < 3:
        return np.asarray(labels)
    stack = FrameStack.of(labels)
    return np.zeros(stack.shape, stack.dtype) if stack.size == 0 else stack


def label_planes(labels: Labels) -> Iterator[np.ndarray]:
    """The (Y, X) planes of labels of two or more axes (an array or a :class:`FrameStack`), in the file's (C) order:
    views of an array, no copies (the labels themselves for (Y, X) labels)."""
    if isinstance(labels, FrameStack):
        yield from labels.planes()
        return
    for index in np.ndindex(*labels.shape[:-2]):
        yield labels[index]


def labels_ids(labels: np.ndarray) -> AbstractSet[int]:
    """The ids > 0 that ``labels`` (any axes, (Y, X) last) hold, read a plane at a time: no stack-sized copy (as
    ``np.unique`` of the whole stack would sort)."""
    if labels.ndim < 2:
        return set(np.unique(labels[labels != 0]).tolist())
    found: set = set()
    for plane in label_planes(labels):
        found.update(np.unique(plane[plane != 0]).tolist())
    return found


def _pixels(labels: Labels, dtype: Any, on_plane: Optional[Callable[[int, int], None]], checked: bool = False,
            digest: Any = None, ome_ids: bool = False) -> Dict[str, Any]:
    """tifffile.imwrite's data arguments for ``labels`` written as ``dtype``: an iterator of its (Y, X) planes with
    ``shape`` and ``dtype`` (tifffile writes each as one page: the same bytes as the whole array gives), or the array
    itself where it is one plane or less (then a copy of it where the dtype changes; a :class:`FrameStack` has three
    axes or more and pixels).

    checked: each plane's ids are checked to fit uint16 (0 to 65535) before it is cast: :class:`_IdsDoNotFit` at the
    first that does not (the labels' ids were not known before the write). ome_ids: each plane's ids are checked to lie
    within 0 to :data:`OME_MAX_ID` before it is cast (:func:`check_ome_ids`: ValueError naming the id and its frame).
    digest: a ``hashlib`` hash updated with each plane's bytes in ``dtype`` as it is written (C order: the whole
    array's bytes, cast, once every plane is)."""
    if labels.ndim <= 2 or labels.size == 0:
        return {"data": labels.astype(dtype, copy=False)}
    total = int(np.prod(labels.shape[:-2], dtype=np.int64))
    per_frame = int(np.prod(labels.shape[1:-2], dtype=np.int64))

    def planes() -> Iterator[np.ndarray]:
        for done, plane in enumerate(label_planes(labels), start=1):
            if checked and not ids_fit_16_bits(plane):
                raise _IdsDoNotFit(f"plane {done - 1} holds an id outside 0..65535")
            if ome_ids:
                check_ome_ids(plane, (done - 1) // per_frame)
            plane = plane.astype(dtype, copy=False)  # a copy of this plane only where the dtype changes
            if digest is not None:
                digest.update(np.ascontiguousarray(plane).view(np.uint8).reshape(-1).data)
            yield plane
            if on_plane is not None and done < total:
                on_plane(done, total)  # the next plane is asked for: this one is written

    return {"data": planes(), "shape": labels.shape, "dtype": np.dtype(dtype)}


def _done(labels: Labels, on_plane: Optional[Callable[[int, int], None]]) -> None:
    """Tell ``on_plane`` that every plane of ``labels`` is written."""
    if on_plane is not None:
        total = int(np.prod(labels.shape[:-2], dtype=np.int64)) if labels.ndim >= 2 else 1
        on_plane(total, total)


#: the most bytes of pixels an ImageJ hyperstack is written with (a classic TIFF, which ImageJ 1 reads; bigger labels
#: are written as a BigTIFF, :func:`save_labels_tiff`)
IMAGEJ_MAX_BYTES = 2**31
#: ImageJ's spelling of the length units of :data:`TIFF_LENGTH_UNITS` (ASCII, read back by
#: :func:`.units.file_unit_name`; ImageJ shows "micron" as µm)
IMAGEJ_LENGTH_UNITS = {"meter": "m", "decimeter": "decimeter", "centimeter": "cm", "millimeter": "mm",
                       "micrometer": "micron", "nanometer": "nm", "picometer": "picometer", "angstrom": "angstrom"}
#: seconds in each time unit of :data:`TIFF_TIME_UNITS`: an ImageJ file's frame interval is written in seconds, as
#: Bio-Formats reads ``finterval`` whatever its ``tunit`` says
SECONDS = {"second": 1.0, "millisecond": 1e-3, "microsecond": 1e-6, "nanosecond": 1e-9, "minute": 60.0,
           "hour": 3600.0, "day": 86400.0}


def imagej_labels(labels: Labels, axes: Optional[str], calibration: Optional[Calibration],
                  check_ids: bool = True) -> Optional[Tuple[np.dtype, Dict[str, Any]]]:
    """(dtype, tifffile.imwrite arguments) writing ``labels`` as an ImageJ hyperstack with ``imagej=True``: uint8
    and uint16 labels as they are, other integer labels as uint16 (the dtype returned; nothing is copied here), with
    the axes ``axes`` and :func:`imagej_calibration`; None where the labels cannot be one: an id of 65536 or more (or
    a negative one), ``axes`` None or not among T, Z, Y, X in that order (ImageJ's, e.g. "ZTYX"), over
    :data:`IMAGEJ_MAX_BYTES` of pixels, or a calibration ImageJ cannot hold. The ids are looked at with
    :func:`ids_fit_16_bits` (an array's read, a :class:`FrameStack`'s only where known: ValueError otherwise);
    check_ids=False: not looked at (no pass over the labels; :func:`save_labels_tiff` passes it for a
    :class:`FrameStack` whose ids are not known: its write checks them plane by plane)."""
    if not isinstance(axes, str) or len(axes) != labels.ndim or not _imagej_order(axes):
        return None
    dtype = labels.dtype
    if dtype not in (np.uint8, np.uint16):
        if dtype.kind not in "biu" or labels.size * 2 > IMAGEJ_MAX_BYTES:  # (the cheap checks first)
            return None
        if check_ids and labels.size and not ids_fit_16_bits(labels):
            return None
        dtype = np.dtype(np.uint16)
    if labels.size * dtype.itemsize > IMAGEJ_MAX_BYTES:
        return None
    arguments = imagej_calibration(calibration, axes)
    return None if arguments is None else (dtype, arguments)


def ids_fit_16_bits(labels: Labels) -> bool:
    """Whether every value of ``labels`` lies within 0..65535: an array's highest (and, signed, lowest) value read
    (no copy), a :class:`FrameStack`'s known range (:meth:`FrameStack.range_known`; ValueError where it is not known:
    its planes are read by the write, which checks them, :func:`save_labels_tiff`)."""
    top = int(np.iinfo(np.uint16).max)
    if isinstance(labels, FrameStack):
        if not labels.range_known():
            raise ValueError("the ids of labels read a frame at a time are known only where the stack knows them "
                             "(a ConsistentLabels); others are checked plane by plane as they are written")
        return int(labels.known_max() or 0) <= top
    if not labels.size:
        return True
    return int(labels.max()) <= top and (labels.dtype.kind != "i" or int(labels.min()) >= 0)


def _imagej_order(axes: str) -> bool:
    """Whether ``axes`` are ImageJ hyperstack axes of labels: each of T, Z at most once, in that order, then Y, X."""
    return axes.endswith("YX") and axes[:-2] in ("", "T", "Z", "TZ")


def imagej_calibration(calibration: Optional[Calibration], axes: str) -> Optional[Dict[str, Any]]:
    """tifffile.imwrite arguments (``metadata``, ``resolution``) recording ``calibration`` in an ImageJ hyperstack
    whose axes are ``axes`` (e.g. "TYX", "ZYX", "TZYX"), as ImageJ's description keys: ``unit`` and the X/YResolution
    tags in pixels per unit where the pixel size is in a unit of :data:`IMAGEJ_LENGTH_UNITS`; ``spacing`` (the Z
    step, in that unit) where Z is among ``axes``; ``finterval`` (in seconds, ``tunit`` "sec") where T is; ``xorigin``
    / ``yorigin`` (and ``zorigin`` where the frames are the slices) in pixels, ImageJ's origin, from the calibration's
    origin (pixel 0 at ``origin``: ImageJ's origin is ``-origin / size``; a time origin has no ImageJ key and is left
    out). Steps in an unknown unit, or of the wrong kind, are left out (as :func:`tiff_calibration` does); axes only
    for no calibration or napari's "pixel" / "frame". None where ImageJ cannot hold the calibration: a Z step in a
    length unit while the pixel size is uncalibrated (ImageJ has one length unit for X, Y and Z)."""
    metadata: Dict[str, Any] = {"axes": axes}
    arguments: Dict[str, Any] = {"metadata": metadata}
    if calibration is None:
        return arguments
    length = unit_in(calibration.length_unit, "space")
    metres = TIFF_LENGTH_UNITS[length][1] if length in IMAGEJ_LENGTH_UNITS else None
    z = calibration.step("Z") if "Z" in axes else None
    z_unit = None if z is None else unit_in(z[1], "space")
    if z_unit in TIFF_LENGTH_UNITS and metres is None:
        return None
    if metres is None:
        length_origin: Dict[str, Any] = {}
    else:
        (row, col), (t0, y0, x0) = calibration.pixel_size, calibration.origin
        arguments["resolution"] = (1.0 / col, 1.0 / row)
        metadata["unit"] = IMAGEJ_LENGTH_UNITS[length]
        length_origin = {"xorigin": -x0 / col, "yorigin": -y0 / row}
        if z is not None and z_unit in TIFF_LENGTH_UNITS:
            spacing = _in_unit(z[0], TIFF_LENGTH_UNITS[z_unit][1] / metres)
            metadata["spacing"] = spacing
            if calibration.frames_through_z:
                length_origin["zorigin"] = -t0 / z[0]  # the origin and the step both in the z unit
    t = calibration.step("T") if "T" in axes else None
    seconds = None if t is None else SECONDS.get(unit_in(t[1], "time") or "")
    if seconds is not None:
        metadata.update(finterval=_in_unit(t[0], seconds), tunit="sec")
    metadata.update({key: int(value) if value.is_integer() else value  # Bio-Formats reads whole pixels only
                     for key, value in length_origin.items() if value != 0.0})
    return arguments


def _in_unit(value: float, factor: float) -> float:
    """``value`` times the unit ``factor`` to 12 significant digits (2000 nm in µm is 2.0, not 2.0000000000000004);
    ``value`` itself for a factor of 1."""
    return float(value) if factor == 1.0 else float(f"{value * factor:.12g}")


#: OME's symbol and the size in metres of the length units (OME-NGFF names) a TIFF's calibration is written in
TIFF_LENGTH_UNITS = {"meter": ("m", 1.0), "decimeter": ("dm", 1e-1), "centimeter": ("cm", 1e-2),
                     "millimeter": ("mm", 1e-3), "micrometer": ("\u00b5m", 1e-6), "nanometer": ("nm", 1e-9),
                     "picometer": ("pm", 1e-12), "angstrom": ("\u00c5", 1e-10)}
TIFF_TIME_UNITS = {"second": "s", "millisecond": "ms", "microsecond": "\u00b5s", "nanosecond": "ns", "minute": "min",
                   "hour": "h", "day": "d"}


def tiff_calibration(calibration: Optional[Calibration], axes: Optional[str]) -> Dict[str, Any]:
    """tifffile.imwrite arguments recording ``calibration`` in a TIFF whose axis letters are ``axes`` (e.g. "TYX",
    "TZYX"): ``ome`` and ``metadata`` (axes; PhysicalSizeY/X where Y and X are among ``axes``, with ``resolution`` and
    ``resolutionunit`` in pixels per cm; TimeIncrement where T is and PhysicalSizeZ where Z is, each from the frame
    step or the :attr:`Calibration.other_steps` entry of that letter: both for TZYX labels). Only sizes in a unit of
    :data:`TIFF_LENGTH_UNITS` / :data:`TIFF_TIME_UNITS` are written; {} where none is (no calibration, napari's
    "pixel" / "frame", an unknown unit, no axes)."""
    if calibration is None or not axes:
        return {}
    length = unit_in(calibration.length_unit, "space") if "Y" in axes and "X" in axes else None
    metadata: Dict[str, Any] = {"axes": axes}
    resolution: Dict[str, Any] = {}
    if length in TIFF_LENGTH_UNITS:
        (symbol, metres), (row, col) = TIFF_LENGTH_UNITS[length], calibration.pixel_size
        metadata.update(PhysicalSizeY=row, PhysicalSizeYUnit=symbol, PhysicalSizeX=col, PhysicalSizeXUnit=symbol)
        resolution = {"resolution": (0.01 / (col * metres), 0.01 / (row * metres)), "resolutionunit": "CENTIMETER"}
    for letter, key, symbol_of in (("T", "TimeIncrement", _time_symbol), ("Z", "PhysicalSizeZ", _length_symbol)):
        found = calibration.step(letter) if letter in axes else None
        symbol = None if found is None else symbol_of(found[1])
        if symbol is not None:
            metadata.update({key: found[0], f"{key}Unit": symbol})
    return {"ome": True, "metadata": metadata, **resolution} if len(metadata) > 1 else {}


def _length_symbol(unit: str) -> Optional[str]:
    """OME's symbol of a length ``unit`` of :data:`TIFF_LENGTH_UNITS` ("micrometer", "um" -> "µm"); None otherwise."""
    return TIFF_LENGTH_UNITS.get(unit_in(unit, "space") or "", (None, 0.0))[0]


def _time_symbol(unit: str) -> Optional[str]:
    """OME's symbol of a time ``unit`` of :data:`TIFF_TIME_UNITS` ("second", "s" -> "s"); None otherwise."""
    return TIFF_TIME_UNITS.get(unit_in(unit, "time") or "")


def _default_axes(ndim: int, calibration: Optional[Calibration]) -> Optional[str]:
    """The letters of (T, Y, X) labels ("ZYX" where the frames are a volume's slices) or (Y, X); None otherwise."""
    frames = "Z" if calibration is not None and calibration.frames_through_z else "T"
    return {2: "YX", 3: frames + "YX"}.get(ndim)


def layer_other_steps(scale: Sequence[float], units: Optional[Sequence[Any]], layout: Any,
                      frames_through_z: bool) -> Tuple[Tuple[str, float, str], ...]:
    """:attr:`Calibration.other_steps` of the labels of an image whose axes have ``scale`` and ``units`` (a napari
    layer's ``scale`` and ``units``; units None: it has none) read under ``layout`` (a :class:`~.layout.StackLayout`).

    The image's one non-spatial axis besides its frame and channel axes -- z of a TZYX layer propagated through time
    (fixed at a slice), t of one propagated through z -- gives ("Z", step, unit), or ("T", step, unit) where the frames
    are a volume's slices: the letters the widget's labels TIFF gives them (``_runs.labels_letters``). () where the
    image has no such axis, more than one (its labels then get no letters) or that axis is uncalibrated (napari's unit
    "pixel", or no units)."""
    spatial = tuple(layout.spatial_axes)
    others = [axis for axis in range(int(layout.ndim))
              if axis not in spatial and axis not in (layout.frame_axis, layout.channel_axis)]
    if len(others) != 1 or units is None:
        return ()
    axis = others[0]
    unit, step = str(units[axis]), float(scale[axis])
    if unit == "pixel" or not (np.isfinite(step) and step > 0):
        return ()
    return (("T" if frames_through_z else "Z", step, unit),)


#: tifffile's letters for an axis it cannot name (Q), the samples or pages of a plain write (S) and an image sequence (I)
UNNAMED_FRAME_LETTERS = ("Q", "S", "I")


def labels_axes(stack_axes: Optional[str], ndim: int, channel_axis: Optional[int] = None,
                keep: Optional[Sequence[int]] = None, frame_axis: Optional[int] = None) -> Optional[str]:
    """The axis letters of labels made from a stack whose ``ndim`` axes are ``stack_axes`` (e.g. a TIFF's "TZCYX"):
    without its ``channel_axis`` (the channel or colour axis, which labels do not have), or only the axes in ``keep``
    (e.g. (frame axis, row axis, col axis) for (T, Y, X) labels along one axis). The ``frame_axis`` (the axis
    segmented through), where the stack does not name it (tifffile's "Q", "S" or "I" for the pages of a plain
    ``tifffile.imwrite`` of a (T, Y, X) array), is T, as batch runs write it (so the labels stay an ImageJ hyperstack).
    None when the stack has no letters."""
    if not isinstance(stack_axes, str) or len(stack_axes) != ndim:
        return None
    letters = list(stack_axes.upper())
    if frame_axis is not None and 0 <= frame_axis < ndim and letters[frame_axis] in UNNAMED_FRAME_LETTERS:
        letters[frame_axis] = "T"
    axes = [i for i in range(ndim) if i != channel_axis] if keep is None else list(keep)
    return "".join(letters[i] for i in axes)


def measure(
    labels: Any, image: Any = None, object_scores: Optional[Dict[tuple, float]] = None,
    calibration: Optional[Calibration] = None, check: Optional[AbstractSet[Tuple[int, int]]] = None, *,
    scale: Optional[Sequence[float]] = None, length_unit: str = "pixel", time_unit: str = "frame",
) -> List[Dict[str, Any]]:
    """One row per object and frame with pixels (``napari_sam2.measure``; ``pandas.DataFrame(measure(...))``): frame,
    obj_id, area (px), centroid_y / centroid_x, bbox_y0 / bbox_x0 / bbox_y1 / bbox_x1 (px, end exclusive),
    mean_intensity, object_score and check (:data:`COLUMNS`), in frame order, then by id. Every column is numeric.

    labels: (T, Y, X) integer labels (0: background), e.g. ``segment()``'s labels or ``track_cells()``'s
    ``result.labels``, or the TrackingResult itself; a single (Y, X) image is frame 0. ``frame`` is the labels' index,
    except for a TrackingResult of part of a movie (``track_cells(..., frames=(first, last))``, whose
    ``first_frame`` is ``first``): there it is the movie's frame number, ``first + index``, as its lineage and
    ``frames_tracked`` (and the calibrated ``time`` / ``z`` that of the movie's frame).
    image: the grey values for ``mean_intensity``, shaped as ``labels`` ((T, Y, X); a trailing colour or channel axis
    is averaged per pixel), any array-like read a frame at a time (a dask array, a TIFF memmap); for a TrackingResult
    of part of a movie also the whole movie (its frames ``first..`` are read); None: the column is NaN.
    object_scores: {(frame, obj_id): presence logit} from a session (``VideoSession``); None: ``object_score`` is
    NaN (so for automatic tracking, ``track_cells``, and for ``segment()``, which return labels only).
    check: the (frame, obj_id) worth a look (``VideoSession.jumped_frames``): ``check`` is 1 there and 0 elsewhere;
    None (not known, e.g. automatic tracking): NaN, not 0 (0 says "looked at, nothing odd"), so the column stays
    numeric (a float column in pandas: 1.0 / 0.0 / NaN).
    calibration: adds the frame's time (or z), area and centroid in physical units (:data:`CALIBRATED_COLUMNS`);
    or, from a script, ``scale=(frame step, row size, column size)`` (napari's layer ``scale`` of a (T, Y, X) image)
    with ``time_unit`` and ``length_unit`` (e.g. ``scale=(5, 0.65, 0.65), time_unit="minute",
    length_unit="micrometer"``), not both.
    """
    first = int(getattr(labels, "first_frame", 0) or 0)  # a TrackingResult of part of a movie: the movie's number
    labels = getattr(labels, "labels", labels)  # a TrackingResult
    shape = tuple(getattr(labels, "shape", np.shape(labels)))
    if len(shape) not in (2, 3):
        raise ValueError(f"labels must be (T, Y, X) or one (Y, X) image of integer labels; got shape {shape}")
    planes = labels if len(shape) == 3 else np.asarray(labels)[None]
    offset = 0  # the image's frame of the labels' index 0
    if image is not None:
        image_shape = tuple(getattr(image, "shape", np.shape(image)))
        movie = (first > 0 and len(shape) == 3 and len(shape) <= len(image_shape) <= len(shape) + 1
                 and image_shape[1:3] == shape[1:] and image_shape[0] >= first + shape[0])
        if movie:
            offset = first  # the whole movie: its frames first..first + T - 1
        elif image_shape[:len(shape)] != shape or len(image_shape) > len(shape) + 1:
            whole = f", or the movie's (at least {first + shape[0]} frames)" if first else ""
            raise ValueError(f"image must have the labels' shape {shape} (with at most a trailing colour or channel "
                             f"axis){whole}; got shape {image_shape}")
    if scale is not None:
        if calibration is not None:
            raise ValueError("pass calibration or scale (with time_unit and length_unit), not both")
        steps = tuple(float(v) for v in scale) if np.ndim(scale) == 1 else ()
        if len(steps) != 3:
            raise ValueError(f"scale must be three numbers (frame step, row size, column size), got {scale!r:.80}")
        calibration = Calibration(pixel_size=steps[1:], length_unit=length_unit, frame_interval=steps[0],
                                  time_unit=time_unit)

    def image_plane(t: int) -> np.ndarray:
        plane = np.asarray(image[offset + t]) if len(shape) == 3 else np.asarray(image)
        return intensity_plane(plane) if plane.ndim == 3 else plane

    if image is not None and np.dtype(getattr(image, "dtype", np.asarray(image).dtype)).kind not in "biuf":
        raise ValueError(f"image must hold grey values (integer or floating point), got dtype "
                         f"{np.dtype(getattr(image, 'dtype', np.asarray(image).dtype))}")

    def label_plane(t: int) -> np.ndarray:
        return checked_label_plane(np.asarray(planes[t]), first + t)

    table = FrameTable(len(planes), label_plane, None if image is None else image_plane, object_scores, check)
    if not first:
        return table.rows(calibration)
    rows = table.rows()  # then the frame column, and its time, in the movie's numbers
    for row in rows:
        row["frame"] += first
        if calibration is not None:
            row.update(calibration.columns(row))
    return rows


def checked_label_plane(plane: np.ndarray, frame: int) -> np.ndarray:
    """``plane`` (Y, X) as instance labels (ids >= 0, 0 background), or ValueError naming frame ``frame`` and what is
    accepted: negative ids were dropped and fractional ids cut to whole ones without a word."""
    if plane.dtype.kind not in "biuf":
        raise ValueError(f"labels must be whole-number instance ids (integers >= 0, 0 the background), got dtype "
                         f"{plane.dtype}")
    if plane.dtype.kind in "if" and plane.size:
        if plane.dtype.kind == "f" and not np.array_equal(plane, np.floor(plane)):
            raise ValueError(f"labels must be whole-number instance ids; frame {frame} holds fractional values "
                             "(e.g. a float image, not labels)")
        if plane.min() < 0:
            raise ValueError(f"labels must be instance ids >= 0 (0 the background); frame {frame} holds "
                             f"{plane.min():g}")
    return plane


#: above this id a frame's ids are renumbered 1..n for regionprops (whose find_objects makes a list as long as the
#: largest id: 2**31 was a MemoryError, 10**8 half a minute), and the rows given back their own ids
COMPACT_IDS_ABOVE = 65535


def _compact_ids(plane: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """(plane with its ids numbered 1..n in order, the n ids): 0 stays 0."""
    ids, inverse = np.unique(plane, return_inverse=True)
    if ids[0] == 0:
        return inverse.reshape(plane.shape), ids[1:]
    return (inverse + 1).reshape(plane.shape), ids


@dataclass(frozen=True)
class FrameTable:
    """The one place that measures a stack's labels frame by frame (the widget's table, its CSV export, batch and
    :func:`measure` all read their rows here), one frame in memory at a time.

    label_plane(t) -> (Y, X) labels of frame t (of ``num_frames``); image_plane(t) -> (Y, X) grey values for
    ``mean_intensity`` (None: no intensity), read only for frames with labels; object_scores and check as in
    :func:`frame_rows`.
    """

    num_frames: int
    label_plane: Callable[[int], Any]
    image_plane: Optional[Callable[[int], Any]] = None
    object_scores: Optional[Dict[tuple, float]] = None
    check: Optional[AbstractSet[Tuple[int, int]]] = None

    def frame(self, t: int, calibration: Optional[Calibration] = None) -> List[Dict[str, Any]]:
        """The rows of frame ``t`` (:func:`frame_rows`; [] for a frame without labels)."""
        plane = np.asarray(self.label_plane(t))
        if not plane.any():
            return []
        image = None if self.image_plane is None else self.image_plane(t)
        return frame_rows(t, plane, image, self.object_scores, calibration, self.check)

    def by_frame(self, calibration: Optional[Calibration] = None) -> Iterator[Tuple[int, List[Dict[str, Any]]]]:
        """(t, rows of frame t) for every frame in order."""
        for t in range(int(self.num_frames)):
            yield t, self.frame(t, calibration)

    def rows(self, calibration: Optional[Calibration] = None) -> List[Dict[str, Any]]:
        """Every frame's rows, in frame order (the rows of :func:`measure`)."""
        return [row for _, rows in self.by_frame(calibration) for row in rows]


def frame_rows(
    frame: int, plane: Any, image: Any = None, object_scores: Optional[Dict[tuple, float]] = None,
    calibration: Optional[Calibration] = None, check: Optional[AbstractSet[Tuple[int, int]]] = None,
) -> List[Dict[str, Any]]:
    """The rows of :func:`measure` for one frame: plane (Y, X) labels, image (Y, X) grey values (or None)."""
    plane = np.asarray(plane)
    if not plane.any():
        return []
    props = ["label", "area", "centroid", "bbox"] + (["intensity_mean"] if image is not None else [])
    numbered, own_ids = (_compact_ids(plane) if plane.max() > COMPACT_IDS_ABOVE else (plane, None))
    table = regionprops_table(numbered.astype(np.int64), None if image is None else np.asarray(image),
                              properties=props)
    rows: List[Dict[str, Any]] = []
    for i, number in enumerate(table["label"]):
        obj = number if own_ids is None else own_ids[int(number) - 1]
        rows.append({
            "frame": frame, "obj_id": int(obj), "area": int(table["area"][i]),
            "centroid_y": float(table["centroid-0"][i]), "centroid_x": float(table["centroid-1"][i]),
            "bbox_y0": int(table["bbox-0"][i]), "bbox_x0": int(table["bbox-1"][i]),
            "bbox_y1": int(table["bbox-2"][i]), "bbox_x1": int(table["bbox-3"][i]),
            "mean_intensity": float(table["intensity_mean"][i]) if image is not None else float("nan"),
            "object_score": float((object_scores or {}).get((frame, int(obj)), float("nan"))),
            "check": float("nan") if check is None else int((frame, int(obj)) in check),  # NaN: not known
        })
        if calibration is not None:
            rows[-1].update(calibration.columns(rows[-1]))
    return rows


def intensity_plane(frame: Any, channel: Optional[int] = None, composite: Optional[str] = None) -> np.ndarray:
    """(Y, X) float32 grey values of one frame (Y, X) or (Y, X, C) for the table's ``mean_intensity``: the chosen
    ``channel``, the "max" or "mean" ``composite`` of the channels, or for colour frames without either the mean of
    the channels (as the widget's :meth:`SegmentationController.measurements`)."""
    frame = np.asarray(frame)
    if frame.ndim == 3 and channel is not None:
        frame = frame[..., int(channel)]
    elif frame.ndim == 3 and composite == "max":
        frame = frame.max(axis=-1)
    elif frame.ndim == 3:  # composite="mean", or RGB
        frame = frame.astype(np.float64).mean(axis=-1)
    return frame.astype(np.float32)


def frame_table_steps(table: FrameTable, path: Path, calibration: Optional[Calibration] = None) -> Iterator[Step]:
    """Measure ``table`` frame by frame, then write the CSV at ``path`` whole (a generator for a worker thread; e.g.
    a session's table, ``SegmentationController.frame_table()``).

    Yields ("plan", num_frames, "", None), ("frame", t, rows so far, None) after each frame and ("written", number of
    rows, path, None) once the file is in place. Stopped before the end (cancelled) or failing, it writes nothing.
    """
    yield "plan", int(table.num_frames), "", None
    rows: List[Dict[str, Any]] = []
    for t, frame in table.by_frame(calibration):
        rows += frame
        yield "frame", t, len(rows), None
    save_table_csv(rows, path)
    yield "written", len(rows), str(path), None


def labels_tiff_steps(labels: Any, path: Path, axes: Optional[str] = None,
                      calibration: Optional[Calibration] = None) -> Iterator[Step]:
    """Write ``labels`` (T, Y, X) or (Y, X) (any axes ``axes`` names, e.g. "TZYX") with ``calibration`` as
    :func:`save_labels_tiff` does (a generator for a worker thread).

    Yields ("plan", 1, "", None), then ("written", 1, path, None) once the file is in place (never half a file).
    """
    yield "plan", 1, "", None
    save_labels_tiff(labels, path, axes, calibration)
    yield "written", 1, str(path), None


def save_table_csv(rows: List[Dict[str, Any]], path: Path) -> None:
    """Write the rows of :func:`measure` as CSV (:data:`COLUMNS`, plus the calibrated ones when the rows have them).

    Written to a temporary name beside ``path`` and renamed: a failed write leaves the old file (or none).
    """
    extra = [c for c in CALIBRATED_COLUMNS if rows and c in rows[0]]
    with atomic_file(Path(path)) as temporary, open(temporary, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS + extra)
        writer.writeheader()
        writer.writerows(rows)


def tracks_data(rows: List[Dict[str, Any]]) -> np.ndarray:
    """napari Tracks data (N, 4): track id (= object id), frame, y, x, sorted by track then frame."""
    data = np.array([[r["obj_id"], r["frame"], r["centroid_y"], r["centroid_x"]] for r in rows], float)
    if not len(data):
        return np.zeros((0, 4))
    return data[np.lexsort((data[:, 1], data[:, 0]))]


def tracks_from_labels(labels: Any) -> np.ndarray:
    """napari Tracks data (N, 4) (object id, frame, y, x) from (T, Y, X) labels, sorted by track then frame.

    Each point is the centroid of the object's largest connected piece on that frame, so a track follows the
    body of a cell and does not jump to the middle of two fragments (or between them) when a mask breaks up.
    ``labels`` is read one frame at a time (a numpy, zarr or dask stack); :func:`tracks_steps` gives the same
    with progress, for a worker thread.
    """
    return tracks_of(int(labels.shape[0]), lambda t: labels[t])


def tracks_of(num_frames: int, label_plane: Callable[[int], Any]) -> np.ndarray:
    """The Tracks data (N, 4) of :func:`tracks_steps`, on the calling thread (all its steps run)."""
    return next(detail for kind, _, detail, _ in tracks_steps(num_frames, label_plane) if kind == "tracks")


def tracks_steps(num_frames: int, label_plane: Callable[[int], Any]) -> Iterator[Step]:
    """The Tracks data of :func:`tracks_from_labels`, frame by frame (a generator for a worker thread).

    label_plane(t) -> (Y, X) labels of frame t (of ``num_frames``), read once each. Yields ("plan", num_frames, "",
    None), ("frame", t, points so far, None) after each frame and last ("tracks", number of points, data, None) with
    data (N, 4) float (object id, frame, y, x) sorted by track then frame. Stopped early, it gives no data.
    """
    yield "plan", int(num_frames), "", None
    rows: List[List[float]] = []
    for frame in range(int(num_frames)):
        rows += [[obj, frame, y, x] for obj, y, x in plane_track_points(label_plane(frame))]
        yield "frame", frame, len(rows), None
    data = np.array(rows, float) if rows else np.zeros((0, 4))
    yield "tracks", len(rows), data[np.lexsort((data[:, 1], data[:, 0]))], None


def plane_track_points(plane: Any) -> List[Tuple[int, float, float]]:
    """(object id, y, x) for each object on one (Y, X) labels plane, by increasing id: the centroid of the object's
    largest connected piece (4-connected, :func:`scipy.ndimage.label`'s rule; of pieces of equal size, the first in
    row-major order). 0 is background.

    One pass over the plane finds every object's bounding box (:func:`object_boxes`); each object is then labelled and
    measured inside its box only. The centroid is the exact mean of the piece's pixel coordinates, correctly rounded:
    the same floats as :func:`scipy.ndimage.center_of_mass` of the piece's mask over the whole plane.
    """
    from scipy import ndimage

    points = []
    for obj, mask, box in object_boxes(np.asarray(plane)):
        pieces, count = ndimage.label(mask)
        if count > 1:
            mask = pieces == int(np.argmax(np.bincount(pieces.ravel())[1:])) + 1
        rows, cols = np.nonzero(mask)
        n = int(rows.size)
        y = (int(rows.sum()) + box[0].start * n) / n  # integers summed exactly, one rounding in the division
        x = (int(cols.sum()) + box[1].start * n) / n
        points.append((obj, float(y), float(x)))
    return points
