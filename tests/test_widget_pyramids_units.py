"""The segmentation widget on multiscale (pyramid) images, on images with physical units, and on a single 2D image,
driven as a person does (real viewer, widget from the manifest, clicks added to the clicks layer, buttons pressed,
workers awaited, the demo model's embedded weights)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("napari")
pytestmark = pytest.mark.gui

from sam2_model.evaluation import click_point  # noqa: E402
from sam2_model.metrics import region_similarity  # noqa: E402
from sam2_model.synthetic import make_timelapse  # noqa: E402
from widget_helpers import open_widget, wait  # noqa: E402


def movie(num_frames: int = 4):
    """A synthetic (T, 96, 96) time-lapse of 3 cells (no divisions, none entering or leaving)."""
    return make_timelapse(num_frames=num_frames, shape=(96, 96), num_cells=3, seed=5, divisions=False,
                          enter_leave=False, radius_fraction=0.12)


def test_multiscale_image_is_segmented_on_its_full_resolution_level(make_napari_viewer, qtbot, tmp_path, monkeypatch):
    """A pyramid layer (napari's multiscale, as big OME-Zarr and pyramidal TIFFs open): a click and Propagate segment
    level 0, read lazily (the dask level itself reaches the session, not an array of it), and the masklets cover the
    image's world extent (before: "list indices must be integers or slices, not tuple", empty masklets)."""
    da = pytest.importorskip("dask.array")
    cells = movie()
    level0 = da.from_array(cells.image, chunks=(1, 96, 96))
    viewer, widget = open_widget(make_napari_viewer, tmp_path, monkeypatch)
    image = viewer.add_image([level0, level0[:, ::2, ::2], level0[:, ::4, ::4]], multiscale=True, name="pyramid",
                             scale=(1.0, 0.5, 0.5), translate=(0.0, 10.0, -4.0))
    assert image.multiscale and widget.image_layer.unique_id == image.unique_id
    x, y = click_point(cells.labels[0] == 1)
    widget.points_layer.add(np.array([[0, y, x]]))  # the clicks layer has the image's scale and translate
    wait(qtbot, widget)
    assert widget.status.text().startswith("Done"), widget.status.text()
    masklets = widget.labels_layer
    np.testing.assert_allclose(masklets.extent.world, image.extent.world)
    assert region_similarity(np.asarray(masklets.data[0]) == 1, cells.labels[0] == 1) > 0.6
    assert widget.controller.image is level0  # level 0 as it is: frames are read from it one at a time

    widget.forward_button.click()
    wait(qtbot, widget)
    assert widget.status.text().startswith("Done"), widget.status.text()
    labels = np.asarray(masklets.data)
    assert labels.shape == cells.image.shape
    for t in range(1, len(labels)):
        assert region_similarity(labels[t] == 1, cells.labels[t] == 1) > 0.5, t


def test_plugin_layers_carry_the_image_units_and_axis_labels(make_napari_viewer, qtbot, tmp_path, monkeypatch):
    """Clicks, boxes, masklets and the Tracks layer get the image's units and axis labels besides its scale, so napari
    keeps the units for rendering and the scale bar (before: they had pixels, and napari warned "Inconsistent units
    across layers" and dropped every layer's units)."""
    cells = movie()
    viewer, widget = open_widget(make_napari_viewer, tmp_path, monkeypatch)
    image = viewer.add_image(cells.image, name="cells", scale=(2.0, 0.5, 0.5), units=("s", "um", "um"),
                             axis_labels=("t", "y", "x"))
    x, y = click_point(cells.labels[0] == 1)
    widget.points_layer.add(np.array([[0, y, x]]))
    wait(qtbot, widget)
    tracks = widget.add_tracks_layer()
    assert tracks is not None
    for layer in (widget.points_layer, widget.boxes_layer, widget.labels_layer, tracks):
        assert layer.units == image.units, layer.name
        assert tuple(layer.axis_labels) == ("t", "y", "x"), layer.name
    assert viewer.layers.extent.units == image.units  # None when the layers' units disagree


def test_tracks_metadata_follows_the_tracks_columns(make_napari_viewer):
    """The Tracks layer's units and axis labels are those of its columns: (t, z, y, x) over a (T, Z, Y, X) image
    propagated along T, (z, y, x) along Z, and the first and last two axes without a layout; none for pixels only."""
    from napari.layers import Image

    from napari_sam2._tracks_layer import tracks_metadata
    from napari_sam2.layout import StackLayout

    image = Image(np.zeros((3, 4, 16, 16), np.uint8), units=("s", "nm", "um", "um"), axis_labels=("t", "z", "y", "x"))
    along_t = tracks_metadata(image, StackLayout(4, 0, None, ((1, 2),)))
    assert along_t["axis_labels"] == ("t", "z", "y", "x")
    assert along_t["units"] == image.units
    along_z = tracks_metadata(image, StackLayout(4, 1, None, ((0, 1),)))
    assert along_z["axis_labels"] == ("z", "y", "x")
    assert along_z["units"] == image.units[1:]
    assert tracks_metadata(image, None)["axis_labels"] == ("t", "y", "x")
    layer = make_napari_viewer().add_tracks(np.array([[1, 0, 2, 5, 5], [1, 1, 2, 6, 6]], float), **along_t)
    assert layer.units == image.units


def test_single_2d_image_does_not_offer_propagation(make_napari_viewer, qtbot, tmp_path, monkeypatch):
    """On a single 2D image the propagate buttons are off with a tooltip saying why, and the status after a click
    speaks of neither frames nor propagation (before: "Done. Correct on any frame, then propagate again." with
    Propagate enabled, which then said there was nothing to propagate). A stack picked next has them back."""
    cells = movie()
    viewer, widget = open_widget(make_napari_viewer, tmp_path, monkeypatch, ("one", cells.image[0]))
    buttons = (widget.forward_button, widget.backward_button, widget.both_button)
    x, y = click_point(cells.labels[0] == 1)
    widget.points_layer.add(np.array([[y, x]]))
    wait(qtbot, widget)
    status = widget.status.text()
    assert status.startswith("Done"), status
    assert "frame" not in status.lower() and "propagat" not in status.lower(), status
    assert (np.asarray(widget.labels_layer.data) == 1).any()
    for button in buttons:
        assert not button.isEnabled(), button.text()
        assert "single 2D" in button.toolTip() and "nothing to propagate" in button.toolTip()
    assert widget.segment_button.isEnabled()

    viewer.add_image(cells.image, name="stack")
    widget.image_combo.setCurrentText("stack")
    for button in buttons:
        assert button.isEnabled() and "single 2D" not in button.toolTip(), button.text()
    widget.image_combo.setCurrentText("one")
    assert not any(button.isEnabled() for button in buttons)


def test_auto_choices_on_a_pyramid_are_measured_on_its_full_resolution_level(make_napari_viewer, qtbot, tmp_path,
                                                                             monkeypatch):
    """Small nuclei in a big pyramid image: "auto" object windows and input size are measured on the centre of level
    0's first frame, as for the same image as one array (before: a pyramid was never measured, so small cells were
    segmented on whole frames at 256 px and the input size stayed the model's)."""
    da = pytest.importorskip("dask.array")
    nuclei = make_timelapse(num_frames=2, shape=(768, 768), seed=900_002, radius_fraction=0.02)
    level0 = da.from_array(nuclei.image, chunks=(1, 256, 256))
    viewer, widget = open_widget(make_napari_viewer, tmp_path, monkeypatch)
    plain = viewer.add_image(nuclei.image, name="plain")
    widget.picker.size_combo.setCurrentText("auto")
    expected_size, expected_note = widget.picker.image_size(), widget.picker.size_note.text()
    assert expected_size is not None
    viewer.add_image([level0, level0[:, ::2, ::2], level0[:, ::4, ::4]], multiscale=True, name="pyramid")
    widget.image_combo.setCurrentText("pyramid")  # the user picks it
    assert widget.image_layer.name == "pyramid" and plain.name != widget.image_layer.name
    assert (widget.picker.image_size(), widget.picker.size_note.text()) == (expected_size, expected_note)
    ids = [i for i in np.unique(nuclei.labels[0]) if i and (nuclei.labels[0] == i).sum() > 100]
    x, y = click_point(nuclei.labels[0] == ids[0])
    widget.points_layer.add(np.array([[0, y, x]]))
    wait(qtbot, widget)
    assert widget.status.text().startswith("Done"), widget.status.text()
    assert widget.controller.object_window is not None  # small against the frame: a window around the nucleus
    assert widget.window_note.text() == f"→ {widget.controller.object_window} px"
    assert region_similarity(np.asarray(widget.labels_layer.data[0]) == 1, nuclei.labels[0] == ids[0]) > 0.8
