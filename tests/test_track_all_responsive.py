"""Track all stays responsive (real demo model; real napari under xvfb-run for the panel): its steps come inside a
frame too, so Cancel stops a run within a frame and leaves that frame as it was; the lineage Tracks layer is updated
in place at the end of a run or edit (its name, display settings and the selection stay); the Delete track status
line reads as a sentence."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from _helpers import small_movie_fixture
from napari_sam2.track_all import WORK_TOTAL, TrackAll, TrackAllOptions
from widget_helpers import open_widget, track_all_panel, wait_tracking

FRAMES = 4
movie = small_movie_fixture(FRAMES, 11)


@pytest.fixture(scope="module")
def model():
    import sam2_model as sm

    return sm.build_model("demo", checkpoint="download", image_size=128)


def test_a_run_closed_inside_a_frame_leaves_that_frame_as_before(model, movie) -> None:
    """Fault: a tracking run yielded once per frame (a detection frame of the MSC time-lapse takes 20-30 s on 2
    cores), so Cancel waited up to a whole frame. Now "work" steps come between the pieces of model work inside a
    frame; closed after one (what Cancel does), the run stops there: the frames before are written whole, the frame
    it was in and the later ones are as before, the lineage spans the frames written, and Undo reverts the run."""
    labels = np.zeros(movie.image.shape, np.uint32)
    labels[:, :6, :6] = 77  # something the person painted on every frame
    before = labels.copy()
    tracking = TrackAll(labels, FRAMES)
    steps = tracking.track(model, movie.image, 0, TrackAllOptions("blobs", (6.0, 24.0), 2, False))
    seen = []
    for kind, frame, done, total in steps:
        seen.append((kind, frame, done, total))
        if kind == "work" and frame == 1:
            break
    steps.close()
    kinds = [(kind, frame) for kind, frame, _, _ in seen]
    assert kinds[0] == ("plan", 0) and kinds.count(("frame", 0)) == 1 and ("frame", 1) not in kinds, kinds
    work = [(frame, done, total) for kind, frame, done, total in seen if kind == "work"]
    assert [f for f, _, _ in work if f == 0] and all(total == WORK_TOTAL and 0 <= done <= total for _, done, total
                                                     in work), work
    zero = [done for frame, done, _ in work if frame == 0]
    assert zero == sorted(zero), zero  # the share of the frame done never goes down
    assert tracking.history[-1].frames == [0]
    assert labels[0].any() and not np.array_equal(labels[0], before[0])
    np.testing.assert_array_equal(labels[1:], before[1:])  # the frame it was in is untouched, and the later ones
    assert len(tracking.lineage) and all(row.begin == row.end == 0 for row in tracking.lineage.rows())
    tracking.undo()
    np.testing.assert_array_equal(labels, before)


@pytest.mark.gui
def test_cancel_after_the_first_step_inside_a_frame_leaves_it_untouched(make_napari_viewer, tmp_path, monkeypatch,
                                                                          movie, qtbot):
    """The panel's Cancel, pressed once the first step inside frame 0 is shown (the run held there until it is
    pressed, so nothing depends on timing), stops the run before frame 0 is written: nothing changed. That step moved
    the bar's text and the status line (the bar itself counts whole frames). Fault (E2): till the worker's next step
    (20 s on real cells) the status still read "Tracking frame 0: 23%…" and Cancel could be pressed again; now it says
    "Cancelling…" at once, the step that comes after keeps it, and both Cancel buttons are off."""
    real = TrackAll.track
    pressed = threading.Event()

    def held(self, *args, **kwargs):  # the real run, held after its first "work" step until Cancel is pressed
        for step in real(self, *args, **kwargs):
            yield step
            if step[0] == "work":
                assert pressed.wait(60), "Cancel was not pressed"

    monkeypatch.setattr(TrackAll, "track", held)
    viewer, widget = open_widget(make_napari_viewer, tmp_path, monkeypatch, ("cells", movie.image))
    panel = track_all_panel(widget)
    panel.track_button.click()
    qtbot.waitUntil(lambda: panel.status.text().startswith("Tracking frame 0:"), timeout=120_000)
    assert "(frame 0:" in panel.progress.format() and panel.progress.value() == 0, panel.progress.format()
    seen = []  # the status line right after each later step reached the panel (its own slot runs first)
    panel.worker.yielded.connect(lambda step: seen.append(panel.status.text()))
    panel.cancel_button.click()
    assert panel.status.text() == "Cancelling… (stops after the current model call)", panel.status.text()
    assert not panel.cancel_button.isEnabled() and not widget.cancel_button.isEnabled()
    pressed.set()
    wait_tracking(qtbot, widget)
    assert seen and set(seen) == {"Cancelling… (stops after the current model call)"}, seen
    assert panel.status.text() == "Cancelled: nothing changed (the labels are as they were).", panel.status.text()
    assert not widget.labels_layer.data.any() and not panel.current().tracking.history
    assert panel.progress.format() == "%p%"


@pytest.mark.gui
def test_the_lineage_layer_is_updated_in_place_and_delete_says_what_it_did(make_napari_viewer, tmp_path, monkeypatch,
                                                                             movie, qtbot):
    """Fault: the end of every run and edit removed the lineage Tracks layer and added a new one (0.3 s on napari's
    GUI thread on MSC; the person's tail length, colormap, name and selection were lost), and Delete track said
    "Done: deleted track 1 on frames 0-2 were changed; ...". Now the layer is updated in place; where its axes change
    it is made anew with the person's settings, in the selection where it was."""
    viewer, widget = open_widget(make_napari_viewer, tmp_path, monkeypatch, ("cells", movie.image))
    panel = track_all_panel(widget)
    panel.track_button.click()
    wait_tracking(qtbot, widget)
    entry = panel.current()
    layer = entry.tracks
    assert layer is not None and len(entry.tracking.lineage) >= 2, panel.status.text()
    layer.name, layer.tail_length, layer.colormap = "my lineage", 7, "viridis"
    image = viewer.layers["cells"]
    viewer.layers.selection.active = image  # the person works on another layer
    first = entry.tracking.lineage.rows()[0].track_id

    panel.track_spin.setValue(first)
    panel.delete_button.click()
    wait_tracking(qtbot, widget)
    assert entry.tracks is layer and layer in viewer.layers
    assert first not in set(layer.data[:, 0].astype(int)) and set(layer.data[:, 0].astype(int))
    assert (layer.name, layer.tail_length, layer.colormap) == ("my lineage", 7, "viridis")
    assert viewer.layers.selection.active is image and layer not in viewer.layers.selection
    frames = sorted(set(entry.tracking.history[-1].frames))  # the frames the delete wrote (the track's)
    assert frames == list(range(frames[0], frames[-1] + 1)), frames
    span = f"frame {frames[0]}" if len(frames) == 1 else f"frames {frames[0]}-{frames[-1]}"
    lineage = entry.tracking.lineage
    assert panel.status.text() == (
        f"Done: deleted track {first} on {span}; now {len(lineage)} track(s), {len(lineage.divisions())} "
        "division(s). 'Undo tracking step' restores it."), panel.status.text()

    viewer.layers.selection.active = layer
    image.scale = (1.0, 2.0, 2.0)  # the image's pixel size changed: the lineage layer follows it at once, in place
    assert entry.tracks is layer and layer in viewer.layers and tuple(layer.scale) == (1.0, 2.0, 2.0)
    again = panel.update_tracks_layer(entry, entry.tracking.tracks_data(panel.widget_ids(entry.image)))
    assert again is layer and tuple(again.scale) == (1.0, 2.0, 2.0)
    assert (layer.name, layer.tail_length, layer.colormap) == ("my lineage", 7, "viridis")
    assert viewer.layers.selection.active is layer
