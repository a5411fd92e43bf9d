"""One rule for unit names, shared by the writers (:mod:`.export`'s TIFF, :mod:`.batch_outputs`' OME-Zarr) and the
reader of files' calibrations (:mod:`.file_calibration`): a unit not of the kind asked for is None here, once, for
all of them.

The rule is the GEFF writer's (:func:`sam2_model.tracking.geff_io.unit_name`): a unit's OME-NGFF name ("micrometer",
"second"), None for napari's uncalibrated "pixel" / "frame".
"""

from __future__ import annotations

import re
from typing import Any, Optional


def unit_in(unit: Any, kind: str) -> Optional[str]:
    """The OME-NGFF name of ``unit`` as a "space" or "time" unit ("um" -> "micrometer"); None for None, "pixel" /
    "frame", or a unit not known as one of that kind (a writer then leaves that size out)."""
    from sam2_model.tracking.geff_io import unit_name  # imported when used: sam2_model.tracking is not light

    try:
        return unit_name(unit, kind)
    except ValueError:
        return None


def file_unit_name(text: Any) -> Optional[str]:
    """A unit as a file spells it ("micron", "\\u00b5m", "sec", "\\\\u00B5m" as ImageJ escapes it) -> its OME-NGFF name
    ("micrometer", "second"), length or time (:func:`unit_in`); None for none, "pixel", "frame" or a unit it does not
    know."""
    if text is None:
        return None
    word = re.sub(r"\\u00[bB]5", "\u00b5", str(text)).strip()
    for kind in ("space", "time"):
        name = unit_in(word, kind)
        if name is not None:
            return name
    return None
