"""The physical size of a stack's pixels and frames, read from its file: ImageJ and OME-TIFF metadata, OME-Zarr
(and an OME-Zarr's translation: where the image lies, as napari places it).

The command line and batch runs read no napari layer, so the pixel size and frame interval a microscope wrote into
the file are what calibrates their GEFF axes and labels TIFFs. Only headers are read. A file that says nothing (a plain
TIFF without resolution tags, a .npy file, a folder of frames) gives None: outputs stay in pixels and frames, as
before. A plain TIFF's baseline resolution (X/YResolution per centimetre or inch, as slide scanners, PIL and skimage
write it) is its pixel size in micrometres (:func:`_baseline_sizes`).

A volume's slice spacing and a time-lapse's interval are both read where the stack has both axes (TZYX): the frame
axis's step is the calibration's frame step, the other's goes to :attr:`~.export.Calibration.other_steps`. An OME-Zarr
names its axes (``multiscales`` ``axes``: name and type): :func:`zarr_axis_letters` turns them into letters as a TIFF
gives them, so frames along its z axis are known to be a volume's slices.
"""

from __future__ import annotations

import functools
import math
import re
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any, Dict, NamedTuple, Optional, Sequence, Tuple

from sam2_model.frames_io import multiscales_entry, ome_axis_letter, ome_axis_letters

from .export import Calibration
from .units import file_unit_name as unit_name  # a unit as a file spells it -> its OME-NGFF name


def read_calibration(path: Any, frame_axis: Optional[int], spatial_axes: Sequence[int],
                     frames_through_z: bool = False) -> Optional[Calibration]:
    """The calibration of the stack at ``path`` for frames along ``frame_axis`` and rows, columns on
    ``spatial_axes`` (the stack's axis indices), or None where the file records neither a pixel size nor a step.

    A file that records a frame interval (or slice spacing) without a pixel size (an ImageJ TIFF with ``finterval``
    alone, an OME-TIFF with ``TimeIncrement`` alone) gives that step with pixels of size 1 in napari's "pixel": the
    outputs' times are kept, their positions stay in pixels.

    frames_through_z: the frames are a volume's slices (the frame step is then the slice spacing); an OME-Zarr whose
    axis ``frame_axis`` is its z axis (:func:`zarr_axis_letters`) says so itself. The step of the stack's other
    non-spatial axis (z of a TZYX stack propagated through time, t of one segmented through z) goes to the
    calibration's ``other_steps`` where the file records it. An OME-Zarr whose first dataset has a ``translation``
    gives it as the calibration's origin (t, y, x) (napari's layer ``translate``), written as the GEFF axes' offset."""
    path = Path(path)
    try:
        if path.suffix.lower() in (".tif", ".tiff") and path.is_file():
            found = _tiff_sizes(path, frames_through_z)
        elif path.is_dir():
            found = _zarr_sizes(path, frame_axis, spatial_axes, frames_through_z)
        else:
            return None
    except Exception:  # unreadable metadata is not a reason to fail a run: stay uncalibrated
        return None
    if found is None:
        return None
    (row, col), length_unit, step, step_unit = found.pixel_size, found.length_unit, found.step, found.step_unit
    sized = all(isinstance(v, float) and math.isfinite(v) and v > 0 for v in (row, col)) and length_unit is not None
    frame_letter = "Z" if found.through_z else "T"
    others = tuple((letter, value, unit) for letter, value, unit in found.others
                   if letter != frame_letter and _good_step(value, unit))
    stepped = _good_step(step, step_unit)
    if not sized and not stepped and not others:
        return None
    (row, col), length_unit = ((row, col), length_unit) if sized else ((1.0, 1.0), "pixel")
    frame_step, frame_unit = (step, step_unit) if stepped else (1.0, "frame")
    return Calibration((row, col), length_unit, frame_step, frame_unit, frames_through_z=found.through_z,
                       origin=(0.0, 0.0, 0.0) if found.origin is None else found.origin, other_steps=others)


class _Reading:
    """The type of :data:`READING`."""

    def __repr__(self) -> str:
        return "READING"


#: what a caller that does not wait is given for a file whose calibration is still to be read (a slow OME-TIFF)
READING: Any = _Reading()


