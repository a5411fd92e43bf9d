"""Save and reload a segmentation session of the plugin: one ``.npz`` file holding JSON metadata, the prompts and
the masklets.

Qt-free. The file keeps, for one image: its shape, the clicks and boxes (in the image's data coordinates), seeded
masks, the masklets (labels) of every slice that has a session, the session options (corrections stick / forget
memories / smoothing / object windows), the model choice (name, weights, input size, checkpoint path), the axis and
channel choices and a format version. The model's memory is not kept: loading re-runs the prompts in a fresh session
(features are recomputed), then puts the saved masklets back. An image segmented slice by slice (for example each z
of a (T, Z, Y, X) stack has its own session) keeps every slice's seeded masks, each with its slice (version 2). The
clicks and boxes keep the order they were made in, and the file names those that corrected a mask tracking had made,
so that a load can re-make them in that order.

Layout of the ``.npz`` (read with ``allow_pickle=False``):

* ``meta``: 0-d unicode array, JSON ``{"format": "napari-sam2 session", "version": 2, "image_shape": [...],
  "options": {...}, "model": {...}, "axes": {...}, "mask_keys": [[frame, obj_id], ...]}``; since version 2 a key may
  have a third item, its slice: the fixed axes and their indices ``[[axis, index], ...]`` (for example
  ``[3, 1, [[1, 2]]]``: frame 3, object 1, z=2 of a TZYX image); a key without one (every key of a version 1 file)
  belongs to the slice shown when the file is loaded. Optional (absent from files saved before corrections were
  kept): ``"refined_keys": [[frame, obj_id, [[axis, index], ...]], ...]``, the prompts (frame, object, slice: ``[]``
  for an image without fixed axes) that refined a mask tracking had made (a correction after propagating)
* ``points`` (N, ndim) float64, ``positive`` (N,) bool, ``point_ids`` (N,) int64, in the order they were clicked
* ``boxes`` (B, 4, ndim) float64, ``box_ids`` (B,) int64
* ``masks`` (M, H, W) bool, the seeded masks in the order of ``mask_keys``

Optional (absent from files saved before the masklets were kept; an older reader ignores them, so the version stays 2):
``meta["labels_slices"]``, ``[[[axis, index], ...], ...]``: the slices whose masklets are kept (``[]``: an image
without fixed axes), every frame of them; ``meta["labels_keys"]``, ``[[frame, [[axis, index], ...]], ...]``: the frames
that hold any label (a kept slice's other frames were empty); ``labels`` (P, H, W) uint32, their planes in the order of
``labels_keys`` (compressed with the rest).
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Generator, List, Optional, Set, Tuple, Union

import numpy as np

from sam2_model.atomic_files import atomic_file
from sam2_model.frames import check_invert, check_smooth
from sam2_model.prompt_validation import frame_span_words, inside_frame
from sam2_model.work_steps import drain

from .image_size import check_image_size

FORMAT = "napari-sam2 session"
VERSION = 2  # 2: seeded masks of every slice, with their slice (mask_keys' third item); 1 is still read
SUFFIX = ".sam2.npz"
Fixed = Tuple[Tuple[int, int], ...]  # a slice: its fixed axes and their indices, as StackLayout.fixed
_ARRAYS = ("points", "positive", "point_ids", "boxes", "box_ids", "masks")
MAX_ID = int(np.iinfo(np.uint32).max)  # the masklets are uint32


@dataclass
class SessionRecord:
    """One image's session, as kept in a session file.

    points: (N, ndim) click coordinates in the image's data coordinates; positive: (N,) bool; point_ids: (N,) int.
    boxes: (B, 4, ndim) rectangle corners; box_ids: (B,) int. masks: {(frame, obj_id): (H, W) bool} seeded masks.
    options: session options (``corrections_as_conditioning``, ``clear_memory_around_corrections``, ``smooth``,
        ``invert`` (dark objects; a file saved before it: off), ``object_window``: the widget's choice, e.g. "auto" or
        "192").
    model: {"name", "weights", "image_size", "path"}; axes: {"frame_axis", "channel_axis", "channel"}.
    slice_masks: {fixed: {(frame, obj_id): (H, W) bool}}: the seeded masks of the sessions of slices (fixed: the
        fixed axes and their indices, ((axis, index), ...), as ``StackLayout.fixed``, e.g. ((1, 2),) for z=2 of
        TZYX); ``masks`` holds those of no recorded slice (an image without fixed axes, or a version 1 file).
    refined: {fixed: {(frame, obj_id)}}: the prompts of each slice's session (fixed ``()``: an image without fixed
        axes) that refined a mask tracking had made (a correction after propagating), so that a load applies them
        after tracking, in the order they were clicked; empty in files saved before it was kept.
    labels: {fixed: {frame: (H, W) uint32}}: the masklets of each slice that had a session (fixed ``()``: an image
        without fixed axes), the frames that hold any label (the slice's other frames were empty); a load puts them
        back once its re-run of the prompts is done. None: not kept (files saved before they were).
    """

    image_shape: Tuple[int, ...]
    points: np.ndarray
    positive: np.ndarray
    point_ids: np.ndarray
    boxes: np.ndarray
    box_ids: np.ndarray
    masks: Dict[Tuple[int, int], np.ndarray] = field(default_factory=dict)
    options: Dict[str, Any] = field(default_factory=dict)
    model: Dict[str, Any] = field(default_factory=dict)
    axes: Dict[str, Any] = field(default_factory=dict)
    slice_masks: Dict[Fixed, Dict[Tuple[int, int], np.ndarray]] = field(default_factory=dict)
    refined: Dict[Fixed, Set[Tuple[int, int]]] = field(default_factory=dict)
    labels: Optional[Dict[Fixed, Dict[int, np.ndarray]]] = None

    def __post_init__(self) -> None:
        self.image_shape = tuple(int(s) for s in self.image_shape)
        ndim = len(self.image_shape)
        self.points = np.asarray(self.points, np.float64).reshape(-1, ndim) if ndim else np.zeros((0, 0))
        self.positive = np.asarray(self.positive, bool).reshape(-1)
        self.point_ids = np.asarray(self.point_ids, np.int64).reshape(-1)
        self.boxes = np.asarray(self.boxes, np.float64).reshape(-1, 4, ndim)
        self.box_ids = np.asarray(self.box_ids, np.int64).reshape(-1)
        if not (len(self.points) == len(self.positive) == len(self.point_ids)):
            raise ValueError(f"points, positive and point_ids must have one row per click; got {len(self.points)}, "
                             f"{len(self.positive)} and {len(self.point_ids)}")
        if len(self.boxes) != len(self.box_ids):
            raise ValueError(f"boxes and box_ids must have one entry per box; got {len(self.boxes)} and "
                             f"{len(self.box_ids)}")
        self.slice_masks = {_fixed(key, ndim): dict(masks) for key, masks in self.slice_masks.items() if masks}
        self.refined = {_fixed(key, ndim): {(int(f), int(o)) for f, o in keys}
                        for key, keys in self.refined.items() if keys}
        if self.labels is not None:  # a slice with no frame kept stays: its masklets were empty
            self.labels = {_fixed(key, ndim): {int(f): np.asarray(p) for f, p in planes.items()}
                           for key, planes in self.labels.items()}

    def _clicks_outside(self, shape: np.ndarray) -> np.ndarray:
        """(N,) bool: which clicks lie off the image of ``shape`` (the image's sizes along the clicks' axes): off its
        pixels as napari draws them on the last two axes, the rows and columns (the session's rule,
        :func:`~sam2_model.prompt_validation.inside_frame`: -0.5 <= x < W - 0.5), or off a slice of another axis
        (rounded to the nearest index, outside 0..n - 1)."""
        if not len(shape):
            return np.zeros(len(self.points), bool)
        leading = np.rint(self.points[:, :-2])
        outside = ((leading < 0) | (leading >= shape[:-2])).any(axis=1)
        if len(shape) >= 2:
            y, x = self.points[:, -2], self.points[:, -1]
            return outside | ~inside_frame(x, y, int(shape[-2]), int(shape[-1]))
        return outside | (np.rint(self.points[:, -1]) < 0) | (np.rint(self.points[:, -1]) >= shape[-1])

    def check_values(self) -> None:
        """ValueError naming the field unless every value is one the widget could have saved: clicks finite and on the
        image (their frame among its frames), boxes finite, object ids in 1..2**32-1, seeded masks on existing frames,
        options (smoothing, inversion, object window), input size and axes of the accepted kinds. :func:`read_session`
        calls it, so a file that passes can be loaded without failing halfway (after the masklets were cleared)."""
        shape = np.asarray(self.image_shape[:self.points.shape[1]] if self.points.size else (), float)
        if not np.isfinite(self.points).all():
            raise ValueError("points: a click has a coordinate that is not a finite number")
        outside = self._clicks_outside(shape)
        if outside.any():
            row = int(np.argmax(outside))
            span = f", whose frames take {frame_span_words(*shape[-2:])}" if len(shape) >= 2 else ""
            raise ValueError(f"points: click {row} at {self.points[row].tolist()} lies outside the image of shape "
                             f"{self.image_shape}{span}")
        if not np.isfinite(self.boxes).all():
            raise ValueError("boxes: a box has a corner that is not a finite number")
        refined = [key for keys in self.refined.values() for key in keys]
        for name, ids in (("point_ids", self.point_ids), ("box_ids", self.box_ids),
                          ("mask object ids", np.asarray([o for _, o in self._all_mask_keys()], np.int64)),
                          ("refined_keys object ids", np.asarray([o for _, o in refined], np.int64))):
            if ids.size and (ids.min() < 1 or ids.max() > MAX_ID):
                raise ValueError(f"{name}: object ids must be 1..{MAX_ID}, found {int(ids.min())}..{int(ids.max())}")
        frames = max(self.image_shape[:-2] or (1,))
        bad = [f for f, _ in self._all_mask_keys() if not 0 <= f < frames]
        if bad:
            raise ValueError(f"masks: a seeded mask is on frame {bad[0]}, which the image does not have")
        bad = [f for f, _ in refined if not 0 <= f < frames]
        if bad:
            raise ValueError(f"refined_keys: a correction is on frame {bad[0]}, which the image does not have")
        self._check_labels(frames)
        options = self.options
        if "smooth" in options:
            check_smooth(options["smooth"], "options.smooth")
        if "invert" in options:
            check_invert(options["invert"], "options.invert")
        window = str(options.get("object_window", "off"))
        if window not in ("off", "auto") and not (window.isdigit() and int(window) > 0):
            raise ValueError(f"options.object_window must be 'off', 'auto' or a number of pixels, got {window!r}")
        size = self.model.get("image_size")
        if size not in (None, 0):
            check_image_size(size, "model.image_size")
        ndim = len(self.image_shape)
        axis = self.axes.get("frame_axis", 0)
        if isinstance(axis, bool) or not isinstance(axis, int) or not 0 <= axis < max(ndim, 1):
            raise ValueError(f"axes.frame_axis must be an axis of the {ndim}-D image (0..{ndim - 1}), got {axis!r}")
        for name in ("channel_axis", "channel"):  # the widget's choices as its lists say them
            if not isinstance(self.axes.get(name, ""), str):
                raise ValueError(f"axes.{name} must be the widget's text of the choice, got {self.axes[name]!r}")

    def _check_labels(self, frames: int) -> None:
        """ValueError unless the masklets kept are on existing frames, all (H, W) planes of one shape, of ids 0..2**32-1
        (the masklets' uint32)."""
        planes = [(f, p) for kept in (self.labels or {}).values() for f, p in kept.items()]
        bad = [f for f, _ in planes if not 0 <= f < frames]
        if bad:
            raise ValueError(f"labels_keys: masklets are kept for frame {bad[0]}, which the image does not have")
        shapes = sorted({tuple(p.shape) for _, p in planes})
        if len(shapes) > 1 or any(len(s) != 2 for s in shapes):
            raise ValueError(f"labels: the masklets kept must be (H, W) planes of one shape, found shapes {shapes}")
        for _, plane in planes:
            if not np.issubdtype(plane.dtype, np.integer) or (plane.size and (plane.min() < 0 or plane.max() > MAX_ID)):
                raise ValueError(f"labels: the masklets kept must hold object ids 0..{MAX_ID} (uint32), found "
                                 f"{plane.dtype} values")

    def check_labels_fit(self, frame_shape: Tuple[int, int]) -> None:
        """ValueError unless the masklets kept (if any) are planes of ``frame_shape`` (H, W): the frames of the image
        with the session's axis choices."""
        shapes = {tuple(p.shape) for kept in (self.labels or {}).values() for p in kept.values()}
        wrong = sorted(s for s in shapes if s != tuple(frame_shape))
        if wrong:
            raise ValueError(f"the masklets kept in this session are planes of {wrong[0]} pixels, but the image's "
                             f"frames are {tuple(frame_shape)}; the file does not belong to this image (or is damaged)")

    def _all_mask_keys(self) -> List[Tuple[int, int]]:
        return list(self.masks) + [key for masks in self.slice_masks.values() for key in masks]

    def check_image(self, shape: Tuple[int, ...]) -> None:
        """ValueError unless ``shape`` is the shape of the image this session was saved for."""
        shape = tuple(int(s) for s in shape)
        if shape != self.image_shape:
            raise ValueError(f"this session was saved for an image of shape {self.image_shape}; the chosen image "
                             f"has shape {shape}. Pick the image it was made on.")


def write_session(path: Union[str, Path], record: SessionRecord) -> Path:
    """Write ``record`` to ``path`` (``.sam2.npz`` added when the name has no ``.npz``); returns the path written.

    Written to a temporary file in the same folder and renamed, so a failure never leaves a half-written file
    (:func:`write_session_steps` does the work; this runs it to its end).
    """
    return drain(write_session_steps(path, record))


def session_path(path: Union[str, Path]) -> Path:
    """The path :func:`write_session` writes for ``path``: ``.sam2.npz`` added when the name has no ``.npz``;
    ValueError when its folder does not exist."""
    path = Path(path)
    if path.suffix.lower() != ".npz":
        path = path.with_name(path.name + SUFFIX)
    if not path.parent.is_dir():
        raise ValueError(f"path: the folder {path.parent} does not exist; choose an existing folder")
    return path


def write_session_steps(path: Union[str, Path], record: SessionRecord) -> Generator[int, None, Path]:
    """:func:`write_session`'s work, a step at a time: yields the count of masklet planes written so far after each
    (so a worker can show progress and stop between planes; closed, it removes its temporary file and ``path`` is left
    as it was); returns the path written.

    The file is what ``np.savez_compressed`` writes for these arrays (same entries in the same order, same bytes once
    uncompressed), but the masklet planes are compressed one at a time from ``record.labels`` (they may be views of the
    masklets: read here, never copied into one stack), so the memory used does not grow with the stack.
    """
    path = session_path(path)
    keys: List[list] = [[int(f), int(o)] for f, o in sorted(record.masks)]
    masks = [np.asarray(record.masks[k], bool) for k in sorted(record.masks)]
    for fixed, sliced in sorted(record.slice_masks.items()):
        keys += [[int(f), int(o), [list(pair) for pair in fixed]] for f, o in sorted(sliced)]
        masks += [np.asarray(sliced[k], bool) for k in sorted(sliced)]
    refined = [[int(f), int(o), [list(pair) for pair in fixed]]
               for fixed, pairs in sorted(record.refined.items()) for f, o in sorted(pairs)]
    meta = {"format": FORMAT, "version": VERSION, "image_shape": list(record.image_shape),
            "options": record.options, "model": record.model, "axes": record.axes, "mask_keys": keys,
            "refined_keys": refined}
    arrays: Dict[str, Any] = {"points": record.points, "positive": record.positive, "point_ids": record.point_ids,
                              "boxes": record.boxes, "box_ids": record.box_ids,
                              "masks": np.stack(masks) if masks else np.zeros((0, 0, 0), bool)}
    planes: List[np.ndarray] = []
    if record.labels is not None:  # the masklets: only the frames that hold a label
        kept = sorted(record.labels.items())
        meta["labels_slices"] = [[list(pair) for pair in fixed] for fixed, _ in kept]
        meta["labels_keys"] = [[int(f), [list(pair) for pair in fixed]]
                               for fixed, frames in kept for f in sorted(frames)]
        planes = [np.asarray(frames[f]) for _, frames in kept for f in sorted(frames)]
        arrays["labels"] = planes
    arrays["meta"] = np.array(json.dumps(meta))
    with atomic_file(path) as temp, open(temp, "wb") as stream:  # the mode of a plain open() (umask)
        # as np.savez_compressed: a zip64 archive of deflated .npy entries, in this order
        with zipfile.ZipFile(stream, mode="w", compression=zipfile.ZIP_DEFLATED, allowZip64=True) as archive:
            for name, value in arrays.items():
                with archive.open(f"{name}.npy", "w", force_zip64=True) as entry:
                    if name != "labels":
                        np.lib.format.write_array(entry, np.asanyarray(value), allow_pickle=False)
                        continue
                    yield from _write_planes(entry, value)
    return path


def _write_planes(entry: Any, planes: List[np.ndarray]) -> Generator[int, None, None]:
    """Write ``planes`` ((H, W) each, one shape) to the open ``.npy`` entry ``entry`` as one (P, H, W) uint32 array, as
    ``np.lib.format.write_array`` writes that stack (its header, then its bytes in C order), one plane at a time;
    yields the count written after each."""
    shape = (len(planes),) + (tuple(planes[0].shape) if planes else (0, 0))
    header = {"descr": np.lib.format.dtype_to_descr(np.dtype(np.uint32)), "fortran_order": False, "shape": shape}
    np.lib.format.write_array_header_1_0(entry, header)
    for done, plane in enumerate(planes, start=1):
        if tuple(plane.shape) != shape[1:]:
            raise ValueError(f"labels: the masklets kept must be (H, W) planes of one shape, found {shape[1:]} and "
                             f"{tuple(plane.shape)}")
        entry.write(np.ascontiguousarray(plane, np.uint32).tobytes())
        yield done


def read_session(path: Union[str, Path]) -> SessionRecord:
    """Read a session file written by :func:`write_session`.

    A missing, corrupt or foreign file, or one of a newer format version, is a ValueError naming the file.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"path: {path} is not a file; choose a session file (*{SUFFIX})")
    try:
        loaded = np.load(path, allow_pickle=False)
        if not isinstance(loaded, np.lib.npyio.NpzFile):  # a .npy array: no archive of named arrays
            raise ValueError(f"it holds one {type(loaded).__name__} (a .npy file), not the named arrays of a session")
        with loaded as data:
            if "meta" not in data.files:
                raise ValueError("it has no 'meta' entry")
            meta = json.loads(str(data["meta"][()]))
            missing = [name for name in _ARRAYS if name not in data.files]
            if missing:
                raise ValueError(f"it lacks {missing}")
            arrays = {name: data[name] for name in _ARRAYS}
            if "labels" in data.files:  # the masklets (files saved before they were kept have none)
                arrays["labels"] = data["labels"]
    except (OSError, EOFError, zipfile.BadZipFile, json.JSONDecodeError, ValueError, KeyError) as error:
        raise ValueError(f"{path} is not a napari-sam2 session file ({error})") from error
    found = meta.get("format") if isinstance(meta, dict) else None
    if found != FORMAT:
        raise ValueError(f"{path} is not a napari-sam2 session file (format {found!r}, expected {FORMAT!r})")
    if not isinstance(meta.get("version"), int) or meta["version"] > VERSION:
        raise ValueError(f"{path} has session format version {meta.get('version')!r}; this napari-sam2 reads "
                         f"versions up to {VERSION}")
    try:
        keys = list(meta.get("mask_keys", []))
        if len(keys) != len(arrays["masks"]):
            raise ValueError(f"{len(keys)} mask keys for {len(arrays['masks'])} masks")
        ndim = len(meta["image_shape"])
        unsliced: Dict[Tuple[int, int], np.ndarray] = {}
        sliced: Dict[Fixed, Dict[Tuple[int, int], np.ndarray]] = {}
        for key, mask in zip(keys, arrays["masks"]):
            if len(key) not in (2, 3):
                raise ValueError(f"a mask key must be [frame, obj_id] or [frame, obj_id, slice], got {key!r}")
            where = unsliced if len(key) == 2 else sliced.setdefault(_fixed(key[2], ndim), {})
            where[(int(key[0]), int(key[1]))] = mask.astype(bool)
        refined: Dict[Fixed, Set[Tuple[int, int]]] = {}
        for key in meta.get("refined_keys", []):  # absent from files saved before it was kept
            if not isinstance(key, list) or len(key) != 3:
                raise ValueError(f"refined_keys: each must be [frame, obj_id, slice], got {key!r}")
            refined.setdefault(_fixed(key[2], ndim), set()).add((int(key[0]), int(key[1])))
        record = SessionRecord(
            tuple(meta["image_shape"]), arrays["points"], arrays["positive"], arrays["point_ids"], arrays["boxes"],
            arrays["box_ids"], unsliced, dict(meta.get("options", {})), dict(meta.get("model", {})),
            dict(meta.get("axes", {})), sliced, refined, _read_labels(meta, arrays.get("labels"), ndim),
        )
        record.check_values()
        return record
    except (KeyError, TypeError, ValueError) as error:
        raise ValueError(f"{path} is a damaged napari-sam2 session file ({error})") from error


def _read_labels(meta: Dict[str, Any], planes: Optional[np.ndarray],
                 ndim: int) -> Optional[Dict[Fixed, Dict[int, np.ndarray]]]:
    """The masklets kept in a file ({fixed: {frame: (H, W) plane}}; None when it keeps none: saved before they were
    kept); ValueError naming what does not fit."""
    if "labels_slices" not in meta:
        return None
    if planes is None:
        raise ValueError("it names kept masklets (labels_slices) but lacks 'labels'")
    kept: Dict[Fixed, Dict[int, np.ndarray]] = {_fixed(value, ndim): {} for value in meta["labels_slices"]}
    keys = list(meta.get("labels_keys", []))
    if len(keys) != len(planes):
        raise ValueError(f"{len(keys)} labels keys for {len(planes)} masklet planes")
    for key, plane in zip(keys, planes):
        if not isinstance(key, list) or len(key) != 2:
            raise ValueError(f"labels_keys: each must be [frame, slice], got {key!r}")
        fixed = _fixed(key[1], ndim)
        if fixed not in kept:
            raise ValueError(f"labels_keys: {key!r} is on a slice that labels_slices does not name")
        kept[fixed][int(key[0])] = plane
    return kept


def _fixed(value: Any, ndim: int) -> Fixed:
    """A slice ((axis, index), ...) from a list of [axis, index] pairs (ValueError naming what is wrong)."""
    try:
        pairs = tuple(sorted((int(axis), int(index)) for axis, index in value))
    except (TypeError, ValueError):
        raise ValueError(f"a slice must be [[axis, index], ...], got {value!r}") from None
    if any(not 0 <= axis < ndim or index < 0 for axis, index in pairs) or len({a for a, _ in pairs}) != len(pairs):
        raise ValueError(f"a slice must name distinct axes in 0..{ndim - 1} with indices >= 0, got {value!r}")
    return pairs
