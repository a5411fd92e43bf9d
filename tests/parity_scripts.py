"""Seeded random prompt scripts, run on our predictors and on Meta's (``sam2==1.1.0``), compared output by output.

Shared by ``tests/test_parity_fuzz.py`` (a few scripts in CI) and ``bench/parity_fuzz.py`` (hundreds, by hand,
with shrinking). A script is a list of JSON-serialisable steps (dicts), so a failure prints one that can be
replayed: the same seed and configuration give the same script.

Video (:class:`VideoPair`): ``VideoSession`` and ``SAM2VideoPredictor`` over the same model inputs (blobs cut to
H x W, so frames can be non-square) and weights. Step kinds: ``points`` (1-5 clicks, positive and negative,
``clear_old`` on or off), ``box``, ``boxpts`` (a box with clicks), ``mask`` (an ellipse), ``propagate`` (forward or
reverse, with or without a start frame and a frame limit, 0 included), ``remove`` and ``reset``; prompts land on
any frame, also on frames already tracked (corrections) and for new objects after propagation. Every returned
output is compared: frame indices, object ids and their order, and every logit row (``_compare`` of
``tests/test_parity_video.py``: bit-identical for objects tracked one by one, within its tolerance for
``batch_objects=True``); after ``remove`` the reference's re-shown frames are compared with our ``frame_logits``.

Image (:class:`ImagePair`): ``ImagePredictor`` and ``SAM2ImagePredictor`` on random uint8 images (48-400 px a side,
grey-as-RGB or RGB) with 2-4 calls each: clicks, a box, a box with clicks, batched boxes (with or without per-box
clicks), batched clicks; multimask True, False or None; ``return_logits`` on or off; ``mask_input`` chained from the
previous call's low-res logits (each side its own). Masks, scores and low-res logits must be bit-identical.
"""

from __future__ import annotations

import json
import pathlib
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Set, Tuple

import numpy as np
import torch
from PIL import Image

from oracle import max_errors, reference_model, share_weights
from sam2_model import ImagePredictor
from sam2_model.frames import FrameSource, to_model_input, to_unit_rgb
from sam2_model.video_session import VideoSession
from test_parity_image_predictor import _reference_predictor_class, _set_reference_features
from test_parity_video import _compare, _promote_reference_memory, moving_blobs

SIZE = 256  # the model input side of every script (random weights of the official presets are built at 256 px)
Step = Dict[str, Any]  # one JSON-serialisable step of a script
Worst = Dict[str, float]  # the largest differences seen: "abs" logit, "rel" logit, "pixels" fraction of mask pixels


def new_worst() -> Worst:
    """An empty record of the largest differences (the keys ``_compare`` updates)."""
    return {"abs": 0.0, "rel": 0.0, "pixels": 0.0}


class ScriptDivergence(AssertionError):
    """A script's outputs differed from the reference's (or only one side raised) at step ``step``.

    category: what differed ("logits", "ids", "frames", "raise-<kind>", "remove_updated"); the bench shrinks a
    failing script while the failure keeps its category.
    """

    def __init__(self, step: int, message: str, category: str) -> None:
        super().__init__(f"step {step}: {message}")
        self.step = step
        self.category = category


def failure_report(label: str, seed: int, steps: Sequence[Step], error: ScriptDivergence, replay: str = "") -> str:
    """The message of a failing script: its configuration, seed, the difference, the steps up to the failing one
    and (``replay``) the command that runs it again."""
    return (f"{label} seed {seed}: {error}\nscript so far ({error.step + 1} of {len(steps)} steps):\n"
            f"{json.dumps(list(steps[: error.step + 1]))}" + (f"\nreplay: {replay}" if replay else ""))


# ---------------------------------------------------------------------------------------------------- video
@dataclass(frozen=True)
class VideoConfig:
    """One video fuzzing configuration: model preset, frame size (H x W), frame count and session options."""

    preset: str
    height: int
    width: int
    num_frames: int
    batch_objects: bool = False
    corrections_as_conditioning: bool = False
    non_overlap_masks: bool = False


