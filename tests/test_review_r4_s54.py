"""Review R4 of s54 (commits e5233eb and 531cd6d), mended (M6).

* the cell-diameter rule: the default range (8-40 px) on a frame narrower than 40 px is cut without a word (it warned
  as if the person had given it); a range the person gave is said once per run (it warned on every frame detected:
  six napari pop-ups over six frames), as detector advice where the caller takes it (``on_advice``: batch's note);
  the Track all panel checks its Cell diameter boxes against the image before its run (refusing a range of which no
  cell fits, in the boxes' words, not the command line's) and says a cut in its status;
* boxes reach the model as drawn on napari's pixel edges through ``segment()`` (and the widget, prompts tables and
  session files: ``prompts.clip_to_frame``), not cut to the pixel centres 0..W-1;
* a time slice of a whole-movie result is made CTC-consistent again with its ``first_frame`` (refused since 531cd6d),
  and ``ctc_consistent`` takes ``first_frame``.

Behaviour runs the embedded demo model on small synthetic images; the box parity also runs Meta's predictor (the
oracle) with the same weights.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

import sam2_model as sm
from napari_sam2 import segment
from napari_sam2.prompts import FramePrompt, clip_to_frame
from sam2_model.seeding import blob_points
from sam2_model.tracking.ctc_io import read_ctc, write_ctc
from sam2_model.tracking.lineage import Lineage, Track, consistent_labels, ctc_consistent

CUT_24 = "is wider than the 24 x 64 px frame, 24 px across at its short side: cells of "


@pytest.fixture(scope="module")
def model():
    return sm.build_model("demo", device="cpu")


def strip_movie(frames: int = 6) -> np.ndarray:
    """(frames, 24, 64) float32: one bright blob moving right 2 px a frame (narrower than the default 40 px)."""
    yy, xx = np.mgrid[:24, :64]
    return np.stack([np.exp(-((yy - 12) ** 2 + (xx - 20 - 2 * t) ** 2) / 20.0) * 1000 + 50
                     for t in range(frames)]).astype(np.float32)


def range_warnings(caught) -> list:
    return [str(w.message) for w in caught if "is wider than the" in str(w.message)]


# ------------------------------------------------------------------ the cell-diameter rule

def test_the_default_range_is_cut_to_a_small_frame_without_a_word():
    """Before: blob_points(frame) on a 32 x 48 frame warned "cell_diameter 8-40 px is wider than the 32 x 48 px frame
    ... a maximum of at most 32 px (--cell-diameter MIN MAX; ...)", though nobody gave a range."""
    frame = np.zeros((32, 48), np.float32)
    frame[10:20, 10:20] = 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        found = blob_points(frame)
    np.testing.assert_array_equal(found, blob_points(frame, cell_diameter=(8, 32)))  # cut to the short side
    with pytest.warns(UserWarning, match="cell_diameter 10-40 px is wider than the 32 x 48 px frame"):
        blob_points(frame, cell_diameter=(10, 40))  # a range given: said


def test_a_given_range_wider_than_the_frames_is_said_once_a_run_and_the_default_not_at_all(model):
    """Six frames detected (redetect_every=1), napari's thread workers' filter ("always"). Before: six warnings for the
    default range and six for a range given, one per frame's blob search."""
    from napari_sam2 import track_cells

    movie = strip_movie()
    for given, expected in ((None, 0), ((10, 40), 1)):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result = track_cells(movie, model=model, device="cpu", redetect_every=1, cell_diameter=given)
        said = range_warnings(caught)
        assert len(result.frames_tracked) == 6
        assert len(said) == expected, said
    assert said[0].startswith("cell_diameter 10-40 px " + CUT_24 + "10-24 px are looked for"), said


def test_a_caller_that_takes_advice_gets_the_cut_range_once_and_no_warning(model):
    """track_cells(on_advice=) (batch's route: its note): the cut is advice, once, naming how the range is set. Before:
    on_advice never heard of it, and each frame gave a warning (batch printed them from dask's task code)."""
    from sam2_model.tracking import track_cells

    advice = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        track_cells(model, strip_movie(4), cell_diameter=(10, 40), redetect_every=1, on_advice=advice.append)
    assert range_warnings(caught) == []
    assert len(advice) == 1 and advice[0].startswith("cell_diameter 10-40 px " + CUT_24 + "10-24 px"), advice
    assert "(--cell-diameter MIN MAX; cell_diameter=(min, max))" in advice[0]


def _open_strip(make_napari_viewer, tmp_path, monkeypatch, diameter):
    from widget_helpers import open_widget, track_all_panel

    viewer, widget = open_widget(make_napari_viewer, tmp_path, monkeypatch, ("strip", strip_movie(2)))
    return widget, track_all_panel(widget, diameter=diameter, redetect=1)


