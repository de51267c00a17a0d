"""The fusion points of the static engine's forward pass, in two implementations: ``"torch"`` (plain torch: exact
on the CPU, fused by ``torch.compile`` on CUDA) and ``"triton"`` (hand-written Triton kernels,
:mod:`.triton_ops`). :func:`select_kernels` picks one; the engine reports which (``EngineInfo.backend_note``).

====================  ============================================  ============================================
op                    torch                                         triton
====================  ============================================  ============================================
``rms_norm``          fp32 statistics, as transformers' Llama       one program per row
``add_rms_norm``      residual add, then the norm                   both in one pass
``rope_store``        cos/sin gather, two rotaries, two scatters    rotated Q out, K/V into the cache, one kernel
``swiglu``            ``silu(gate) * up``                           one elementwise kernel
``decode_attention``  SDPA over the window with a length mask       split-K over each row's own length
``lora_add``          gather each row's A/B, two batched matmuls    BGMV: each row reads its adapter in place
====================  ============================================  ============================================

``$PUYU_APPS_STATIC_KERNELS`` (``auto``, ``torch``, ``triton``) chooses when the caller does not; ``auto`` is
``triton`` on CUDA when Triton imports, else ``torch``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from typing import Any, Callable, Literal, NamedTuple

import torch
import torch.nn.functional as F

from ...errors import DeviceUnavailableError, MissingDependencyError
from .errors import KernelCheckError
from .lora import LoraStack, lora_delta

KernelChoice = Literal["auto", "torch", "triton"]
KERNEL_CHOICES = ("auto", "torch", "triton")


# -- the torch reference ops -------------------------------------------------------------------------------------
def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """RMSNorm exactly as transformers' Llama (fp32 statistics, scaled in the input dtype)."""
    dtype = x.dtype
    h = x.to(torch.float32)
    h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + eps)
    return weight * h.to(dtype)


