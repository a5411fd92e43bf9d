"""CUDA graphs for the model calls a propagation repeats with the same shapes on every frame.

A SAM 2 frame is ~1,000 small kernels; launched one by one from Python, the CPU that issues them,
not the GPU, bounds the frame rate of the smaller models. A CUDA graph records the kernels of one call
once and replays them with a single launch. Four calls are graphed: the image encoder (one shape per
video), memory attention (one shape per number of memories and object pointers, constant once the
memory bank is full), the mask decoder without prompts (propagation) and the memory encoder.

Each signature (shapes, strides, dtypes of the tensor arguments, the other arguments, the autocast
state) runs eagerly ``warmup_calls`` times before it is captured, so one-off shapes (the first frames
while the memory bank fills, prompted frames) never pay for a capture. Replays copy new inputs into the
graph's input buffers and return copies of its outputs, so results can be kept across frames. Results
equal the eager ones up to the kernels cuBLAS/cuDNN pick (float rounding). Any failure to capture turns
graphs off for that call with a warning and the model runs eagerly, so enabling them is never fatal.

Only for inference on CUDA (``torch.inference_mode`` or ``no_grad``); training and CPU/MPS calls run
eagerly. Each graph keeps its working memory (the call's intermediate tensors) for the model's lifetime.
"""

from __future__ import annotations

import contextlib
import dataclasses
import warnings
from typing import Any, Callable, Dict, Hashable, List, Optional, Sequence, Tuple

import torch

from .modeling.sam2 import FrameFeatures, MaskPrediction, SAM2Model

TensorFn = Callable[..., Sequence[torch.Tensor]]


@dataclasses.dataclass
class _Captured:
    graph: "torch.cuda.CUDAGraph"
    inputs: List[Any]
    outputs: Tuple[Optional[torch.Tensor], ...]
    device: torch.device

    def run(self, args: Sequence[Any]) -> Tuple[torch.Tensor, ...]:
        with torch.cuda.device(self.device):  # the model's GPU, also when another one is current
            for buffer, value in zip(self.inputs, args):
                if isinstance(buffer, torch.Tensor) and buffer.data_ptr() != value.data_ptr():
                    buffer.copy_(value)
            self.graph.replay()
            return tuple(None if out is None else out.clone() for out in self.outputs)


def _autocast_state() -> Tuple[bool, torch.dtype]:
    return torch.is_autocast_enabled("cuda"), torch.get_autocast_dtype("cuda")


