"""napari-sam2: SAM 2 segmentation and tracking in napari (widgets, layer <-> prompt conversion, CLI).

The console API (``from napari_sam2 import segment, track_cells, measure, batch, get_session, get_widget``) is
imported when a name is first asked for, so importing the package stays cheap (napari's plugin manager, the
``napari-sam2`` command's start-up): torch and the model's code load with the first name that needs them.
"""

from __future__ import annotations

import sys  # nothing heavy at the top: Ctrl-C can land in any import made before cli_main() runs

from sam2_model.threads import quiet_openmp_threads  # the standard library only (os, sys)

quiet_openmp_threads()  # OMP_WAIT_POLICY=PASSIVE unless the user chose, before any module of ours loads torch

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, List, Optional

__all__ = ["batch", "get_session", "get_widget", "measure", "segment", "track_cells"]

_FROM_API = ("get_session", "get_widget", "segment", "track_cells")
INTERRUPTED = "napari-sam2: interrupted; nothing was written"  # what the command says on Ctrl-C (exit status 130)


def __getattr__(name: str) -> Any:
    """The console API's functions of :mod:`.api`, imported on first use; a public submodule by its name
    (``export``), as an eager import of the API made every submodule it uses an attribute of the package."""
    from sam2_model.lazy import lazy_attribute

    return lazy_attribute(__name__, globals(), name, {**{api_name: "api" for api_name in _FROM_API}, "measure": "export"})


def __dir__() -> List[str]:
    """The console API and the command's entry point (tab completion in napari's console), with the dunders."""
    return sorted({name for name in globals() if name.startswith("__")} | set(__all__) | {"cli_main"})


class _Package(type(sys)):  # type: ignore[misc]  # types.ModuleType
    """The package's module type: ``napari_sam2.batch`` is the function :func:`napari_sam2.batch.batch`, also after
    the submodule of that name is imported (the import system binds a submodule to the attribute of its name on the
    package; the module stays importable as ``napari_sam2.batch``)."""

    @property
    def batch(self) -> Any:
        from .batch import batch as run

        return run

    @batch.setter
    def batch(self, value: Any) -> None:
        """Ignored: the import system binding the submodule (it is in ``sys.modules``)."""


sys.modules[__name__].__class__ = _Package


def cli_main(argv: Optional[List[str]] = None) -> int:
    """The ``napari-sam2`` command (its console-script entry point): :func:`napari_sam2.cli.main` of ``argv`` (None:
    the command line), imported here so that Ctrl-C while the command starts (torch and the model's code load for
    seconds) ends it as Ctrl-C during a run does: one line on stderr and exit status 130, no traceback."""
    try:
        from .cli import main

        return main(argv)
    except KeyboardInterrupt:
        print(INTERRUPTED, file=sys.stderr)
        return 130
