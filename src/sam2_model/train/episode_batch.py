"""The batched path of a training step: the model calls of several clips' sessions served as one batch.

:func:`.episode.drive` runs the sessions of a step's clips in lock-step; at each phase (a frame and a
stage of it) :meth:`BatchedCalls.serve` receives every session's request and puts the objects of all
clips through the model together, concatenated along the batch axis:

- every object reads its own clip's image features of the frame (gathered per object from the
  step's encoded frames) and its own clip's memory bank;
- memory attention runs once per *memory layout* (the frame, and which frames are in the prompted and
  recent memories): clips whose banks hold the same frames share one call, each object attending only
  to its own clip's memories (the banks are concatenated along the batch axis, never along the
  memory axis); a clip whose tracked frame got a correction has another layout and another call;
- the prompt encoder and mask decoder run once per *prompt signature* (number of points, mask or
  previous-logits input), since padding a clip's points to another clip's count would change its
  prompt tokens; mask prompts that are output as they are go through one ``mask_as_output`` call;
- the memory encoder runs once per frame for all clips.

The results are split back into per-clip predictions and memories, so each session computes its
losses and samples its corrections exactly as on the per-clip path.
"""

from __future__ import annotations

from typing import Dict, Iterator, List, Mapping, Optional, Sequence, Tuple, Union

import torch

from ..modeling.sam2 import FrameFeatures, MaskPrediction, MemoryEntry, SAM2Model
from .episode import Decode, Remember, Request

Result = Union[MaskPrediction, MemoryEntry]
_Item = Tuple[int, int, Request]  # (position in the served list, session index, request)


class _MergedBank(Mapping[int, MemoryEntry]):
    """Several clips' memory banks holding the same frames, seen as one bank of all their objects.

    Entries are concatenated along the batch axis when first read (reads of pointers that memory
    attention does not select cost nothing) and cached by the identity of the per-clip entries, so a
    frame's merged memory is built once per episode, or not at all when it came from one batch.
    """

    def __init__(self, banks: Sequence[Mapping[int, MemoryEntry]], cache: Dict[Tuple[int, ...], MemoryEntry]) -> None:
        self._banks, self._cache = banks, cache

    def __getitem__(self, frame: int) -> MemoryEntry:
        entries = [bank[frame] for bank in self._banks]
        if len(entries) == 1:
            return entries[0]
        key = tuple(id(entry) for entry in entries)
        merged = self._cache.get(key)
        if merged is None:
            merged = MemoryEntry(torch.cat([e.features for e in entries]), torch.cat([e.pos_enc for e in entries]),
                                 torch.cat([e.obj_ptr for e in entries]))
            self._cache[key] = merged
        return merged

    def __contains__(self, frame: object) -> bool:
        return frame in self._banks[0]

    def __iter__(self) -> Iterator[int]:
        return iter(self._banks[0])

    def __len__(self) -> int:
        return len(self._banks[0])


def _split_prediction(prediction: MaskPrediction, counts: Sequence[int]) -> List[MaskPrediction]:
    """A prediction for sum(counts) objects -> one per clip (views along the batch axis)."""
    out, start = [], 0
    for count in counts:
        part = slice(start, start + count)
        start += count
        raw = prediction.raw_multimask_logits
        out.append(MaskPrediction(
            prediction.multimask_logits[part], prediction.ious[part], prediction.low_res_logits[part],
            prediction.high_res_logits[part], prediction.obj_ptr[part], prediction.object_score_logits[part],
            None if raw is None else raw[part],
        ))
    return out


