"""What the segmentation widget says and leaves behind for a new user's unusual inputs (findings 2, 8, 9 and 12 of
the stop-48 explorer): a first click or a seed that fails, frames thinner than 8 px, a click on a frame the stack does
not have, a (T, C, Y, X) layer whose channels are segmented as slices. Driven as a person does: a viewer, the widget from the manifest on the demo model,
clicks added to the clicks layer, buttons pressed, the worker awaited, the layers and the status line read."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("napari")
pytestmark = pytest.mark.gui

from widget_helpers import centre, open_widget, small_movie, wait  # noqa: E402

MASKLETS = "SAM2 masklets [cells]"


def test_a_failed_first_click_leaves_no_masklets_layer_and_keeps_the_click(make_napari_viewer, tmp_path,
                                                                           monkeypatch, qtbot):
    """Fault: the status said "Nothing was changed." but an empty masklets layer had been added for the click."""
    movie = small_movie(4, 7)
    stack = movie.image.astype(np.float32)
    stack[2, 0, 0] = np.nan
    viewer, w = open_widget(make_napari_viewer, tmp_path, monkeypatch, ("cells", stack))
    w.points_layer.add(np.array([[0, *centre(movie.labels[0], 1)]]))
    wait(qtbot, w)
    status = w.status.text()
    assert "frame 2 contains NaN" in status and "Nothing was changed" in status, status
    assert MASKLETS not in viewer.layers and w.labels_layer is None
    assert "removed" in status and "Segment current frame" in status, status  # what happened, how to go on
    assert len(w.points_layer.data) == 1  # the click stays, to be segmented once the image is fixed

    viewer.layers["cells"].data = np.nan_to_num(stack)  # the user fixes the image, then tries again
    w.segment_button.click()
    wait(qtbot, w)
    assert w.status.text().startswith("Done"), w.status.text()
    assert MASKLETS in viewer.layers and (viewer.layers[MASKLETS].data[0] == 1).any()


def test_a_refused_seed_adds_no_masklets_layer(make_napari_viewer, tmp_path, monkeypatch, qtbot):
    """Fault: 'Use labels as masks' on a frame where the chosen Labels layer has no label said "Not done" but left an
    empty masklets layer behind (it was made before the seed was read)."""
    movie = small_movie(4, 7)
    viewer, w = open_widget(make_napari_viewer, tmp_path, monkeypatch, ("cells", movie.image))
    seeds = np.zeros_like(movie.labels)
    seeds[3] = movie.labels[3]  # labels on the last frame only
    viewer.add_labels(seeds, name="seeds")
    w.image_combo.setCurrentText("cells")
    w.seed_combo.setCurrentText("seeds")
    viewer.dims.set_current_step(0, 0)
    w.seed_button.click()
    wait(qtbot, w)
    assert w.status.text() == "Not done: 'seeds' has no labels on frame 0", w.status.text()
    assert MASKLETS not in viewer.layers and w.labels_layer is None
    viewer.dims.set_current_step(0, 3)  # where it has labels, the seed works
    w.seed_button.click()
    wait(qtbot, w)
    assert w.status.text().startswith("Done"), w.status.text()
    plane, cells = viewer.layers[MASKLETS].data[3], movie.labels[3] > 0
    assert (plane > 0)[cells].mean() > 0.8, (plane > 0)[cells].mean()  # the seeded cells are masklets


@pytest.mark.parametrize("window", ["auto", "off"])
def test_frames_too_thin_are_refused_by_their_own_size(make_napari_viewer, tmp_path, monkeypatch, qtbot, window):
    """Fault: a click on 4 x 4000 px frames was refused naming a (4, 512) central crop the user never had (Object
    windows: auto), or gave empty masks and "Done" (off); each time an empty masklets layer was added."""
    strip = np.zeros((2, 4, 4000), np.uint16)
    strip[:, :, 1000:1100] = 1000
    viewer, w = open_widget(make_napari_viewer, tmp_path, monkeypatch, ("cells", strip))
    w.window_combo.setCurrentText(window)
    w.points_layer.add(np.array([[0, 2, 1050]], float))
    wait(qtbot, w)
    status = w.status.text()
    assert status.startswith("Not done: frames of 4 x 4000 px") and "at least 8 px" in status, status
    assert MASKLETS not in viewer.layers and len(w.points_layer.data) == 1


def test_a_click_on_a_frame_the_stack_lacks_names_the_frame_and_the_frames_it_has(make_napari_viewer, tmp_path,
                                                                                  monkeypatch, qtbot):
    """Fault: a click on frame 55 of 4 (or on frame -1) was removed "outside the image (the image has 96 rows and 96
    columns)", which sent the user looking at the wrong coordinates."""
    movie = small_movie(4, 7)
    viewer, w = open_widget(make_napari_viewer, tmp_path, monkeypatch, ("cells", movie.image))
    y, x = centre(movie.labels[0], 1)
    for frame in (55, -1):
        w.points_layer.add(np.array([[frame, y, x]], float))
        status = w.status.text()
        assert f"frame {frame} does not exist (the image has frames 0-3)" in status, status
        assert "rows" not in status and len(w.points_layer.data) == 0 and not w.busy()
    w.points_layer.add(np.array([[9, y, x], [0, 500.0, x]]))  # one on a missing frame, one below the rows
    status = w.status.text()
    assert "2 click(s)" in status and "frame 9 does not exist" in status and "1 lie(s) off its rows" in status, status
    assert len(w.points_layer.data) == 0 and MASKLETS not in viewer.layers


@pytest.mark.parametrize("channels, labels", [(2, None), (6, ("t", "c", "y", "x"))], ids=["short", "named c"])
def test_the_first_click_on_a_channel_like_axis_says_how_to_segment_per_channel(make_napari_viewer, tmp_path,
                                                                                 monkeypatch, qtbot, channels, labels):
    """Fault: on a (T, C, Y, X) layer the widget segmented C as a slice axis, like z, with no word: the mask was only on
    channel 0 and the user saw none on channel 1. Now the first click says so and names the fixes (a hint only)."""
    movie = small_movie(4, 7)
    stack = np.stack([movie.image] * channels, axis=1)
    monkeypatch.setenv("NAPARI_SAM2_SETTINGS", str(tmp_path / "settings.json"))
    viewer = make_napari_viewer()
    viewer.add_image(stack, name="cells", **({} if labels is None else {"axis_labels": labels}))
    _, w = open_widget(lambda: viewer, tmp_path, monkeypatch)
    shown = viewer.dims.current_step[1]  # a click lands on the channel the slider shows
    w.points_layer.add(np.array([[0, shown, *centre(movie.labels[0], 1)]]))
    wait(qtbot, w)
    status = w.status.text()
    assert status.startswith("Done"), status
    assert f"'Channel axis: axis 1 ({channels})'" in status and "Split Stack" in status, status
    assert "channel_axis=1" in status, status
    w.points_layer.add(np.array([[0, shown, *centre(movie.labels[0], 2)]]))  # said once: not on the next click
    wait(qtbot, w)
    assert w.status.text().startswith("Done") and "Split Stack" not in w.status.text(), w.status.text()

    viewer.add_image(np.stack([movie.image] * 6, axis=1), name="volume")  # 6 planes, no names: z, not channels
    w.image_combo.setCurrentText("volume")
    w.points_layer.add(np.array([[0, viewer.dims.current_step[1], *centre(movie.labels[0], 1)]]))
    wait(qtbot, w)
    assert w.status.text().startswith("Done") and "Split Stack" not in w.status.text(), w.status.text()