def _good_step(step: Optional[float], unit: Optional[str]) -> bool:
    """Whether ``step`` is a positive finite number with a known ``unit`` (else the axis stays in frames)."""
    return isinstance(step, float) and math.isfinite(step) and step > 0 and unit is not None


class Sizes(NamedTuple):
    """What a file records of a stack read along one frame axis."""

    pixel_size: Tuple[float, float]  #: (row, col) size (NaN where not recorded)
    length_unit: Optional[str]  #: None where not recorded (or not a known unit)
    step: Optional[float]  #: the frame axis's step (None: not recorded)
    step_unit: Optional[str]
    origin: Optional[Tuple[float, float, float]]  #: (t, y, x), None where the file places nothing
    through_z: bool  #: the frames are a volume's slices
    others: Tuple[Tuple[str, float, str], ...] = ()  #: (letter, step, unit) of its other non-spatial axes


def _tiff_sizes(path: Path, frames_through_z: bool) -> Optional[Sizes]:
    """The sizes an OME-TIFF's or an ImageJ TIFF's metadata records (no origin: napari's TIFF reader places every
    TIFF at 0); the other axis's step (T where the frames are z, Z where they are time) only where the TIFF's first
    series has that axis. From :func:`tiff_header` (the file read once)."""
    header = tiff_header(path)
    return None if header is None else header.sizes[bool(frames_through_z)]


class TiffHeader(NamedTuple):
    """What :func:`tiff_header` reads of a TIFF file, once."""

    shape: Optional[Tuple[int, ...]]  #: the first series' shape (None: a plain TIFF, whose series is a guess)
    letters: Optional[str]  #: its axis letters, upper case (None: a plain TIFF)
    sizes: Tuple[Optional[Sizes], Optional[Sizes]]  #: what its metadata records, frames as time, frames as z


#: the last files' headers (:func:`tiff_header`), keyed by name, size in bytes and modification time (ns)
_HEADERS: "OrderedDict[Tuple[str, int, int], Optional[TiffHeader]]" = OrderedDict()
_HEADERS_KEPT = 16
_HEADERS_LOCK = threading.Lock()
_READING: Dict[Tuple[str, int, int], threading.Event] = {}  # the reads in progress (another thread waits for them)


def _header_key(path: Any) -> Optional[Tuple[str, int, int]]:
    """(name, size, modified ns) of the TIFF file ``path``; None where it is not a .tif / .tiff file."""
    try:
        path = Path(path)
        if path.suffix.lower() not in (".tif", ".tiff"):
            return None
        stat = path.stat()
    except (OSError, TypeError, ValueError):
        return None
    return (str(path), stat.st_size, stat.st_mtime_ns) if path.is_file() else None


def tiff_header(path: Any) -> Optional[TiffHeader]:
    """The first series' shape and axis letters and the calibration metadata of the TIFF file at ``path``, read once
    per file (its name, size and modification time; the last :data:`_HEADERS_KEPT` files kept): tifffile finds every
    page of an OME-TIFF to make its series (seconds for many thousands of pages). Thread-safe: a second caller waits
    for a read in progress instead of reading again. None for what is not a TIFF file; raises what tifffile raises
    for a file it cannot read (not kept: the next call tries again)."""
    key = _header_key(path)
    if key is None:
        return None
    while True:
        with _HEADERS_LOCK:
            if key in _HEADERS:
                _HEADERS.move_to_end(key)
                return _HEADERS[key]
            reading = _READING.get(key)
            if reading is None:
                reading = _READING[key] = threading.Event()
                break
        reading.wait()  # another thread reads it: its header is kept (or it failed: read here)
    try:
        header = _read_tiff_header(Path(key[0]))
        with _HEADERS_LOCK:
            _HEADERS[key] = header
            while len(_HEADERS) > _HEADERS_KEPT:
                _HEADERS.popitem(last=False)
        return header
    finally:
        with _HEADERS_LOCK:
            _READING.pop(key, None)
        reading.set()


def header_takes_long(path: Any) -> bool:
    """Whether :func:`tiff_header` of ``path`` could keep the calling thread long: an OME-TIFF not read yet (its
    series takes seconds for many thousands of pages). Telling reads the TIFF's header and first page only; an ImageJ
    or plain TIFF, a file read already, or anything else (it reads nothing) is quick."""
    key = _header_key(path)
    if key is None:
        return False
    with _HEADERS_LOCK:
        if key in _HEADERS:
            return False
    import tifffile

    try:
        with tifffile.TiffFile(key[0]) as tif:
            return bool(tif.is_ome)
    except Exception:  # unreadable: said at once (the reader that opened it says what is wrong)
        return False