class BatchedCalls:
    """Serves the requests of several clips' sessions (see the module docstring).

    features: the encoded frames of the whole step, (sum of T, ...); clip i of the sessions has its
    frames at ``starts[i]`` .. ``starts[i] + num_frames`` and ``num_objects[i]`` objects. All clips have
    ``num_frames`` frames and the same image size.
    """

    def __init__(self, model: SAM2Model, features: FrameFeatures, starts: Sequence[int],
                 num_objects: Sequence[int], num_frames: int) -> None:
        if len(starts) != len(num_objects):
            raise ValueError(f"starts and num_objects must have one entry per clip, got {len(starts)} "
                             f"and {len(num_objects)}")
        self.model, self.features, self.num_frames = model, features, num_frames
        self.starts, self.counts = list(starts), list(num_objects)
        self._gathered: Dict[Tuple[int, Tuple[int, ...]], FrameFeatures] = {}
        self._merged: Dict[Tuple[int, ...], MemoryEntry] = {}

    # ------------------------------------------------------------------ per-object features
    def _frame_features(self, frame: int, members: Tuple[int, ...]) -> FrameFeatures:
        """Frame ``frame`` of each member clip, repeated for its objects: (sum of N, ...)."""
        key = (frame, members)
        if key not in self._gathered:
            if self._gathered and next(iter(self._gathered))[0] != frame:
                self._gathered.clear()  # a new frame: the previous frame's gathers are done with
            rows = [self.starts[i] + frame for i in members for _ in range(self.counts[i])]
            index = torch.tensor(rows, device=self.features.image_embed.device)
            f = self.features
            self._gathered[key] = FrameFeatures(f.image_embed.index_select(0, index),
                                                f.image_pos.index_select(0, index),
                                                [x.index_select(0, index) for x in f.high_res])
        return self._gathered[key]

    # ------------------------------------------------------------------ serving
    def serve(self, requests: List[Tuple[int, Request]]) -> List[Result]:
        """Results for [(session index, request), ...] of one phase, in the same order."""
        results: List[Optional[Result]] = [None] * len(requests)
        decodes = [(k, i, r) for k, (i, r) in enumerate(requests) if isinstance(r, Decode)]
        remembers = [(k, i, r) for k, (i, r) in enumerate(requests) if isinstance(r, Remember)]
        if decodes:
            self._decode(decodes, results)
        if remembers:
            self._remember(remembers, results)
        return results  # type: ignore[return-value]

    def _store(self, prediction: MaskPrediction, items: List[_Item], results: List[Optional[Result]]) -> None:
        for (k, _, _), part in zip(items, _split_prediction(prediction, [self.counts[i] for _, i, _ in items])):
            results[k] = part

    def _decode(self, items: List[_Item], results: List[Optional[Result]]) -> None:
        model = self.model
        as_output = model.config.use_mask_input_as_output_without_sam
        direct = _group(items, lambda r: r.frame if (r.mask_input is not None and as_output) else None)
        for frame, group in direct.items():
            if frame is None:
                continue
            members = tuple(i for _, i, _ in group)
            masks = torch.cat([r.mask_input for _, _, r in group])
            self._store(model.mask_as_output(self._frame_features(frame, members), masks), group, results)
        decoded = direct.get(None, [])
        if not decoded:
            return
        # memory attention, once per memory layout
        fused_of: Dict[int, torch.Tensor] = {}
        whole: Dict[Tuple[int, ...], torch.Tensor] = {}
        layouts = _group(decoded, lambda r: (r.frame, r.is_init, tuple(sorted(r.cond)), tuple(sorted(r.recent))))
        for (frame, is_init, _, _), group in layouts.items():
            members = tuple(i for _, i, _ in group)
            cond = _MergedBank([r.cond for _, _, r in group], self._merged)
            recent = _MergedBank([r.recent for _, _, r in group], self._merged)
            fused = model.condition_on_memory(frame, self._frame_features(frame, members), is_init, cond, recent,
                                              self.num_frames)
            whole[tuple(k for k, _, _ in group)] = fused
            start = 0
            for k, i, _ in group:
                fused_of[k] = fused[start : start + self.counts[i]]
                start += self.counts[i]
        # prompt encoder and mask decoder, once per prompt signature
        signatures = _group(decoded, lambda r: (
            r.frame, r.is_init, None if r.labels is None else r.labels.shape[1],
            None if (r.prev_logits if r.prev_logits is not None else r.mask_input) is None
            else tuple((r.prev_logits if r.prev_logits is not None else r.mask_input).shape[1:])))
        for (frame, is_init, num_points, _), group in signatures.items():
            members = tuple(i for _, i, _ in group)
            positions = tuple(k for k, _, _ in group)
            fused = whole.get(positions)
            if fused is None:
                fused = torch.cat([fused_of[k] for k in positions])
            coords = labels = mask = None
            if num_points is not None:
                coords = torch.cat([r.coords for _, _, r in group])
                labels = torch.cat([r.labels for _, _, r in group])
            masks = [r.prev_logits if r.prev_logits is not None else r.mask_input for _, _, r in group]
            if masks[0] is not None:
                mask = torch.cat(masks)
            prediction = model.predict_masks(
                fused, self._frame_features(frame, members).high_res, coords, labels, mask,
                multimask=model.use_multimask(is_init, num_points or 0),
            )
            self._store(prediction, group, results)

    def _remember(self, items: List[_Item], results: List[Optional[Result]]) -> None:
        for (frame, from_points), group in _group(items, lambda r: (r.frame, r.from_points)).items():
            members = tuple(i for _, i, _ in group)
            predictions = [r.prediction for _, _, r in group]
            high = torch.cat([p.high_res_logits for p in predictions])
            scores = torch.cat([p.object_score_logits for p in predictions])
            pointers = torch.cat([p.obj_ptr for p in predictions])
            mem, pos = self.model.encode_memory(self._frame_features(frame, members), high, scores, from_points)
            start, entries = 0, []
            for (k, i, _) in group:
                part = slice(start, start + self.counts[i])
                start += self.counts[i]
                entries.append(MemoryEntry(mem[part], pos[part], pointers[part]))
                results[k] = entries[-1]
            if len(entries) > 1:  # merged banks of exactly these clips reuse the batch as it is
                self._merged[tuple(id(e) for e in entries)] = MemoryEntry(mem, pos, pointers)


def _group(items: List[_Item], key) -> Dict[object, List[_Item]]:  # type: ignore[no-untyped-def]
    """Items grouped by ``key(request)``, in first-seen order, each group in the items' order."""
    groups: Dict[object, List[_Item]] = {}
    for item in items:
        groups.setdefault(key(item[2]), []).append(item)
    return groups
