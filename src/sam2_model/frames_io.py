"""Opening stacks lazily: arrays, TIFF / .npy / zarr paths and folders of frames become indexable
(T, H, W[, C]) array-likes that read one frame at a time."""

from __future__ import annotations

import contextlib
import logging
import os
import re
import weakref
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np

from .prompt_validation import frame_size_problem

FRAME_SUFFIXES = (".tif", ".tiff", ".png", ".jpg", ".jpeg")
TIFF_SUFFIXES = (".tif", ".tiff")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")  # single-image files Pillow reads (one frame, like a 2-D TIFF)
PathLike = Union[str, os.PathLike]
GLOB_CHARACTERS = re.compile(r"[*?\[]")  # a path with these that names no file is a pattern of frame files
SINGLE_IMAGE_HINT = "for a single image use ImagePredictor or add a time axis (frames[None])"
# Pillow modes whose pixels are not intensities as stored (palette, alpha, 1-bit, other colour spaces)
# are converted the way the reference converts every frame (``Image.convert("RGB")``), grey ones to L.
_PIL_CONVERT = {"1": "L", "LA": "L", "La": "L", "I;16S": "I", "P": "RGB", "PA": "RGB", "RGBA": "RGB",
                "RGBa": "RGB", "RGBX": "RGB", "CMYK": "RGB", "YCbCr": "RGB", "LAB": "RGB", "HSV": "RGB"}


def natural_key(name: str) -> Tuple[Any, ...]:
    """Sort key that orders 't2' before 't10' (numbers in the name compare as numbers)."""
    return tuple((0, int(part), "") if part.isdigit() else (1, 0, part.lower()) for part in re.split(r"(\d+)", name))


def image_file_info(path: Path) -> Tuple[Tuple[int, ...], np.dtype]:
    """(shape, dtype) of one frame file as :func:`read_image_file` returns it, from its header only."""
    shape, dtype, _ = image_file_header(path)
    return shape, dtype


#: the axes one time point of a time-lapse may have: channels, z slices, rows, columns (tifffile's letters)
TIME_POINT_LETTERS = frozenset("CZYX")


def time_point_axes(axes: Optional[str]) -> bool:
    """Whether a file's own axis letters (a TIFF's, as tifffile reads them: "CYX", "ZYX", "ZCYX") say it holds one
    time point with channels or z slices: each of C, Z, Y, X at most once, C or Z among them, ending in YX. A file
    whose letters say nothing (tifffile's Q, ImageJ's I), or that has a time axis (T), is a stack of its own."""
    if not isinstance(axes, str) or len(axes) < 3:
        return False
    letters = axes.upper()
    return (set(letters) <= TIME_POINT_LETTERS and len(set(letters)) == len(letters) and letters.endswith("YX")
            and bool({"C", "Z"} & set(letters)))


def image_file_header(path: Path) -> Tuple[Tuple[int, ...], np.dtype, Optional[str]]:
    """(shape, dtype, axis letters) of one frame file as :func:`read_image_file` returns it, from its header only: the
    letters of a TIFF's first series as tifffile reads them ("YX", "CYX", "QYX"); None for PNG/JPEG/BMP."""
    if path.suffix.lower() in TIFF_SUFFIXES:
        import tifffile

        with tifffile.TiffFile(path) as tif:
            series = tif.series[0]
            return tuple(series.shape), np.dtype(series.dtype), str(series.axes)
    from PIL import Image

    with Image.open(path) as image:
        mode, (width, height) = _PIL_CONVERT.get(image.mode, image.mode), image.size
    stub = np.asarray(Image.new(mode, (1, 1)))
    return (height, width) + stub.shape[2:], stub.dtype, None


def is_frame_file(path: Path) -> bool:
    """Whether the image file at ``path`` is one frame of a folder of frames rather than a stack of its own: a PNG,
    JPEG or BMP; a 2-D (or 2-D colour) TIFF; a TIFF whose own axes say it is one time point with channels or z slices
    (:func:`time_point_axes`: a microscope's one CYX or ZYX file per time point). False for a multi-page stack whose
    axes say nothing or name time, and for a file that cannot be read (as a stack it fails with its reason)."""
    suffix = path.suffix.lower()
    if suffix not in TIFF_SUFFIXES:
        return suffix in FRAME_SUFFIXES
    try:
        shape, _, axes = image_file_header(path)
    except Exception:  # unreadable: a stack candidate that will fail with its reason
        return False
    return len(shape) == 2 or (len(shape) == 3 and str(axes).endswith("S")) or time_point_axes(axes)


