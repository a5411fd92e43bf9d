"""Object ids where "Track all cells" meets the segmentation widget's own objects (no Qt).

The tracks and the widget's objects share one masklets layer, so an id is either a track's or a widget object's:
a typed, seeded or clicked object never takes a tracked cell's id, and tracking gives its tracks ids above the
widget's. These are the rules; :class:`~._track_all_panel.TrackAllPanel` says what they did in the status line.
"""

from __future__ import annotations

from typing import AbstractSet, Any, Dict, Iterable, List, Optional, Sequence, Set

MAX_GAPS = 20  # free ids below the highest id spelled out in words


def frame_ranges(frames: Sequence[int]) -> str:
    """[0, 1, 2, 5, 7, 8] -> "0-2, 5, 7-8"; [] -> "none"."""
    if not frames:
        return "none"
    parts, start, previous = [], frames[0], frames[0]
    for frame in list(frames[1:]) + [None]:
        if frame is not None and frame == previous + 1:
            previous = frame
            continue
        parts.append(str(start) if start == previous else f"{start}-{previous}")
        if frame is not None:
            start = previous = frame
    return ", ".join(parts)


def frames_text(frames: Sequence[int], done: str = "") -> str:
    """ "frame 3" / "frames 2-7", with ``done`` "frame 3 was <done>" / "frames 2-7 were <done>" """
    frames = sorted(set(frames))
    text = f"frame{'s' if len(frames) > 1 else ''} {frame_ranges(frames)}"
    return f"{text} {'were' if len(frames) > 1 else 'was'} {done}" if done else text


def lineage_ids(lineage: Any) -> Set[int]:
    """The track ids of a :class:`~sam2_model.tracking.Lineage` (its rows; empty for None)."""
    return set() if lineage is None else {int(row.track_id) for row in lineage.rows()}


def state_controllers(state: Any) -> List[Any]:
    """An image's segmentation controllers (``state.controller`` first, then one per slice segmented in
    ``state.sessions``), each once."""
    found = [state.controller] if state.controller is not None else []
    found += [c for c in getattr(state, "sessions", {}).values() if all(c is not f for f in found)]
    return found


def layer_ids(layer: Any) -> Set[int]:
    """The ``obj_id`` feature of a clicks (Points) or boxes (Shapes) layer's rows (empty for None or no rows)."""
    if layer is None or not len(layer.data):
        return set()
    return set(layer.features["obj_id"].to_numpy(int).tolist())


def widget_ids(state: Any) -> Set[int]:
    """The ids the widget holds for an image (its :class:`~._image_state.ImageState`, or None): every session's
    objects and seeded masks, and the ids of its clicks and boxes."""
    if state is None:
        return set()
    ids: Set[int] = set()
    for controller in state_controllers(state):
        ids |= {int(i) for i in controller.obj_ids} | {int(obj) for _, obj in controller.mask_prompts}
    return ids | layer_ids(state.points) | layer_ids(state.boxes)


def next_free_id(*used: AbstractSet[int]) -> int:
    """One above the highest id of ``used`` (1 when none is used)."""
    return max(set().union(*used) | {0}) + 1


def free_ids_text(used: AbstractSet[int]) -> str:
    """The ids not in ``used`` in words: the gaps below the highest used id (at most :data:`MAX_GAPS`) and
    "N and above", e.g. "2-3 or 6 and above"."""
    top = max(set(used) | {0})
    gaps = [i for i in range(1, top) if i not in used][:MAX_GAPS]
    above = f"{top + 1} and above"
    return f"{frame_ranges(gaps)} or {above}" if gaps else above


def moved_seed_ids(seeded: Iterable[int], tracks: AbstractSet[int], widget: AbstractSet[int]) -> Dict[int, int]:
    """{old: new} for the seeded label ids that are track ids: each gets an id above the tracks, the widget's ids
    and every seeded id, in order of the old ids; the other seeded ids keep theirs (not in the result)."""
    seeded = {int(i) for i in seeded}
    taken = sorted(seeded & set(tracks))
    if not taken:
        return {}
    top = next_free_id(tracks, widget, seeded)
    return {old: top + i for i, old in enumerate(taken)}


def id_above_tracks(current: int, tracks: AbstractSet[int]) -> Optional[int]:
    """The widget's next object id when ``current`` might write into a track: the larger of ``current`` and one
    above the highest track id; None without tracks (``current`` stays)."""
    top = max(set(tracks) | {0})
    return None if not top else max(int(current), top + 1)


def seed_ids_message(moved: Dict[int, int], free: str) -> str:
    """The status line after :func:`moved_seed_ids` moved the seeded labels ``moved`` ({old: new}); ``free``: the
    free ids in words (:func:`free_ids_text`)."""
    taken = sorted(moved)
    return (f"Seeded label(s) {', '.join(map(str, taken))} are ids of cells 'Track all cells' tracked; they "
            f"became object(s) {', '.join(str(moved[o]) for o in taken)} (the other seeded labels keep their "
            f"ids). Free ids: {free}.")


def typed_id_message(typed: int, new: int, free: str) -> str:
    """The status line after a typed Object id that a tracked cell holds moved to ``new``."""
    return (f"Object id {typed} is taken by a cell 'Track all cells' tracked (the tracks share the masklets "
            f"layer); the Object id moved to {new}. Free ids: {free}. To correct a tracked cell, use 'Correct cell' "
            "in 'Track all cells'.")

