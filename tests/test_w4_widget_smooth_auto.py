"""The widget's *Smooth frames* defaults to "auto", chosen as ``segment(smooth="auto")`` chooses (helper W4).

"auto" measures the first prompted frame's grain at the clicked objects, for the demo model's shipped weights only
(:func:`sam2_model.auto_smooth.smooth_choice`): the widget and ``segment()`` give the same masks on a grainy MSC crop
(4 px, said in the status line) and on clean synthetic frames (no blur); a typed number still wins; the px run is
what a session file keeps; the settings keep "auto"; Track all without clicks and fine-tuning stay unsmoothed.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from napari_sam2 import segment
from sam2_model.click_points import click_point

MSC = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "ctc-msc"
HAS_MSC = (MSC / "01" / "t000.tif").is_file() and (MSC / "01_GT" / "TRA").is_dir()
pytestmark = pytest.mark.gui


def _click_and_propagate(widget, qtbot, clicks):
    """Click each object (New object between them, each click segmented before the next), press Propagate ▶; returns
    the status lines said after each run."""
    from widget_helpers import wait

    said = []
    for k, (frame, y, x, _, _) in enumerate(clicks):
        if k:
            widget.new_object_button.click()
        widget.points_layer.add(np.array([[frame, y, x]]))
        wait(qtbot, widget)
        said.append(widget.status.text())
    widget.forward_button.click()
    wait(qtbot, widget)
    said.append(widget.status.text())
    assert widget.status.text().startswith("Done"), widget.status.text()
    return said


@pytest.mark.skipif(not HAS_MSC, reason=f"the real MSC time-lapse is not at {MSC}")
def test_auto_smooths_grainy_cells_as_segment_does_and_a_typed_number_wins(make_napari_viewer, tmp_path,
                                                                          monkeypatch, qtbot):
    import tifffile
    from widget_helpers import open_widget, wait

    crop = (slice(256, 512), slice(0, 256))  # two MSC cells, grain 0.21 at the first clicked cell: "auto" gives 4 px
    stack = np.stack([tifffile.imread(MSC / "01" / f"t00{t}.tif")[crop] for t in (0, 1)])
    truth = tifffile.imread(MSC / "01_GT" / "TRA" / "man_track000.tif")[crop]
    clicks = []
    for obj, cell in enumerate((int(i) for i in np.unique(truth) if i), start=1):
        x, y = click_point(truth == cell)
        clicks.append((0, float(y), float(x), 1, obj))
    with pytest.warns(UserWarning, match="smoothing 4 px"):
        expected = segment(stack, clicks, device="cpu")
    _, widget = open_widget(make_napari_viewer, tmp_path, monkeypatch, ("msc", stack), size=256)
    assert widget.smooth_spin.text() == "auto"  # the default
    said = _click_and_propagate(widget, qtbot, clicks)
    words = "Note: Smooth frames auto: smoothing 4 px: grainy frames (grain 0.21)."
    assert sum(words in line for line in said) == 1, said  # said once (after the first click), not after each run
    assert widget.smooth_note.text() == "→ 4 px"
    assert widget.controller.session_options["smooth"] == 4.0
    np.testing.assert_array_equal(np.asarray(widget.labels_layer.data), expected)  # before: unsmoothed masks
    assert widget.session_record().options["smooth"] == 4.0  # a session file keeps the px, not "auto"
    assert "smooth" not in widget.session_options()  # what fine-tuning reads: "auto" trains unsmoothed
    settings = tmp_path / "settings.json"

    widget.smooth_spin.setValue(2.0)  # the person's number wins
    assert json.loads(settings.read_text())["smooth"] == 2.0
    widget.segment_button.click()
    wait(qtbot, widget)
    assert widget.controller.session_options["smooth"] == 2.0
    assert "auto" not in widget.status.text()
    widget.smooth_spin.stepBy(-5)  # 2 -> 0 (off) -> auto, never a negative blur
    assert widget.smooth_spin.value() == -1.0 and widget.smooth_spin.text() == "auto"
    assert json.loads(settings.read_text())["smooth"] == "auto"  # the settings keep the choice, not a px


def test_auto_leaves_clean_frames_and_track_all_unsmoothed(make_napari_viewer, tmp_path, monkeypatch, qtbot):
    from widget_helpers import open_widget, small_movie

    movie = small_movie(2, seed=3)
    clicks = []
    for obj in (1, 2):
        x, y = click_point(movie.labels[0] == obj)
        clicks.append((0, float(y), float(x), 1, obj))
    expected = segment(movie.image, clicks, device="cpu", smooth=0)
    _, widget = open_widget(make_napari_viewer, tmp_path, monkeypatch, ("cells", movie.image), size=256)
    assert widget.smoothing().sigma == 0.0  # no clicks yet (Track all's case): nothing measured, no blur
    said = _click_and_propagate(widget, qtbot, clicks)
    assert widget.smooth_note.text() == "→ off"
    choice = widget.smoothing()
    assert choice.auto and choice.sigma == 0.0 and choice.grain < 0.15, choice
    assert "smooth" not in widget.controller.session_options
    assert not any("Smooth frames auto" in line for line in said)
    np.testing.assert_array_equal(np.asarray(widget.labels_layer.data), expected)