def add_rms_norm(x: torch.Tensor, residual: torch.Tensor, weight: torch.Tensor,
                 eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    """``(residual + x, rms_norm(residual + x))``."""
    h = residual + x
    return h, rms_norm(h, weight, eps)


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotary embedding of ``x [T, heads, head_dim]`` with ``cos``/``sin [T, head_dim]`` (the half-split layout of
    transformers' Llama)."""
    cos, sin = cos.unsqueeze(1), sin.unsqueeze(1)
    return (x * cos) + (rotate_half(x) * sin)


class TorchStep(NamedTuple):
    """What the torch ops read in every layer of a decode step, computed once per step."""

    positions: torch.Tensor  # [B]
    rows: torch.Tensor  # [B]: 0 .. B-1 (row r decodes into cache slot r)
    cos: torch.Tensor  # [B, hd]: the rows' rotary tables
    sin: torch.Tensor
    mask: torch.Tensor  # [B, window]: True where row r attends


def torch_step(cos: torch.Tensor, sin: torch.Tensor, positions: torch.Tensor, window: int) -> TorchStep:
    """``cos``/``sin``: the whole tables ``[L, hd]``; ``window``: positions the attention reads."""
    mask = torch.arange(window, device=positions.device)[None, :] <= positions[:, None]
    return TorchStep(positions, torch.arange(positions.shape[0], device=positions.device), cos[positions],
                     sin[positions], mask)


def rope_store(qkv: torch.Tensor, step: TorchStep, k_cache: torch.Tensor, v_cache: torch.Tensor, n_heads: int,
               n_kv_heads: int, head_dim: int) -> torch.Tensor:
    """Row ``r`` of ``qkv [B, (H + 2 KV) * hd]`` is the token at ``step.positions[r]`` of cache slot ``r`` of
    ``k_cache``/``v_cache [slots, KV, L, hd]``: its rotated K and its V are written there; returns the rotated Q
    ``[B, H, hd]``."""
    b = qkv.shape[0]
    q, k, v = qkv.split([n_heads * head_dim, n_kv_heads * head_dim, n_kv_heads * head_dim], dim=-1)
    q = apply_rotary(q.view(b, n_heads, head_dim), step.cos, step.sin)
    k = apply_rotary(k.view(b, n_kv_heads, head_dim), step.cos, step.sin)
    k_cache[step.rows, :, step.positions] = k
    v_cache[step.rows, :, step.positions] = v.view(b, n_kv_heads, head_dim)
    return q


def lora_add(y: torch.Tensor, x: torch.Tensor, stack: LoraStack, idx: torch.Tensor) -> torch.Tensor:
    """``y`` plus row ``t`` of ``x [T, in]`` through adapter ``idx[t]`` of the stacked adapters ``stack``
    (:func:`~.lora.lora_delta`: two batched matmuls on the gathered matrices)."""
    return y + lora_delta(x, stack, idx)


def swiglu(gate_up: torch.Tensor) -> torch.Tensor:
    """``silu(gate) * up`` of the fused gate/up projection's output ``[T, 2 * intermediate]``."""
    gate, up = gate_up.chunk(2, dim=-1)
    return F.silu(gate) * up


def decode_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, step: TorchStep,
                     scale: float) -> torch.Tensor:
    """One query per row: ``q [B, heads, hd]`` over ``k``/``v [B, kv_heads, window, hd]`` (cache views), masked
    by ``step.mask``. GQA without repeating K/V. Returns ``[B, heads * hd]``."""
    out = F.scaled_dot_product_attention(q.unsqueeze(2), k, v, attn_mask=step.mask[:, None, None, :], scale=scale,
                                         enable_gqa=True)
    return out.reshape(q.shape[0], -1)


# -- the two sets ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Ops:
    """One implementation of every fusion point. ``step(cos, sin, positions, window)`` computes, once per decode
    step, what ``rope_store(qkv, step, k_cache, v_cache, heads, kv_heads, head_dim)`` and
    ``decode_attention(q, k, v, step, scale)`` read in every layer."""

    name: str
    rms_norm: Callable[..., torch.Tensor]
    add_rms_norm: Callable[..., tuple[torch.Tensor, torch.Tensor]]
    step: Callable[..., Any]
    rope_store: Callable[..., torch.Tensor]
    swiglu: Callable[..., torch.Tensor]
    decode_attention: Callable[..., torch.Tensor]
    lora_add: Callable[..., torch.Tensor]
    #: what runs, in words (for ``EngineInfo``)
    describe: str = ""


TORCH_OPS = Ops("torch", rms_norm, add_rms_norm, torch_step, rope_store, swiglu, decode_attention, lora_add,
                describe="torch ops")


def triton_ops(device: torch.device | None = None) -> Ops:
    """The Triton kernels (imports Triton) for ``device``."""
    from . import triton_ops as t

    if device is not None:
        t.prepare(device)
    return Ops("triton", t.rms_norm, t.add_rms_norm, t.decode_step, t.rope_store, t.swiglu, t.decode_attention,
               t.lora_add, describe="Triton kernels (residual+RMSNorm, rotary+KV write, SwiGLU, split-K decode "
                                    "attention, multi-LoRA BGMV)")


def triton_interpreted() -> bool:
    """``TRITON_INTERPRET=1``: Triton runs kernels in its interpreter, on CPU tensors."""
    return os.environ.get("TRITON_INTERPRET", "").strip() == "1"


def triton_available() -> bool:
    try:
        import triton  # noqa: F401
    except ImportError:
        return False
    return True


def _on_gpu(device: torch.device) -> bool:
    return device.type == "cuda"


def self_check(ops: Ops, device: torch.device, dtype: torch.dtype) -> str | None:
    """Run every op of ``ops`` once on small random inputs (GQA, a row of length 1, a whole window, two splits of
    the attention) against the torch ops; ``None`` when all agree (fp32: to rounding; 16-bit: within two units in
    the last place), else what failed. On a GPU this is also the kernels' first compilation."""
    gen = torch.Generator().manual_seed(0)

    def rnd(*shape: int) -> torch.Tensor:
        return torch.randn(shape, generator=gen).to(device=device, dtype=dtype)

    heads, kv, hd, hidden, slots, length = 4, 2, 32, 96, 3, 80
    x, r, w = rnd(slots, hidden), rnd(slots, hidden), rnd(hidden)
    cos, sin = rnd(length, hd), rnd(length, hd)
    qkv, gu = rnd(slots, (heads + 2 * kv) * hd), rnd(slots, 2 * hidden)
    positions = torch.tensor([0, 37, length - 1], device=device)
    tol = 1e-4 if dtype == torch.float32 else 2 ** -6
    try:
        pairs: list[tuple[str, torch.Tensor, torch.Tensor]] = [
            ("rms_norm", ops.rms_norm(x, w, 1e-6), TORCH_OPS.rms_norm(x, w, 1e-6)),
            ("add_rms_norm", ops.add_rms_norm(x, r, w, 1e-6)[1], TORCH_OPS.add_rms_norm(x, r, w, 1e-6)[1]),
            ("swiglu", ops.swiglu(gu), TORCH_OPS.swiglu(gu)),
        ]
        caches = [rnd(slots, kv, length, hd), rnd(slots, kv, length, hd)]
        mine, ref = [c.clone() for c in caches], [c.clone() for c in caches]
        q = ops.rope_store(qkv, ops.step(cos, sin, positions, length), *mine, heads, kv, hd)
        q_ref = TORCH_OPS.rope_store(qkv, TORCH_OPS.step(cos, sin, positions, length), *ref, heads, kv, hd)
        pairs += [("rope_store q", q, q_ref), ("rope_store cache", mine[0], ref[0])]
        scale = hd ** -0.5
        pairs.append(("decode_attention", ops.decode_attention(q_ref, *ref, ops.step(cos, sin, positions, length),
                                                               scale),
                      TORCH_OPS.decode_attention(q_ref, *ref, TORCH_OPS.step(cos, sin, positions, length), scale)))
        stack = LoraStack(a=rnd(3, 12, hidden) * 0.1, b=rnd(3, 2 * hidden, 12) * 0.1)
        stack.a[0], stack.b[0] = 0, 0  # index 0: no adapter
        idx = torch.tensor([2, 0, 1], device=device)
        pairs.append(("lora_add", ops.lora_add(gu, x, stack, idx), TORCH_OPS.lora_add(gu, x, stack, idx)))
    except Exception as exc:  # a kernel that does not compile or launch on this device
        return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    for name, got, want in pairs:
        g, w_ = got.float(), want.float()
        if g.shape != w_.shape or not torch.allclose(g, w_, rtol=tol, atol=tol * 4):
            err = (g - w_).abs().max().item() if g.shape == w_.shape else f"shape {tuple(g.shape)}"
            return f"{name} differs from the torch op (max difference {err})"
    return None


def select_kernels(choice: str | None, device: torch.device, dtype: torch.dtype = torch.float32) -> Ops:
    """The ops for ``choice`` (None: ``$PUYU_APPS_STATIC_KERNELS``, else ``"auto"``) on ``device``, for weights of
    ``dtype``.

    ``"triton"`` needs Triton and a CUDA device, or on the CPU Triton's interpreter (``TRITON_INTERPRET=1``, for
    tests: slow), and kernels that pass :func:`self_check`; anything else raises a typed error saying what to do.
    ``"auto"`` never raises: kernels that fail their check leave the torch ops, and ``describe`` says why."""
    if choice is None:
        choice = os.environ.get("PUYU_APPS_STATIC_KERNELS", "").strip() or "auto"
    if choice not in KERNEL_CHOICES:
        raise ValueError(f"kernels must be one of {KERNEL_CHOICES}, got {choice!r} "
                         f"(from the argument or $PUYU_APPS_STATIC_KERNELS)")
    if choice == "torch":
        return TORCH_OPS
    if choice == "auto":
        if not _on_gpu(device) or not triton_available():
            return TORCH_OPS
        ops = triton_ops(device)
        failed = self_check(ops, device, dtype)
        if failed:
            return replace(TORCH_OPS, describe=f"torch ops (the Triton kernels failed their start-up check: {failed})")
        return ops
    if not triton_available():
        raise MissingDependencyError("kernels='triton' needs Triton, which could not be imported; install it with: "
                                     "pip install 'puyu_apps[gpu]' (or use kernels='torch')")
    if not _on_gpu(device) and not triton_interpreted():
        raise DeviceUnavailableError(f"kernels='triton' runs on a CUDA device; the model is on {device.type!r}. "
                                     f"Use kernels='torch' there (or set TRITON_INTERPRET=1 before Triton is "
                                     f"imported to run the kernels in Triton's interpreter, for testing)")
    ops = triton_ops(device)
    failed = self_check(ops, device, dtype)
    if failed:
        raise KernelCheckError(f"the Triton kernels failed their start-up check on {device}: {failed}; "
                               f"use kernels='torch'")
    return ops
