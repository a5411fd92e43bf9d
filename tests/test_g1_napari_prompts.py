"""Clicks made in the widget reused on the command line and in scripts (G1, session s55): napari's File > Save
Selected Layers writes the "SAM2 clicks" layer as ``index,axis-0,axis-1,axis-2,positive,obj_id`` (the layer's data
coordinates, the image's pixels whatever its scale; ``positive`` as 1.0 / 0.0), which ``napari-sam2 track --prompts``
and ``segment(clicks=pandas.read_csv(...))`` refused ("the header must name at least frame,obj_id,y,x ..."); napari's
CSV of the boxes layer holds no obj_id (napari writes no features of a Shapes layer), read once a column obj_id is
added; layers of more axes are refused naming the columns to rename. And ``evaluate`` of a cropped result against the
whole field's ground truth said sklearn's "Found input variables with inconsistent numbers of samples".

The round trip runs the widget on the embedded demo model (clicks added to its layer, Propagate pressed, workers
awaited), napari's own writer, and the command line and ``segment()`` on the same model and input size."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import tifffile

from napari_sam2.prompts_csv import prompts_from_table, read_prompt_lines, read_prompts

SCALE, TRANSLATE = (5.0, 0.65, 0.65), (0.0, 10.0, 20.0)


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.mark.gui
def test_clicks_saved_from_the_widget_by_napari_give_the_widget_s_masks_on_the_command_line_and_in_segment(
        make_napari_viewer, tmp_path, monkeypatch, qtbot, capsys):
    pytest.importorskip("napari")
    pd = pytest.importorskip("pandas")
    from widget_helpers import WIDGET, centre, click_and_propagate, small_movie

    import napari_sam2
    from napari_sam2.cli import main

    movie = small_movie(4, 11)
    monkeypatch.setenv("NAPARI_SAM2_SETTINGS", str(tmp_path / "settings.json"))
    viewer = make_napari_viewer()
    viewer.add_image(movie.image, name="cells", scale=SCALE, translate=TRANSLATE)  # micrometres and minutes
    _, w = viewer.window.add_plugin_dock_widget(*WIDGET)
    w.model_combo.setCurrentText("demo")
    w.checkpoint_combo.setCurrentText("embedded (demo)")
    w.size_spin.setValue(128)
    w.image_combo.setCurrentText("cells")
    click_and_propagate(w, qtbot, movie, (1, 2))  # two cells on frame 0, as objects 1 and 2, Propagate ▶: "Done"
    widget_masks = np.asarray(w.labels_layer.data).copy()
    assert set(np.unique(widget_masks)) == {0, 1, 2}

    viewer.layers.selection = {w.points_layer}
    saved = viewer.layers.save(str(tmp_path / "clicks.csv"), selected=True)  # File > Save Selected Layers
    path = Path(saved[0])
    header = path.read_text().splitlines()[0]
    assert header == "index,axis-0,axis-1,axis-2,positive,obj_id", header
    clicks, boxes = read_prompts(path)  # before: "the header must name at least frame,obj_id,y,x ...; missing ..."
    expected = [(0, *centre(movie.labels[0], cell), 1, cell) for cell in (1, 2)]  # pixels, not micrometres
    assert (clicks, boxes) == (expected, [])

    stack = tmp_path / "stack.tif"
    tifffile.imwrite(stack, movie.image, photometric="minisblack")
    out = tmp_path / "labels.tif"
    code = main(["track", str(stack), "--prompts", str(path), "-o", str(out), "--model", "demo", "--checkpoint",
                 "embedded", "--image-size", "128", "--direction", "forward"])
    assert code == 0, capsys.readouterr().err
    np.testing.assert_array_equal(tifffile.imread(out), widget_masks)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        labels = napari_sam2.segment(movie.image, clicks=pd.read_csv(path), model="demo", checkpoint="embedded",
                                     image_size=128, direction="forward")
    np.testing.assert_array_equal(labels, widget_masks)


def test_napari_s_clicks_csv_is_read_as_frame_y_x_label_and_obj_id(tmp_path):
    pd = pytest.importorskip("pandas")
    text = "index,axis-0,axis-1,axis-2,positive,obj_id\n0.0,0.0,40.5,30.25,1.0,1.0\n1.0,2.0,50.0,60.0,0.0,2.0\n"
    path = _write(tmp_path / "clicks.csv", text)
    want = [(0, 40.5, 30.25, 1, 1), (2, 50.0, 60.0, 0, 2)]
    assert read_prompt_lines(path) == (want, [], [2, 3], [])
    assert prompts_from_table(pd.read_csv(path)) == (want, [])
    table = pd.read_csv(path).astype({"positive": bool})  # True / False, as a table of the layer's features holds it
    assert prompts_from_table(table) == (want, [])
    flat = _write(tmp_path / "flat.csv", "index,axis-0,axis-1,positive,obj_id\n0,12,7,True,3\n")  # a 2-D image's
    assert read_prompts(flat) == ([(0, 12.0, 7.0, 1, 3)], [])


def test_napari_s_csv_that_cannot_be_read_unambiguously_is_refused_naming_the_columns(tmp_path):
    four = _write(tmp_path / "four.csv", "index,axis-0,axis-1,axis-2,axis-3,positive,obj_id\n0,0,5,40,30,1,1\n")
    with pytest.raises(ValueError, match=r"axis-0,axis-1,axis-2,axis-3.*axis-0 -> frame, axis-2 -> y, axis-3 -> x"):
        read_prompts(four)
    no_ids = _write(tmp_path / "plain.csv", "index,axis-0,axis-1,axis-2\n0,0,5,40\n")
    with pytest.raises(ValueError, match=r"Points layer .* without an obj_id column: save the widget's clicks layer"):
        read_prompts(no_ids)
    shapes = "index,shape-type,vertex-index,axis-0,axis-1,axis-2\n" + "".join(
        f"0,rectangle,{i},1.0,{y},{x}\n" for i, (y, x) in enumerate(((10, 10), (10, 40), (30, 40), (30, 10))))
    with pytest.raises(ValueError, match=r"napari writes no features of a Shapes layer.*add a column obj_id"):
        read_prompts(_write(tmp_path / "boxes.csv", shapes))
    bad = _write(tmp_path / "bad.csv", "index,axis-0,axis-1,axis-2,positive,obj_id\n0,1.5,5,4,1,1\n")
    with pytest.raises(ValueError, match=r"line 2: frame must be an integer, got '1.5' \(napari's CSV of a Points "
                                         r"layer, read with axis-0 as the frame"):
        read_prompts(bad)


def test_napari_s_boxes_csv_with_an_obj_id_column_is_read_as_boxes(tmp_path):
    rows = "index,shape-type,vertex-index,axis-0,axis-1,axis-2,obj_id\n" + "".join(
        f"{n},rectangle,{i},{frame}.0,{y},{x},{obj}\n"
        for n, (frame, obj, corners) in enumerate(((1, 3, ((10, 10), (10, 40), (30, 40), (30, 10))),
                                                   (0, 4, ((5.5, 2), (5.5, 9), (8, 9), (8, 2)))))
        for i, (y, x) in enumerate(corners))
    path = _write(tmp_path / "boxes.csv", rows)
    assert read_prompt_lines(path) == ([], [(1, 10.0, 10.0, 30.0, 40.0, 3), (0, 5.5, 2.0, 8.0, 9.0, 4)], [], [2, 6])
    on_two = _write(tmp_path / "two.csv", rows.replace("0,rectangle,3,1.0", "0,rectangle,3,2.0"))
    with pytest.raises(ValueError, match=r"line 2: box 0's corners lie on frames 1, 2"):
        read_prompts(on_two)
    ellipse = _write(tmp_path / "ellipse.csv", rows.replace("rectangle", "ellipse"))
    with pytest.raises(ValueError, match=r"shape 0 is a ellipse: only rectangles are boxes"):
        read_prompts(ellipse)


def test_evaluate_of_a_cropped_result_says_both_frame_sizes(tmp_path, capsys):
    """A small ground truth of the CTC data's layout (3 frames of 83 x 99, two cells), scored against a crop of it."""
    from napari_sam2.cli import main
    from sam2_model.tracking import evaluate_ctc

    truth_dir, result = tmp_path / "gt", tmp_path / "res"
    (truth_dir / "TRA").mkdir(parents=True)
    result.mkdir()
    for t in range(3):
        truth = np.zeros((83, 99), np.uint16)
        truth[10 + t:20 + t, 5:15] = 1
        truth[40:60, 60:90] = 2
        tifffile.imwrite(truth_dir / "TRA" / f"man_track{t:03d}.tif", truth)
        tifffile.imwrite(result / f"mask{t:03d}.tif", truth[:51, :51])  # a crop of the field
    (truth_dir / "TRA" / "man_track.txt").write_text("1 0 2 0\n2 0 2 0\n")
    (result / "res_track.txt").write_text("")
    words = "result frames are 51 x 51, the ground truth's 83 x 99"
    with pytest.raises(ValueError, match=words + r" .*evaluate tracking of the whole field, or crop the ground truth"):
        evaluate_ctc(result, truth_dir, frames=(0, 2))  # before: "Found input variables with inconsistent numbers of ..."
    assert main(["evaluate", str(result), str(truth_dir), "--frames", "0-2"]) == 2
    assert words in capsys.readouterr().err
