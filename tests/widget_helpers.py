"""Opening the segmentation widget as the GUI tests do: a viewer with images, the widget docked with the demo model's
embedded weights at a small input size (settings kept in the test's own folder)."""

from __future__ import annotations

from typing import Any, Tuple

WIDGET = ("napari-sam2", "SAM 2 segmentation")


def open_finetune(make_napari_viewer: Any, tmp_path: Any, monkeypatch: Any, num_cells: int,
                  clip: int) -> Tuple[Any, Any, Any]:
    """(viewer, fine-tuning widget, movie): a 4-frame 64 px time-lapse of ``num_cells`` nuclei as "nuclei" with its
    labels as "annotations", chosen in the widget at 64 px input, ``clip`` frames a clip, the run in tmp_path/run."""
    from napari_sam2._finetune import FineTuneWidget
    from sam2_model.synthetic import make_timelapse

    monkeypatch.setenv("NAPARI_SAM2_SETTINGS", str(tmp_path / "settings.json"))
    viewer = make_napari_viewer()
    movie = make_timelapse(num_frames=4, shape=(64, 64), num_cells=num_cells, seed=7, radius_fraction=0.12)
    viewer.add_image(movie.image, name="nuclei")
    viewer.add_labels(movie.labels, name="annotations")
    widget = FineTuneWidget(viewer)
    viewer.window.add_dock_widget(widget)
    widget.image_combo.setCurrentText("nuclei")
    widget.labels_combo.setCurrentText("annotations")
    widget.size_spin.setValue(64)  # small input size: a fast test
    widget.clip_spin.setValue(clip)
    widget.out_edit.setText(str(tmp_path / "run"))
    return viewer, widget, movie


def one_step_finetune(make_napari_viewer: Any, tmp_path: Any, monkeypatch: Any) -> Tuple[Any, Any]:
    """(viewer, fine-tuning widget): :func:`open_finetune` with 3 nuclei, 2-frame clips and a 1-step run, its error
    notifications silenced (the tests read its status line)."""
    viewer, widget, _ = open_finetune(make_napari_viewer, tmp_path, monkeypatch, num_cells=3, clip=2)
    monkeypatch.setattr("napari_sam2._finetune.show_error", lambda message: None)
    widget.steps_spin.setValue(1)
    return viewer, widget


def train_and_wait(widget: Any, qtbot: Any) -> None:
    """Press the fine-tuning widget's Train and wait until its worker ended (trained, refused or failed)."""
    widget.train_button.click()
    qtbot.waitUntil(lambda: widget.worker is None, timeout=120_000)


def tracked_calibrated(make_napari_viewer: Any, tmp_path: Any, monkeypatch: Any, qtbot: Any) -> Tuple[Any, Any, Any]:
    """(viewer, widget, Track all panel) after Track all on a small movie of scale (300 s, 0.65 um, 0.65 um)."""
    viewer, widget = open_widget(make_napari_viewer, tmp_path, monkeypatch)
    viewer.add_image(small_movie(4, 11).image, name="cells", scale=(300.0, 0.65, 0.65), units=("s", "um", "um"))
    panel = track_all_panel(widget)
    panel.track_button.click()
    wait_tracking(qtbot, widget)
    return viewer, widget, panel


def small_movie(num_frames: int, seed: int) -> Any:
    """The GUI tests' small time-lapse: ``num_frames`` frames of 96 x 96, three round cells that neither divide nor
    enter or leave (``make_timelapse``'s result: .image (T, 96, 96), .labels)."""
    from sam2_model.synthetic import make_timelapse

    return make_timelapse(num_frames=num_frames, shape=(96, 96), num_cells=3, seed=seed, divisions=False,
                          enter_leave=False, radius_fraction=0.12)


def open_widget(make_napari_viewer: Any, tmp_path: Any, monkeypatch: Any, *images: Tuple[str, Any],
                size: int = 128) -> Tuple[Any, Any]:
    """(viewer, widget): a viewer holding ``images`` ((name, data) pairs) and the widget on the demo model."""
    monkeypatch.setenv("NAPARI_SAM2_SETTINGS", str(tmp_path / "settings.json"))
    viewer = make_napari_viewer()
    for name, data in images:
        viewer.add_image(data, name=name)
    _, widget = viewer.window.add_plugin_dock_widget(*WIDGET)
    widget.model_combo.setCurrentText("demo")
    widget.checkpoint_combo.setCurrentText("embedded (demo)")
    widget.size_spin.setValue(size)
    return viewer, widget