def _read_tiff_header(path: Path) -> TiffHeader:
    """:func:`tiff_header` of ``path``, read now: the series only of an OME or ImageJ TIFF (a plain TIFF's pages are
    not scanned: its letters are tifffile's guess), the sizes from its metadata (None where they cannot be read)."""
    import tifffile

    with tifffile.TiffFile(path) as tif:
        named = bool(tif.is_ome or tif.is_imagej)
        series = tif.series[0] if named and tif.series else None
        shape = None if series is None else tuple(int(n) for n in series.shape)
        letters = None if series is None else series.axes.upper()
        sizes = tuple(_metadata_sizes(tif, letters or "", through_z) for through_z in (False, True))
    return TiffHeader(shape, letters, sizes)  # type: ignore[arg-type]


def _metadata_sizes(tif: Any, letters: str, frames_through_z: bool) -> Optional[Sizes]:
    """The sizes an open TIFF's metadata records (OME-XML, ImageJ or baseline tags), its other axes' steps kept only
    for the ``letters`` of its first series; None where it records none or cannot be read."""
    try:
        if tif.is_ome and tif.ome_metadata:
            found = _ome_xml_sizes(tif.ome_metadata, frames_through_z)
        elif not tif.is_imagej:
            found = _baseline_sizes(tif, frames_through_z)
        else:
            found = _imagej_sizes(tif, frames_through_z)
    except Exception:  # unreadable metadata: uncalibrated
        return None
    if found is None:
        return None
    return found._replace(others=tuple(other for other in found.others if other[0] in letters))


#: micrometres per ResolutionUnit of a plain TIFF (2: inch, 3: centimetre; 4, 5: tifffile's millimetre, micrometre)
MICROMETERS_PER_RESOLUTION_UNIT = {2: 25400.0, 3: 10000.0, 4: 1000.0, 5: 1.0}
#: a plain TIFF's pixel coarser than this (um) is a screen or print resolution (72 dpi: 353 um), not a microscope's
MAX_BASELINE_PIXEL_UM = 20.0


def _baseline_sizes(tif: Any, frames_through_z: bool) -> Optional[Sizes]:
    """The pixel size of a plain TIFF (neither ImageJ nor OME) from its baseline tags, in micrometres: X/YResolution
    (pixels per unit) with ResolutionUnit centimetre or inch, as slide scanners, PIL, skimage and tifffile's
    ``resolution=`` write them (40000 px/cm: 0.25 um). None without both tags, without a unit (ResolutionUnit NONE),
    or where a pixel would be coarser than :data:`MAX_BASELINE_PIXEL_UM` (72 or 300 dpi: a screen or print setting,
    not a calibration). A plain TIFF records no frame step."""
    tags = tif.pages[0].tags
    if "XResolution" not in tags or "YResolution" not in tags or "ResolutionUnit" not in tags:
        return None
    per_unit = MICROMETERS_PER_RESOLUTION_UNIT.get(int(tags["ResolutionUnit"].value))
    if per_unit is None:
        return None
    sizes = []
    for name in ("YResolution", "XResolution"):
        num, den = tags[name].value
        size = per_unit * float(den) / float(num) if num and den else float("nan")
        if not (math.isfinite(size) and 0 < size <= MAX_BASELINE_PIXEL_UM):
            return None
        sizes.append(size)
    return Sizes((sizes[0], sizes[1]), unit_name("micrometer"), None, None, None, frames_through_z)


