"""The axis options shared by ``napari-sam2 track`` and ``napari-sam2 batch``.

``--axis`` is propagated, ``--channel-axis`` holds channels (``--channel`` picks one, or ``mean``/``max``),
``--fix AXIS=INDEX`` pins any other axis (e.g. z of a (T, Z, Y, X) stack), ``--rgb`` says whether a
last axis of 3 or 4 is colour. They mean what :func:`napari_sam2.api.segment`'s arguments mean.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any, Dict, List, Optional

if TYPE_CHECKING:  # the API (torch) loads when a command runs, not while the command line is parsed
    from .api import StackAxes

RGB_CHOICES = {"auto": None, "yes": True, "no": False}


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

    Every mistake is a ValueError in the command line's words (:func:`napari_sam2.api.resolve_axes` with
    :data:`~napari_sam2.api.CLI_NAMES`), raised before the model is built."""
    from .api import CLI_NAMES, resolve_axes

    a = axis_arguments(args) if arguments is None else arguments
    shape = tuple(int(n) for n in stack.shape)
    return resolve_axes(shape, a["frame_axis"], a["rgb"], a["channel_axis"], a["channel"], a["fixed"],
                        getattr(stack, "axes", None), names=CLI_NAMES)
