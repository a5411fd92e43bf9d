"""Object ids and the objects panel when "Track all cells" meets the segmentation widget's own objects, driven as a
person would (real viewer, the widget opened through the manifest, clicks added, buttons pressed, workers awaited,
the embedded demo model): the panel shows what the labels hold after tracking replaced an object, a typed or seeded
id never takes a tracked cell's id, and Track all's exports hold the cells it tracked only."""

from __future__ import annotations

import csv

import numpy as np
import pytest

pytest.importorskip("napari")
pytestmark = pytest.mark.gui

from sam2_model.evaluation import click_point  # noqa: E402
from sam2_model.synthetic import make_timelapse  # noqa: E402

from widget_helpers import open_widget, track_all_panel  # noqa: E402
from widget_helpers import wait_tracking as wait  # noqa: E402

FRAMES = 5


@pytest.fixture(scope="module")
def movie():
    return make_timelapse(num_frames=FRAMES, shape=(96, 96), num_cells=5, seed=1, divisions=False)


@pytest.fixture
def opened(make_napari_viewer, tmp_path, monkeypatch, movie):
    viewer, w = open_widget(make_napari_viewer, tmp_path, monkeypatch, ("cells", movie.image))
    return viewer, w, track_all_panel(w, seeding="blobs")


def track_from(qtbot, w, panel, frame):
    w.viewer.dims.set_current_step(0, frame)
    panel.track_button.click()
    wait(qtbot, w)
    assert panel.status.text().startswith("Done"), panel.status.text()


def present(w, obj_id):
    return next(row.present for row in w.objects.rows if row.obj_id == obj_id)


def test_the_objects_panel_shows_what_the_labels_hold_after_tracking_and_exports_hold_the_tracks(
        opened, qtbot, movie, tmp_path):
    viewer, w, panel = opened
    x, y = click_point(movie.labels[0] == 1)
    w.points_layer.add(np.array([[0, y, x]], float))  # the widget's object 1
    wait(qtbot, w)
    w.forward_button.click()
    wait(qtbot, w)
    assert present(w, 1) == tuple(range(FRAMES))

    track_from(qtbot, w, panel, 2)  # frames 2-4 are replaced whole: object 1 is gone there
    labels = w.labels_layer.data
    assert (labels[:2] == 1).any() and not (labels[2:] == 1).any()
    assert present(w, 1) == (0, 1)  # the panel says what the labels hold
    column = [w.objects.table.item(i, 0).text() for i in range(w.objects.table.rowCount())].index("1")
    assert "Replaced by 'Track all cells' on frames 2-4" in w.objects.table.item(column, 1).toolTip()

    # Track all's exports and lineage describe the cells it tracked, not the widget's object 1
    tracks = set(np.unique(labels[2:]).tolist()) - {0}
    assert tracks and 1 not in tracks
    table = panel.export("tracks", str(tmp_path / "tracks.csv"))
    with open(table) as handle:
        exported = {int(row["track_id"]) for row in csv.DictReader(handle)}
    assert exported == tracks
    import tifffile

    written = tifffile.imread(panel.export("labels", str(tmp_path / "tracked.tif")))
    assert set(np.unique(written).tolist()) - {0} == tracks and not written[:2].any()
    assert set(np.unique(panel.images[w.image_layer.unique_id].tracks.data[:, 0]).astype(int).tolist()) == tracks
    assert "widget's own 'Export labels'" in panel.export_buttons["ctc"].toolTip()

    panel.undo_button.click()  # the tracking run is undone: object 1 is back on every frame, and in the panel
    assert (w.labels_layer.data[2:] == 1).any(axis=(1, 2)).all()
    assert present(w, 1) == tuple(range(FRAMES))


def test_a_typed_or_seeded_id_of_a_tracked_cell_moves_to_a_free_id(opened, qtbot, movie):
    viewer, w, panel = opened
    track_from(qtbot, w, panel, 0)
    tracked = w.labels_layer.data.copy()
    tracks = sorted(set(np.unique(tracked).tolist()) - {0})
    assert len(tracks) >= 3

    # typing a tracked cell's id: refused, moved above the tracks, and the status says which id is taken
    w.object_spin.setValue(tracks[1])
    assert w.object_spin.value() > max(tracks)
    text = panel.status.text()
    assert f"Object id {tracks[1]} is taken by a cell" in text and f"moved to {w.object_spin.value()}" in text
    assert "Free ids:" in text and f"{max(tracks) + 1} and above" in text

    # seeding from labels whose ids are tracked cells: those move to free ids, a free seeded id stays the user's
    seeds = np.zeros_like(tracked)
    for old in tracks[:2]:
        seeds[0][tracked[0] == old] = old
    free = max(tracks) + 50
    x, y = (int(v) for v in click_point(movie.labels[0] == 1))
    seeds[0][max(y - 2, 0):y + 3, max(x - 2, 0):x + 3] = free
    viewer.add_labels(seeds, name="seeds")
    w.seed_combo.setCurrentText("seeds")
    w.seed_button.click()
    wait(qtbot, w)
    objects = set(w.controller.obj_ids)
    assert free in objects and not objects & set(tracks), (objects, tracks)
    assert len(objects) == 3
    assert all(f"{old}" in panel.status.text() for old in tracks[:2]) and "Free ids:" in panel.status.text()
    # the tracks keep every pixel (seeded masks over a track paint on background only)
    after = w.labels_layer.data
    assert np.array_equal(after[tracked > 0], tracked[tracked > 0])

    # Relabel… to a tracked cell's id is refused, naming the free ids; nothing changes
    with pytest.raises(ValueError, match=rf"new_id {tracks[0]} is taken by a cell .*free ids: .*and above"):
        w.relabel_object(free, tracks[0])
    assert set(w.controller.obj_ids) == objects


def test_a_click_made_during_track_all_is_segmented_when_it_ends(opened, qtbot, movie):
    """A click on the canvas while 'Track all cells' runs waits for the run (the widget is busy), then is segmented
    (it waited for ever: nothing segmented it once tracking ended)."""
    viewer, w, panel = opened
    panel.track_button.click()
    qtbot.waitUntil(lambda: panel.worker is not None, timeout=60_000)
    assert w.busy()
    x, y = click_point(movie.labels[0] == 2)
    w.points_layer.add(np.array([[0, y, x]], float))
    obj = int(w.points_layer.features["obj_id"].iloc[-1])
    wait(qtbot, w)
    qtbot.waitUntil(lambda: not w.busy() and w.controller is not None and obj in w.controller.obj_ids,
                    timeout=60_000)
    assert (w.labels_layer.data[0] == obj).any()
