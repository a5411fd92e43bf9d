"""Why a file given as a checkpoint could not be read, in one or two lines a user can act on.

``torch.load(path, weights_only=True)`` explains a refusal with PyTorch's whole unpickler story; a user who passed a
training run's resume file, an image or a cut-short download needs to hear which of these it is and what to load
instead. Nothing here unpickles the file: a resume file is recognised by the names in its ``data.pkl``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Optional, Union

PathLike = Union[str, Path]

#: how files that are not PyTorch checkpoints begin (the first bytes), to say what they are instead
_MAGIC = ((b"II*\x00", "a TIFF image"), (b"MM\x00*", "a TIFF image"), (b"II+\x00", "a BigTIFF image"),
          (b"MM\x00+", "a BigTIFF image"), (b"\x89PNG", "a PNG image"), (b"\xff\xd8\xff", "a JPEG image"),
          (b"\x93NUMPY", "a NumPy .npy array"), (b"\x89HDF", "an HDF5 file"), (b"{", "a JSON or text file"))
#: the start of a file written by torch.save(..., _use_new_zipfile_serialization=False) (pickled magic number)
_LEGACY_TORCH = b"\x80\x02\x8a\x0al\xfc\x9cF\xf9 j\xa8P\x19"
#: top-level keys of a training run's resume file (sam2_model.train.loop writes them to last.pt)
_RESUME_KEYS = {"model", "optimizer", "step", "settings"}


def _pickled_strings(path: Path) -> Optional[set]:
    """The strings in a torch zip file's ``data.pkl``, read with :mod:`pickletools` (nothing is unpickled
    or run); None when ``path`` is not a zip archive holding one."""
    import pickletools
    import zipfile

    try:
        with zipfile.ZipFile(path) as archive:
            names = [n for n in archive.namelist() if n == "data.pkl" or n.endswith("/data.pkl")]
            if not names:
                return None
            data = archive.read(min(names, key=len))
        return {arg for _, arg, _ in pickletools.genops(data) if isinstance(arg, str)}
    except Exception:  # not a zip, damaged, or a pickle stream pickletools cannot walk
        return None


#: files a training run's folder holds (sam2_model.train writes them to --out)
_RUN_FILES = ("weights.pt", "last.pt", "history.csv")


def run_folder_message(path: PathLike) -> Optional[str]:
    """What to load instead when ``path`` is a folder (a training run's, say) given where a checkpoint file is
    expected; None when ``path`` is no folder. A folder is not read as its weights.pt: the file loaded stays the
    one named, and a run stopped early (its weights.pt holds the weights of that step) is told apart."""
    path = Path(path).expanduser()
    if not path.is_dir():
        return None
    weights = path / "weights.pt"
    if not any((path / name).is_file() for name in _RUN_FILES):
        return (f"{path} is a folder, not a checkpoint file: give a .pt file (e.g. a training run's "
                "RUN/weights.pt)")
    if not weights.is_file():
        return (f"{path} is a training run's folder, not a checkpoint file, and has no weights.pt yet (written when "
                "the run stops or finishes): finish the run, then use its weights.pt")
    return f"{path} is a training run's folder, not a checkpoint file: use {weights}{_run_state(weights)}"


def _run_state(weights: Path) -> str:
    """" (saved at step N of M; ...)" when ``weights``' run stopped before its last step; "" otherwise."""
    import json

    try:
        metadata = json.loads(weights.with_suffix(".json").read_text())
        steps, total = int(metadata["steps"]), int(metadata["settings"]["steps"])
    except (OSError, ValueError, KeyError, TypeError):
        return ""
    if steps >= total:
        return ""
    return (f" (it holds the weights of step {steps} of {total}: the run stopped early; run its training command "
            "again to finish it)")


def unreadable_checkpoint_message(path: PathLike, error: BaseException) -> str:
    """One or two lines on why ``torch.load(path, weights_only=True)`` failed with ``error``: a training run's
    resume file, a file that is no PyTorch file at all (an image, say), a damaged archive, or Python objects
    besides tensors. Only a file in the download cache is told to be downloaded again."""
    import zipfile

    from .checkpoints import in_cache

    path = Path(path)
    size = path.stat().st_size
    with open(path, "rb") as handle:
        head = handle.read(16)
    redownload = (" It is in the download cache, so the download may be incomplete: delete it and download it "
                  "again." if in_cache(path) else "")
    prefix = f"{path} is not a readable PyTorch checkpoint"
    strings = _pickled_strings(path)
    if strings is not None and _RESUME_KEYS <= strings:
        weights = path.parent / "weights.pt"
        where = (f"load {weights} from the same folder" if weights.is_file() else
                 f"load the run's weights.pt (written to {path.parent} when the run finishes)")
        return f"{path} is a training run's resume file (python -m sam2_model.train), not a checkpoint: {where}"
    if strings is not None and {"model", "optimizer"} <= strings:
        return (f"{prefix}: it looks like a training resume file (a model and an optimizer's state); load the "
                "weights file that training wrote, or save {'model': model.state_dict()} with torch.save")
    if head.startswith(b"PK\x03\x04") and not zipfile.is_zipfile(path):
        return f"{prefix}: its zip archive is cut short or damaged ({size} bytes).{redownload}"
    if not head.startswith(b"PK\x03\x04") and not head.startswith(_LEGACY_TORCH):
        kind = next((name for magic, name in _MAGIC if head.startswith(magic)), None)
        what = f"it is {kind}" if kind else f"its {size} bytes are not"
        return (f"{prefix}: {what}{' and not' if kind else ''} a file written by torch.save (expected a .pt file "
                f"such as an official SAM 2 checkpoint or a training run's weights.pt).{redownload}")
    detail = str(error).strip()
    found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", detail)
    if found:
        return (f"{prefix}: besides tensors it holds Python objects ({found.group(1)}) that are not loaded, "
                "for safety; save {'model': model.state_dict()} with torch.save instead." + redownload)
    first = detail.splitlines()[0][:200] if detail else ""
    return f"{prefix} ({size} bytes; {type(error).__name__}: {first}).{redownload}"