class GraphedCall:
    """``fn(*args) -> tensors`` replayed from CUDA graphs, one graph per argument signature.

    args: tensors (all on one CUDA device), None, or hashable constants (ints, bools); fn returns a
    sequence of tensors. At most ``max_graphs`` signatures are captured; others run eagerly.
    """

    def __init__(self, fn: TensorFn, name: str, warmup_calls: int = 2, max_graphs: int = 24) -> None:
        self.fn = fn
        self.name = name
        self.warmup_calls = warmup_calls
        self.max_graphs = max_graphs
        self.disabled_reason: Optional[str] = None
        self.replays = 0
        self._seen: Dict[Hashable, int] = {}
        self._graphs: Dict[Hashable, _Captured] = {}
        self._pool: Optional[Any] = None

    @property
    def num_graphs(self) -> int:
        return len(self._graphs)

    def _signature(self, args: Sequence[Any]) -> Optional[Hashable]:
        """The cache key of ``args``, or None when this call must run eagerly."""
        if torch.is_grad_enabled() or not torch.cuda.is_available() or torch.cuda.is_current_stream_capturing():
            return None
        key: List[Hashable] = []
        on_cuda = False
        for value in args:
            if isinstance(value, torch.Tensor):
                if value.device.type != "cuda":
                    return None
                on_cuda = True
                key.append((tuple(value.shape), value.stride(), value.dtype, value.device.index))
            else:
                key.append(value)
        return (tuple(key), _autocast_state()) if on_cuda else None

    def __call__(self, *args: Any) -> Tuple[torch.Tensor, ...]:
        key = self._signature(args)
        if key is None:
            return tuple(self.fn(*args))
        captured = self._graphs.get(key)
        if captured is None:
            seen = self._seen.get(key, 0) + 1
            self._seen[key] = seen
            if self.disabled_reason is not None or seen <= self.warmup_calls or len(self._graphs) >= self.max_graphs:
                return tuple(self.fn(*args))
            captured = self._capture(key, args)
            if captured is None:
                return tuple(self.fn(*args))
        self.replays += 1
        return captured.run(args)

    def _capture(self, key: Hashable, args: Sequence[Any]) -> Optional[_Captured]:
        enabled, dtype = _autocast_state()

        def autocast() -> contextlib.AbstractContextManager:
            # Autocast's weight-cast cache must be off while capturing (PyTorch's CUDA-graph rules).
            return torch.autocast("cuda", dtype=dtype, cache_enabled=False) if enabled else contextlib.nullcontext()

        device = next(value.device for value in args if isinstance(value, torch.Tensor))
        try:
            with torch.cuda.device(device):
                return self._capture_on(key, args, device, autocast)
        except Exception as error:  # any capture problem: this call stays eager
            self.disabled_reason = f"{type(error).__name__}: {error}"
            warnings.warn(f"CUDA graphs are off for {self.name} ({self.disabled_reason}); it runs eagerly",
                          stacklevel=3)
            return None

    def _capture_on(self, key: Hashable, args: Sequence[Any], device: torch.device,
                    autocast: Callable[[], contextlib.AbstractContextManager]) -> _Captured:
        """Capture ``fn`` on ``args``' signature (called with ``device`` current)."""
        inputs = [value.clone() if isinstance(value, torch.Tensor) else value for value in args]
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side), autocast():
            self.fn(*inputs)  # warm-up on a side stream: lazy library state is made outside the capture
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, pool=self._pool), autocast():
            outputs = tuple(self.fn(*inputs))
        if self._pool is None:
            self._pool = graph.pool()
        captured = _Captured(graph, inputs, outputs, device)
        self._graphs[key] = captured
        return captured


