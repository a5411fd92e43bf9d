"""Every route measures ``object_window="auto"`` on the prompted objects (helper W1, session 55).

G2 made "auto" able to read the clicked objects' width (the MSC cells ~29 px instead of the frame's 4.5 px noise
specks), but no route passed the prompts: ``segment()``, ``napari-sam2 track``, batch runs and the widget all opened
128 px windows on a 512 x 512 crop of the real MSC time-lapse where the four clicked cells call for 312 px. Now each
measures the objects prompted on the first prompted frame, so the same stack and clicks give the same window and the
same masks whichever way they are run.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from napari_sam2 import segment
from sam2_model.click_points import click_point

MSC = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "ctc-msc"
HAS_MSC = (MSC / "01" / "t000.tif").is_file() and (MSC / "01_GT" / "TRA").is_dir()
pytestmark = pytest.mark.skipif(not HAS_MSC, reason=f"the real MSC time-lapse is not at {MSC} "
                                                    "(README, Real data used in the figures)")
PROMPTED_SIDE = 312  # the 4 clicked cells read ~29 px wide: a 312 px window at the demo model's 256 px input
FRAME_SIDE = 128  # the frame's pieces (noise specks ~4.5 px): what every route opened before


@pytest.fixture(scope="module")
def msc():
    """(stack (2, 512, 512) of frames 0-1 of the MSC crop, clicks (frame, y, x, label, obj_id): one per cell of frame
    0 at its tracking marker's most interior pixel, objects 1-4)."""
    tifffile = pytest.importorskip("tifffile")
    stack = np.stack([tifffile.imread(MSC / "01" / f"t00{t}.tif")[:512, :512] for t in (0, 1)])
    truth = tifffile.imread(MSC / "01_GT" / "TRA" / "man_track000.tif")[:512, :512]
    ids = [int(i) for i in np.unique(truth) if i]
    assert len(ids) == 4
    clicks = []
    for obj, cell in enumerate(ids, start=1):
        x, y = click_point(truth == cell)
        clicks.append((0, float(y), float(x), 1, obj))
    return stack, clicks


@pytest.fixture(scope="module")
def by_segment(msc):
    """segment()'s labels with the default object_window="auto"."""
    stack, clicks = msc
    return segment(stack, clicks, device="cpu")


def test_segment_and_the_cli_open_the_window_of_the_prompted_cells(msc, by_segment, tmp_path, capsys):
    import tifffile

    from napari_sam2.cli import main

    stack, clicks = msc
    assert set(np.unique(by_segment)) == {0, 1, 2, 3, 4}
    # auto gave the window measured on the clicked cells (before: the frame's specks', 128 px)
    np.testing.assert_array_equal(by_segment, segment(stack, clicks, device="cpu", object_window=PROMPTED_SIDE))
    tifffile.imwrite(tmp_path / "stack.tif", stack, photometric="minisblack")
    rows = ["frame,obj_id,y,x,label"] + [f"{f},{o},{y},{x},{lab}" for f, y, x, lab, o in clicks]
    (tmp_path / "prompts.csv").write_text("\n".join(rows) + "\n")
    capsys.readouterr()
    code = main(["track", str(tmp_path / "stack.tif"), "--prompts", str(tmp_path / "prompts.csv"), "-o",
                 str(tmp_path / "labels.tif"), "--device", "cpu"])
    out = capsys.readouterr().out
    assert code == 0
    assert (f"--object-window auto: each object in a {PROMPTED_SIDE} px window around it (the 4 prompted objects "
            "read as ~29 px wide on frame 0)") in out, out
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "labels.tif"), by_segment)


def test_a_batch_run_measures_the_prompted_cells_too(msc, by_segment, tmp_path):
    import tifffile

    from napari_sam2.api import model_to_use
    from napari_sam2.batch_worker import ModelSpec, open_frames, segment_stack, smoothed, stack_prompts, stack_smooth

    stack, clicks = msc
    tifffile.imwrite(tmp_path / "stack.tif", stack, photometric="minisblack")
    rows = ["frame,obj_id,y,x,label"] + [f"{f},{o},{y},{x},{lab}" for f, y, x, lab, o in clicks]
    (tmp_path / "prompts.csv").write_text("\n".join(rows) + "\n")
    frames = open_frames(str(tmp_path / "stack.tif"))
    try:
        prompts = stack_prompts(tmp_path / "prompts.csv", tuple(frames.view.shape))
        frames = smoothed(frames, stack_smooth("auto", frames, prompts, ModelSpec("demo", "download")).sigma)
        labels = np.zeros(stack.shape, np.uint32)
        controller = segment_stack(model_to_use("demo", "download", "cpu", None), frames, prompts, labels)
    finally:
        frames.close()
    assert controller.object_window == PROMPTED_SIDE  # before: 128, the frame's specks
    np.testing.assert_array_equal(labels, by_segment)


@pytest.mark.gui
def test_the_widget_gives_the_same_window_and_masks_as_segment(msc, by_segment, make_napari_viewer, tmp_path,
                                                               monkeypatch, qtbot):
    """A person clicks the four cells (New object between them, each click segmented before the next) and presses
    Propagate ▶: the window is measured again as each new cell is clicked (1 cell: 312 px already; the controller is
    remade where it changes) and ends as segment()'s, with its masks."""
    from widget_helpers import open_widget, wait

    stack, clicks = msc
    _, widget = open_widget(make_napari_viewer, tmp_path, monkeypatch, ("msc", stack), size=256)
    for k, (frame, y, x, _, _) in enumerate(clicks):
        if k:
            widget.new_object_button.click()
        widget.points_layer.add(np.array([[frame, y, x]]))
        wait(qtbot, widget)
    widget.forward_button.click()
    wait(qtbot, widget)
    assert widget.status.text().startswith("Done"), widget.status.text()
    assert widget.window_note.text() == f"→ {PROMPTED_SIDE} px"  # before: 128 px, the slice's specks
    np.testing.assert_array_equal(np.asarray(widget.labels_layer.data), by_segment)
