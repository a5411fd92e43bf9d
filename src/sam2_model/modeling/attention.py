"""Multi-head attention with an optional projection bottleneck, and its 2D-RoPE variant.

Used by the two-way transformer of the mask decoder (``Attention``) and by memory attention
(``RoPEAttention``). State-dict keys: ``q_proj``, ``k_proj``, ``v_proj``, ``out_proj``.

``RoPEAttention`` also exposes its key and value projections and the attention on ready keys and
values, for callers that reuse projected memories (the batched video path keeps each memory's values);
they compute exactly what ``forward`` computes. ``forward`` itself is unchanged.

Rotary tables are shared: every ``RoPEAttention`` of the same head width, grid, theta and device uses
one set of tables (``rope_tables``), held weakly by a module-level cache and strongly by the modules
that use it, so they are freed with the last such module and never enter the state dict.
"""

from __future__ import annotations

import platform
import threading
import weakref
from typing import Dict, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn


class Attention(nn.Module):
    """Attention whose inner width is ``embedding_dim // downsample_rate``.

    ``q``: (B, Nq, embedding_dim); ``k``, ``v``: (B, Nk, kv_in_dim) -> (B, Nq, embedding_dim).
    """

    def __init__(
        self,
        embedding_dim: int,
        num_heads: int,
        downsample_rate: int = 1,
        dropout: float = 0.0,
        kv_in_dim: Optional[int] = None,
    ) -> None:
        super().__init__()
        self.embedding_dim = embedding_dim
        self.kv_in_dim = kv_in_dim if kv_in_dim is not None else embedding_dim
        self.internal_dim = embedding_dim // downsample_rate
        self.num_heads = num_heads
        if self.internal_dim % num_heads != 0:
            raise ValueError(f"num_heads={num_heads} must divide the inner width {self.internal_dim}")
        self.q_proj = nn.Linear(embedding_dim, self.internal_dim)
        self.k_proj = nn.Linear(self.kv_in_dim, self.internal_dim)
        self.v_proj = nn.Linear(self.kv_in_dim, self.internal_dim)
        self.out_proj = nn.Linear(self.internal_dim, embedding_dim)
        self.dropout_p = dropout

    def split_heads(self, x: torch.Tensor) -> torch.Tensor:
        """(B, N, C) -> (B, heads, N, C / heads)."""
        batch, tokens, channels = x.shape
        return x.view(batch, tokens, self.num_heads, channels // self.num_heads).transpose(1, 2)

    @staticmethod
    def merge_heads(x: torch.Tensor) -> torch.Tensor:
        """(B, heads, N, c) -> (B, N, heads * c)."""
        batch, heads, tokens, channels = x.shape
        return x.transpose(1, 2).reshape(batch, tokens, heads * channels)

    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """Scaled dot-product attention on split heads, then merge and project out."""
        out = F.scaled_dot_product_attention(q, k, v, dropout_p=self.dropout_p if self.training else 0.0)
        return self.out_proj(self.merge_heads(out))

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        q = self.split_heads(self.q_proj(q))
        k = self.split_heads(self.k_proj(k))
        v = self.split_heads(self.v_proj(v))
        return self.attend(q, k, v)


def axial_rope_angles(head_dim: int, width: int, height: int, theta: float = 10000.0) -> torch.Tensor:
    """Rotation angles of 2D axial RoPE for a ``height x width`` grid in row-major token order.

    Returns (width * height, head_dim // 2): the first half of the rotated pairs encode x, the
    second half y, each with frequencies ``theta ** (-4 i / head_dim)``.
    """
    quarter = head_dim // 4
    inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 4)[:quarter].float() / head_dim))
    index = torch.arange(width * height, dtype=torch.float32)
    xs = index % width
    ys = torch.div(index, width, rounding_mode="floor")
    return torch.cat([torch.outer(xs, inv_freq), torch.outer(ys, inv_freq)], dim=-1)