# Every configuration of the fuzzing campaign (h14); "long" ones release and recompute memories.
VIDEO_CONFIGS: Dict[str, VideoConfig] = {
    "demo": VideoConfig("demo", 192, 256, 6),
    "demo_square": VideoConfig("demo", 256, 256, 6),
    "demo_long": VideoConfig("demo", 192, 256, 12),
    "demo_batch": VideoConfig("demo", 192, 256, 6, batch_objects=True),
    "demo_long_batch": VideoConfig("demo", 256, 192, 12, batch_objects=True),
    "demo_corr": VideoConfig("demo", 192, 256, 6, corrections_as_conditioning=True),
    "demo_nonoverlap": VideoConfig("demo", 192, 256, 6, non_overlap_masks=True),
    "sam2.1_tiny": VideoConfig("sam2.1_hiera_tiny", 192, 256, 5),
    "sam2.1_tiny_square": VideoConfig("sam2.1_hiera_tiny", 256, 256, 5),
    "sam2.1_tiny_long": VideoConfig("sam2.1_hiera_tiny", 192, 256, 10),
    "sam2.1_tiny_tall": VideoConfig("sam2.1_hiera_tiny", 300, 200, 5),
    "sam2_tiny": VideoConfig("sam2_hiera_tiny", 256, 192, 5),
}


def blob_frames(num_frames: int, height: int, width: int) -> np.ndarray:
    """uint8 (T, H, W, 3): the parity test's moving blobs, cut to H x W."""
    return np.ascontiguousarray(moving_blobs(num_frames, max(height, width))[:, :height, :width])


