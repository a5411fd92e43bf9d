"""Which stacks a batch run processes: files, folders and glob patterns -> stack paths, names, prompts.

A stack is a multi-page TIFF / OME-TIFF, a .npy file, a zarr folder (OME-Zarr: its array "0") or a
folder of single-frame images. A folder given as input is one stack when it is a zarr store or holds
only single-frame images: 2-D or colour images, or TIFFs whose own axes say each is one time point with at most
:data:`MAX_FRAME_CHANNELS` channels ("CYX": a microscope's one multi-channel file per time point), read as
``napari-sam2 track`` reads the folder. Files of other axes stay stacks of their own here, although ``track`` reads a
folder of them as one stack: tifffile and ImageJ label a plain 3-D movie saved with ``imagej=True`` or ``ome=True``
"CYX" and an ImageJ stack "ZYX", so a folder of movies or of z-stacks cannot be told from one time-lapse by those
letters, and batch keeps its files apart as it always did; otherwise the stacks in it and in its sub-folders (one level down:
``plate/a.tif`` and ``plate/well1/a.tif``, not ``plate/well1/pos1/a.tif``) are its stacks (multi-page TIFFs, .npy
files, zarr folders, folders of frames). Files that cannot be read are kept as stacks so that the run records why they
failed. Stacks inside the run's output folder are never inputs.
"""

from __future__ import annotations

import contextlib
import glob
import math
import os
from collections import Counter
from pathlib import Path
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

from sam2_model.frames_io import FRAME_SUFFIXES, TIFF_SUFFIXES, image_file_header, is_frame_file, natural_key

PathLike = Union[str, os.PathLike]
STACK_SUFFIXES = TIFF_SUFFIXES + (".npy", ".zarr")
_GLOB_CHARS = set("*?[")


def is_zarr_store(path: Path) -> bool:
    return path.is_dir() and any((path / name).exists() for name in ("zarr.json", ".zarray", ".zgroup"))


def _images(folder: Path) -> List[Path]:
    return sorted(
        (p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")
         and p.suffix.lower() in FRAME_SUFFIXES + (".npy",)),
        key=lambda p: natural_key(p.name),
    )


#: what a folder given as input is searched for (messages and the README say the same)
SEARCHED = ("multi-page TIFF / OME-TIFF, .npy, zarr folders and folders of single frames, in each folder given "
            "and in its sub-folders (one level down)")


#: the most channels a "CYX" file of a folder may have for batch to take it as one time point (a 3-D movie that
#: tifffile or ImageJ labelled "CYX" has more frames than a microscope has channels)
MAX_FRAME_CHANNELS = 8


def _is_batch_frame_file(path: Path) -> bool:
    """A frame of a folder of frames, for batch: a 2-D or colour image, or a TIFF whose axes are "CYX" with at most
    :data:`MAX_FRAME_CHANNELS` channels (:func:`~sam2_model.frames_io.is_frame_file` takes any CYX / ZYX / ZCYX file,
    as ``track`` reads one folder; here a folder of movies or z-stacks must stay separate stacks)."""
    if not is_frame_file(path):
        return False
    if path.suffix.lower() not in TIFF_SUFFIXES:
        return True
    try:
        shape, _, axes = image_file_header(path)
    except Exception:  # unreadable: is_frame_file said no already
        return False
    if len(shape) == 2 or (len(shape) == 3 and str(axes).endswith("S")):
        return True
    return str(axes).upper() == "CYX" and shape[0] <= MAX_FRAME_CHANNELS


def _is_frames_folder(folder: Path, notes: Optional[List[str]] = None) -> bool:
    """Whether ``folder`` is one stack of frames: every image file in it is a frame (:func:`_is_batch_frame_file`: a
    2-D or colour image, or a TIFF whose own axes say it is one time point with a few channels, "CYX"). ``notes`` gets
    a line saying so for a folder of such multi-channel files (which might also have been meant as separate stacks)."""
    files = _images(folder)
    if not files or not all(_is_batch_frame_file(p) for p in files):
        return False
    if notes is not None and files[0].suffix.lower() in TIFF_SUFFIXES:
        with contextlib.suppress(Exception):  # unreadable: reading the stack says why
            shape, _, axes = image_file_header(files[0])
            if len(shape) > 2 and not str(axes).endswith("S"):
                notes.append(
                    f"{folder}: read as one stack of {len(files)} frames, each file one time point of axes {axes} "
                    f"{tuple(shape)} (as `napari-sam2 track` reads the folder); to run each file as a stack of its "
                    f"own, give them as a pattern ({str(folder / ('*' + files[0].suffix))!r})")
    return True


