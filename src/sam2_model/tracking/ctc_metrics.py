"""CTC measures of a result folder against ground truth, computed by the ``py-ctcmetrics`` package.

Nothing here re-implements a measure: the folders are read and scored by ``ctc_metrics`` (the Cell
Tracking Challenge's Python port). Layout expected (CTC's): RESULT_DIR holds ``mask%03d.tif`` +
``res_track.txt``; GT_DIR holds ``TRA/man_track.txt`` + ``TRA/man_track%03d.tif`` and ``SEG/man_seg%03d.tif``
(SEG may cover only some frames).
"""

from __future__ import annotations

import contextlib
import io
import numbers
import os
import re
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

DEFAULT_METRICS = ("Valid", "SEG", "DET", "TRA", "LNK", "BC", "CT", "TF", "CCA")

#: ``frames=``: a range or slice of frame numbers (step 1), or (first, last) both included
FramesArg = Union[range, slice, Tuple[int, int], None]
_NUMBERED = re.compile(r"^(?P<stem>[A-Za-z_]*?)(?P<frame>\d+)(?P<rest>(_\d+)?)\.tif$")


def _check_folders(result_dir: Path, gt_dir: Path) -> None:
    for name, folder in (("result_dir", result_dir), ("gt_dir", gt_dir)):
        if not folder.is_dir():
            raise ValueError(f"{name} {folder} {'is a file' if folder.exists() else 'does not exist'}: give the "
                             "folder of a Cell Tracking Challenge result / ground truth")
    if not (result_dir / "res_track.txt").is_file():
        raise ValueError(f"result_dir {result_dir} must hold res_track.txt and mask%03d.tif files (CTC layout)")
    if not (gt_dir / "TRA" / "man_track.txt").is_file():
        raise ValueError(f"gt_dir {gt_dir} must hold TRA/man_track.txt and TRA/man_track%03d.tif (CTC layout)")


def _frame_files(folder: Path) -> Dict[int, List[Path]]:
    """Frame number -> the numbered .tif files of that frame in a CTC folder (``mask005.tif``, ``man_track005.tif``,
    ``man_seg005.tif``; a 3-D SEG's ``man_seg_005_012.tif`` slices: the first number is the frame)."""
    found: Dict[int, List[Path]] = {}
    for path in sorted(folder.glob("*.tif")) if folder.is_dir() else []:
        match = _NUMBERED.match(path.name)
        if match:
            found.setdefault(int(match["frame"]), []).append(path)
    return found


def _as_range(frames: FramesArg, count: int) -> range:
    """``frames`` as a range within 0..count-1 (step 1, not empty); ValueError naming what was given."""
    if (isinstance(frames, (tuple, list)) and len(frames) == 2
            and all(isinstance(n, numbers.Integral) and not isinstance(n, bool) for n in frames)):
        chosen = range(int(frames[0]), int(frames[1]) + 1)  # numpy integers too (e.g. from np.unique)
    elif isinstance(frames, slice):
        chosen = range(count)[frames]
    elif isinstance(frames, range):
        chosen = frames
    else:
        raise ValueError(f"frames must be a range, a slice or (first, last) of frame numbers, got {frames!r}")
    if chosen.step != 1 or len(chosen) == 0 or chosen.start < 0 or chosen.stop > count:
        raise ValueError(f"frames={frames!r} must be consecutive frames (step 1, at least one) within the ground "
                         f"truth's frames 0-{count - 1}")
    return chosen


def _cut_tracks(text: str, frames: range) -> str:
    """A CTC track table (``L B E P`` per line) cut to ``frames``, renumbered from 0: tracks outside dropped, begins
    and ends clipped, a parent that is dropped (it ended before the first frame) becomes 0 (CTC's rule for a track
    whose parent is not in the sequence)."""
    rows = [[int(v) for v in line.split()] for line in text.splitlines() if line.strip()]
    first, last = frames.start, frames.stop - 1
    kept = {label for label, begin, end, _ in rows if begin <= last and end >= first}
    return "".join(f"{label} {max(begin, first) - first} {min(end, last) - first} {parent if parent in kept else 0}\n"
                   for label, begin, end, parent in rows if label in kept)


