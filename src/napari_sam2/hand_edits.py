"""Hand edits of a segmentation's labels: which (H, W) planes a person changed since the controller last drew them,
which pixels, and what a step did where it met them. No Qt.

A :class:`~.controller.SegmentationController` draws each labels plane from its session's results. A person may then
change it: napari's brush, fill or eraser (a ``paint`` event says which pixels: :meth:`HandEdits.painted`), a script
writing the array (no event: the plane's checksum no longer matches the controller's mark of it). :class:`HandEdits`
keeps both for one labels array:

* the marks: {plane: its checksum as the controller last wrote it, or :data:`HOLDS_EDITS` where that write kept hand
  edits} (:meth:`HandEdits.wrote`); a plane another tool wrote since ("Track all cells", a relabel, Load session's
  masklets: they say so through :func:`~.labels_writer.tell_written`) counts as the controller's again, unless a
  stroke had changed it first (:meth:`HandEdits.other_wrote`);
* the strokes: {plane: the flat indices of the pixels strokes changed since the controller last wrote it (None:
  unknown)}, also on planes the controller never wrote (strokes made before the first propagation, or on frames a
  Load session's re-run did not write).

:meth:`HandEdits.edit` turns them into a :class:`HandEdit` (the pixels that differ from what the results draw there)
just before a step changes the frame's results; :class:`EditsMet` is what the steps did with them, said after the
run.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Collection, Dict, Iterator, List, Optional, Sequence, Set, Tuple

import numpy as np

from ._track_ids import frame_ranges
from .labels_writer import hashable_index, plane_checksum, planes_touched, watch_writes

# the mark of a plane the controller wrote keeping hand edits there: never a checksum (crc32 >= 0), so the plane still
# counts as edited by hand
HOLDS_EDITS = -1
Key = Tuple[Any, ...]  # a plane's :func:`~.labels_writer.hashable_index`


@dataclass
class HandEdit:
    """The pixels of one frame's labels plane that differ from what the session's results draw there (a brush,
    eraser or fill stroke, a script; seen before the step changes any result): their flat indices, their labels
    (``now``) and what the results drew there (``drawn``), and the session's objects among either."""

    pixels: np.ndarray
    now: np.ndarray
    drawn: np.ndarray
    objects: Set[int]

    def still(self, moving: Optional[Collection[int]]) -> Set[int]:
        """The objects of the edit that are not tracked again when ``moving`` (None: every object) get new masks."""
        return set() if moving is None else self.objects - {int(o) for o in moving}

    def split(self, moving: Optional[Collection[int]]) -> Tuple[np.ndarray, np.ndarray, Set[int], Set[int]]:
        """When ``moving`` (None: every object) get new masks: the flat indices of the pixels that stay as they are
        (labelled with an object that is not tracked again, or erased where such an object was drawn), the flat indices
        where such an object was drawn and the person put a moving object instead (that object is absent there: the
        new plane may draw a moving object there but none of :meth:`still`), the objects whose edits those two are,
        and the moving objects whose edits their new masks replace (the other pixels, and the second ones)."""
        still = self.still(moving)
        moving = self.objects - still
        drawn_still = np.isin(self.drawn, np.fromiter(still, np.int64))
        keep = np.isin(self.now, np.fromiter(still, np.int64)) | ((self.now == 0) & drawn_still)
        absent = drawn_still & ~keep  # e.g. the A|B border moved into still B: B must not come back there
        kept = set(np.unique(np.concatenate([self.now[keep], self.drawn[keep | absent]])).tolist()) & still
        replaced = set(np.unique(np.concatenate([self.now[~keep], self.drawn[~keep]])).tolist()) & moving
        return self.pixels[keep], self.pixels[absent], {int(o) for o in kept}, {int(o) for o in replaced}

    def apply(self, plane: np.ndarray, current: np.ndarray, moving: Optional[Collection[int]]) -> Tuple[bool, Set[int],
                                                                                                         Set[int]]:
        """Put the edit's pixels that ``moving`` leave alone (:meth:`split`) into the (H, W) ``plane`` drawn from the
        results (in place): as the labels hold them now (``current``), and the still objects kept out where the person
        removed them. Returns (whether any pixel was kept, the objects whose edits were kept, those replaced)."""
        kept, absent, kept_objects, replaced = self.split(moving)
        if kept.size:
            plane.flat[kept] = np.asarray(current).flat[kept]
        if absent.size:  # an object not tracked again that the person removed there: its old result stays out
            values = plane.flat[absent]
            plane.flat[absent] = np.where(np.isin(values, np.fromiter(self.still(moving), np.int64)), 0, values)
        return bool(kept.size or absent.size), kept_objects, replaced


