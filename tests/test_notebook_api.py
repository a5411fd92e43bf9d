"""The console API as a notebook analyst uses it (explorer X8, s52): a model built once and reused, a
per-object-per-frame table, stopping a long tracking run and keeping its frames, option names checked up front,
prompts read from a DataFrame, and result types that describe themselves. Real demo model, small synthetic movies."""

from __future__ import annotations

import threading

import numpy as np
import pytest

import napari_sam2
import napari_sam2.api as api
import sam2_model as sm
from sam2_model.evaluation import click_point, clickable_objects
from sam2_model.synthetic import make_timelapse


@pytest.fixture(scope="module")
def movie():
    return make_timelapse(num_frames=5, shape=(128, 128), num_cells=5, seed=900_077)


@pytest.fixture(scope="module")
def net():
    return sm.build_model("demo", device="cpu")


@pytest.fixture(scope="module")
def clicks(movie):
    rows = []
    for obj_id in clickable_objects(movie.labels[0])[:2]:
        x, y = click_point(movie.labels[0] == obj_id)
        rows.append((0, y, x, 1, obj_id))
    return rows


@pytest.fixture
def no_build(monkeypatch):
    """A built model is used as it is: building another fails the test."""

    def tripwire(*args, **kwargs):
        raise AssertionError("build_model was called although a built model was given")

    monkeypatch.setattr(api.sm, "build_model", tripwire)
    monkeypatch.setattr(sm, "build_model", tripwire)


# ---------------------------------------------------------------- finding 1: a model built once
def test_segment_uses_a_built_model_as_it_is(movie, clicks, net, monkeypatch):
    by_name = napari_sam2.segment(movie.image, clicks, device="cpu")

    def tripwire(*args, **kwargs):
        raise AssertionError("build_model was called although a built model was given")

    monkeypatch.setattr(api.sm, "build_model", tripwire)
    reused = napari_sam2.segment(movie.image, clicks, model=net)
    np.testing.assert_array_equal(reused, by_name)


def test_track_cells_uses_a_built_model_as_it_is(movie, net, no_build):
    result = napari_sam2.track_cells(movie.image[:2], model=net)
    assert result.labels.shape == (2, 128, 128) and len(result.lineage) > 0


@pytest.mark.parametrize("call", ["segment", "track_cells"])
def test_a_wrong_model_is_a_short_type_error(movie, clicks, call):
    run = (lambda m: napari_sam2.segment(movie.image, clicks, model=m)) if call == "segment" else (
        lambda m: napari_sam2.track_cells(movie.image, model=m))
    with pytest.raises(TypeError, match="model must be a preset name") as error:
        run(3.5)
    assert "float" in str(error.value) and len(str(error.value)) < 300


def test_a_built_model_is_not_rebuilt_with_other_weights_or_size(movie, clicks, net, no_build):
    with pytest.raises(ValueError, match="a model already built keeps") as error:
        napari_sam2.segment(movie.image, clicks, model=net, image_size=512)
    assert "image_size=512" in str(error.value)
    with pytest.raises(ValueError, match="checkpoint='random'"):
        napari_sam2.track_cells(movie.image, model=net, checkpoint="random")


def test_build_model_of_a_model_names_its_type_not_its_repr(net):
    with pytest.raises(TypeError) as error:
        sm.build_model(net)
    message = str(error.value)
    assert "SAM2Model" in message and "image_encoder" not in message and len(message) < 400


# ---------------------------------------------------------------- finding 2: stop and keep the frames done
def test_stop_returns_the_frames_done(movie, net):
    stop = threading.Event()

    def progress(done, total):
        if done == 2:
            stop.set()

    result = napari_sam2.track_cells(movie.image, model=net, progress=progress, stop=stop)
    assert result.frames_tracked == [0, 1]
    assert result.labels.shape == movie.image.shape
    assert result.labels[:2].any() and not result.labels[2:].any()
    assert "stopped" in result.note and "after frame 1" in result.note and "2 of 5" in result.note
    assert all(row.end <= 1 for row in result.lineage.rows())