def _cut_folder(source: Path, target: Path, frames: range, track_file: Optional[str]) -> None:
    """Copy the numbered frame files of ``frames`` (and ``track_file``, cut: :func:`_cut_tracks`) from ``source`` to
    ``target``, renumbered from 0 with the same number of digits."""
    target.mkdir(parents=True)
    for frame, paths in _frame_files(source).items():
        if frame in frames:
            for path in paths:
                match = _NUMBERED.match(path.name)
                number = f"{frame - frames.start:0{len(match['frame'])}d}"
                shutil.copyfile(path, target / f"{match['stem']}{number}{match['rest']}.tif")
    if track_file is not None:
        (target / track_file).write_text(_cut_tracks((source / track_file).read_text(), frames))


def _frame_shape(path: Path) -> Tuple[int, ...]:
    """The shape of the image in a TIFF, from its header (the pixels are not read); ValueError naming a file that is
    not a TIFF or is damaged."""
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            return tuple(int(n) for n in tif.series[0].shape)
    except (tifffile.TiffFileError, OSError, IndexError) as error:
        raise ValueError(f"{path} is not a readable TIFF ({error}): a CTC folder holds one label image per frame") \
            from None


_MASK = re.compile(r"^mask\d+\.tif$")


def _check_masks_only(result_dir: Path) -> None:
    """ValueError naming a .tif file in ``result_dir`` that is not a ``mask%03d.tif`` (an RGB overlay000.tif saved
    beside the masks): py-ctcmetrics reads every .tif file of the folder as a mask (it failed with "Number of result
    masks (6) unequal to the number of ground truth masks (3)")."""
    others = [path.name for path in sorted(result_dir.glob("*.tif")) if not _MASK.match(path.name)]
    if others:
        listed = ", ".join(others[:3]) + (f" and {len(others) - 3} more" if len(others) > 3 else "")
        raise ValueError(f"result_dir {result_dir} holds {listed}, not named as a mask (mask%03d.tif): py-ctcmetrics "
                         "reads every .tif file there as a frame's mask; move the other files out of the folder")


def _plane_shape(shape: Sequence[int]) -> Tuple[int, ...]:
    """``shape`` without its axes of size 1: a frame written as (1, Y, X) (``tifffile.imwrite(p, a[None])``) is the
    (Y, X) frame py-ctcmetrics reads."""
    return tuple(n for n in shape if n != 1)


def _check_sizes(result_dir: Path, gt_dir: Path) -> None:
    """ValueError in words where a result frame's size is not the ground truth's (a crop scored against the whole
    field failed inside py-ctcmetrics with "Found input variables with inconsistent numbers of samples: [825344,
    262144, 825344]"). Every result mask is compared with the ground truth's first TRA mask, axes of size 1 dropped
    (:func:`_plane_shape`)."""
    first = min(_frame_files(gt_dir / "TRA").items())[1][0]
    truth = _frame_shape(first)
    for _, paths in sorted(_frame_files(result_dir).items()):
        for path in paths:
            size = _frame_shape(path)
            if _plane_shape(size) != _plane_shape(truth):
                raise ValueError(
                    f"result frames are {_size_words(size)}, the ground truth's {_size_words(truth)} ({path.name} in "
                    f"result_dir {result_dir}, {first.parent.name}/{first.name} in gt_dir {gt_dir}): evaluate "
                    "tracking of the whole field, or crop the ground truth the same way")


def _size_words(shape: Sequence[int]) -> str:
    """(832, 992) -> "832 x 992" (rows x columns; a volume's planes first)."""
    return " x ".join(str(n) for n in shape)


def _span(count: int) -> str:
    return "frame 0" if count == 1 else f"frames 0-{count - 1}"


