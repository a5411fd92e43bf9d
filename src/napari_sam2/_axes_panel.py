"""Which axis of an image is propagated and which holds channels: a small sub-widget of the segmentation widget.

It shows the choices of one image at a time (:meth:`AxesPanel.show_for`) and turns them into a
:class:`~.layout.StackLayout` and the session's channel options. An image napari read from an ImageJ or OME-TIFF (or
an OME-Zarr) whose axes name a channel axis ("C", e.g. TCYX) starts with that channel axis chosen
(:func:`file_axes_choice`), as ``napari-sam2 track`` reads the file.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any, Callable, Dict, Optional, Sequence, Tuple

from qtpy.QtCore import Signal
from qtpy.QtWidgets import QComboBox, QFormLayout, QSpinBox, QWidget

from ._image_state import AxisChoice, channel_axis_of, choice_layout, spatial_ndim
from .file_calibration import header_takes_long, tiff_header, zarr_axis_letters
from .layout import StackLayout

NO_CHANNEL_AXIS = "none (grey or RGB)"
ALL_CHANNELS = "all (grey or RGB)"
CHANNEL_MODES = ("mean of channels", "max of channels")


class AxesPanel(QWidget):
    """"Propagate along axis", "Channel axis" and "Channel" of the current image; ``edited`` on any change."""

    edited = Signal()

    def __init__(self, parent: Optional[QWidget] = None) -> None:
        super().__init__(parent)
        self._image: Any = None
        self.axis_spin = QSpinBox()
        self.channel_axis_combo = QComboBox()
        self.channel_combo = QComboBox()
        self.axis_spin.setToolTip("The image axis to propagate along: time for a time-lapse, z for a volume "
                                  "(0 is the first axis, as in napari's sliders).")
        self.channel_axis_combo.setToolTip("The axis that holds the colour channels, if any (none for one channel).")
        self.channel_combo.setToolTip("Which channel the model sees (or the mean or maximum of all of them).")
        form = QFormLayout(self)
        form.setContentsMargins(0, 0, 0, 0)
        form.addRow("Propagate along axis", self.axis_spin)
        form.addRow("Channel axis", self.channel_axis_combo)
        form.addRow("Channel", self.channel_combo)
        self.axis_spin.valueChanged.connect(lambda _: self.edited.emit())
        self.channel_axis_combo.currentTextChanged.connect(self._on_channel_axis_changed)
        self.channel_combo.currentTextChanged.connect(lambda _: self.edited.emit())

    def show_for(self, image: Any, choice: AxisChoice) -> None:
        """Offer the axes of ``image`` (a napari Image layer) with ``choice`` selected (no ``edited`` signal)."""
        self._image = image
        ndim = spatial_ndim(image)
        widgets = (self.axis_spin, self.channel_axis_combo, self.channel_combo)
        for widget in widgets:
            widget.blockSignals(True)
        self.axis_spin.setRange(0, max(ndim - 3, 0))
        self.axis_spin.setValue(choice.frame_axis)
        self.channel_axis_combo.clear()
        self.channel_axis_combo.addItem(NO_CHANNEL_AXIS)
        if not image.rgb:  # the axes before the rows and columns (T, C, Y, X), and the last one (T, Y, X, C)
            shape = image.data.shape
            last = [ndim - 1] if ndim >= 3 and shape[-1] < min(shape[-3:-1]) else []  # shorter than rows, columns
            for axis in [*range(max(ndim - 2, 0)), *last]:
                self.channel_axis_combo.addItem(channel_axis_text(axis, image.data.shape[axis]))
        self.channel_axis_combo.setCurrentText(choice.channel_axis or NO_CHANNEL_AXIS)
        self._fill_channels()
        if choice.channel:
            self.channel_combo.setCurrentText(choice.channel)
        for widget in widgets:
            widget.blockSignals(False)

    def forget_image(self) -> None:
        """Let go of the image shown (the window closed: its Qt parts are gone, so :meth:`show_for` cannot run)."""
        self._image = None

    def choice(self) -> AxisChoice:
        return AxisChoice(self.axis_spin.value(), self.channel_axis_combo.currentText(),
                          self.channel_combo.currentText())

    def channel_axis(self) -> Optional[int]:
        """The image axis holding channels (None: grey, or RGB layers whose colour axis napari knows)."""
        return channel_axis_of(self.channel_axis_combo.currentText())

    def channel_options(self) -> Dict[str, Any]:
        """How the chosen channel reaches the model: {} (grey/RGB), {"channel": c} or {"composite": mean|max}."""
        text = self.channel_combo.currentText()
        if self.channel_axis() is None:
            return {}
        if text.startswith("channel "):
            return {"channel": int(text.split()[1])}
        return {"composite": "mean" if text.startswith("mean") else "max"}

    def layout(self, image: Any, current_step: Sequence[int]) -> StackLayout:
        """The :class:`StackLayout` of ``image`` under the panel's choices (:func:`~._image_state.choice_layout`, the
        one rule, also for images not shown): other non-spatial axes are fixed at ``current_step``."""
        return choice_layout(image, self.choice(), current_step)

    def _fill_channels(self) -> None:
        axis = self.channel_axis()
        self.channel_combo.clear()
        if self._image is None or axis is None:
            self.channel_combo.addItem(ALL_CHANNELS)
            return
        count = self._image.data.shape[axis]
        self.channel_combo.addItems([f"channel {c}" for c in range(count)] + list(CHANNEL_MODES))

    def _on_channel_axis_changed(self, _: str = "") -> None:
        self.channel_combo.blockSignals(True)
        self._fill_channels()
        self.channel_combo.blockSignals(False)
        self.edited.emit()


def channel_axis_text(axis: int, count: int) -> str:
    """The "Channel axis" entry of image axis ``axis`` holding ``count`` channels, e.g. "axis 1 (2)"."""
    return f"axis {axis} ({count})"


def file_axes_choice(image: Any) -> Optional[Tuple[AxisChoice, str]]:
    """(the axis choice, the file's axis letters) that ``image`` (a napari Image layer) starts with when the file napari
    read it from names a channel axis (:func:`source_axis_letters`: one letter per axis of the layer, "C" before the
    rows and columns, e.g. TCYX -> "axis 1"): the model then sees channel 0 (the "Channel" list's first entry), and
    the masks lie on every channel, as ``napari-sam2 track`` reads such a file. The propagated axis stays 0 unless that
    is the channel axis (CTYX: the file's T, else Z, else the first other axis; CYX: one image). None for an RGB layer,
    a layer of no file or of a file whose axes name no channel axis before Y, X."""
    if getattr(image, "rgb", False):
        return None
    letters = source_axis_letters(image)
    ndim = spatial_ndim(image)
    if letters is None or len(letters) != ndim or "C" not in letters or not letters.endswith("YX"):
        return None
    channel = letters.index("C")
    others = [axis for axis in range(ndim - 2) if axis != channel]
    if channel >= ndim - 2:
        return None
    frame = 0  # also for (C, Y, X): one image of channels, nothing to propagate through
    if channel == 0 and others:  # (C, T, Y, X): the file's time axis, else its z axis, else the first other one
        named = [axis for letter in "TZ" for axis in others if letters[axis] == letter]
        frame = (named or others)[0]
    return AxisChoice(frame, channel_axis_text(channel, _axis_size(image, channel)), ""), letters


def source_axis_letters(image: Any) -> Optional[str]:
    """The axis letters (upper case) of the file napari read ``image`` from (``layer.source.path``) where the file
    names its axes and they fit the layer: an ImageJ or OME-TIFF whose first series has the layer's shape (tifffile's
    letters), an OME-Zarr with one named axis per axis of the layer; None otherwise (no file, a plain TIFF, whose
    letters tifffile guesses, a file a reader reshaped). Only the header is read, once per file, size and shape (an
    OME-TIFF of many pages takes long: :func:`letters_take_long`, read in a worker by :func:`letters_reader`)."""
    key = _letters_key(image)
    return None if key is None else _file_letters(*key)


def letters_take_long(image: Any) -> bool:
    """Whether :func:`source_axis_letters` of ``image`` could keep the GUI thread long: its file is an OME-TIFF whose
    header was not read yet (:func:`.file_calibration.header_takes_long`: tifffile reads its OME-XML and finds every
    page, about a second for 20000 pages). Telling reads the TIFF's header and first page only; an ImageJ TIFF (its
    letters in the first page), an OME-Zarr or a file read already (by the Track all panel too) is quick."""
    key = _letters_key(image)
    if key is None:
        return False
    with _LETTERS_LOCK:
        if key in _LETTERS:
            return False
    return header_takes_long(key[0])


def letters_reader(image: Any) -> Callable[[], Optional[str]]:
    """A function that reads :func:`source_axis_letters` of ``image`` (and keeps them for the next call), for a worker
    thread: the layer is looked at here, on the calling thread, not by the function."""
    key = _letters_key(image)
    return lambda: None if key is None else _file_letters(*key)


LettersKey = Tuple[str, int, int, Tuple[int, ...]]  # file name, size in bytes, modified (ns), the layer's shape


def _letters_key(image: Any) -> Optional[LettersKey]:
    """Which file ``image`` was read from, as the letters cache knows it (None: no file, or one gone)."""
    path = getattr(getattr(image, "source", None), "path", None)
    if path is None:
        return None
    data = image.data[0] if getattr(image, "multiscale", False) else image.data
    try:
        stat = Path(path).stat()
    except (OSError, TypeError, ValueError):
        return None
    return str(path), stat.st_size, stat.st_mtime_ns, tuple(int(n) for n in data.shape)


_LETTERS: "OrderedDict[LettersKey, Optional[str]]" = OrderedDict()  # the last files' letters (a worker's too)
_LETTERS_KEPT = 32
_LETTERS_LOCK = threading.Lock()


def _file_letters(name: str, size: int, modified: int, shape: Tuple[int, ...]) -> Optional[str]:
    """:func:`source_axis_letters` of the file ``name`` (``size`` bytes, modified at ``modified`` ns: the cache's key)
    read as a layer of ``shape``; kept for the last :data:`_LETTERS_KEPT` files."""
    key = (name, size, modified, shape)
    with _LETTERS_LOCK:
        if key in _LETTERS:
            _LETTERS.move_to_end(key)
            return _LETTERS[key]
    letters = _read_letters(name, shape)
    with _LETTERS_LOCK:
        _LETTERS[key] = letters
        while len(_LETTERS) > _LETTERS_KEPT:
            _LETTERS.popitem(last=False)
    return letters


def _read_letters(name: str, shape: Tuple[int, ...]) -> Optional[str]:
    """The axis letters of the file ``name`` read as a layer of ``shape`` (:func:`source_axis_letters`): a TIFF's from
    :func:`.file_calibration.tiff_header` (one read of the file for its letters and its calibration, shared with the
    Track all panel and its worker), an OME-Zarr's from its metadata; None where they do not fit ``shape``."""
    path = Path(name)
    try:
        if path.suffix.lower() in (".tif", ".tiff") and path.is_file():
            header = tiff_header(path)  # None for a plain TIFF (letters tifffile guesses)
            return None if header is None or header.shape != tuple(shape) else header.letters
        letters = zarr_axis_letters(path) if path.is_dir() else None
    except Exception:  # unreadable: no letters (the reader that opened it says what is wrong)
        return None
    return letters if letters is not None and len(letters) == len(shape) else None


def file_channel_words(image: Any, choice: AxisChoice, letters: str) -> str:
    """What the status line says of a channel axis chosen from ``image``'s file (:func:`file_axes_choice`), e.g.
    "Channel axis: axis 1 (from the TIFF's axes TCYX): ...", naming the channel the model sees and how to choose
    otherwise."""
    axis = channel_axis_of(choice.channel_axis)
    return (f"Channel axis: axis {axis} (from the {_file_kind(image)} axes {letters}): the model sees "
            f"{choice.channel or 'channel 0'} and the masks lie on every channel (choose another 'Channel', or the "
            f"mean or max of them; 'Channel axis: {NO_CHANNEL_AXIS}' segments each plane on its own).")


def channel_choice_words(image: Any, choice: AxisChoice, letters: str) -> str:
    """What the status line says of ``choice`` on ``image``, whose file's axes ``letters`` name a channel axis ("C"):
    :func:`file_channel_words` where ``choice`` has the file's channel axis; otherwise that the person chose another
    one, e.g. "Channel axis: none, as you chose (the TIFF's axes TCYX name axis 1 as channels): each plane is
    segmented on its own, as a z slice.", so that the line never keeps saying what the model no longer sees."""
    axis, named = channel_axis_of(choice.channel_axis), letters.index("C")
    if axis == named:
        return file_channel_words(image, choice, letters)
    lead = (f"Channel axis: {'none' if axis is None else f'axis {axis}'}, as you chose (the {_file_kind(image)} axes "
            f"{letters} name axis {named} as channels)")
    if axis is None:
        return (f"{lead}: each plane is segmented on its own, as a z slice (choose 'Channel axis: "
                f"{channel_axis_text(named, _axis_size(image, named))}' to segment the channels together).")
    return f"{lead}: the model sees {choice.channel or 'channel 0'} and the masks lie on every plane of axis {axis}."


def _file_kind(image: Any) -> str:
    """"TIFF's" for an image read from a TIFF, "file's" otherwise (an OME-Zarr)."""
    path = getattr(getattr(image, "source", None), "path", None)
    return "TIFF's" if path is not None and Path(str(path)).suffix.lower() in (".tif", ".tiff") else "file's"


def _axis_size(image: Any, axis: int) -> int:
    """How many planes ``image`` (a napari Image layer, multiscale or not) has along ``axis``."""
    shape = image.data[0].shape if getattr(image, "multiscale", False) else image.data.shape
    return int(shape[axis])