def ellipse_mask(height: int, width: int, cx: float, cy: float, rx: float, ry: float) -> np.ndarray:
    """bool (H, W): the filled ellipse centred at (cx, cy) with half-axes rx, ry pixels."""
    yy, xx = np.mgrid[:height, :width]
    return ((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2 <= 1


class VideoPair:
    """Our model and the reference predictor with the same weights, over the same frames (one per configuration).

    Official presets get perturbed random weights copied into ours; "demo" gets its shipped weights copied into
    the reference. ``folder`` receives the placeholder JPEGs the reference's ``init_state`` reads.
    """

    def __init__(self, config: VideoConfig, folder: pathlib.Path) -> None:
        self.config = config
        predictor = reference_model(config.preset, image_size=SIZE, video=True)
        predictor.fill_hole_area = 0  # the reference skips hole filling on CPU anyway
        predictor.add_all_frames_to_correct_as_cond = config.corrections_as_conditioning
        predictor.non_overlap_masks = config.non_overlap_masks
        self.model = share_weights(config.preset, predictor, SIZE)
        _promote_reference_memory(predictor)
        self.predictor = predictor
        self.source = FrameSource(blob_frames(config.num_frames, config.height, config.width), image_size=SIZE)
        self.inputs = torch.stack([self.source.model_input(t) for t in range(config.num_frames)])  # (T, 3, S, S)
        self.folder = folder
        for t in range(config.num_frames):
            Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(folder / f"{t:05d}.jpg")

    def fresh(self) -> Tuple[dict, VideoSession]:
        """A new reference inference state (its frames: our model inputs, its video size: H x W) and a new session."""
        config = self.config
        state = self.predictor.init_state(str(self.folder))
        state["images"] = self.inputs.clone()
        state["video_height"], state["video_width"] = config.height, config.width
        state["cached_features"] = {}
        session = VideoSession(self.model, self.source, fill_hole_area=0, batch_objects=config.batch_objects,
                               corrections_as_conditioning=config.corrections_as_conditioning,
                               non_overlap_masks=config.non_overlap_masks)
        return state, session


_CENTRES = ((70, 80), (170, 150), (120, 210))  # the blobs' starting centres in a 256 x 256 frame


def _random_point(rng: np.random.Generator, height: int, width: int) -> List[float]:
    """(x, y): near a blob 70% of the time, anywhere in the frame otherwise."""
    if rng.random() < 0.7:
        cx, cy = _CENTRES[rng.integers(3)]
        x, y = cx * width / 256 + rng.normal(0, 12), cy * height / 256 + rng.normal(0, 12)
    else:
        x, y = rng.uniform(0, width), rng.uniform(0, height)
    return [float(np.clip(round(x, 1), 0, width - 1)), float(np.clip(round(y, 1), 0, height - 1))]


def _random_box(rng: np.random.Generator, height: int, width: int) -> List[float]:
    """(x0, y0, x1, y1): 10-80 px a side around a random point, clipped to the frame."""
    x, y = _random_point(rng, height, width)
    w, h = rng.uniform(10, 80), rng.uniform(10, 80)
    return [max(0.0, round(x - w / 2, 1)), max(0.0, round(y - h / 2, 1)),
            min(width - 1.0, round(x + w / 2, 1)), min(height - 1.0, round(y + h / 2, 1))]


def _random_prompt_step(rng: np.random.Generator, kind: str, config: VideoConfig) -> Step:
    """A prompt step of ``kind`` (points, box, boxpts or mask) for object 1-3 on a random frame."""
    height, width = config.height, config.width
    step: Step = {"kind": kind, "frame": int(rng.integers(config.num_frames)), "obj": int(rng.integers(1, 4))}
    if kind == "points":
        n = int(rng.integers(1, 6))
        step["points"] = [_random_point(rng, height, width) for _ in range(n)]
        labels = [int(v) for v in rng.integers(0, 2, n)]
        labels[0] = 1 if rng.random() < 0.8 else labels[0]
        step["labels"] = labels
        step["clear_old"] = bool(rng.random() < 0.5)
    elif kind == "box":
        step["box"] = _random_box(rng, height, width)
    elif kind == "boxpts":
        n = int(rng.integers(1, 4))
        step["box"] = _random_box(rng, height, width)
        step["points"] = [_random_point(rng, height, width) for _ in range(n)]
        step["labels"] = [int(v) for v in rng.integers(0, 2, n)]
    else:
        cx, cy = _random_point(rng, height, width)
        step["ellipse"] = [cx, cy, float(rng.uniform(8, 50)), float(rng.uniform(8, 50))]
    return step


def random_video_script(rng: np.random.Generator, config: VideoConfig, num_steps: int) -> List[Step]:
    """``num_steps`` random steps; the first step (and the first after removing every object or a reset) is a prompt."""
    prompt_kinds = ["points", "box", "boxpts", "mask"]
    steps: List[Step] = []
    objects: Set[int] = set()
    for _ in range(num_steps):
        if objects:
            kinds = prompt_kinds[:1] + prompt_kinds + ["propagate", "propagate", "remove"]
            if rng.random() < 0.05:
                kinds.append("reset")
            kind = kinds[rng.integers(len(kinds))]
        else:
            kind = prompt_kinds[rng.integers(len(prompt_kinds))]
        if kind in prompt_kinds:
            steps.append(_random_prompt_step(rng, kind, config))
            objects.add(steps[-1]["obj"])
        elif kind == "propagate":
            start = None if rng.random() < 0.5 else int(rng.integers(config.num_frames))
            reverse = bool(rng.random() < 0.35)
            limit = None if rng.random() < 0.6 else int(rng.integers(0, config.num_frames))
            steps.append({"kind": "propagate", "start": start, "reverse": reverse, "max_frames": limit})
        elif kind == "remove":
            steps.append({"kind": "remove", "obj": int(sorted(objects)[rng.integers(len(objects))])})
            objects.discard(steps[-1]["obj"])
        else:
            steps.append({"kind": "reset"})
            objects.clear()
    return steps


def _prompt_arrays(step: Step) -> Dict[str, np.ndarray]:
    """points (N, 2) float32, labels (N,) int32 and box (4,) float32 of a prompt step, those it has."""
    arrays = {}
    if "points" in step:
        arrays["points"] = np.array(step["points"], np.float32)
        arrays["labels"] = np.array(step["labels"], np.int32)
    if "box" in step:
        arrays["box"] = np.array(step["box"], np.float32)
    return arrays


def _reference_step(pair: VideoPair, state: dict, step: Step) -> Any:
    """Run ``step`` on the reference predictor; its return value (propagation as a list)."""
    predictor, kind = pair.predictor, step["kind"]
    if kind == "mask":
        mask = ellipse_mask(pair.config.height, pair.config.width, *step["ellipse"])
        return predictor.add_new_mask(state, step["frame"], step["obj"], mask)
    if kind == "propagate":
        return list(predictor.propagate_in_video(state, start_frame_idx=step["start"],
                                                 max_frame_num_to_track=step["max_frames"], reverse=step["reverse"]))
    if kind == "remove":
        return predictor.remove_object(state, step["obj"])
    if kind == "reset":
        return predictor.reset_state(state)
    return predictor.add_new_points_or_box(state, step["frame"], step["obj"],
                                           clear_old_points=step.get("clear_old", True), **_prompt_arrays(step))


def _our_step(pair: VideoPair, session: VideoSession, step: Step) -> Any:
    """Run ``step`` on our session; its return value (propagation as a list)."""
    kind = step["kind"]
    if kind == "mask":
        mask = ellipse_mask(pair.config.height, pair.config.width, *step["ellipse"])
        return session.add_prompt(step["frame"], step["obj"], mask=mask)
    if kind == "propagate":
        return list(session.propagate(start_frame=step["start"], reverse=step["reverse"],
                                      max_frames=step["max_frames"]))
    if kind == "remove":
        return session.remove_object(step["obj"])
    if kind == "reset":
        return session.reset()
    return session.add_prompt(step["frame"], step["obj"], clear_old=step.get("clear_old", True), **_prompt_arrays(step))


def _compare_rows(ours: np.ndarray, theirs: torch.Tensor, index: int, what: str, worst: Worst, exact: bool,
                  category: str = "logits") -> None:
    """``_compare`` of our logits (n_obj, H, W) with the reference's (n_obj, 1, H, W), as a ScriptDivergence."""
    if ours.shape[0] == 0 and theirs.shape[0] == 0:
        return
    try:
        _compare(ours, theirs, what, worst, exact=exact)
    except AssertionError as error:
        raise ScriptDivergence(index, str(error), category) from None  # the message names ``what``


def _check_step(index: int, step: Step, session: VideoSession, state: dict, ours: Any, theirs: Any,
                worst: Worst, exact: bool) -> int:
    """Compare one step's outputs (``ours`` from the session, ``theirs`` from the reference); outputs compared."""
    kind = step["kind"]
    if kind == "propagate":
        frames, ref_frames = [out[0] for out in ours], [out[0] for out in theirs]
        if frames != ref_frames:
            raise ScriptDivergence(index, f"propagated frames {frames} != reference {ref_frames}", "frames")
        for (frame, ids, logits), (_, ref_ids, ref_logits) in zip(ours, theirs):
            if list(ids) != list(ref_ids):
                raise ScriptDivergence(index, f"frame {frame}: ids {list(ids)} != reference {list(ref_ids)}", "ids")
            _compare_rows(logits, ref_logits, index, f"propagate, frame {frame}", worst, exact)
        return len(ours)
    if kind == "remove":
        ref_ids, updated = theirs
        if list(ours) != list(ref_ids):
            raise ScriptDivergence(index, f"remaining ids {list(ours)} != reference {list(ref_ids)}", "ids")
        for frame, ref_logits in updated:  # the reference re-shows the frames the removed object was prompted on
            _compare_rows(session.frame_logits(frame), ref_logits, index, f"remove: frame_logits({frame}) vs the "
                          "reference's updated frame", worst, exact, "remove_updated")
        return len(updated)
    if kind == "reset":
        if list(state["obj_ids"]) != session.obj_ids:
            raise ScriptDivergence(index, f"ids after reset {session.obj_ids} != reference {list(state['obj_ids'])}",
                                   "ids")
        return 0
    frame, ref_ids, ref_logits = theirs
    if list(ref_ids) != session.obj_ids or frame != step["frame"]:
        raise ScriptDivergence(index, f"{kind} on frame {frame}: ids {session.obj_ids} != reference {list(ref_ids)}",
                               "ids")
    _compare_rows(ours, ref_logits, index, f"{kind} on frame {frame}, every object's row", worst, exact)
    return 1


def run_video_script(pair: VideoPair, steps: Sequence[Step], worst: Worst) -> Tuple[int, Optional[str]]:
    """Run ``steps`` on fresh states of both predictors; raise :class:`ScriptDivergence` at the first difference.

    Exact for objects tracked one by one, within ``_compare``'s tolerance with ``batch_objects``. A step both
    refuse ends the script (the reference may have half-created an object). Returns (outputs compared, the
    refusals' description when both refused, else None).
    """
    state, session = pair.fresh()
    exact = not pair.config.batch_objects
    compared = 0
    with torch.inference_mode():
        for index, step in enumerate(steps):
            ours = theirs = None
            our_error = ref_error = None
            try:
                theirs = _reference_step(pair, state, step)
            except Exception as error:  # noqa: BLE001 - whether it raised is what is compared
                ref_error = error
            try:
                ours = _our_step(pair, session, step)
            except Exception as error:  # noqa: BLE001
                our_error = error
            if (ref_error is None) != (our_error is None):
                raise ScriptDivergence(index, f"{step['kind']}: the reference {_outcome(ref_error)}, ours "
                                       f"{_outcome(our_error)}", f"raise-{step['kind']}")
            if ref_error is not None:
                return compared, f"both refused step {index}: reference {ref_error!r}, ours {our_error!r}"
            compared += _check_step(index, step, session, state, ours, theirs, worst, exact)
    return compared, None


def _outcome(error: Optional[BaseException]) -> str:
    return "returned" if error is None else f"raised {error!r}"


# ---------------------------------------------------------------------------------------------------- image
class ImagePair:
    """Our ImagePredictor and the reference SAM2ImagePredictor with the same weights (see :class:`VideoPair`)."""

    def __init__(self, preset: str) -> None:
        net = reference_model(preset, image_size=SIZE)
        model = share_weights(preset, net, SIZE)
        self.preset = preset
        self.ours = ImagePredictor(model)
        self.reference = _reference_predictor_class()(net)
        self.default_multimask = bool(model.config.multimask_output_in_sam)

    def set_image(self, image: np.ndarray) -> None:
        """Set ``image`` (H, W, 3) uint8 on both: ours by ``set_image``, the reference from the same model input."""
        self.ours.set_image(image)
        tensor = to_model_input(to_unit_rgb(image, None), SIZE, mode="bilinear")
        _set_reference_features(self.reference, tensor, image.shape[:2])


def random_image(rng: np.random.Generator) -> np.ndarray:
    """uint8 (H, W, 3), 48-400 px a side: 1-4 Gaussian spots on a gradient with noise, grey-as-RGB or RGB."""
    height, width = int(rng.integers(48, 400)), int(rng.integers(48, 400))
    yy, xx = np.mgrid[:height, :width]
    image = 30 + 20 * rng.random() * xx / width
    for _ in range(int(rng.integers(1, 5))):
        cx, cy, r = rng.uniform(0, width), rng.uniform(0, height), rng.uniform(5, 60)
        image = image + rng.uniform(60, 200) * np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * r * r))
    grey = np.clip(image + rng.normal(0, 8, image.shape), 0, 255).astype(np.uint8)
    if rng.random() < 0.5:
        rgb = np.stack([grey, np.roll(grey, 3, 1), grey], -1)
        rgb[..., 2] = np.clip(rgb[..., 2].astype(int) + rng.integers(-20, 20), 0, 255)
        return rgb
    return np.repeat(grey[..., None], 3, -1)