class ModelGraphs:
    """The graphed calls installed on a model by :func:`enable_cuda_graphs` (counters for benchmarks)."""

    def __init__(self, model: SAM2Model) -> None:
        self._encode_image = model.encode_image
        self._predict_masks = model.predict_masks
        self._encode_memory = model.encode_memory
        self._attention = model.memory_attention.forward
        self.calls = {
            "image_encoder": GraphedCall(self._image_tensors, "the image encoder"),
            "memory_attention": GraphedCall(self._attention_tensors, "memory attention"),
            "mask_decoder": GraphedCall(self._decoder_tensors, "the mask decoder"),
            "memory_encoder": GraphedCall(self._memory_tensors, "the memory encoder"),
        }

    # ---------------------------------------------------------------- tensor-only forms of the calls
    def _image_tensors(self, images: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        features = self._encode_image(images)
        return (features.image_embed, features.image_pos, *features.high_res)

    def _attention_tensors(self, curr: torch.Tensor, memory: torch.Tensor, curr_pos: Optional[torch.Tensor],
                           memory_pos: Optional[torch.Tensor], num_obj_ptr_tokens: int) -> Tuple[torch.Tensor]:
        return (self._attention(curr=curr, memory=memory, curr_pos=curr_pos, memory_pos=memory_pos,
                                num_obj_ptr_tokens=num_obj_ptr_tokens),)

    def _decoder_tensors(self, multimask: bool, image_embed: torch.Tensor, *high_res: torch.Tensor
                         ) -> Tuple[torch.Tensor, ...]:
        prediction = self._predict_masks(image_embed, list(high_res), None, None, None, multimask=multimask)
        return tuple(getattr(prediction, field.name) for field in dataclasses.fields(MaskPrediction))

    def _memory_tensors(self, from_points: bool, image_embed: torch.Tensor, image_pos: torch.Tensor,
                        high_res_logits: torch.Tensor, object_score_logits: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        features = FrameFeatures(image_embed, image_pos, [])
        return self._encode_memory(features, high_res_logits, object_score_logits, from_points)

    # ---------------------------------------------------------------- what the model calls instead
    def encode_image(self, images: torch.Tensor) -> FrameFeatures:
        embed, pos, *high_res = self.calls["image_encoder"](images)
        return FrameFeatures(embed, pos, list(high_res))

    def memory_attention(self, curr: torch.Tensor, memory: torch.Tensor, curr_pos: Optional[torch.Tensor] = None,
                         memory_pos: Optional[torch.Tensor] = None, num_obj_ptr_tokens: int = 0) -> torch.Tensor:
        return self.calls["memory_attention"](curr, memory, curr_pos, memory_pos, int(num_obj_ptr_tokens))[0]

    def predict_masks(self, image_embed: torch.Tensor, high_res: List[torch.Tensor],
                      point_coords: Optional[torch.Tensor] = None, point_labels: Optional[torch.Tensor] = None,
                      mask_input: Optional[torch.Tensor] = None, multimask: bool = False) -> MaskPrediction:
        if point_coords is not None or point_labels is not None or mask_input is not None:
            return self._predict_masks(image_embed, high_res, point_coords, point_labels, mask_input, multimask)
        values = self.calls["mask_decoder"](bool(multimask), image_embed, *high_res)
        return MaskPrediction(*values)

    def encode_memory(self, features: FrameFeatures, high_res_logits: torch.Tensor,
                      object_score_logits: torch.Tensor, from_points: bool) -> Tuple[torch.Tensor, torch.Tensor]:
        mem, pos = self.calls["memory_encoder"](bool(from_points), features.image_embed, features.image_pos,
                                                high_res_logits, object_score_logits)
        return mem, pos

    def summary(self) -> Dict[str, Dict[str, object]]:
        """Per call: graphs captured, replays, and why graphs are off (None when they are on)."""
        return {name: {"graphs": call.num_graphs, "replays": call.replays, "off": call.disabled_reason}
                for name, call in self.calls.items()}


def enable_cuda_graphs(model: SAM2Model) -> Optional[ModelGraphs]:
    """Replay the model's per-frame calls from CUDA graphs (CUDA only; a warning and None elsewhere).

    Returns the installed :class:`ModelGraphs` (also ``model.cuda_graphs``); calling it again returns it.
    """
    existing = getattr(model, "cuda_graphs", None)
    if isinstance(existing, ModelGraphs):
        return existing
    if model.device.type != "cuda":
        warnings.warn(f"CUDA graphs are only used on CUDA; the model is on {model.device.type.upper()} and runs "
                      "eagerly", stacklevel=2)
        return None
    graphs = ModelGraphs(model)
    # Instance attributes shadow the methods; state-dict keys and the eager code are untouched.
    model.encode_image = graphs.encode_image  # type: ignore[method-assign]
    model.predict_masks = graphs.predict_masks  # type: ignore[method-assign]
    model.encode_memory = graphs.encode_memory  # type: ignore[method-assign]
    model.memory_attention.forward = graphs.memory_attention  # type: ignore[method-assign]
    model.cuda_graphs = graphs
    return graphs


def disable_cuda_graphs(model: SAM2Model) -> None:
    """Remove what :func:`enable_cuda_graphs` installed (the captured graphs are freed)."""
    graphs = getattr(model, "cuda_graphs", None)
    if not isinstance(graphs, ModelGraphs):
        return
    for name in ("encode_image", "predict_masks", "encode_memory"):
        model.__dict__.pop(name, None)
    model.memory_attention.__dict__.pop("forward", None)
    model.cuda_graphs = None