def test_ctrl_c_keeps_the_frames_done_on_the_exception(movie, net):
    def progress(done, total):
        if done == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt) as error:
        napari_sam2.track_cells(movie.image, model=net, progress=progress)
    result = error.value.result
    assert result.frames_tracked == [0, 1] and result.labels[:2].any() and not result.labels[2:].any()
    assert "interrupted" in result.note


def test_stop_inside_a_frame_leaves_that_frame_out(movie, net):
    works = []

    def on_work(frame, fraction):
        works.append(frame)

    result = napari_sam2.track_cells(movie.image, model=net, on_work=on_work, stop=lambda: 2 in works)
    assert result.frames_tracked == [0, 1] and not result.labels[2:].any()
    assert "after frame 1: 2 of 5 frames" in result.note


def test_on_work_reports_inside_the_first_frame(movie, net):
    seen = []
    result = napari_sam2.track_cells(movie.image[:2], model=net, on_work=lambda t, f: seen.append(("work", t, f)),
                                     progress=lambda done, total: seen.append(("frame", done, total)))
    assert seen[0][0] == "work" and seen[0][1] == 0  # before frame 0 is done
    first = [f for kind, t, f in seen if kind == "work" and t == 0]
    assert all(0.0 <= f <= 1.0 for f in first) and first == sorted(first)
    assert result.frames_tracked == [0, 1] and result.note == ""


def test_stop_must_be_an_event_or_a_function(movie):
    with pytest.raises(ValueError, match="stop must be a threading.Event or a function"):
        napari_sam2.track_cells(movie.image, stop=5)


# ---------------------------------------------------------------- finding 3: a per-object-per-frame table
@pytest.fixture(scope="module")
def tracked(movie, net):
    return napari_sam2.track_cells(movie.image[:3], device="cpu")


def test_measure_is_public_and_its_columns_are_numeric(movie, tracked):
    pd = pytest.importorskip("pandas")
    from napari_sam2.export import COLUMNS

    table = pd.DataFrame(napari_sam2.measure(tracked.labels, movie.image[:3]))
    assert list(table.columns) == COLUMNS and len(table) > 0
    assert all(pd.api.types.is_numeric_dtype(table[c]) for c in COLUMNS)
    assert table["check"].isna().all() and table["object_score"].isna().all()  # not known for automatic tracking
    ids = {row.track_id for row in tracked.lineage.rows()}
    assert set(table["obj_id"]) == ids
    first = table[(table.frame == 0)].iloc[0]
    mask = tracked.labels[0] == first.obj_id
    assert first.area == mask.sum() and first.mean_intensity == pytest.approx(movie.image[0][mask].mean())


def test_measure_takes_the_result_and_a_scale(movie, tracked):
    plain = napari_sam2.measure(tracked, movie.image[:3])
    scaled = napari_sam2.measure(tracked, movie.image[:3], scale=(5, 0.5, 0.25), time_unit="minute",
                                 length_unit="micrometer")
    assert [r["area"] for r in plain] == [r["area"] for r in scaled]
    row = scaled[-1]
    assert row["time"] == 5 * row["frame"] and row["time_unit"] == "minute" and row["length_unit"] == "micrometer"
    assert row["area_scaled"] == pytest.approx(row["area"] * 0.125)
    assert row["centroid_x_scaled"] == pytest.approx(row["centroid_x"] * 0.25)
    with pytest.raises(ValueError, match="image must have the labels' shape"):
        napari_sam2.measure(tracked, movie.image[:2])
    one = napari_sam2.measure(tracked.labels[0], movie.image[0])  # a single (Y, X) image is frame 0
    assert [(r["obj_id"], r["area"], r["mean_intensity"]) for r in one] == [
        (r["obj_id"], r["area"], r["mean_intensity"]) for r in plain if r["frame"] == 0]