def _imagej_sizes(tif: Any, frames_through_z: bool) -> Optional[Sizes]:
    """Sizes from an ImageJ TIFF: X/YResolution, ``unit``, ``spacing`` (z) and ``finterval`` / ``tunit`` (time; ImageJ's
    default unit is seconds). No resolution tags: no pixel size (the steps are still read)."""
    meta: Dict[str, Any] = tif.imagej_metadata or {}
    tags = tif.pages[0].tags
    if "XResolution" in tags and "YResolution" in tags:
        per_unit = [tags[name].value for name in ("YResolution", "XResolution")]
        sizes = tuple(float(den) / float(num) if num else float("nan") for num, den in per_unit)
    else:
        sizes = (float("nan"), float("nan"))
    length_unit = unit_name(meta.get("unit"))
    z = (_number(meta.get("spacing")), length_unit)
    t = (_number(meta.get("finterval")), unit_name(meta.get("tunit", "sec")))
    (step, step_unit), (other, other_unit), letter = (z, t, "T") if frames_through_z else (t, z, "Z")
    return Sizes((sizes[0], sizes[1]), length_unit, step, step_unit, None, frames_through_z,
                 _other(letter, other, other_unit))


def _ome_xml_sizes(xml: str, frames_through_z: bool) -> Optional[Sizes]:
    """The first image's PhysicalSizeY/X (default unit µm), TimeIncrement (default s) and PhysicalSizeZ (no pixel size
    where PhysicalSizeX or Y is missing: the steps are still read)."""
    pixels = re.search(r"<(?:\w+:)?Pixels\b([^>]*)>", xml)
    if pixels is None:
        return None
    attrs = dict(re.findall(r'(\w+)="([^"]*)"', pixels.group(1)))
    sized = "PhysicalSizeX" in attrs and "PhysicalSizeY" in attrs
    length_unit = unit_name(attrs.get("PhysicalSizeXUnit", "\u00b5m")) if sized else None
    z = (_number(attrs.get("PhysicalSizeZ")), unit_name(attrs.get("PhysicalSizeZUnit", "\u00b5m")))
    t = (_number(attrs.get("TimeIncrement")), unit_name(attrs.get("TimeIncrementUnit", "s")))
    (step, step_unit), (other, other_unit), letter = (z, t, "T") if frames_through_z else (t, z, "Z")
    row, col = (_number(attrs["PhysicalSizeY"]), _number(attrs["PhysicalSizeX"])) if sized else (None, None)
    return Sizes((float("nan") if row is None else row, float("nan") if col is None else col), length_unit, step,
                 step_unit, None, frames_through_z, _other(letter, other, other_unit))


def _number(value: Any) -> Optional[float]:
    """``value`` as a float; None for None or what is not a number."""
    try:
        return None if value is None else float(value)
    except (TypeError, ValueError):
        return None


def _other(letter: str, step: Optional[float], unit: Optional[str]) -> Tuple[Tuple[str, float, str], ...]:
    """((letter, step, unit),) where the step and its unit are known; () otherwise."""
    return ((letter, step, unit),) if step is not None and unit is not None else ()


def _multiscales(path: Path) -> Optional[Dict[str, Any]]:
    """The first ``multiscales`` entry of the OME-Zarr at ``path`` (NGFF 0.4, or 0.5 under "ome"); None without."""
    import zarr

    return multiscales_entry(dict(zarr.open(str(path), mode="r").attrs))


_axis_letter = ome_axis_letter  # one OME-Zarr axis as a letter (the reader's rule: sam2_model.frames_io)


def zarr_axis_letters(path: Any) -> Optional[str]:
    """The axis letters of the OME-Zarr at ``path``, as a TIFF gives them ("ZYX" for axes z, y, x; "TZYX"), from its
    ``multiscales`` ``axes`` (:func:`sam2_model.frames_io.ome_axis_letters`, the letters the reader gives the array);
    None where it has none, names a letter twice (Q aside) or is not a readable zarr."""
    import zarr

    try:
        attrs = dict(zarr.open(str(Path(path)), mode="r").attrs)
    except Exception:  # not a zarr, unreadable: no letters
        return None
    return ome_axis_letters(attrs)


def stack_letters(path: Any, stack: Any) -> Optional[str]:
    """The axis letters of a stack opened from ``path``: its reader's (a TIFF's ``axes``), else an OME-Zarr's
    (:func:`zarr_axis_letters`) where they are one per axis of ``stack``; None where neither names them."""
    letters = getattr(stack, "axes", None)
    if isinstance(letters, str):
        return letters
    if path is None or not Path(path).is_dir():
        return None
    letters = zarr_axis_letters(path)
    return letters if letters is not None and len(letters) == len(getattr(stack, "shape", ())) else None