def damaged_tiff(path: Path, error: Exception) -> ValueError:
    """The error for a TIFF whose pages cannot be read (tifffile's own words in brackets), naming the file."""
    return ValueError(f"frames: {path} looks damaged or truncated (an interrupted copy or download?): its image data "
                      f"cannot be read ({error}); copy or export it again")


def unreadable_data(error: Exception) -> bool:
    """Whether reading a TIFF's pixels failed on the file's bytes (tifffile's own error, or a decompression error of
    imagecodecs or zlib), not on the way it was asked (an index out of range)."""
    import tifffile

    return isinstance(error, tifffile.TiffFileError) or type(error).__module__.split(".")[0] in ("imagecodecs", "zlib")


@contextlib.contextmanager
def tifffile_log(records: List[logging.LogRecord]) -> Iterator[None]:
    """Hold back what tifffile logs (e.g. "invalid page offset" for a truncated file) into ``records`` while opening a
    file, so that a damaged file gives one message that names it instead of a stray log line first."""
    logger = logging.getLogger("tifffile")

    def keep(record: logging.LogRecord) -> bool:
        records.append(record)
        return False

    logger.addFilter(keep)
    try:
        yield
    finally:
        logger.removeFilter(keep)


def _data_past_end(tif: Any, series: Any) -> bool:
    """Whether the contiguous image data ``series`` promises ends past the end of the file (a truncated file)."""
    try:
        offset = series.dataoffset
        return offset is not None and int(offset) + int(series.nbytes) > int(tif.filehandle.size)
    except Exception:  # compressed or scattered data: read errors say it instead (TiffStack.__getitem__)
        return False


def _single(series: Any) -> bool:
    """Whether a TIFF series is one (Y, X) or (Y, X, S) image, not a stack."""
    return series.axes.endswith("S") and len(series.shape) == 3 or len(series.shape) < 3


def _without_source(message: str) -> str:
    """A tifffile log message without the object it names first ("<tifffile.TiffPages @8> invalid page offset")."""
    return re.sub(r"^<[^>]*>\s*", "", message)


def _truncated(path: Path, tif: Any, series: Any, broken: Sequence[str]) -> str:
    """The message for a TIFF that tifffile opened only in part: no image, data past the file's end, or a stack cut
    down to an image of its first pages (``broken``: what tifffile logged as errors while opening it)."""
    if series is None:
        return (f"frames: {path} holds no image tifffile can read (a truncated or damaged TIFF? {len(tif.pages)} "
                "readable pages)")
    start = f"frames: {path} looks damaged or truncated (an interrupted copy or download?)"
    end = "; copy or export it again"
    if _data_past_end(tif, series):
        return (f"{start}: its {tuple(series.shape)} image needs {series.nbytes} bytes of data from byte "
                f"{series.dataoffset}, but the file ends after {tif.filehandle.size} bytes{end}")
    said = f" ({broken[0]})" if broken else ""
    return f"{start}: only {len(tif.pages)} of its pages can be read{said}{end}"


def read_image_file(path: Path) -> np.ndarray:
    """One frame (H, W) or (H, W, C) from a .tif/.tiff (tifffile) or .png/.jpg/.bmp (Pillow), as stored (palette/alpha
    -> RGB). A TIFF whose data cannot be read is a ValueError naming it (:func:`damaged_tiff`)."""
    if path.suffix.lower() in TIFF_SUFFIXES:
        import tifffile

        records: List[logging.LogRecord] = []
        try:
            with tifffile_log(records):
                return tifffile.imread(path)
        except Exception as error:
            if unreadable_data(error):
                raise damaged_tiff(path, error) from None
            raise
        finally:
            _pass_on(records)
    from PIL import Image

    with Image.open(path) as image:
        mode = _PIL_CONVERT.get(image.mode)
        return np.asarray(image.convert(mode) if mode else image)


def _pass_on(records: List[logging.LogRecord]) -> None:
    """Log what :func:`tifffile_log` held back, as tifffile would have (for a file that is read after all)."""
    logger = logging.getLogger("tifffile")
    for record in records:
        logger.handle(record)