# ---------------------------------------------------------------- finding 5: sam2_model.track_cells's options
def test_sam2_model_track_cells_checks_option_names_before_reading_frames(net, tmp_path):
    missing = tmp_path / "not_read.tif"  # never opened: the options are checked first
    with pytest.raises(TypeError, match="smooth prepares the frames") as error:
        sm.track_cells(net, missing, smooth=8)
    assert "FrameSource(frames, image_size=model.image_size, smooth=" in str(error.value)
    assert "napari_sam2.track_cells" in str(error.value)
    with pytest.raises(TypeError, match=r"min_contrst \(did you mean min_contrast\?\)") as error:
        sm.track_cells(net, missing, min_contrst=0.5)
    assert "pred_iou_thresh" in str(error.value) and "AutomaticMaskGenerator" not in str(error.value)


def test_a_frame_source_of_another_size_is_refused_with_the_fix(movie, net):
    with pytest.raises(ValueError, match=r"make it with FrameSource\(\.\.\., image_size=model.image_size\)"):
        sm.track_cells(net, sm.FrameSource(movie.image, smooth=2))  # FrameSource's default: 1024 px


def test_invert_needs_an_inverting_frame_source(movie, net):
    with pytest.raises(ValueError, match="FrameSource given does not invert"):
        sm.track_cells(net, sm.FrameSource(movie.image, image_size=net.image_size), invert=True)


# ---------------------------------------------------------------- finding 6: prompts from a DataFrame
def test_segment_reads_a_dataframe_by_its_column_names(movie, clicks, tmp_path):
    pd = pytest.importorskip("pandas")
    from napari_sam2.prompts_csv import read_prompts

    x0, y0 = click_point(movie.labels[0] == clicks[0][4])
    rows = [{"frame": f, "obj_id": o, "y": y, "x": x, "label": lab, "y1": None, "x1": None}
            for f, y, x, lab, o in clicks[1:]]
    box = (clicks[0][1] - 4, clicks[0][2] - 4, clicks[0][1] + 4, clicks[0][2] + 4)
    rows.append({"frame": 0, "obj_id": clicks[0][4], "y": box[0], "x": box[1], "label": None, "y1": box[2],
                 "x1": box[3]})
    path = tmp_path / "prompts.csv"
    pd.DataFrame(rows).to_csv(path, index=False)  # as the CLI reads it: frame,obj_id,y,x,label,y1,x1
    table = pd.read_csv(path)[["x", "label", "y", "obj_id", "frame", "y1", "x1"]]  # any order
    from_table = napari_sam2.segment(movie.image, clicks=table, device="cpu")
    read_clicks, read_boxes = read_prompts(path)
    from_rows = napari_sam2.segment(movie.image, clicks=read_clicks, boxes=read_boxes, device="cpu")
    np.testing.assert_array_equal(from_table, from_rows)
    assert set(np.unique(from_table)) == {0, clicks[0][4], clicks[1][4]}


def test_a_dataframe_without_the_names_is_refused_with_them(movie):
    pd = pytest.importorskip("pandas")
    table = pd.DataFrame([(0, 10, 12, 1, 1)], columns=["t", "row", "col", "positive", "cell"])
    with pytest.raises(ValueError, match=r"clicks: a table is read by its column names, frame,obj_id,y,x"):
        napari_sam2.segment(movie.image, clicks=table)
    bad = pd.DataFrame([{"frame": 0, "obj_id": 1, "y": 10, "x": 12, "label": 99}])
    with pytest.raises(ValueError, match="clicks row 0: label must be 1 .positive. or 0"):
        napari_sam2.segment(movie.image, clicks=bad)


# ---------------------------------------------------------------- finding 8: results that describe themselves
def test_tracking_result_describes_itself_without_its_labels(tracked):
    from sam2_model.tracking import Track, TrackingResult
    from sam2_model.tracking.lineage import END_REASONS

    text = repr(tracked)
    assert text.startswith("TrackingResult(labels=3x128x128 uint32, ") and "tracks" in text and len(text) < 300
    assert "[[" not in text  # no array printed
    for reason in END_REASONS:
        assert f'"{reason}"' in Track.__doc__
    for name in ("labels", "lineage", "frames_tracked", "note", "uint32"):
        assert name in TrackingResult.__doc__