def rotate_pairs(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate consecutive channel pairs ``(x[2i], x[2i+1])`` of ``x`` (..., N, C) by angles (N, C/2).

    The reference arithmetic, in float32: ``(even * cos - odd * sin, even * sin + odd * cos)``.
    """
    pairs = x.float().unflatten(-1, (-1, 2))
    even, odd = pairs[..., 0], pairs[..., 1]
    rotated = torch.stack((even * cos - odd * sin, even * sin + odd * cos), dim=-1)
    return rotated.flatten(-2).type_as(x)


# PyTorch runs an elementwise op on one thread below this many elements (at::internal::GRAIN_SIZE).
_SERIAL_ELEMENTS = 32768
# Complex floats that PyTorch's vectorized x86 loop (AVX2 or AVX-512) multiplies per step, two vectors at a time.
_COMPLEX_STEP = 16


def complex_rotation_exact(x: torch.Tensor, half_width: int) -> bool:
    """Whether ``rotate_grids`` may multiply complex numbers and still give ``rotate_pairs``'s bits.

    PyTorch's vectorized complex multiply on x86 rounds ``a*c - b*d`` and ``a*d + b*c`` as the reference
    does, but its scalar remainder loop may fuse them (FMA) and round once; a remainder appears where a row
    is not a whole number of steps, or where threads split the work at any element. So: CPU with AVX2 or
    AVX-512, rows of a whole number of steps, no gradient, and every multiply small enough to run on one
    thread (``rotate_grids`` cuts it by tokens). Everywhere else (MPS, CUDA, ARM, training) the reference.
    """
    if x.device.type != "cpu" or platform.machine().lower() not in ("x86_64", "amd64"):
        return False
    if torch.backends.cpu.get_cpu_capability() not in ("AVX2", "AVX512"):
        return False
    if half_width % _COMPLEX_STEP or (torch.is_grad_enabled() and x.requires_grad):
        return False
    if x.stride(-1) != 1 or x.storage_offset() % 2 or any(step % 2 for step in x.stride()[:-1]):
        return False  # not viewable as complex numbers without a copy
    rows_per_token = x.numel() // max(1, x.shape[-2] * x.shape[-1])
    return rows_per_token * half_width < _SERIAL_ELEMENTS


def rotate_grids(
    x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, unit: Optional[torch.Tensor] = None
) -> torch.Tensor:
    """``rotate_pairs`` for x (B, heads, n * N, C) holding n whole grids of N tokens, bit for bit.

    ``cos``, ``sin``: (N, C/2) float32; ``unit``: the same as ``cos + i sin`` (complex64) or None. Each
    grid's pairs are multiplied by ``unit`` as complex numbers where that is exact
    (``complex_rotation_exact``): 10-30x less CPU than the real arithmetic, which runs everywhere else.
    """
    grid_tokens, half_width = cos.shape
    repeats = x.shape[-2] // grid_tokens
    xf = x.float()
    if unit is None or not complex_rotation_exact(xf, half_width):
        if repeats == 1:
            return rotate_pairs(x, cos, sin)
        return rotate_pairs(x, cos.repeat(repeats, 1), sin.repeat(repeats, 1))
    z = torch.view_as_complex(xf.unflatten(-1, (-1, 2)))
    out = torch.empty(z.shape, dtype=z.dtype, device=z.device)
    rows_per_token = z.numel() // (z.shape[-2] * half_width)
    block = max(1, (_SERIAL_ELEMENTS - 1) // (rows_per_token * half_width))
    start = 0
    while start < z.shape[-2]:
        # a block never crosses the end of a grid, so its angles are one slice of ``unit``
        first = start % grid_tokens
        stop = min(start + block, start - first + grid_tokens)
        torch.mul(z[..., start:stop, :], unit[first : first + stop - start], out=out[..., start:stop, :])
        start = stop
    return torch.view_as_real(out).flatten(-2).type_as(x)


class RopeTables:
    """One grid's rotary tables, float32 on one device: ``cos``, ``sin`` (N, C/2) and, on the CPU, ``unit``
    = ``cos + i sin`` (complex64, else None). Shared read-only by every module that rotates on that grid."""

    __slots__ = ("cos", "sin", "unit", "__weakref__")

    def __init__(self, cos: torch.Tensor, sin: torch.Tensor, unit: Optional[torch.Tensor]) -> None:
        self.cos, self.sin, self.unit = cos, sin, unit


# (head_dim, tokens, theta, device) -> tables. Weak values: an entry lives while some module holds it.
_SHARED_TABLES: "weakref.WeakValueDictionary[Tuple[int, int, float, str], RopeTables]" = weakref.WeakValueDictionary()
_SHARED_LOCK = threading.Lock()


def rope_tables(head_dim: int, num_tokens: int, theta: float, device: torch.device) -> RopeTables:
    """The shared tables of a square grid of ``num_tokens`` tokens for heads of ``head_dim`` channels.

    Built on first use and kept while any caller holds them; the same object for equal arguments.
    """
    key = (head_dim, num_tokens, float(theta), str(torch.device(device)))
    with _SHARED_LOCK:
        tables = _SHARED_TABLES.get(key)
        if tables is not None:
            return tables
        side = int(round(num_tokens**0.5))
        if side * side != num_tokens:
            raise ValueError(f"RoPE needs a square token grid, got {num_tokens} tokens")
        # Built outside inference mode even when asked from inside it: the tables are shared with every model of
        # the process, and an inference tensor cannot take part in a training step's autograd ("Inference tensors
        # cannot be saved for backward") when a model trains after another one ran under torch.inference_mode.
        with torch.inference_mode(False):
            angles = axial_rope_angles(head_dim, side, side, theta)
            # torch.polar rounds some cosines and sines one ulp away from torch.cos/torch.sin; Meta's
            # rotations come from polar, so ours do too (bit-identical rotated queries and keys).
            unit = torch.polar(torch.ones_like(angles), angles).to(device)
            cos, sin = unit.real.contiguous(), unit.imag.contiguous()
            tables = RopeTables(cos, sin, torch.complex(cos, sin) if unit.device.type == "cpu" else None)
        _SHARED_TABLES[key] = tables
        return tables


class RoPEAttention(Attention):
    """Attention with 2D axial rotary position encoding on queries and keys.

    Keys may hold several memories of the same grid (``rope_k_repeat``), followed by
    ``num_k_exclude_rope`` tokens (object pointers) that receive no rotation.
    """

    def __init__(
        self,
        embedding_dim: int,
        num_heads: int,
        downsample_rate: int = 1,
        dropout: float = 0.0,
        kv_in_dim: Optional[int] = None,
        rope_theta: float = 10000.0,
        rope_k_repeat: bool = False,
    ) -> None:
        super().__init__(embedding_dim, num_heads, downsample_rate, dropout, kv_in_dim)
        self.rope_theta = rope_theta
        self.rope_k_repeat = rope_k_repeat
        # grid tokens -> shared tables, all on one device (the last one rotated on); not in the state dict
        self._rope_tables: Dict[int, RopeTables] = {}
        self._rope_device = ""

    def _apply(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        """``.to()``, ``.cuda()``, ``.half()``...: a move to another device lets go of the old device's tables.

        Tables stay held across a dtype change or a move to the same device (captured CUDA graphs read them).
        """
        module = super()._apply(*args, **kwargs)
        if self._rope_device and str(self.q_proj.weight.device) != self._rope_device:
            self._rope_tables, self._rope_device = {}, ""
        return module

    def _tables(self, num_tokens: int, device: torch.device) -> RopeTables:
        """The shared tables of a grid of ``num_tokens`` tokens on ``device``, held while this module uses it."""
        device_key = str(device)
        if device_key != self._rope_device:
            self._rope_tables, self._rope_device = {}, device_key
        tables = self._rope_tables.get(num_tokens)
        if tables is None:
            tables = rope_tables(self.internal_dim // self.num_heads, num_tokens, self.rope_theta, device)
            self._rope_tables = {**self._rope_tables, num_tokens: tables}
        return tables

    def _rotate(self, x: torch.Tensor, grid_tokens: int) -> torch.Tensor:
        """x (B, heads, n * grid_tokens, head_dim), n whole grids -> each grid rotated by its positions."""
        tables = self._tables(grid_tokens, x.device)
        return rotate_grids(x, tables.cos, tables.sin, tables.unit)

    def forward(
        self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, num_k_exclude_rope: int = 0
    ) -> torch.Tensor:
        q = self.split_heads(self.q_proj(q))
        k = self.split_heads(self.k_proj(k))
        v = self.split_heads(self.v_proj(v))
        num_q = q.shape[-2]
        q = self._rotate(q, num_q)
        num_k_rope = k.shape[-2] - num_k_exclude_rope
        if num_k_rope > 0:
            if num_k_rope != num_q and not self.rope_k_repeat:
                raise ValueError("keys and queries differ in length; rope_k_repeat must be set")
            if num_k_rope % num_q:
                raise ValueError(f"{num_k_rope} rotated keys are not whole grids of {num_q} tokens")
            k_rot = self._rotate(k[:, :, :num_k_rope], num_q)
            k = torch.cat([k_rot, k[:, :, num_k_rope:]], dim=2)
        return self.attend(q, k, v)

    # ------------------------------------------------------------------ reusable key/value projections
    def rotated_keys(self, x: torch.Tensor, grid_tokens: int, num_unrotated: int = 0) -> torch.Tensor:
        """Keys as ``forward`` computes them: x (B, n * grid_tokens + num_unrotated, kv_in_dim) holds whole
        grids of the query grid's size (rotated), then ``num_unrotated`` tokens -> (B, heads, N, head_dim)."""
        num_rope = x.shape[1] - num_unrotated
        if num_rope < 0 or num_rope % grid_tokens:
            raise ValueError(f"x holds {x.shape[1]} tokens, not whole grids of {grid_tokens} and {num_unrotated} more")
        keys = self.split_heads(self.k_proj(x))
        rotated = self._rotate(keys[:, :, :num_rope], grid_tokens)
        return torch.cat([rotated, keys[:, :, num_rope:]], dim=2) if num_unrotated else rotated

    def values(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, N, kv_in_dim) -> (B, heads, N, head_dim)."""
        return self.split_heads(self.v_proj(x))

    def attend_projected(self, q: torch.Tensor, keys: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
        """Queries (B | 1, Lq, embedding_dim) on ready keys and values (B, heads, N, head_dim) -> (B, Lq, embedding_dim).

        Keys are already rotated where they should be; a query batch of 1 is shared by all B rows.
        """
        q = self.split_heads(self.q_proj(q))
        q = self._rotate(q, q.shape[-2])
        if q.shape[0] != keys.shape[0]:
            q = q.expand(keys.shape[0], -1, -1, -1)
        return self.attend(q, keys, values)