class FolderStack:
    """A folder of single-frame images read one at a time; every frame must share shape and dtype.

    Files are ordered naturally by the numbers in their names (t2 before t10). Headers are checked at
    construction, so a frame of another size is reported before any work starts.
    """

    def __init__(self, folder: Path, files: Sequence[Path] = ()) -> None:
        """``folder``'s frame files in natural order; or ``files`` in the order given (``folder``: where they were
        found, for messages), as :meth:`of_files` makes them."""
        if not files:
            files = sorted(
                (p for p in folder.iterdir()
                 if p.suffix.lower() in FRAME_SUFFIXES and not p.name.startswith(".") and p.is_file()),
                key=lambda p: natural_key(p.name),
            )
        if not files:
            raise ValueError(f"frames: the folder {folder} holds no {'/'.join(FRAME_SUFFIXES)} files")
        self.files: List[Path] = list(files)
        headers = [self._info(p) for p in files]
        self.frame_shape, self.dtype = headers[0][:2]
        for path, header in zip(files[1:], headers[1:]):
            self._check(path, header[:2])
        self.shape = (len(files),) + tuple(self.frame_shape)
        self.ndim = len(self.shape)
        letters = {header[2] for header in headers}
        #: "T" + the files' own axis letters where every file says it is one time point alike ("TCYX" for a folder of
        #: CYX TIFFs: channels found as in a TCYX TIFF); None otherwise
        self.axes: Optional[str] = None
        if len(letters) == 1 and time_point_axes(headers[0][2]) and len(headers[0][2]) == len(self.frame_shape):
            self.axes = "T" + str(headers[0][2]).upper()

    @classmethod
    def of_files(cls, paths: Sequence[PathLike], what: str = "the list of files") -> "FolderStack":
        """Frames from single-image files (TIFF, PNG, JPEG), in the order given; ValueError naming the first path that
        is missing or not a frame file, and the frames' shapes must match as in a folder."""
        files = [Path(p).expanduser() for p in paths]
        if not files:
            raise ValueError(f"frames: {what} is empty")
        for path in files:
            if not path.is_file():
                raise FileNotFoundError(f"frames: no such file: {path} (in {what})")
            if path.suffix.lower() not in FRAME_SUFFIXES:
                raise ValueError(f"frames: {path} is not a frame file ({'/'.join(FRAME_SUFFIXES)}) (in {what})")
        return cls(files[0].parent, files)

    @staticmethod
    def _info(path: Path) -> Tuple[Tuple[int, ...], np.dtype, Optional[str]]:
        try:
            return image_file_header(path)
        except Exception as error:
            raise ValueError(f"frames: cannot read {path}: {error}") from error

    def _check(self, path: Path, info: Tuple[Tuple[int, ...], np.dtype]) -> None:
        if tuple(info[0]) != tuple(self.frame_shape) or info[1] != self.dtype:
            raise ValueError(
                f"frames: {path.name} is {tuple(info[0])} {info[1]}, but the first frame {self.files[0].name} "
                f"is {tuple(self.frame_shape)} {self.dtype}; all frames in {path.parent} must match"
            )

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, key: Any) -> np.ndarray:
        index, rest = (key[0], key[1:]) if isinstance(key, tuple) else (key, ())
        path = self.files[index]
        frame = read_image_file(path)
        self._check(path, (frame.shape, frame.dtype))
        return frame[rest] if rest else frame


class _PagedSeries:
    """A TIFF series read page by page with tifffile alone (no zarr): frame t is its t-th run of pages.

    Each frame of a (T, ...) series is ``len(pages) // T`` consecutive pages, as tifffile and ImageJ
    write stacks and hyperstacks; a frame is read only when it is indexed.
    """

    def __init__(self, series: Any) -> None:
        self.series = series
        self.shape = tuple(int(n) for n in series.shape)
        self.dtype = np.dtype(series.dtype)
        pages = len(series.pages)
        if pages % self.shape[0] or pages < self.shape[0]:
            raise ValueError(f"{pages} pages do not divide into {self.shape[0]} frames")
        self.pages_per_frame = pages // self.shape[0]

    def frame(self, t: int) -> np.ndarray:
        first = int(t) * self.pages_per_frame
        pages = [self.series.pages[i].asarray() for i in range(first, first + self.pages_per_frame)]
        return np.stack(pages).reshape(self.shape[1:])

    def __getitem__(self, key: Any) -> np.ndarray:
        index, rest = (key[0], key[1:]) if isinstance(key, tuple) else (key, ())
        frames = np.arange(self.shape[0])[index]
        data = self.frame(int(frames)) if np.ndim(frames) == 0 else np.stack([self.frame(t) for t in frames])
        if not rest:
            return data
        return data[rest] if np.ndim(frames) == 0 else data[(slice(None),) + tuple(rest)]


