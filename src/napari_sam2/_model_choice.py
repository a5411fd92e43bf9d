"""Which model the widget should run, and loading it (in a worker thread) with download progress.

Qt-free: the widget runs :func:`load_model` in a napari ``thread_worker`` and relays the progress.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, List, Optional, Union

import sam2_model as sm
from sam2_model.checkpoints import download, find_cached
from sam2_model.config import PRESETS

EMBEDDED, CACHED, LOCAL, RANDOM = "embedded (demo)", "cached or download", "local file…", "random weights (testing)"
WEIGHT_CHOICES = (EMBEDDED, CACHED, LOCAL, RANDOM)
DEMO = "demo"


class LoadCancelled(Exception):
    """The user cancelled a download; nothing was saved."""


def model_names() -> List[str]:
    """The demo model first, then the official presets."""
    return [DEMO] + [name for name in sorted(PRESETS) if name != DEMO]  # sm.list_models() without importing torch


def default_model() -> str:
    """An official preset whose checkpoint is already cached (smallest first), else the demo model."""
    for name in ("sam2.1_hiera_tiny", "sam2.1_hiera_small", "sam2.1_hiera_base_plus", "sam2.1_hiera_large"):
        if find_cached(name) is not None:
            return name
    return DEMO


@dataclass(frozen=True)
class ModelChoice:
    """The model, its weights and where it runs. ``path`` is used with weights == LOCAL."""

    name: str
    weights: str
    device: str = "auto"
    image_size: Optional[int] = None
    path: Optional[str] = None

    def check(self) -> None:
        """ValueError with what to do when the choice cannot work (before any loading starts)."""
        if self.weights == EMBEDDED and self.name != DEMO:
            raise ValueError(f"embedded weights exist only for the demo model, not {self.name}; "
                             "choose 'cached or download' or a local file")
        if self.weights == CACHED and self.name == DEMO:
            return  # the demo model's weights are embedded: nothing to download
        if self.weights == LOCAL and not (self.path and Path(self.path).is_file()):
            raise ValueError(f"choose a checkpoint file (Weights: {LOCAL}); {self.path or 'none'} is not a file")

    def needs_download(self) -> bool:
        """An official model with weights "cached or download" whose file is not in the cache yet (looks at the cache
        folder only: no network)."""
        return self.weights == CACHED and self.name != DEMO and find_cached(self.name) is None


def load_model(choice: ModelChoice, progress: Optional[Callable[[int, int], None]] = None) -> sm.SAM2Model:
    """Build the chosen model, downloading an official checkpoint first if needed.

    progress(done_bytes, total_bytes) is called during a download and may raise to cancel it.
    """
    from sam2_model.build import Weights  # torch: imported here, in the loading worker, not when the dock opens

    choice.check()
    if choice.weights == RANDOM:
        checkpoint: Union[Weights, str] = Weights.RANDOM
    elif choice.weights == LOCAL:
        checkpoint = str(choice.path)
    elif choice.name == DEMO:
        checkpoint = Weights.EMBEDDED
    else:  # downloaded here (not by build_model) to report progress and allow a cancel
        checkpoint = str(download(choice.name, progressbar=progress or False))
    return sm.build_model(choice.name, checkpoint=checkpoint, device=choice.device, image_size=choice.image_size)


def fetch_weights(choice: ModelChoice, progress: Optional[Callable[[int, int], None]] = None) -> Optional[str]:
    """Make ``choice``'s weights usable without building the model (the slow part of a load that can fail): an official
    file not in the cache is downloaded and verified (:func:`~sam2_model.checkpoints.download`; ``progress(done,
    total)`` as in :func:`load_model`, which may raise to cancel), a local file is read and identified. Returns the
    local file's preset (:func:`usable_file_preset`), None for other weights. Errors: ValueError (the choice cannot work,
    the file is no usable checkpoint) or CheckpointDownloadError (offline, a corrupted transfer: its words name the URL,
    the cache path and ``NAPARI_SAM2_CACHE``). Seconds to minutes: the widgets run it in a worker."""
    choice.check()
    if choice.weights == LOCAL:
        return usable_file_preset(str(choice.path))
    if choice.needs_download():
        download(choice.name, progressbar=progress or False)
    return None


def preset_of_file(path: str) -> Optional[str]:
    """The preset whose tensors a checkpoint file holds (None if it matches none); errors say why. Reads the whole file
    and, the first time, the shapes of every preset's model (seconds for a file of no known model): the widgets run it
    in a worker, or where it is a check before anything changes."""
    return sm.identify_preset(sm.build.read_state_dict(path))


def usable_file_preset(path: str) -> str:
    """The preset of the local checkpoint file ``path``: ValueError saying why it is not a file the model picker can
    use (missing, a folder, unreadable or cut short, no SAM 2 state dict, or tensors of no known model)."""
    try:
        preset = preset_of_file(path)
    except (ValueError, FileNotFoundError) as error:  # CheckpointError is a ValueError
        raise ValueError(str(error)) from error
    if preset is None:
        raise ValueError(f"{path} holds no known SAM 2 model (its tensors match none of {model_names()})")
    return preset