def click_cell(points: Any, movie: Any, obj: int, frame: int = 0) -> None:
    """A click on the clicks layer ``points`` deep inside cell ``obj`` of ``movie`` (a synthetic time-lapse with
    ``labels``) on ``frame`` (the layers have unit scale)."""
    import numpy as np

    from sam2_model.evaluation import click_point

    x, y = click_point(movie.labels[frame] == obj)
    points.add(np.array([[frame, y, x]], float))


def centre(plane: Any, obj_id: int) -> Tuple[float, float]:
    """(row, col) of a pixel deep inside object ``obj_id`` of a (H, W) labels ``plane``."""
    from sam2_model.evaluation import click_point

    x, y = click_point(plane == obj_id)
    return float(round(y)), float(round(x))


def wait(qtbot: Any, widget: Any, timeout: int = 120_000) -> None:
    """Until the widget's run (if any) has finished."""
    qtbot.waitUntil(lambda: not widget.busy(), timeout=timeout)


def click_cells(widget: Any, qtbot: Any, movie: Any, cells: Tuple[int, ...] = (1, 2)) -> None:
    """Click ``cells`` of ``movie`` (a synthetic time-lapse with ``labels``) on frame 0 as objects 1, 2, ... (New object
    pressed between them), each click segmented before the next."""
    import numpy as np

    for k, cell in enumerate(cells):
        if k:
            widget.new_object_button.click()
        widget.points_layer.add(np.array([[0, *centre(movie.labels[0], cell)]]))
        wait(qtbot, widget)


def click_and_propagate(widget: Any, qtbot: Any, movie: Any, cells: Tuple[int, ...] = (1, 2)) -> None:
    """:func:`click_cells`, then Propagate ▶ over every frame (its status says "Done")."""
    click_cells(widget, qtbot, movie, cells)
    widget.forward_button.click()
    wait(qtbot, widget)
    assert widget.status.text().startswith("Done"), widget.status.text()


def propagating(make_napari_viewer: Any, tmp_path: Any, monkeypatch: Any, qtbot: Any, num_frames: int,
                seed: int) -> Tuple[Any, Any, Any]:
    """(viewer, widget, movie): a synthetic movie of 96 x 96 frames with one cell clicked on frame 0, caught while
    Propagate runs forward (two frames done, the run still going)."""
    import numpy as np

    from sam2_model.evaluation import click_point
    from sam2_model.synthetic import make_timelapse

    movie = make_timelapse(num_frames=num_frames, shape=(96, 96), num_cells=3, seed=seed, divisions=False,
                           enter_leave=False, radius_fraction=0.12)
    viewer, widget = open_widget(make_napari_viewer, tmp_path, monkeypatch, ("cells", movie.image))
    x, y = click_point(movie.labels[0] == 1)
    widget.points_layer.add(np.array([[0, y, x]]))
    wait(qtbot, widget)
    widget.forward_button.click()
    qtbot.waitUntil(lambda: widget.progress.value() >= 2, timeout=60_000)
    assert widget.busy()
    return viewer, widget, movie


def track_all_panel(widget: Any, diameter: Tuple[float, float] = (6, 24), redetect: int = 2, divisions: bool = False,
                    seeding: Any = None) -> Any:
    """The widget's Track all panel, expanded and set to track the small synthetic cells of the tests (cell diameter
    range, detection every ``redetect`` frames, divisions, ``seeding`` where given), the slider on frame 0."""
    panel = widget.track_all
    panel.expand(animate=False)
    if seeding is not None:
        panel.seeding_combo.setCurrentText(seeding)
    panel.min_diameter_spin.setValue(diameter[0])
    panel.max_diameter_spin.setValue(diameter[1])
    panel.redetect_spin.setValue(redetect)
    panel.divisions_check.setChecked(divisions)
    widget.viewer.dims.set_current_step(0, 0)
    return panel


def wait_tracking(qtbot: Any, widget: Any, timeout: int = 120_000) -> None:
    """Until Track all's run and the widget's (if any) have finished."""
    qtbot.waitUntil(lambda: widget.track_all.worker is None and not widget.busy(), timeout=timeout)