class SingleImageError(ValueError):
    """A TIFF, PNG, JPEG or BMP file holds one (Y, X) or (Y, X, colour) image where a stack of frames was expected."""


def open_stack_or_image(source: Any) -> Tuple[Any, bool]:
    """(:func:`open_stack`'s stack, False), or for a file of one image -- a 2-D or RGB TIFF, a PNG, JPEG or BMP -- (a
    stack of one frame, (1, Y, X[, C]) in memory, True). Colour stays colour (RGB last, as for TIFF); Pillow
    reads PNG/JPEG/BMP as it reads the frames of a folder (:func:`read_image_file`). An image thinner than 8 px on a
    side is a ValueError naming its own shape (not the one-frame stack's: (1, 500), not (1, 1, 500))."""
    try:
        return open_stack(source), False
    except SingleImageError:
        image = np.asarray(read_image_file(Path(source).expanduser()))
        if image.ndim < 2:
            raise ValueError(f"{source} holds a {image.ndim}-D array {image.shape}, not an image: a stack or image has "
                             "rows and columns (Y, X), with frames, slices or colour beside them") from None
        problem = frame_size_problem(image.shape[0], image.shape[1])
        if problem is not None:
            raise ValueError(f"{problem}; here they are the rows and columns of the image {image.shape} in "
                             f"{source}") from None
        return image[None], True


def _single_image(path: Path) -> SingleImageError:
    """The error for a .png/.jpg/.bmp path where a stack is expected (its shape from the header); a file that is not
    a readable image raises a plain ValueError (so :func:`open_stack_or_image` does not try to read it)."""
    try:
        shape, _ = image_file_info(path)
    except Exception as error:  # not an image, truncated
        raise ValueError(f"frames: cannot read {path} as a {path.suffix.lower()} image: {error}") from error
    axes = "YX" if len(shape) == 2 else "YXS"
    return SingleImageError(f"frames: {path} holds a single image of shape {tuple(shape)} (axes {axes}); frames must "
                            f"be (T,H,W) or (T,H,W,C); {SINGLE_IMAGE_HINT}")


class TiffStack:
    """The first series of a TIFF file, read lazily (pages on demand): through tifffile's zarr store,
    or page by page with tifffile alone when zarr is not installed.

    The file stays open while frames are read: :meth:`close` it (or use it as a context manager, or
    :func:`close_stack`) when done. One never closed is closed when it is garbage-collected, without a
    ResourceWarning."""

    def __init__(self, path: Path) -> None:
        import tifffile

        try:
            import zarr
        except ImportError:  # a core dependency, but TIFF stacks do not need it
            zarr = None
        self.path = path
        records: List[logging.LogRecord] = []
        try:
            with tifffile_log(records):
                self._tif = tifffile.TiffFile(path)
                self._closer = weakref.finalize(self, self._tif.close)  # holds the file, not the stack
                found = self._tif.series
        except Exception as error:  # not a TIFF, truncated
            _pass_on(records)
            raise ValueError(f"frames: cannot read {path} as a TIFF: {error}") from error
        try:  # what tifffile logged is said by the errors below, or passed on for a file that reads
            broken = [_without_source(r.getMessage()) for r in records if r.levelno >= logging.ERROR]
            series = found[0] if found else None
            if series is None or _data_past_end(self._tif, series) or (broken and _single(series)):
                raise ValueError(_truncated(path, self._tif, series, broken))
            _pass_on(records)
            if _single(series):
                raise SingleImageError(
                    f"frames: {path} holds a single image of shape {tuple(series.shape)} (axes {series.axes}); "
                    f"frames must be (T,H,W) or (T,H,W,C); {SINGLE_IMAGE_HINT}"
                )
            self._array = zarr.open(series.aszarr(level=0), mode="r") if zarr is not None else _PagedSeries(series)
        except ValueError:
            self._tif.close()
            raise
        except Exception as error:  # unsupported layout
            self._tif.close()
            raise ValueError(f"frames: cannot read {path} as a TIFF stack: {error}") from error
        self.axes = series.axes
        self.shape = tuple(self._array.shape)
        self.dtype = np.dtype(self._array.dtype)
        self.ndim = len(self.shape)

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, key: Any) -> np.ndarray:
        try:
            return np.asarray(self._array[key])
        except Exception as error:  # a damaged page (a strip cut short, compressed data that does not decompress)
            if unreadable_data(error):
                raise damaged_tiff(self.path, error) from None
            raise

    def close(self) -> None:
        """Close the file (again: nothing happens); frames cannot be read after."""
        self._closer()

    def __enter__(self) -> "TiffStack":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def close_stack(stack: Any) -> None:
    """Close what :func:`open_stack` opened for ``stack`` (a TIFF's file); stacks that hold no open file (arrays,
    memory-mapped .npy files, zarr arrays, folders of frames) have nothing to close."""
    if isinstance(stack, TiffStack):
        stack.close()