def _image_point(rng: np.random.Generator, height: int, width: int) -> List[float]:
    return [float(round(rng.uniform(0, width), 2)), float(round(rng.uniform(0, height), 2))]


def _image_box(rng: np.random.Generator, height: int, width: int) -> List[float]:
    xs, ys = sorted(rng.uniform(0, width, 2)), sorted(rng.uniform(0, height, 2))
    return [float(round(xs[0], 2)), float(round(ys[0], 2)), float(round(xs[1], 2)), float(round(ys[1], 2))]


def _image_labels(rng: np.random.Generator, n: int) -> List[int]:
    return [int(v) for v in rng.integers(0, 2, n)]


def _random_image_call(rng: np.random.Generator, height: int, width: int) -> Step:
    """One predict call: its prompt kind and arrays (as lists), multimask, return_logits and chain_mask."""
    kind = ["points", "box", "boxpts", "batched_boxes", "batched_boxes_pts", "batched_points"][rng.integers(6)]
    call: Step = {"kind": kind}
    if kind == "points":
        n = int(rng.integers(1, 6))
        call["points"] = [_image_point(rng, height, width) for _ in range(n)]
        call["labels"] = _image_labels(rng, n)
    elif kind == "box":
        call["box"] = _image_box(rng, height, width)
    elif kind == "boxpts":
        n = int(rng.integers(1, 4))
        call["box"] = _image_box(rng, height, width)
        call["points"] = [_image_point(rng, height, width) for _ in range(n)]
        call["labels"] = _image_labels(rng, n)
    elif kind == "batched_boxes":
        call["box"] = [_image_box(rng, height, width) for _ in range(int(rng.integers(1, 5)))]
    elif kind == "batched_boxes_pts":
        b, n = int(rng.integers(1, 4)), int(rng.integers(1, 3))
        call["box"] = [_image_box(rng, height, width) for _ in range(b)]
        call["points"] = [[_image_point(rng, height, width) for _ in range(n)] for _ in range(b)]
        call["labels"] = [_image_labels(rng, n) for _ in range(b)]
    else:
        b, n = int(rng.integers(1, 4)), int(rng.integers(1, 4))
        call["points"] = [[_image_point(rng, height, width) for _ in range(n)] for _ in range(b)]
        call["labels"] = [_image_labels(rng, n) for _ in range(b)]
    call["multimask"] = [True, False, None][rng.integers(3)]
    call["return_logits"] = bool(rng.random() < 0.3)
    call["chain_mask"] = bool(rng.random() < 0.5)  # mask_input: the previous call's first low-res logits
    return call