def evaluate_ctc(result_dir: os.PathLike, gt_dir: os.PathLike, metrics: Optional[Sequence[str]] = None,
                 division_tolerance: int = 3, frames: FramesArg = None) -> Dict[str, float]:
    """SEG, DET, TRA, LNK and the division measures BC(i) (with tp/fp/fn per tolerance i frames), CT, TF,
    CCA (py-ctcmetrics). Adds ``division_recall`` = tp_div(i) / gt_divisions at i = ``division_tolerance``.
    SEG is left out when GT_DIR has no SEG folder. Returns name -> value (floats and counts).

    frames: score only these frames of the ground truth (a range or slice of frame numbers, step 1, or (first, last)
    both included), e.g. ``range(6)`` for a result of the first 6 frames of a longer movie, ``range(10, 21)`` for one
    of frames 10-20. The ground truth is cut to them as the challenge would have it for that sequence (a copy in a
    temporary folder: frames renumbered from 0; man_track.txt's tracks outside dropped, their begins and ends clipped,
    a parent that ended before the first frame set to 0); the result is taken as is where it has that many frames,
    and cut the same way where it has as many frames as the ground truth. Without ``frames`` the result must have the
    ground truth's number of frames.

    ValueError for a folder not in CTC layout, ``frames`` outside the ground truth, a result whose number of frames
    fits neither (naming both counts and ``frames=``), result frames of another size than the ground truth's (a
    crop: naming both sizes; axes of size 1 do not count, so (1, Y, X) masks are (Y, X) ones), and a .tif file in
    result_dir not named mask%03d.tif (naming it: py-ctcmetrics would read it as a mask).
    """
    result_dir, gt_dir = Path(result_dir), Path(gt_dir)
    _check_folders(result_dir, gt_dir)
    _check_masks_only(result_dir)
    given = (result_dir, gt_dir)  # their file names, for the words of a frame size that differs
    gt_count, res_count = len(_frame_files(gt_dir / "TRA")), len(_frame_files(result_dir))
    if gt_count == 0:
        raise ValueError(f"gt_dir {gt_dir}: TRA holds no man_track%03d.tif masks")
    with tempfile.TemporaryDirectory(prefix="ctc_frames_") as scratch:
        if frames is not None:
            chosen = _as_range(frames, gt_count)
            if res_count not in (len(chosen), gt_count):
                raise ValueError(
                    f"result_dir {result_dir} has {res_count} frames ({_span(res_count)}); frames={frames!r} chose "
                    f"{len(chosen)} of the ground truth's {gt_count}: the result must have {len(chosen)} frames (a "
                    f"result of those frames) or {gt_count} (cut the same way)")
            cut_gt = Path(scratch) / "GT"
            _cut_folder(gt_dir / "TRA", cut_gt / "TRA", chosen, "man_track.txt")
            if (gt_dir / "SEG").is_dir():
                _cut_folder(gt_dir / "SEG", cut_gt / "SEG", chosen, None)
            gt_dir = cut_gt
            if res_count != len(chosen):  # a result of the whole movie: the same frames of it
                cut_res = Path(scratch) / "RES"
                _cut_folder(result_dir, cut_res, chosen, "res_track.txt")
                result_dir = cut_res
        elif res_count != gt_count:
            raise ValueError(
                f"result_dir {result_dir} has {res_count} frames ({_span(res_count)}) but gt_dir {gt_dir} has "
                f"{gt_count} ({_span(gt_count)}); to score a result of part of the movie, name the ground truth's "
                f"frames it covers: frames=range({res_count}) for the first {res_count} (napari-sam2 evaluate "
                f"--frames 0-{res_count - 1}), or frames=range(a, a + {res_count}) for frames a..a+{res_count - 1}")
        _check_sizes(*given)
        return _evaluate(result_dir, gt_dir, metrics, division_tolerance)


def _evaluate(result_dir: Path, gt_dir: Path, metrics: Optional[Sequence[str]],
              division_tolerance: int) -> Dict[str, float]:
    """:func:`evaluate_ctc` of two folders with the same number of frames."""
    from ctc_metrics.scripts.evaluate import calculate_metrics, load_data

    chosen = list(metrics or DEFAULT_METRICS)
    has_seg = (gt_dir / "SEG").is_dir() and any((gt_dir / "SEG").glob("man_seg*.tif"))
    if not has_seg:
        chosen = [m for m in chosen if m != "SEG"]
    if "BC" in chosen and f"BC({division_tolerance})" not in chosen:
        chosen.append(f"BC({division_tolerance})")
    trajectory = chosen not in (["SEG"], ["CCA"])
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        comp, ref, traj, segm, _, valid = load_data(str(result_dir), str(gt_dir), trajectory, "SEG" in chosen,
                                                    threads=1)
        results = calculate_metrics(comp, ref, traj, segm, chosen, valid)
    out = {k: float(v) for k, v in results.items() if v is not None and v == v}  # drop None / NaN
    key = f"tp_div({division_tolerance})"
    if key in out and out.get("gt_divisions", 0) > 0:
        out["division_recall"] = out[key] / out["gt_divisions"]
    return out