def _zarr_sizes(path: Path, frame_axis: Optional[int], spatial_axes: Sequence[int],
                frames_through_z: bool = False) -> Optional[Sizes]:
    """From OME-Zarr ``multiscales``: the axes' units and the first dataset's scale and translation
    transformations (the origin: None without a translation). The frames are a volume's slices where
    ``frames_through_z`` says so or the zarr names ``frame_axis`` z; the step of its other axis named t or z is one
    of the others."""
    first = _multiscales(path)
    if first is None:
        return None
    axes = first.get("axes") or []
    transforms = first["datasets"][0].get("coordinateTransformations", [])
    scale = next((t.get("scale") for t in transforms if t.get("type") == "scale"), None)
    translation = next((t.get("translation") for t in transforms if t.get("type") == "translation"), None)
    if scale is None or len(axes) != len(scale):
        return None
    row, col = spatial_axes
    units = [unit_name(a.get("unit")) if isinstance(a, dict) else None for a in axes]
    letters = [_axis_letter(a) for a in axes]
    through_z = frames_through_z or (frame_axis is not None and letters[frame_axis] == "Z")
    step = None if frame_axis is None else _number(scale[frame_axis])
    step_unit = None if frame_axis is None else units[frame_axis]
    origin = _zarr_origin(translation, len(scale), (frame_axis, row, col))
    others = tuple(other for axis, letter in enumerate(letters)
                   if axis not in (frame_axis, row, col) and letter in ("T", "Z")
                   for other in _other(letter, _number(scale[axis]), units[axis]))
    return Sizes((float(scale[row]), float(scale[col])), units[col], step, step_unit, origin, through_z, others)


def _zarr_origin(translation: Any, ndim: int, axes: Tuple[Optional[int], int, int]) -> Optional[Tuple[float, ...]]:
    """(t, y, x) of an OME-Zarr ``translation`` (one number per axis) along ``axes`` (frame, row, col; frame None: t
    0); None where there is none or it is not ``ndim`` finite numbers (a broken origin places nothing)."""
    if not isinstance(translation, (list, tuple)) or len(translation) != ndim:
        return None
    try:
        origin = tuple(0.0 if axis is None else float(translation[axis]) for axis in axes)
    except (TypeError, ValueError):
        return None
    return origin if all(math.isfinite(v) for v in origin) else None


def frames_through_z(axes: Optional[str], frame_axis: Optional[int]) -> bool:
    """Whether a stack's axis letters ``axes`` (a TIFF's or OME-Zarr's, e.g. "ZYX") name its ``frame_axis`` Z: the
    frames are a volume's slices (a stack without letters is taken as time)."""
    return isinstance(axes, str) and frame_axis is not None and 0 <= frame_axis < len(axes) and \
        axes[frame_axis].upper() == "Z"


def stack_calibration(path: Any, axes: Optional[str], layout: Any) -> Optional[Calibration]:
    """:func:`read_calibration` of the stack at ``path`` read under ``layout`` (a :class:`~.layout.StackLayout`),
    its frames a volume's slices where the stack's axis letters ``axes`` name the frame axis Z (an OME-Zarr's own axis
    names say so too, letters or not: :func:`stack_letters` gives them to callers that need the labels' letters)."""
    frame = layout.frame_axis
    return read_calibration(path, frame, layout.spatial_axes, frames_through_z=frames_through_z(axes, frame))


def source_calibration(path: Any, shape: Sequence[int], layout: Any) -> Optional[Calibration]:
    """The calibration the file at ``path`` records for a napari layer of ``shape`` read from it as stored (napari's
    own File > Open: its built-in reader gives the TIFF's or OME-Zarr's axes as they are, at scale 1 and in pixels)
    and segmented under ``layout`` (a :class:`~.layout.StackLayout` of the layer's axes); None where the file records
    no pixel size, or where its axes cannot be told to be the layer's: the TIFF's first series is not of ``shape``
    (a reader that moved, split or dropped axes), the layer's row and column axes are not the file's Y and X.

    The frame step is the file's frame interval where the frame axis is its T, the slice spacing where it is its Z;
    along another axis (ImageJ's C or I, tifffile's Q) the frames stay in frames (the file's pixel size is kept), as
    does a layout without frames (a single 2-D image).

    Remembered per file (its path, size and modification time), shape and axes: the widget asks at every change of
    image or axes. A TIFF is read once for its letters and sizes (:func:`tiff_header`); a large OME-TIFF's series
    takes seconds to find, so the Track all panel reads it in a worker first (:func:`header_takes_long`)."""
    path = Path(path)
    try:
        stat = path.stat()
    except OSError:  # gone: the layer stays uncalibrated
        return None
    return _source_calibration(str(path), stat.st_size, stat.st_mtime_ns, tuple(int(n) for n in shape),
                               layout.frame_axis, tuple(layout.spatial_axes))