def random_image_script(rng: np.random.Generator) -> Tuple[np.ndarray, List[Step]]:
    """A random image (H, W, 3) uint8 and 2-4 random predict calls on it."""
    image = random_image(rng)
    height, width = image.shape[:2]
    return image, [_random_image_call(rng, height, width) for _ in range(int(rng.integers(2, 5)))]


def _call_arguments(pair: ImagePair, call: Step, previous: Optional[Tuple[np.ndarray, np.ndarray]]
                    ) -> Tuple[Dict[str, Any], Dict[str, Any], int]:
    """Keyword arguments of our predict and of the reference's, and the batch size B of a batched call (0 if not).

    previous: (our, the reference's) low-res logits of the last call, chained as mask_input when the call asks.
    """
    batched = call["kind"].startswith("batched")
    batch = len(call["box"] if "box" in call else call["points"]) if batched else 1
    ours = dict(points=call.get("points"), labels=call.get("labels"), box=call.get("box"),
                multimask=call["multimask"], return_logits=call["return_logits"])
    multimask = pair.default_multimask if call["multimask"] is None else call["multimask"]
    theirs = dict(point_coords=None if "points" not in call else np.array(call["points"], np.float32),
                  point_labels=None if "labels" not in call else np.array(call["labels"], np.int32),
                  box=None if "box" not in call else np.array(call["box"], np.float32),
                  multimask_output=multimask, return_logits=call["return_logits"])
    if call["chain_mask"] and previous is not None:
        for arguments, low_res in zip((ours, theirs), previous):
            first = low_res.reshape(-1, *low_res.shape[-2:])[:1]  # (1, 4h, 4w)
            arguments["mask_input"] = np.repeat(first[None], batch, 0) if batched else first
    return ours, theirs, (batch if batched else 0)


