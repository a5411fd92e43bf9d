"""Which axis of an image is propagated and which holds channels: a small sub-widget of the segmentation widget.

It shows the choices of one image at a time (:meth:`AxesPanel.show_for`) and turns them into a
:class:`~.layout.StackLayout` and the session's channel options.
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Sequence

from qtpy.QtCore import Signal
from qtpy.QtWidgets import QComboBox, QFormLayout, QSpinBox, QWidget

from ._image_state import AxisChoice, channel_axis_of, choice_layout, spatial_ndim
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
        if not image.rgb:
            for axis in range(max(ndim - 2, 0)):
                self.channel_axis_combo.addItem(f"axis {axis} ({image.data.shape[axis]})")
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