@functools.lru_cache(maxsize=32)
def _source_calibration(name: str, size: int, modified: int, shape: Tuple[int, ...], frame: Optional[int],
                        spatial: Tuple[int, int]) -> Optional[Calibration]:
    """:func:`source_calibration` of the file ``name`` (of ``size`` bytes, modified at ``modified`` ns: the cache's
    key), the layer's ``shape``, frame axis and (row, col) axes."""
    path = Path(name)
    try:
        letters = _stored_letters(path, shape)
    except Exception:  # unreadable: the layer stays uncalibrated
        return None
    if letters is None:
        return None
    rows, cols = spatial
    if letters[rows] != "Y" or letters[cols] != "X":
        return None
    letter = None if frame is None else letters[frame]
    found = read_calibration(path, frame, (rows, cols), frames_through_z=letter == "Z")
    if found is None or letter in ("T", "Z"):
        return found
    if found.length_unit == "pixel":  # a step alone, of another axis than the frames': nothing for this layer
        return None
    return Calibration(found.pixel_size, found.length_unit, origin=found.origin)


def _stored_letters(path: Path, shape: Sequence[int]) -> Optional[str]:
    """The axis letters of the stack stored at ``path`` where it has ``shape`` (an OME or ImageJ TIFF's first series,
    tifffile's letters, from :func:`tiff_header`) or ``len(shape)`` named axes (an OME-Zarr folder); None otherwise."""
    shape = tuple(int(n) for n in shape)
    if path.suffix.lower() in (".tif", ".tiff") and path.is_file():
        header = tiff_header(path)  # a plain TIFF records no size: its pages are not scanned for series
        return None if header is None or header.shape != shape else header.letters
    letters = zarr_axis_letters(path) if path.is_dir() else None
    return letters if letters is not None and len(letters) == len(shape) else None


#: a TIFF's PhotometricInterpretation values that say its samples are colour (2: RGB; 6: YCbCr, read as RGB)
_COLOUR_PHOTOMETRIC = (2, 6)


def tiff_says_colour(path: Any) -> bool:
    """True where ``path`` is a TIFF file whose own tags say its image is colour: the first page's
    PhotometricInterpretation RGB (or YCbCr) with 3 or 4 samples per pixel (tifffile's axes end in "S": (Y, X, 3) or
    (T, Y, X, 4) as read), written by a camera or scanner: its Make / Model tags, or a Software tag other than
    tifffile's (a file without any of them is no one's word). False for any other file or object, a TIFF of 3 or
    4 "min-is-black" samples (channels, not colour) included, and for a file that cannot be read (its reader says why).
    tifffile (and what writes through it: scikit-image, napari, our own scripts) tags any (..., 3) or (..., 4) array
    RGB unless told otherwise, so its RGB is a guess from the shape, not the file's word: 3 fluorescence channels
    saved with ``tifffile.imwrite(path, array)`` are tagged RGB. Only the first page's tags are read."""
    import tifffile

    try:
        path = Path(path)
    except TypeError:  # None, an array: no file
        return False
    if path.suffix.lower() not in (".tif", ".tiff") or not path.is_file():
        return False
    try:
        with tifffile.TiffFile(path) as tif:
            page = tif.pages.first if hasattr(tif.pages, "first") else tif.pages[0]
            if int(page.photometric) not in _COLOUR_PHOTOMETRIC or int(page.samplesperpixel) not in (3, 4):
                return False
            software = str(page.software or "").strip().lower()
            camera = any(code in page.tags for code in (271, 272))  # Make / Model: a camera or scanner's own file
            return camera or (bool(software) and not software.startswith("tifffile"))
    except Exception:  # not a TIFF, unreadable: not its word on colour
        return False