def _exact(ours: np.ndarray, theirs: np.ndarray, index: int, what: str, worst: Worst) -> None:
    """Raise ScriptDivergence unless the arrays have the same shape and values (bool: no element differs)."""
    ours, theirs = np.asarray(ours), np.asarray(theirs)
    if ours.shape != theirs.shape:
        raise ScriptDivergence(index, f"{what}: shape {ours.shape} != reference {theirs.shape}", "shape")
    abs_err, rel_err = max_errors(torch.from_numpy(ours.astype(np.float64)),
                                  torch.from_numpy(theirs.astype(np.float64)))
    worst["abs"], worst["rel"] = max(worst["abs"], abs_err), max(worst["rel"], rel_err)
    if ours.dtype == bool:
        worst["pixels"] = max(worst["pixels"], float((ours != theirs).mean()) if ours.size else 0.0)
    if abs_err != 0.0:
        raise ScriptDivergence(index, f"{what}: max abs difference {abs_err:.3e}", "logits")


def run_image_script(pair: ImagePair, image: np.ndarray, calls: Sequence[Step], worst: Worst) -> Tuple[int, int]:
    """Set ``image`` and run ``calls`` on both predictors; raise :class:`ScriptDivergence` at the first difference.

    Masks, scores and low-res logits must be bit-identical. A batched call with B = 1 is compared as the reference
    returns it (squeezed; ours keeps the batch axis). A call both refuse is skipped (no mask_input is chained from
    it). Returns (calls compared, calls both refused).
    """
    pair.set_image(image)
    compared = refused = 0
    previous: Optional[Tuple[np.ndarray, np.ndarray]] = None
    for index, call in enumerate(calls):
        our_args, ref_args, batch = _call_arguments(pair, call, previous)
        ours = theirs = our_error = ref_error = None
        try:
            theirs = pair.reference.predict(**ref_args)
        except Exception as error:  # noqa: BLE001 - whether it raised is what is compared
            ref_error = error
        try:
            ours = pair.ours.predict(**our_args)
        except Exception as error:  # noqa: BLE001
            our_error = error
        if (ref_error is None) != (our_error is None):
            raise ScriptDivergence(index, f"{call['kind']}: the reference {_outcome(ref_error)}, ours "
                                   f"{_outcome(our_error)}", f"raise-{call['kind']}")
        if ref_error is not None:
            refused += 1
            continue
        outputs = tuple(np.asarray(x) for x in ours)
        if batch == 1:
            outputs = tuple(x[0] for x in outputs)
        for name, mine, reference in zip(("masks", "scores", "low-res logits"), outputs, theirs):
            _exact(mine, reference, index, f"{call['kind']} {name}", worst)
        previous = (np.asarray(ours[2]), np.asarray(theirs[2]))
        compared += 1
    return compared, refused
