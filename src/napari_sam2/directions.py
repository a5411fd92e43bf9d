"""Which way automatic tracking runs, one rule for every route: ``napari-sam2 track --auto``, ``batch --auto``,
``napari_sam2.batch(auto=True)`` and the console's ``napari_sam2.track_cells`` (no Qt, no model); and which way a
set of prompts can be propagated, one rule for ``napari-sam2 track --prompts``, ``batch`` and ``napari_sam2.segment``
(:func:`check_prompted_way`)."""

from __future__ import annotations

from typing import Optional, Sequence

from .prompts import FramePrompt, split_corrections


#: what the direction rule's messages call each setting: the keyword arguments (api) or the command's options (cli)
DIRECTION_WORDS = {"api": {"direction": "direction", "auto": "auto=True", "start_frame": "start_frame"},
                   "console": {"direction": "direction", "auto": "track_cells", "start_frame": "start_frame"},
                   "cli": {"direction": "--direction", "auto": "--auto", "start_frame": "--start-frame"}}


def auto_direction(direction: Optional[str], names: str = "cli") -> str:
    """The one rule for the direction of automatic tracking (``track --auto``, ``batch --auto``, ``batch(auto=True)``,
    ``napari_sam2.track_cells``).

    Automatic tracking runs one way from its start frame: "forward" (the default, None) towards the last frame, or
    "backward" towards frame 0. "both" is refused, from any start frame (ValueError in the words of ``names``:
    "cli", "api" or "console"). Returns "forward" or "backward".
    """
    word = DIRECTION_WORDS[names]
    if direction is None or direction in ("forward", "backward"):
        return direction or "forward"
    if direction == "both":
        raise ValueError(f"{word['direction']} both: automatic tracking ({word['auto']}) runs one way from its start "
                         f"frame ({word['start_frame']}, default 0): give forward (the default, towards the last "
                         "frame) or backward (towards frame 0)")
    raise ValueError(f"{word['direction']} must be forward or backward with {word['auto']}, got {direction!r}")


def check_one_way(start: int, num_frames: int, direction: str, start_name: str, names: str = "cli") -> None:
    """Refuse a one-way run with nothing to track: ``direction`` "backward" from frame 0, or "forward" from the last
    frame, of a stack of ``num_frames`` > 1 frames; ``start_name`` says where the run starts (e.g. "--start-frame
    0", "the first prompted frame (0)"). "both", and any direction on a single frame, pass."""
    if num_frames <= 1 or direction == "both":
        return
    option = DIRECTION_WORDS[names]["direction"]
    if direction == "backward" and start == 0:
        raise ValueError(f"{option} backward from {start_name}: there is nothing before frame 0 to track; give "
                         "forward (or start on a later frame)")
    if direction == "forward" and start == num_frames - 1:
        raise ValueError(f"{option} forward from {start_name}: frame {start} is the stack's last (0..{num_frames - 1}),"
                         " there is nothing after it to track; give backward (or start on an earlier frame)")


def check_prompted_way(prompts: Sequence[FramePrompt], num_frames: int, direction: str, names: str = "cli") -> None:
    """The one rule for prompts and the way they are propagated (``track --prompts``, ``batch``, ``segment()``).

    Refused (ValueError), in this order: an object with negative clicks only (nothing says what it is); a one-way
    ``direction`` with nothing to track from the first prompted frame (the first positive click or box;
    :func:`check_one_way`, in the words of ``names``); a correction on a frame that ``direction`` never reaches
    (:func:`~.prompts.split_corrections`). ``num_frames``: the frames of the stack (1 for a single image: any
    direction passes).
    """
    starts, _ = split_corrections(prompts, "both")  # objects with negative clicks only
    if starts:
        first = min(p.frame for p in starts)
        check_one_way(first, num_frames, direction, f"the first prompted frame ({first})", names)
    split_corrections(prompts, direction)  # corrections that tracking never reaches