@dataclass
class EditsMet:
    """What one step did on frames holding hand edits: {frame: objects whose edits were kept} and {frame: objects
    tracked again whose new masks replaced their edits}."""

    kept: Dict[int, Set[int]] = field(default_factory=dict)
    replaced: Dict[int, Set[int]] = field(default_factory=dict)

    def add(self, frame: int, kept: Set[int], replaced: Set[int]) -> None:
        for table, objects in ((self.kept, kept), (self.replaced, replaced)):
            if objects:
                table.setdefault(frame, set()).update(objects)

    def take(self, other: "EditsMet") -> None:
        """Add what ``other`` met to this account."""
        for table, more in ((self.kept, other.kept), (self.replaced, other.replaced)):
            for frame, objects in more.items():
                table.setdefault(frame, set()).update(objects)

    def words(self) -> List[str]:
        """The step's notes: which frames held hand edits of which objects, and what happened to them."""
        notes = []
        for table, what in ((self.kept, ("were kept (not tracked again there)",) * 2),
                            (self.replaced, ("were replaced by its new masks: it was tracked again (Undo brings the "
                                             "edits back)", "were replaced by their new masks: they were tracked "
                                             "again (Undo brings the edits back)"))):
            if table:
                objects = sorted(set().union(*table.values()))
                many = len(objects) > 1
                notes.append(f"Hand edits of object{'s' * many} {', '.join(map(str, objects))} on frame(s) "
                             f"{frame_ranges(sorted(table))} {what[many]}.")
        return notes


@dataclass(frozen=True)
class Marks:
    """What :class:`HandEdits` knew at one moment (:meth:`HandEdits.snapshot`): its marks and its strokes."""

    marks: Dict[Key, int]
    strokes: Dict[Key, Optional[np.ndarray]]
    # the planes whose marks and strokes above were taken again just before the step kept with this snapshot first
    # wrote them (``before`` of :meth:`HandEdits.wrote` / :meth:`HandEdits.cleared`): a stroke made during the step,
    # before it reached that plane, is known again after its undo
    taken: Set[Key] = field(default_factory=set)