@pytest.mark.gui
def test_the_panel_refuses_cell_diameter_boxes_no_cell_of_which_fits_before_its_run(make_napari_viewer, tmp_path,
                                                                                     monkeypatch, qtbot):
    """Boxes 30 to 40 px on 24 px high frames. Before: the run started and failed on its first frame's blob search
    with "Failed: cell_diameter 30-40 px ... (--cell-diameter MIN MAX; cell_diameter=(min, max))"."""
    from widget_helpers import wait_tracking

    widget, panel = _open_strip(make_napari_viewer, tmp_path, monkeypatch, (30, 40))
    panel.track_button.click()
    qtbot.waitUntil(lambda: panel.status.text().startswith(("Not tracked", "Failed", "Done")), timeout=120_000)
    wait_tracking(qtbot, widget)
    assert panel.status.text() == ("Not tracked: the Cell diameter boxes (30 to 40 px) are wider than this image's "
                                   "24 x 64 px frames, 24 px across: no cell of that range fits in them. Set both "
                                   "boxes to at most 24 px."), panel.status.text()
    assert not panel.current().tracking.history  # nothing ran
    assert not np.asarray(widget.labels_layer.data).any()


@pytest.mark.gui
@pytest.mark.parametrize("diameter", [(8, 40), (10, 40)])
def test_the_panel_says_its_cell_diameter_cut_to_the_image_once(make_napari_viewer, tmp_path, monkeypatch, qtbot,
                                                                diameter):
    """The boxes (the default 8-40, or 10-40) reach past 24 px high frames. Before: the status never said it (the
    default range was cut in a warning per frame naming command-line options, a range given the same)."""
    from widget_helpers import wait_tracking

    widget, panel = _open_strip(make_napari_viewer, tmp_path, monkeypatch, diameter)
    seen = []
    set_text = panel.status.setText
    panel.status.setText = lambda text: (seen.append(text), set_text(text))[1]
    panel.track_button.click()
    qtbot.waitUntil(lambda: any(text.startswith("Done") for text in seen), timeout=300_000)
    wait_tracking(qtbot, widget)
    low = f"{diameter[0]}"
    note = f"cell diameter {low}-40 px {CUT_24}{low}-24 px are looked for, those that fit"
    started = [text for text in seen if text.startswith("Tracking all cells from frame 0")]
    assert started and note in started[-1], seen
    final = panel.status.text()
    assert final.startswith("Done") and final.count(" is wider than ") == 1 and note in final, final
    assert "--cell-diameter" not in final


# ------------------------------------------------------------------ boxes on napari's pixel edges

def test_clip_to_frame_keeps_a_box_on_the_frames_pixel_edges():
    """Before: (-5, -3, 70, 40) on a 32 x 64 frame became (0, 0, 63, 31), the pixel centres."""
    prompt = FramePrompt(0, 1, box=np.array([-5, -3, 70, 40], np.float32))
    np.testing.assert_array_equal(clip_to_frame(prompt, 32, 64).box, [-0.5, -0.5, 63.5, 31.5])
    inside = FramePrompt(0, 1, box=np.array([-0.5, 2, 63.5, 31], np.float32))
    np.testing.assert_array_equal(clip_to_frame(inside, 32, 64).box, inside.box)  # as drawn, already on the frame
    clicks = FramePrompt(0, 1, points=np.array([[70.0, -3.0]], np.float32), labels=np.array([1], np.int32))
    assert clip_to_frame(clicks, 32, 64) is clicks  # clicks keep their own rule


def test_a_box_on_the_pixel_edges_reaches_the_model_through_segment_as_drawn(model):
    """segment() with a box drawn corner to corner (and one from the left edge to the bottom edge) gives the mask the
    session gives for that box, which is how Meta's SAM 2 takes it (our ImagePredictor and Meta's SAM2ImagePredictor
    with the same weights and features agree on it below). Before: segment() cut the box to the pixel centres
    (0..W-1) first, and its masks were the cut box's (3 px and 16 px different here)."""
    rng = np.random.default_rng(0)
    for size, box in ((32, (-0.5, -0.5, 31.5, 31.5)), (64, (-0.5, 5.0, 40.0, 63.5))):
        yy, xx = np.mgrid[:size, :size]
        r = 0.3 * size
        image = (np.exp(-(((yy - (size - 1) / 2) ** 2 + (xx - (size - 1) / 2) ** 2) / r ** 2) ** 2) * 200
                 + rng.integers(0, 40, (size, size))).astype(np.uint8)
        x0, y0, x1, y1 = box
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # (an empty-mask or model note is not what this checks)
            got = segment(image, boxes=[(0, y0, x0, y1, x1, 1)], model=model, object_window=None) == 1
        drawn = sm.VideoSession(model, image[None]).add_prompt(0, 1, box=box)[0] > 0
        cut = sm.VideoSession(model, image[None]).add_prompt(
            0, 1, box=(max(x0, 0), max(y0, 0), min(x1, size - 1), min(y1, size - 1)))[0] > 0
        assert drawn.any() and (drawn != cut).any()  # the case tells the two apart
        np.testing.assert_array_equal(got, drawn)


