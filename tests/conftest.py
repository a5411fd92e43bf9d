import pathlib
import sys

# Make tests/oracle.py importable as `oracle` from every test module.
sys.path.insert(0, str(pathlib.Path(__file__).parent))

import pytest  # noqa: E402


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