def _is_zarr_group(source: Any) -> bool:
    """True for an opened zarr Group (v2 or v3): it has keys and attributes, not a shape."""
    return type(source).__module__.split(".")[0] == "zarr" and not hasattr(source, "shape") and hasattr(source, "attrs")


def multiscales_entry(attrs: Dict[str, Any]) -> Optional[Dict[str, Any]]:
    """The first ``multiscales`` entry of an OME-Zarr group's attributes (OME-NGFF 0.4, or 0.5 under "ome"); None
    without (or malformed)."""
    ome = attrs.get("ome")
    multiscales = attrs.get("multiscales") or (ome.get("multiscales") if isinstance(ome, dict) else None)
    return multiscales[0] if isinstance(multiscales, list) and multiscales and isinstance(multiscales[0], dict) \
        else None


def _first_dataset(attrs: Dict[str, Any]) -> str:
    """The path of the first (full-resolution) dataset in OME-NGFF ``multiscales`` metadata; "0" without it."""
    try:
        return str(multiscales_entry(attrs)["datasets"][0]["path"])  # type: ignore[index]
    except (TypeError, KeyError, IndexError):  # no (or malformed) metadata: OME-Zarr's full resolution is "0"
        return "0"


#: the letter of an OME-Zarr axis by its type ("time", "channel"), else by its name
_TYPE_LETTERS = {"time": "T", "channel": "C"}
_NAME_LETTERS = {"t": "T", "time": "T", "c": "C", "channel": "C", "z": "Z", "y": "Y", "x": "X"}


def ome_axis_letter(axis: Any) -> str:
    """One OME-Zarr axis (NGFF 0.4 ``{"name": "z", "type": "space"}``, or 0.3's bare name "z") as a letter: T for
    type time, C for channel, else T / C / Z / Y / X by its name; Q (tifffile's unknown axis) otherwise."""
    if isinstance(axis, dict):
        kind, name = str(axis.get("type", "")).lower(), str(axis.get("name", "")).lower()
    else:
        kind, name = "", str(axis).lower()
    letter = _TYPE_LETTERS.get(kind) or _NAME_LETTERS.get(name, "Q")
    return "Q" if kind == "space" and letter in ("T", "C") else letter


def ome_axis_letters(attrs: Dict[str, Any]) -> Optional[str]:
    """The axis letters of an OME-Zarr image from its group's attributes, as a TIFF gives them ("TCYX" for axes t
    (time), c (channel), y, x), from ``multiscales`` ``axes``; None where it has none or names a letter twice (Q
    aside)."""
    entry = multiscales_entry(attrs)
    axes = None if entry is None else entry.get("axes")
    if not isinstance(axes, list) or not axes:
        return None
    letters = "".join(ome_axis_letter(axis) for axis in axes)
    named = letters.replace("Q", "")
    return letters if len(set(named)) == len(named) else None