def test_our_predictor_takes_a_box_on_the_pixel_edges_as_metas_does(model):
    """The model level the plugin's boxes now reach: ImagePredictor and Meta's SAM2ImagePredictor, the demo model's
    weights in both, the same features: the same mask and logits for boxes on the pixel edges."""
    from oracle import reference_model, require_oracle
    from test_parity_image_predictor import _reference_predictor_class, _set_reference_features
    from sam2_model.frames import to_model_input, to_unit_rgb

    require_oracle()
    net = reference_model("demo")
    net.load_state_dict(model.state_dict(), strict=True)
    ours, theirs = sm.ImagePredictor(model), _reference_predictor_class()(net)
    image = np.random.default_rng(1).integers(0, 256, (48, 80, 3), dtype=np.uint8)
    ours.set_image(image)
    _set_reference_features(theirs, to_model_input(to_unit_rgb(image, None), model.image_size, mode="bilinear"),
                            (48, 80))
    for box in ((-0.5, -0.5, 79.5, 47.5), (-0.5, 5.0, 40.0, 47.5)):
        mask, _, logits = ours.predict(box=box, multimask=False)
        reference = theirs.predict(box=np.asarray(box, np.float32), multimask_output=False)
        np.testing.assert_array_equal(mask, reference[0] > 0)
        assert np.abs(logits - reference[2]).max() <= 1e-3 * np.abs(reference[2]).max()


# ------------------------------------------------------------------ a time slice of a whole-movie result

def whole_movie():
    """(labels (8, 32, 32), lineage): track 1 on frames 0-7; track 2 on frames 0-4, at the top edge (it left the
    field); track 3 on frames 0-1 only (lost before frame 3)."""
    labels = np.zeros((8, 32, 32), np.uint32)
    for t in range(8):
        labels[t, 10:16, 10:16] = 1
        if t <= 4:
            labels[t, 1:5, 20:24] = 2
        if t <= 1:
            labels[t, 20:26, 20:26] = 3
    return labels, Lineage([Track(1, 0, 7, 0, "end of stack"), Track(2, 0, 4, 0, "left the field"),
                            Track(3, 0, 1, 0, "lost")])


def test_a_time_slice_of_a_whole_movie_result_is_made_consistent_with_its_first_frame(tmp_path: Path):
    """Frames 3-7 of a whole-movie result, first_frame=3. Before (531cd6d): refused, "lineage track 1 spans frames
    0-7, outside the labels' 5 frames numbered 3-7 (first_frame=3) ... pass first_frame=result.first_frame"."""
    labels, lineage = whole_movie()
    expected = {1: (0, 4, "end of stack"), 2: (0, 1, "left the field")}  # track 3 has no pixels there: dropped
    _, table = consistent_labels(labels[3:], lineage, first_frame=3)
    assert {t.track_id: (t.begin, t.end, t.end_reason) for t in table.rows()} == expected
    copied, table = ctc_consistent(labels[3:], lineage, first_frame=3)
    np.testing.assert_array_equal(copied, labels[3:])
    assert {t.track_id: (t.begin, t.end, t.end_reason) for t in table.rows()} == expected
    write_ctc(tmp_path / "res", labels[3:], lineage, first_frame=3)
    _, back = read_ctc(tmp_path / "res")
    assert {t.track_id: (t.begin, t.end, t.end_reason) for t in back.rows()} == expected
    with pytest.raises(ValueError, match=r"outside the labels' 5 frames numbered 0-4 \(no first_frame\).*the "
                                         r"slice's first frame"):
        consistent_labels(labels[3:], lineage)  # the movie's numbers, unsaid: refused, saying what to pass
    with pytest.raises(ValueError, match=r"no lineage track has a frame among the labels' 5 frames numbered 20-24"):
        consistent_labels(labels[3:], lineage, first_frame=20)


def test_ctc_consistent_takes_the_first_frame_of_a_range_result():
    """A result of frames 5-12 (its lineage names the movie's frames). Before: ctc_consistent had no first_frame, and
    its refusal told the user to pass one."""
    labels = np.zeros((8, 32, 32), np.uint32)
    labels[:, 10:16, 10:16] = 1
    labels[:3, 1:5, 20:24] = 2
    lineage = Lineage([Track(1, 5, 12, 0, "end of stack"), Track(2, 5, 7, 0, "left the field")])
    _, table = ctc_consistent(labels, lineage, first_frame=5)
    assert {t.track_id: (t.begin, t.end, t.end_reason) for t in table.rows()} == {
        1: (0, 7, "end of stack"), 2: (0, 2, "left the field")}
    with pytest.raises(ValueError, match=r"pass first_frame=result.first_frame"):
        ctc_consistent(labels, lineage)


def test_divisions_judged_on_frames_narrower_than_the_range_do_not_fail_the_run():
    """Grid seeding takes any cell diameter range; its divisions are still moved back with the range's blob points.
    Before (review R6): on frames narrower than the range's minimum the blob search refused ("no cell of that range
    fits") after every frame was tracked; now those frames have no blob points and the necks alone decide."""
    from _helpers import dividing_cell
    from sam2_model.tracking.divisions import backdate_divisions

    labels, lineage = dividing_cell()  # the mother on frames 0-1, already two lobes on frame 1; the daughters from 2
    frames = labels.astype(np.float32)
    moved = backdate_divisions(labels, lineage, lambda f: frames[f], (20.0, 40.0), max_frames=2)
    assert moved >= 0
