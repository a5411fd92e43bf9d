import pathlib
import sys

# Make tests/oracle.py importable as `oracle` from every test module.
sys.path.insert(0, str(pathlib.Path(__file__).parent))

import pytest  # noqa: E402

import sam2_model  # noqa: E402,F401 (before anything loads torch: OpenMP's wait policy as users' processes get it)


def pytest_configure(config):
    """Under pytest-xdist (scripts/test.sh runs one worker per core) each worker gives torch its share of the cores:
    two workers of two threads each on two cores spend their time waiting for each other."""
    import os

    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers > 1:
        import torch

        torch.set_num_threads(max(1, (os.cpu_count() or 1) // workers))


@pytest.hookimpl(tryfirst=True, hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Record each phase's report on the item (napari's make_napari_viewer reads rep_call)."""
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)


@pytest.fixture(autouse=True)
def _restore_torch_threads():
    """A test that sets torch's CPU threads (the training command's --threads, the one-thread parity case) leaves
    the next tests at the suite's thread count."""
    import torch

    threads = torch.get_num_threads()
    yield
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def _own_settings_file(tmp_path_factory, monkeypatch):
    """Each test reads and writes its own napari-sam2 settings file (the widget saves choices there), never the
    user's, and never one that a test running at the same time in another pytest-xdist worker writes."""
    from napari_sam2.settings import SETTINGS_ENV

    monkeypatch.setenv(SETTINGS_ENV, str(tmp_path_factory.mktemp("settings") / "settings.json"))


@pytest.fixture
def stack_files(tmp_path):
    """sam2-train's --stack and --labels of a small synthetic (3, 64, 64) uint16 time-lapse with 3 cells
    (:func:`train_helpers.small_movie`), written in the test's tmp_path (stack.tif, labels.tif)."""
    from train_helpers import write_stack_files

    return write_stack_files(tmp_path)


@pytest.fixture
def ctrl_c_raises():
    """Ctrl-C (SIGINT) raises KeyboardInterrupt during the test, as in a terminal, also where the suite runs with
    SIGINT ignored (a background job, as CI starts it); the previous disposition is restored after."""
    import signal

    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


@pytest.fixture(autouse=True)
def _no_unanswered_questions(monkeypatch):
    """A modal question (QMessageBox.question: Load session over unsaved objects, Track all from a middle frame) that
    a test does not answer (monkeypatch it) fails the test at once instead of waiting for a click that never comes."""
    try:
        from qtpy.QtWidgets import QMessageBox
    except ImportError:  # no Qt binding: nothing can ask
        return

    def unanswered(parent, title, text, *args, **kwargs):
        raise AssertionError(f"the test left a modal question unanswered: {title!r}: {text!r} (monkeypatch "
                             f"QMessageBox.question to answer it)")

    monkeypatch.setattr(QMessageBox, "question", staticmethod(unanswered))


@pytest.fixture
def cells_dock(make_napari_viewer, tmp_path, monkeypatch, movie):
    """(viewer, widget): the segmentation widget on the demo model (:func:`widget_helpers.open_widget`) in a viewer
    holding the test module's ``movie`` fixture (a synthetic time-lapse) as the image "cells"."""
    from widget_helpers import open_widget

    return open_widget(make_napari_viewer, tmp_path, monkeypatch, ("cells", movie.image))


@pytest.fixture
def track_all_dock(cells_dock):
    """(viewer, widget, Track all panel): :func:`cells_dock` with its Track all panel expanded and set by
    :func:`widget_helpers.track_all_panel`'s defaults, the slider on frame 0."""
    from widget_helpers import track_all_panel

    viewer, widget = cells_dock
    return viewer, widget, track_all_panel(widget)
