"""Save / load a session of a (T, Z, Y, X) image whose z slices each have a session of their own, driven as a person
would (real viewer, the widget opened through the manifest, "Use labels as masks" on two z slices, Save session,
Load session, workers awaited, the embedded demo model); and the file format's versions."""

from __future__ import annotations

import json

import numpy as np
import pytest

from napari_sam2.session_file import SessionRecord, read_session, write_session


def record(**extra) -> SessionRecord:
    return SessionRecord((3, 2, 32, 32), np.zeros((0, 4)), [], [], np.zeros((0, 4, 4)), [], **extra)


def test_masks_keep_their_slice_and_version_1_files_still_load(tmp_path):
    eye = np.eye(32, dtype=bool)
    path = write_session(tmp_path / "s", record(masks={}, slice_masks={((1, 0),): {(0, 1): eye},
                                                                       ((1, 1),): {(0, 11): ~eye, (2, 12): eye}}))
    back = read_session(path)
    assert back.masks == {} and set(back.slice_masks) == {((1, 0),), ((1, 1),)}
    assert sorted(back.slice_masks[((1, 1),)]) == [(0, 11), (2, 12)]
    np.testing.assert_array_equal(back.slice_masks[((1, 1),)][(0, 11)], ~eye)
    with np.load(path) as data:
        assert json.loads(str(data["meta"][()]))["version"] == 2

    # a version 1 file (keys without a slice) loads as before: its masks belong to no slice
    with np.load(path) as data:
        arrays = {name: data[name] for name in data.files}
    meta = json.loads(str(arrays["meta"][()]))
    meta.update(version=1, mask_keys=[[0, 1], [0, 11], [2, 12]])
    arrays["meta"] = np.array(json.dumps(meta))
    old = tmp_path / "old.sam2.npz"
    np.savez_compressed(old, **arrays)
    back = read_session(old)
    assert sorted(back.masks) == [(0, 1), (0, 11), (2, 12)] and back.slice_masks == {}

    meta.update(version=2, mask_keys=[[0, 1], [0, 11], [2, 12, [[7, 0]]]])
    arrays["meta"] = np.array(json.dumps(meta))
    np.savez_compressed(old, **arrays)
    with pytest.raises(ValueError, match=r"damaged .*distinct axes in 0\.\.3"):
        read_session(old)


pytest.importorskip("napari")
from widget_helpers import open_widget, wait  # noqa: E402
from sam2_model.synthetic import make_timelapse  # noqa: E402


@pytest.mark.gui
def test_every_z_slice_keeps_its_seeded_masks_through_save_and_load(make_napari_viewer, tmp_path, monkeypatch,
                                                                    qtbot):
    movie = make_timelapse(num_frames=3, shape=(64, 64), num_cells=3, seed=3, divisions=False, enter_leave=False,
                           radius_fraction=0.12)
    stack = np.stack([movie.image] * 2, axis=1)  # (T, Z=2, Y, X)
    viewer, w = open_widget(make_napari_viewer, tmp_path, monkeypatch, ("tz", stack))
    seeds = np.zeros((3, 2, 64, 64), np.uint32)
    seeds[0, 0] = np.where(movie.labels[0] == 1, 1, 0)
    seeds[0, 1] = np.where(movie.labels[0] == 2, 12, 0)
    viewer.add_labels(seeds, name="seeds")
    w.seed_combo.setCurrentText("seeds")
    for z in (0, 1):  # "Use labels as masks" on frame 0 of z=0, then of z=1: each slice has its own session
        viewer.dims.set_current_step(0, 0)
        viewer.dims.set_current_step(1, z)
        w.seed_button.click()
        wait(qtbot, w)
    masks = {key[1]: dict(c.mask_prompts) for key, c in w.states[w.image_layer.unique_id].sessions.items()}
    assert set(masks) == {((1, 0),), ((1, 1),)} and set(masks[((1, 0),)]) == {(0, 1)}

    path = w.save_session(str(tmp_path / "tz"))
    saved = read_session(path)
    assert {k: sorted(v) for k, v in saved.slice_masks.items()} == {((1, 0),): [(0, 1)], ((1, 1),): [(0, 12)]}

    # load while z=1 is shown: both slices get their sessions and masks back, and both are segmented again
    w.load_session(str(path))
    qtbot.waitUntil(lambda: not w.busy() and not w._deferred and (w.labels_layer.data[0, 0] == 1).any(),
                    timeout=120_000)
    wait(qtbot, w)
    sessions = w.states[w.image_layer.unique_id].sessions
    assert {key[1]: sorted(c.mask_prompts) for key, c in sessions.items()} == {((1, 0),): [(0, 1)],
                                                                             ((1, 1),): [(0, 12)]}
    labels = w.labels_layer.data
    assert set(np.unique(labels[0, 0]).tolist()) == {0, 1} and set(np.unique(labels[0, 1]).tolist()) == {0, 12}