def _stacks_in_folder(folder: Path, depth: int = 1, notes: Optional[List[str]] = None) -> List[Path]:
    """The stacks in ``folder`` and, ``depth`` levels down, in its sub-folders (a sub-folder that is a zarr store or
    a folder of frames is one stack)."""
    if is_zarr_store(folder) or _is_frames_folder(folder, notes):
        return [folder]
    stacks: List[Path] = list(_images(folder))
    for sub in sorted((p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")),
                      key=lambda p: natural_key(p.name)):
        if is_zarr_store(sub) or _is_frames_folder(sub, notes):
            stacks.append(sub)
        elif depth > 0:
            stacks.extend(_stacks_in_folder(sub, depth - 1, notes))
    return stacks


def find_stacks(inputs: Union[PathLike, Sequence[PathLike]], exclude: Optional[PathLike] = None,
                exclude_option: str = "out", notes: Optional[List[str]] = None) -> List[Path]:
    """Stack paths named by ``inputs`` (files, folders, glob patterns), in order, without duplicates.

    exclude: a folder whose contents are never taken as inputs (the run's output folder; ``exclude_option`` names
    it in messages). notes: gets a line for each folder of multi-axis frame files (one CYX or ZYX TIFF per time
    point) read as one stack, saying so and how to run its files one by one instead. Raises ValueError for an input
    that names nothing (missing path, pattern without matches, a folder without stacks), for a stack named on its own
    inside ``exclude``, and when every stack found lies inside ``exclude``.
    """
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    skip = Path(exclude).resolve() if exclude is not None else None
    found: List[Path] = []
    named: List[Path] = []  # stacks named one by one (not found in a folder or by a pattern)
    for item in inputs:
        text = os.path.expanduser(str(item))
        if _GLOB_CHARS & set(text):
            matches = [Path(m) for m in sorted(glob.glob(text, recursive=True), key=natural_key)]
            if not matches:
                raise ValueError(f"inputs: the pattern {text!r} matches no file or folder")
            paths: Iterable[Path] = matches
            explicit = False
        else:
            path = Path(text)
            if not path.exists():
                raise ValueError(f"inputs: {path} does not exist (give stack files, folders or glob patterns)")
            paths, explicit = [path], True
        for path in paths:
            if path.is_dir() and not is_zarr_store(path):
                found.extend(_stacks_in_folder(path, notes=notes))
            elif path.is_dir() or path.suffix.lower() in FRAME_SUFFIXES + STACK_SUFFIXES:
                found.append(path)
                if explicit:
                    named.append(path)
            elif explicit:  # a pattern's other matches (prompt CSVs, notes) are passed over
                raise ValueError(f"inputs: {path} is not a stack (accepted: {', '.join(STACK_SUFFIXES)}, "
                                 "zarr folders and folders of frames)")
    unique: Dict[Path, Path] = {}
    inside_out: List[Path] = []
    example = f"{exclude_option} ../results" if exclude_option.startswith("-") else f"{exclude_option}='../results'"
    for path in found:
        resolved = path.resolve()
        if skip is not None and (resolved == skip or skip in resolved.parents):
            if path in named:
                raise ValueError(f"inputs: {path} lies inside the output folder ({exclude_option} {exclude}), whose "
                                 f"contents are never read as inputs; choose an output folder outside the inputs "
                                 f"(e.g. {example})")
            inside_out.append(path)
            continue
        unique.setdefault(resolved, path)
    if not unique and inside_out:
        shown = ", ".join(str(p) for p in inside_out[:3]) + (", ..." if len(inside_out) > 3 else "")
        raise ValueError(f"inputs: the stacks found in {[str(i) for i in inputs]} ({shown}) all lie inside the output "
                         f"folder ({exclude_option} {exclude}), whose contents are never read as inputs; choose an "
                         f"output folder outside the inputs (e.g. {example})")
    if not unique:
        raise ValueError(f"inputs: no stacks found in {[str(i) for i in inputs]} (searched for {SEARCHED})")
    return list(unique.values())


def stack_stem(path: Path) -> str:
    """'a.ome.tif' -> 'a', 'b.zarr' -> 'b', a frames folder -> its name."""
    name = path.name
    for suffix in (".ome.tiff", ".ome.tif", ".ome.zarr") + STACK_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def names_by_level(path: Path) -> List[str]:
    """A stack's possible output names, shortest first: its stem, then with 1, 2, ... parent folders of its resolved
    path in front ('a', 'well1_a', 'plate1_well1_a' for ``plate1/well1/a.tif``)."""
    resolved = Path(path).resolve()
    parents = [p for p in resolved.parent.parts if p not in (resolved.anchor, "")]
    stem = stack_stem(resolved)
    return ["_".join(parents[len(parents) - level:] + [stem]) if level else stem for level in range(len(parents) + 1)]


def stack_names(paths: Sequence[Path], kept: Optional[Mapping[Path, str]] = None, taken: Iterable[str] = (),
                others: Iterable[Path] = ()) -> List[str]:
    """A distinct, stable output folder name per stack.

    kept: resolved stack path -> the name of its result already in the output folder: that stack keeps it (a name
    never changes when stacks are added). The others get their stem, or, where stems collide (with each other, with
    ``taken`` or with stacks ``others``), as many parent folders in front as it takes to tell them apart
    ('plate1_A01_pos1' and 'plate2_A01_pos1').
    taken: names in use in the output folder (never given to another stack).
    others: stacks whose results are in the output folder (resolved paths): a new name does not look like theirs
    (``plate2/A01/pos1.tif`` next to ``plate1/A01/pos1.tif``'s 'pos1' becomes 'plate2_A01_pos1', not 'A01_pos1'),
    unless it can be told apart no other way.
    ValueError naming the files when two stacks cannot be told apart (the same stem in the same folder).
    """
    kept = dict(kept or {})
    resolved = [Path(p).resolve() for p in paths]
    names: Dict[int, str] = {i: kept[r] for i, r in enumerate(resolved) if r in kept}
    fresh = [i for i in range(len(paths)) if i not in names]
    busy = set(taken) | set(names.values())
    options = {i: names_by_level(resolved[i]) for i in fresh}
    known: Dict[int, Dict[str, set]] = {}  # level -> a name other stacks have there -> those stacks
    for path in {Path(o).resolve() for o in others} | {resolved[i] for i in names}:
        for level, name in enumerate(names_by_level(path)):
            known.setdefault(level, {}).setdefault(name, set()).add(path)
    levels = {i: 0 for i in fresh}
    while True:
        wanted = {i: options[i][levels[i]] for i in fresh}
        counts = Counter(wanted.values())
        clashes = {i for i in fresh if wanted[i] in busy or counts[wanted[i]] > 1}
        alike = {i for i in fresh if known.get(levels[i], {}).get(wanted[i], set()) - {resolved[i]}}
        movable = {i for i in clashes | alike if levels[i] + 1 < len(options[i])}
        if not movable:
            break
        for i in movable:
            levels[i] += 1
    stuck = sorted({wanted[i] for i in clashes})
    if stuck:
        def who(name: str) -> str:
            files = [str(paths[i]) for i in fresh if wanted[i] == name]
            return f"{name!r}: " + ", ".join(files) + (" (that name is taken in the output folder)" if name in busy
                                                        else "")
        raise ValueError(f"inputs: stacks that no parent folder tells apart would share an output folder name "
                         f"({'; '.join(who(n) for n in stuck)}); rename one or run them into separate output folders")
    names.update(wanted)
    result = [names[i] for i in range(len(paths))]
    bad = [n for n in result if not n or n.startswith(".")]
    if bad:
        raise ValueError(f"inputs: stack names {bad} cannot be output folder names")
    return result


def prompt_candidates(stack: Path, prompts_dir: Optional[PathLike] = None) -> List[Path]:
    """Where a stack's prompts CSV is looked for, in order: ``<stem>.csv``, then ``<stem>_prompts.csv`` (the stem is
    the file name without its stack suffix, :func:`stack_stem`: ``movie`` for ``movie.ome.tif``; not the output
    name, which may add parent folders), and for an OME file (``movie.ome.tif``, ``.ome.tiff``,
    ``.ome.zarr``) also ``movie.ome.csv`` and ``movie.ome_prompts.csv`` (Python's ``Path.stem`` of it is
    ``movie.ome``); in ``prompts_dir`` when given, else beside the stack."""
    stem = stack_stem(stack)
    folder = Path(prompts_dir) if prompts_dir is not None else stack.parent
    stems = [stem]
    if stack.name.lower().startswith(f"{stem.lower()}.ome."):
        stems.append(stack.name[: len(stem) + len(".ome")])  # (the file's own spelling of ".ome")
    return [folder / f"{name}{end}" for name in stems for end in (".csv", "_prompts.csv")]


class AmbiguousPrompts(ValueError):
    """Two or more of a stack's prompts CSVs (:func:`prompt_candidates`) exist and differ: which one is meant is not
    guessed."""


def find_prompts(stack: Path, prompts_dir: Optional[PathLike] = None) -> Optional[Path]:
    """The prompts CSV for ``stack`` (see :func:`prompt_candidates`): the first that exists, or None.

    Raises :class:`AmbiguousPrompts` naming the files when more than one exists and their contents differ (the same
    rows saved twice, e.g. ``movie.csv`` and ``movie.ome.csv``, are one CSV: the first is used)."""
    found = [path for path in prompt_candidates(stack, prompts_dir) if path.is_file()]
    if len({path.read_bytes() for path in found}) > 1:
        raise AmbiguousPrompts(f"{len(found)} different prompts CSVs for {stack.name} ({', '.join(map(str, found))}); "
                               "keep the one meant for it (or make them the same)")
    return found[0] if found else None


def check_cell_diameter_option(tracking_options: Mapping[str, Any], names: str = "api") -> None:
    """The tracking option ``cell_diameter`` (where given) checked before a stack is read or a worker started, in the
    words each stack's task would fail with once its model is built: two numbers, 0 < min <= max (the tracker's rule,
    :func:`sam2_model.tracking.detection.check_cell_diameter`), and where the blob search seeds (tracking option
    ``seeding`` "blobs", the default, or "grid+blobs") finite, with min >= 2 (the blob search's own rule). names
    "cli" (``napari-sam2 batch --auto``): the blob search's rule in the command's words, as ``track --auto`` says it
    (:func:`._cli_auto.check_blob_minimum`); "api": the keyword's."""
    if names not in ("api", "cli"):
        raise ValueError(f"names must be 'api' or 'cli', got {names!r}")
    if "cell_diameter" not in tracking_options:
        return
    from sam2_model.seeding import MIN_BLOB_DIAMETER
    from sam2_model.tracking.detection import check_cell_diameter

    from ._cli_auto import check_blob_minimum

    given = tracking_options["cell_diameter"]
    low, high = check_cell_diameter(given)
    seeding = str(tracking_options.get("seeding", "blobs"))
    if "blobs" not in seeding:
        return
    if not math.isfinite(high):
        raise ValueError(f"cell_diameter must be a number or a (min, max) pair of pixels, got {given!r}")
    if names == "cli":
        check_blob_minimum(low, high, seeding)
    elif low < MIN_BLOB_DIAMETER:
        raise ValueError(f"cell_diameter must satisfy {MIN_BLOB_DIAMETER:g} <= min <= max (pixels), got {given!r} "
                         "(seeding='grid' takes smaller cells)")


def stack_frame_shape(path: PathLike, axes: Any) -> Optional[Tuple[int, int]]:
    """(H, W) of the frames of the stack at ``path`` read under ``axes`` (a :class:`.batch_worker.AxisOptions`: its
    ``read``), from the stack's shape alone (opened lazily: no frame is read); None where it cannot be opened or read
    so (its task says why)."""
    from sam2_model.frames_io import close_stack, open_stack

    try:
        stack = open_stack(path)
    except Exception:  # a single image, an unreadable file: its task fails with the reason
        return None
    try:
        data, resolved, _ = axes.read(stack)
        shape = tuple(int(n) for n in data.shape)
        return shape[resolved.layout.spatial_axes[0]], shape[resolved.layout.spatial_axes[1]]
    except Exception:  # axes that do not fit this stack: its task fails with the reason
        return None
    finally:
        close_stack(stack)


def check_diameter_fits_a_stack(stacks: Sequence[Path], axes: Any, tracking_options: Mapping[str, Any]) -> None:
    """Before any worker starts (``batch(auto=True)``): where the blob search seeds and no cell of the diameter range
    (tracking option ``cell_diameter``, else the default) fits across the frames of any stack (each read under
    ``axes`` for its shape only, :func:`stack_frame_shape`), a ValueError naming the first stack, in the words each
    task would fail with after building its model (:func:`._cli_auto.check_diameter_fits`). Stacks that cannot be
    read are passed over; where one stack fits, the run goes on, and a stack whose frames are too small fails on its
    own, before its model is built (:func:`.batch_worker.process_stack`). Stops at the first stack that fits."""
    from ._cli_auto import check_diameter_fits

    refused: List[Tuple[Path, str]] = []
    for path in stacks:
        shape = stack_frame_shape(path, axes)
        if shape is None:
            continue
        try:
            check_diameter_fits(tracking_options.get("cell_diameter"), str(tracking_options.get("seeding", "blobs")),
                                shape)
        except ValueError as error:
            refused.append((Path(path), str(error)))
            continue
        return
    if refused:
        path, words = refused[0]
        others = f" (and the frames of the {len(refused) - 1} other stacks read are too small too)" if len(
            refused) > 1 else ""
        raise ValueError(f"{path}: {words}{others}")
