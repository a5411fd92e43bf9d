"""Where the demo model's weights ship inside the package (``weights/demo.pt``, its metadata beside it as
``demo.json``), found without torch: the one home of that path for the model builder (:mod:`sam2_model.build`),
``sam2-train``'s ``--init embedded`` and the fine-tuning widget's form (on napari's GUI thread). Standard library
only."""

from __future__ import annotations

from pathlib import Path

#: the folder of the weights shipped with the package
WEIGHTS_DIR = Path(__file__).parent / "weights"


def embedded_weights_path() -> Path:
    """The demo model's weights file shipped inside the package (``.../sam2_model/weights/demo.pt``); a
    FileNotFoundError naming it, and how to get it back, when it is missing."""
    path = WEIGHTS_DIR / "demo.pt"
    if not path.is_file():
        raise FileNotFoundError(f"the embedded demo weights are missing ({path}); reinstall napari-sam2, or train them "
                                "with `python -m sam2_model.train`")
    return path