class HandEdits:
    """The hand edits of one labels array (``labels``: (..., H, W), its (H, W) planes ``labels[index]``) as one
    controller knows them: its marks of the planes it wrote and the strokes since (module docstring).

    Thread use: :meth:`painted` runs on napari's GUI thread (a stroke), the rest in the run's worker; each change is one
    dict operation under a lock."""

    def __init__(self, labels: Any) -> None:
        self.labels = labels
        self._marks: Dict[Key, int] = {}
        self._strokes: Dict[Key, Optional[np.ndarray]] = {}
        self._lock = threading.Lock()
        self._writing = False  # the controller writes a plane (:meth:`own_writes`): not another tool's write
        watch_writes(labels, self._on_written)

    # ------------------------------------------------------------------ what happened to a plane
    @contextmanager
    def own_writes(self) -> Iterator[None]:
        """The controller writes planes meanwhile and tells this book itself (:meth:`wrote`, :meth:`cleared`): its
        journal's word to the watchers is no other tool's write."""
        self._writing = True
        try:
            yield
        finally:
            self._writing = False

    def wrote(self, index: Tuple[Any, ...], checksum: int, kept: bool, before: Optional[Marks] = None) -> None:
        """The controller wrote ``labels[index]`` from its results (``checksum``: of the plane as stored); ``kept``:
        that write kept hand edits there (the plane still counts as edited by hand). The strokes before it are
        accounted for. ``before``: the snapshot kept with the step that wrote it (:meth:`snapshot`); the plane's
        marks and strokes as they were just before its first write in that step go into it (:meth:`_take`)."""
        key = hashable_index(index)
        with self._lock:
            self._take(before, key)
            self._marks[key] = HOLDS_EDITS if kept else int(checksum)
            self._strokes.pop(key, None)

    def changed(self, index: Tuple[Any, ...], plane: np.ndarray) -> bool:
        """Whether ``labels[index]`` (``plane``: as it is now, read before the controller writes it) holds hand edits
        this book knows of: stroked, marked as holding edits, or changed since the controller wrote it."""
        key = hashable_index(index)
        with self._lock:
            mark, stroked = self._marks.get(key), key in self._strokes
        return stroked or mark == HOLDS_EDITS or (mark is not None and plane_checksum(plane) != mark)

    def cleared(self, index: Tuple[Any, ...], checksum: int, changed: bool, before: Optional[Marks] = None) -> None:
        """The controller removed an object from ``labels[index]`` (``checksum``: of the plane written; ``changed``:
        :meth:`changed` before it wrote). A plane edited by hand before stays edited; a plane the controller never
        wrote keeps its strokes (their pixels). ``before``: as for :meth:`wrote`."""
        key = hashable_index(index)
        with self._lock:
            self._take(before, key)
            if key not in self._marks and key in self._strokes:
                return
            self._marks[key] = HOLDS_EDITS if changed else int(checksum)
            self._strokes.pop(key, None)

    def relabelled(self, sums: Dict[Key, Tuple[int, int]]) -> None:
        """The planes a relabel wrote (plane key -> checksums before and after, :func:`~.controller.relabel_planes`)
        stay the controller's where they were (the same labels with another id), and edited by hand where they were;
        no plane is read again."""
        with self._lock:
            for key, (before, after) in sums.items():
                if self._marks.get(key) == before != HOLDS_EDITS:
                    self._marks[key] = after

    def _on_written(self, index: Tuple[Any, ...], plane: np.ndarray) -> None:
        """A watcher of the labels (:func:`~.labels_writer.watch_writes`): another tool's run or undo wrote
        ``labels[index]`` and said so. Not the controller's own writes (:meth:`own_writes`)."""
        if not self._writing:
            self.other_wrote(index)

    def other_wrote(self, index: Tuple[Any, ...]) -> None:
        """Another tool ("Track all cells", a Load session, a relabel; brush strokes never say so) wrote
        ``labels[index]``: no hand edit, so a plane the controller wrote counts as its own again, unless strokes had
        changed it since the controller wrote it: those strokes (on the controller's objects, which other tools leave
        as they are) stay hand edits (the plane is marked as holding edits)."""
        key = hashable_index(index)
        with self._lock:
            if key not in self._marks:
                return
            if key in self._strokes:
                self._marks[key] = HOLDS_EDITS
                self._strokes.pop(key, None)
            else:
                self._marks[key] = plane_checksum(self.labels[index])

    def painted(self, atoms: Any, planes: Sequence[Tuple[Any, ...]], inserted: Optional[int] = None) -> List[int]:
        """A brush, fill or eraser stroke (a napari Labels ``paint`` event's ``value``: its history atoms, indices into
        ``labels``, or into the layer's data with one more axis: ``inserted``) changed pixels: those of the planes
        ``planes`` (the controller's plane indices, by frame) it touched are remembered as hand-edited, with their flat
        pixel indices (:func:`~.track_all.painted_pixels`; unknown for atoms of a kind not known here: every plane,
        compared whole). ``inserted``: the axis of the layer's data that ``labels`` lack (the size-1 channel axis under
        which the masklets layer shows them; the atoms' index there is 0), None when the atoms index ``labels``
        itself. Returns the positions in ``planes`` (the frames) touched. Reads the atoms, no plane."""
        from .track_all import painted_pixels  # (napari's history atoms read as Track all reads them)

        spatial = [axis for axis, item in enumerate(planes[0]) if isinstance(item, slice)] if planes else []
        shape = tuple(int(self.labels.shape[axis]) for axis in spatial)
        # the planes as the atoms index them: on the layer's axes, 0 on the one ``labels`` lack
        shown = list(planes) if inserted is None else [(*index[:inserted], 0, *index[inserted:]) for index in planes]
        touched = []
        for frame in sorted(planes_touched(atoms, {hashable_index(index): t for t, index in enumerate(shown)})):
            mask = painted_pixels(atoms, shown[frame], shape) if len(shape) == 2 else None
            pixels = None if mask is None else np.flatnonzero(mask)
            if pixels is not None and not pixels.size:
                continue
            key = hashable_index(planes[frame])
            with self._lock:
                known = self._strokes.get(key, np.empty(0, np.int64))
                self._strokes[key] = None if pixels is None or known is None else np.union1d(known, pixels)
            touched.append(frame)
        return touched

    # ------------------------------------------------------------------ reading the edits
    def edit(self, index: Tuple[Any, ...], draw: Callable[[np.ndarray], np.ndarray],
             objects: Collection[int]) -> Optional[HandEdit]:
        """The hand edits of ``labels[index]`` (None: none): where the plane was changed since the controller last
        wrote it (its checksum no longer matches its mark; or strokes said so, also on a plane it never wrote), the
        pixels (among those strokes changed, where known) that differ from what the results draw there now
        (``draw(plane)``: the (H, W) plane the session's results make of it), with the session's ``objects`` among
        them. Call it before the frame's results change. A plane that holds what the results draw is the
        controller's again."""
        key = hashable_index(index)
        with self._lock:
            mark, stroked, pixels = self._marks.get(key), key in self._strokes, self._strokes.get(key)
        if mark is None and not stroked:
            return None
        now = np.asarray(self.labels[index])
        if mark is not None and mark != HOLDS_EDITS and plane_checksum(now) == mark:
            with self._lock:
                self._strokes.pop(key, None)  # (strokes undone)
            return None
        drawn = draw(now).astype(now.dtype, copy=False)
        if mark is None and pixels is not None:  # a plane the controller never wrote: the strokes' pixels only
            changed = pixels[now.flat[pixels] != drawn.flat[pixels]]
        else:
            changed = np.flatnonzero(drawn != now)
        if not changed.size:  # as the results draw it (a stroke undone, another tool's labels beside ours)
            with self._lock:
                if mark is not None:
                    self._marks[key] = plane_checksum(now)
                self._strokes.pop(key, None)
            return None
        values = (now.flat[changed], drawn.flat[changed])
        found = {int(v) for v in np.unique(np.concatenate(values))} & {int(o) for o in objects}
        return HandEdit(changed, *values, found) if found else None

    # ------------------------------------------------------------------ undo
    def snapshot(self) -> Marks:
        """The marks and strokes now (kept with an undoable step: :meth:`restore`)."""
        with self._lock:
            return Marks(dict(self._marks), dict(self._strokes))

    def _take(self, before: Optional[Marks], key: Key) -> None:
        """Put the plane ``key``'s marks and strokes as they are now into the step's snapshot ``before`` (None:
        nothing), the first time the step writes the plane (under the lock, just before the write's own bookkeeping):
        strokes made during the step on a plane it had not written yet count as hand edits again after its undo,
        which brings back the plane as it was then."""
        if before is None or key in before.taken:
            return
        before.taken.add(key)
        for now, then in ((self._marks, before.marks), (self._strokes, before.strokes)):
            if key in now:
                then[key] = now[key]
            else:
                then.pop(key, None)

    def restore(self, before: Marks, indices: Sequence[Tuple[Any, ...]]) -> None:
        """The planes ``indices`` (those an undo just restored) as ``before`` knew them: each plane as it was just
        before the step first wrote it (:meth:`_take`; else when the step began), so hand edits made before the step
        wrote the plane count as such again. The other planes keep theirs (a plane another tool wrote after the step
        stays that tool's write)."""
        with self._lock:
            for index in indices:
                key = hashable_index(index)
                for now, then in ((self._marks, before.marks), (self._strokes, before.strokes)):
                    if key in then:
                        now[key] = then[key]
                    else:
                        now.pop(key, None)
