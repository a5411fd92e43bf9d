"""The axis options shared by ``napari-sam2 track`` and ``napari-sam2 batch``.

``--axis`` is propagated, ``--channel-axis`` holds channels (``--channel`` picks one, or ``mean``/``max``),
``--fix AXIS=INDEX`` pins any other axis (e.g. z of a (T, Z, Y, X) stack), ``--rgb`` says whether a
last axis of 3 or 4 is colour. They mean what :func:`napari_sam2.api.segment`'s arguments mean.
"""

from __future__ import annotations

import argparse
from typing import Any, Dict, List, Optional, Tuple

from .api import CLI_NAMES, StackAxes, resolve_axes

RGB_CHOICES = {"auto": None, "yes": True, "no": False}
#: a last axis this small (and smaller than the rows) is taken for channels in messages
MAX_CHANNELS = 16


def add_axis_arguments(parser: argparse.ArgumentParser) -> None:
    """Add --axis, --channel-axis, --channel, --fix and --rgb to ``parser``."""
    parser.add_argument("--axis", type=int, default=0, help="the axis to propagate through (time or z; default 0)")
    parser.add_argument("--channel-axis", type=int, default=None,
                        help="the axis that holds channels (found from TIFF metadata when it says 'C')")
    parser.add_argument("--channel", default=None, help="with a channel axis: a channel index, or mean / max")
    parser.add_argument("--fix", action="append", default=[], metavar="AXIS=INDEX",
                        help="segment one slice of another axis, e.g. --fix 1=5 for z=5 of (T, Z, Y, X); repeatable")
    parser.add_argument("--rgb", choices=tuple(RGB_CHOICES), default="auto",
                        help="a last axis of 3 or 4 is colour (auto: yes for 3D/4D stacks)")


def parse_fixed(items: List[str]) -> Dict[int, int]:
    """``["1=5"]`` -> {1: 5}; ValueError naming --fix otherwise."""
    fixed: Dict[int, int] = {}
    for item in items:
        axis, _, index = item.partition("=")
        try:
            fixed[int(axis)] = int(index)
        except ValueError:
            raise ValueError(f"--fix takes AXIS=INDEX with two integers (e.g. --fix 1=5), got {item!r}") from None
    return fixed


def rgb_choice(args: argparse.Namespace) -> Optional[bool]:
    """--rgb as segment()'s ``rgb``: None (detect), True or False."""
    return RGB_CHOICES[args.rgb]


def axis_arguments(args: argparse.Namespace) -> Dict[str, Any]:
    """The axis options as :func:`napari_sam2.api.segment`'s keyword arguments (frame_axis, rgb, channel_axis,
    channel, fixed), each parsed once."""
    return dict(frame_axis=args.axis, rgb=rgb_choice(args), channel_axis=args.channel_axis, channel=args.channel,
                fixed=parse_fixed(args.fix))


def stack_axes(args: argparse.Namespace, stack: Any, arguments: Optional[Dict[str, Any]] = None) -> StackAxes:
    """The stack's axes from --axis, --channel-axis, --channel, --fix and --rgb (and its TIFF axes, if any);
    ``arguments`` is :func:`axis_arguments`' result when the caller has it already.

    Every mistake is a ValueError in the command line's words, raised before the model is built: an
    unassigned small last axis is named as the likely channels, and a channel axis of other than 1 or 3
    channels without --channel asks for one."""
    a = axis_arguments(args) if arguments is None else arguments
    shape = tuple(int(n) for n in stack.shape)
    tiff_axes = getattr(stack, "axes", None)
    try:
        axes = resolve_axes(shape, a["frame_axis"], a["rgb"], a["channel_axis"], a["channel"], a["fixed"],
                            tiff_axes, names=CLI_NAMES)
    except ValueError:
        hint = _channels_last_hint(shape, a, tiff_axes)
        if hint is None:
            raise
        raise ValueError(hint) from None
    _check_channel_choice(axes, shape, a, tiff_axes)
    return axes


def _channels_last_hint(shape: Tuple[int, ...], a: Dict[str, Any], tiff_axes: Optional[str]) -> Optional[str]:
    """The message for a stack whose small last axis was taken for image columns, when reading it as the
    channel axis would fit every other option (e.g. (T, Y, X, 2), or (T, Y, X, 3) with --rgb no); else None."""
    ndim, last = len(shape), len(shape) - 1
    told = a["channel_axis"] is not None or a["rgb"] or (isinstance(tiff_axes, str) and "C" in tiff_axes)
    if told or ndim < 3 or not shape[-1] <= MAX_CHANNELS or not shape[-1] < shape[-2]:
        return None
    fixed = {int(k) % ndim if -ndim <= int(k) < ndim else int(k): v for k, v in a["fixed"].items()}
    pinned = fixed.pop(last, None)  # --fix on the last axis: that is --channel
    channel = a["channel"] if pinned is None else pinned
    try:  # the rest of the options must fit too, or the first message is the right one
        resolve_axes(shape, a["frame_axis"], False, last, channel, fixed, None, names=CLI_NAMES)
    except ValueError:
        return None
    n = shape[-1]
    start = f"axis {last} (size {n}), the last axis of the image {shape}, looks like {n} channels, not image columns"
    if pinned is not None:
        return f"{start}, and only axes before the rows can be fixed: pass --channel-axis {last} --channel {pinned}"
    if a["channel"] is not None:
        return f"{start}: pass --channel-axis {last} with --channel {a['channel']}"
    colour = " (or --rgb yes to use them as colour)" if n in (3, 4) else ""
    return (f"{start}: pass --channel-axis {last} with --channel N (0..{n - 1}) to use one of them, or "
            f"--channel mean or --channel max to combine them{colour}")


def _check_channel_choice(axes: StackAxes, shape: Tuple[int, ...], a: Dict[str, Any],
                          tiff_axes: Optional[str]) -> None:
    """The model takes one channel or three (as colour): more or fewer need --channel, said before any work."""
    axis = axes.layout.channel_axis
    if axis is None or axes.session_options or axes.drop_alpha or shape[axis] in (1, 3):
        return
    n = shape[axis]
    source = f" (the TIFF's axes {tiff_axes} say so)" if a["channel_axis"] is None and tiff_axes else ""
    rgba = " (or --rgb yes if they are RGBA)" if n == 4 and axis == len(shape) - 1 else ""
    raise ValueError(f"axis {axis} of the image {shape} holds {n} channels{source}: pick one with --channel N "
                     f"(0..{n - 1}) or combine them with --channel mean or --channel max{rgba}")