def zarr_full_resolution(group: Any, name: str) -> Any:
    """The full-resolution array of a zarr group (an OME-Zarr root): the first dataset its ``multiscales`` metadata
    lists (OME-NGFF 0.4, or 0.5 under "ome"), else the array "0". ``name`` says what was given, for the error.

    The array carries the image's axis letters as ``axes`` (:func:`ome_axis_letters`, one per axis: "TCYX"), as a
    TIFF stack does, so that its channel axis is found from them as an OME-TIFF's is; none where the metadata does
    not name one letter per axis."""
    attrs = dict(group.attrs)
    key = _first_dataset(attrs)
    array = group[key] if key in group else None
    if array is None or not hasattr(array, "shape"):
        raise ValueError(f"frames: {name} has no array '{key}' (it holds {sorted(group.keys())[:8]}); pass the array "
                         "you mean (group['name']) or the path of an OME-Zarr image")
    letters = ome_axis_letters(attrs)
    if letters is not None and len(letters) == len(array.shape) and getattr(array, "axes", None) is None:
        with contextlib.suppress(AttributeError, TypeError):  # an array class that takes no new attributes
            array.axes = letters
    return array


def open_path(path: Path) -> Any:
    """A lazily indexable stack from a path (see :func:`open_stack`)."""
    path = Path(path).expanduser()
    if not path.exists() and GLOB_CHARACTERS.search(str(path)):  # "frames/t*.tif": the matching files, in order
        matches = sorted(Path(path.anchor or ".").glob(str(path.relative_to(path.anchor)) if path.anchor
                                                       else str(path)), key=lambda p: natural_key(str(p)))
        if not matches:
            raise FileNotFoundError(f"frames: no file matches {path}")
        return FolderStack.of_files(matches, f"the files matching {path}")
    if not path.exists():
        raise FileNotFoundError(f"frames: no such file or folder: {path}")
    if path.is_dir():
        if (path / "zarr.json").exists() or (path / ".zarray").exists() or (path / ".zgroup").exists():
            import zarr

            array = zarr.open(str(path), mode="r")
            return zarr_full_resolution(array, f"the zarr group {path}") if _is_zarr_group(array) else array
        return FolderStack(path)
    suffix = path.suffix.lower()
    if suffix in TIFF_SUFFIXES:
        return TiffStack(path)
    if suffix == ".npy":
        return np.load(path, mmap_mode="r")
    if suffix in IMAGE_SUFFIXES:
        raise _single_image(path)
    raise ValueError(
        f"frames: {path} is not a stack this reader knows; use a multi-page .tif/.tiff, a .npy file, a zarr "
        f"folder or a folder of {'/'.join(FRAME_SUFFIXES)} frames"
    )


def open_stack(source: Any) -> Any:
    """A lazily indexable stack from a path or an array-like (numpy, dask, zarr, memmap, h5py, torch).

    Paths: a TIFF (first series, through tifffile's zarr store, read frame by frame), a .npy file
    (memory-mapped), a zarr folder, a folder of frames, or a pattern of frame files ("frames/t*.tif", in natural
    order); a list of paths of frame files is a stack of those frames in the order given. Array-likes are returned as they are; an opened zarr
    group (an OME-Zarr root) gives its full-resolution array, as its path does (:func:`zarr_full_resolution`).
    """
    if isinstance(source, (str, os.PathLike)):
        return open_path(Path(source))
    try:
        import torch

        if isinstance(source, torch.Tensor):
            return source.detach().cpu().numpy()
    except ImportError:  # pragma: no cover - torch is a dependency
        pass
    if isinstance(source, (list, tuple)) and source and all(isinstance(p, (str, os.PathLike)) for p in source):
        return FolderStack.of_files(source)  # one frame per file, in the order given
    if _is_zarr_group(source):  # an opened OME-Zarr root: read as its path would be
        return zarr_full_resolution(source, "the zarr group given")
    if not hasattr(source, "shape") or not hasattr(source, "__getitem__") or not hasattr(source, "dtype"):
        source = np.asarray(source)
    return source


def read_frame(stack: Any, key: Any) -> np.ndarray:
    """``stack[key]`` of any supported stack as a numpy array (dask slices are computed)."""
    frame = stack[key]
    if hasattr(frame, "compute"):
        frame = frame.compute()
    return np.asarray(frame)


def sample_indices(num_frames: int, count: int = 16) -> Sequence[int]:
    """Up to ``count`` evenly spaced frame indices, always including the first and the last."""
    if num_frames <= count:
        return range(num_frames)
    return sorted({int(round(i)) for i in np.linspace(0, num_frames - 1, count)})
