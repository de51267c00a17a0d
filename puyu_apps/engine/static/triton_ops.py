"""Triton kernels for the memory-bound steps of a decode step (the ``"triton"`` kernels of the static engine).

- :func:`add_rms_norm` / :func:`rms_norm`: the residual add and the next RMSNorm in one pass over the row
  (fp32 statistics, rounded where transformers' Llama rounds).
- :func:`rope_store`: rotary embedding of the fused q/k/v projection's output, writing the rotated K and the V of
  each row straight into its KV-cache slot at its position, and the rotated Q into a new tensor (replaces two
  rotaries, a cos/sin gather and two scatters).
- :func:`swiglu`: ``silu(gate) * up`` of the fused gate/up output.
- :func:`lora_add`: multi-LoRA in one batch (BGMV, as punica's kernels): each row's delta through its own
  adapter's A and B read in place, added to the projection's output; base rows untouched.
- :func:`decode_attention`: one query per row over the row's cache slot, split-K ("flash decoding"): the cache
  positions are cut into ``splits`` chunks read by separate programs, each keeping an online softmax; a second
  kernel merges the chunks. GQA reads each K/V row once for all the query heads that share it (the heads are the
  rows of one ``tl.dot``, padded to 16). Each row reads only its own length, whatever the attention window.
  Products are fp32 (TF32 tensor cores for bf16/fp16 caches, whose 7/10-bit mantissas TF32 holds; IEEE for fp32)
  and the softmax weights stay fp32: the kernel is bound by reading the cache, not by the arithmetic.

Each launcher is a torch custom op (``torch.ops.puyu_apps.*``) with a shape-only fake implementation, so
``torch.compile(fullgraph=True)`` records it as one call and the decode step stays one CUDA graph. On a machine
without a GPU the same kernels run in Triton's interpreter (``TRITON_INTERPRET=1`` set before Triton is imported;
numpy on the CPU, slow): that is how the tests check them against the torch reference ops. Importing this module
imports Triton and registers the custom ops.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
import triton
import triton.language as tl

#: query heads per K/V head are padded to this many rows for ``tl.dot`` (its smallest tile)
_MIN_DOT_ROWS = 16


# (plain Python, not triton's helpers: torch.compile traces the ops' wrappers below, and a call into another
# library may break its graph)
def _pow2(n: int) -> int:
    return 1 << max(0, (int(n) - 1).bit_length())


def _cdiv(a: int, b: int) -> int:
    return -(-a // b)


def _warps(block: int) -> int:
    return 1 if block <= 256 else 2 if block <= 1024 else 4 if block <= 4096 else 8


# -- RMSNorm (+ residual add) -------------------------------------------------------------------------------------
@triton.jit
def _add_rms_norm_kernel(x_ptr, r_ptr, w_ptr, h_ptr, y_ptr, n_cols, x_stride, r_stride, h_stride, y_stride, eps,
                         HAS_X: tl.constexpr, BLOCK: tl.constexpr):
    row = tl.program_id(0)
    cols = tl.arange(0, BLOCK)
    m = cols < n_cols
    h = tl.load(r_ptr + row * r_stride + cols, mask=m, other=0.0)
    if HAS_X:
        x = tl.load(x_ptr + row * x_stride + cols, mask=m, other=0.0)
        h = (h.to(tl.float32) + x.to(tl.float32)).to(h_ptr.dtype.element_ty)
        tl.store(h_ptr + row * h_stride + cols, h, mask=m)
    hf = h.to(tl.float32)
    rstd = 1.0 / tl.sqrt(tl.sum(hf * hf, axis=0) / n_cols + eps)
    n = (hf * rstd).to(y_ptr.dtype.element_ty).to(tl.float32)
    w = tl.load(w_ptr + cols, mask=m, other=0.0).to(tl.float32)
    tl.store(y_ptr + row * y_stride + cols, (w * n).to(y_ptr.dtype.element_ty), mask=m)


def _rows(t: torch.Tensor) -> torch.Tensor:
    """A 2-D view whose last dimension is contiguous (copies only when it is not)."""
    t2 = t.reshape(-1, t.shape[-1])
    return t2 if t2.stride(-1) == 1 else t2.contiguous()


def _rms_norm_impl(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    x2 = _rows(x)
    y = torch.empty(x2.shape, dtype=x.dtype, device=x.device)
    n = x2.shape[1]
    block = _pow2(n)
    _add_rms_norm_kernel[(x2.shape[0],)](x2, x2, weight, x2, y, n, x2.stride(0), x2.stride(0), x2.stride(0),
                                         y.stride(0), eps, HAS_X=False, BLOCK=block, num_warps=_warps(block))
    return y.view(x.shape)


def _add_rms_norm_impl(x: torch.Tensor, residual: torch.Tensor, weight: torch.Tensor,
                       eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    x2, r2 = _rows(x), _rows(residual)
    h = torch.empty(r2.shape, dtype=residual.dtype, device=x.device)
    y = torch.empty_like(h)
    n = r2.shape[1]
    block = _pow2(n)
    _add_rms_norm_kernel[(r2.shape[0],)](x2, r2, weight, h, y, n, x2.stride(0), r2.stride(0), h.stride(0),
                                         y.stride(0), eps, HAS_X=True, BLOCK=block, num_warps=_warps(block))
    return h.view(residual.shape), y.view(residual.shape)


# -- per decode step ----------------------------------------------------------------------------------------------
class TritonStep(NamedTuple):
    """What the kernels read in every layer of a decode step, computed once per step."""

    positions: torch.Tensor  # [B]
    cos: torch.Tensor  # [L, hd]: the whole rotary tables (the kernel reads row positions[r])
    sin: torch.Tensor
    lengths: torch.Tensor  # [B]: positions row r attends to


def decode_step(cos: torch.Tensor, sin: torch.Tensor, positions: torch.Tensor, window: int) -> TritonStep:
    """Rows attend to their own length, at most the window (a row without a token reads the whole window, as the
    torch ops' mask does)."""
    return TritonStep(positions, cos, sin, torch.clamp(positions + 1, max=window))


# -- rotary + KV-cache write ------------------------------------------------------------------------------------------
@triton.jit
def _rope_store_kernel(qkv_ptr, qkv_stride, cos_ptr, sin_ptr, cs_stride, pos_ptr, q_ptr, q_stride,
                       k_ptr, v_ptr, k_slot, k_head, k_pos, v_slot, v_head, v_pos, n_heads, n_kv,
                       HALF: tl.constexpr, HALF_B: tl.constexpr):
    row = tl.program_id(0)
    head = tl.program_id(1)  # q heads, then k heads, then v heads: also their order in the qkv row
    pos = tl.load(pos_ptr + row)
    i = tl.arange(0, HALF_B)
    m = i < HALF
    src = qkv_ptr + row * qkv_stride + head * (2 * HALF)
    x1 = tl.load(src + i, mask=m, other=0.0)
    x2 = tl.load(src + HALF + i, mask=m, other=0.0)
    if head < n_heads + n_kv:
        c1 = tl.load(cos_ptr + pos * cs_stride + i, mask=m, other=0.0).to(tl.float32)
        c2 = tl.load(cos_ptr + pos * cs_stride + HALF + i, mask=m, other=0.0).to(tl.float32)
        s1 = tl.load(sin_ptr + pos * cs_stride + i, mask=m, other=0.0).to(tl.float32)
        s2 = tl.load(sin_ptr + pos * cs_stride + HALF + i, mask=m, other=0.0).to(tl.float32)
        a = x1.to(tl.float32)
        b = x2.to(tl.float32)
        o1 = a * c1 - b * s1
        o2 = b * c2 + a * s2
        if head < n_heads:
            dst = q_ptr + row * q_stride + head * (2 * HALF)
        else:
            dst = k_ptr + row * k_slot + (head - n_heads) * k_head + pos * k_pos
        tl.store(dst + i, o1.to(dst.dtype.element_ty), mask=m)
        tl.store(dst + HALF + i, o2.to(dst.dtype.element_ty), mask=m)
    else:
        dst = v_ptr + row * v_slot + (head - n_heads - n_kv) * v_head + pos * v_pos
        tl.store(dst + i, x1, mask=m)
        tl.store(dst + HALF + i, x2, mask=m)


def _rope_store_impl(qkv: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, positions: torch.Tensor,
                     k_cache: torch.Tensor, v_cache: torch.Tensor, n_heads: int, n_kv_heads: int,
                     head_dim: int) -> torch.Tensor:
    b = qkv.shape[0]
    assert head_dim % 2 == 0 and qkv.stride(-1) == 1 and k_cache.stride(-1) == 1 and v_cache.stride(-1) == 1
    assert cos.stride(-1) == 1 and sin.stride() == cos.stride()
    q = torch.empty((b, n_heads, head_dim), dtype=qkv.dtype, device=qkv.device)
    half = head_dim // 2
    _rope_store_kernel[(b, n_heads + 2 * n_kv_heads)](
        qkv, qkv.stride(0), cos, sin, cos.stride(0), positions, q, q.stride(0),
        k_cache, v_cache, k_cache.stride(0), k_cache.stride(1), k_cache.stride(2),
        v_cache.stride(0), v_cache.stride(1), v_cache.stride(2), n_heads, n_kv_heads,
        HALF=half, HALF_B=_pow2(half), num_warps=1)
    return q


# -- SwiGLU ----------------------------------------------------------------------------------------------------------
@triton.jit
def _swiglu_kernel(x_ptr, o_ptr, n, x_stride, o_stride, BLOCK: tl.constexpr):
    row = tl.program_id(0)
    cols = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
    m = cols < n
    g = tl.load(x_ptr + row * x_stride + cols, mask=m, other=0.0).to(tl.float32)
    u = tl.load(x_ptr + row * x_stride + n + cols, mask=m, other=0.0).to(tl.float32)
    s = (g / (1.0 + tl.exp(-g))).to(o_ptr.dtype.element_ty).to(tl.float32)  # silu, rounded as F.silu
    tl.store(o_ptr + row * o_stride + cols, (s * u).to(o_ptr.dtype.element_ty), mask=m)


def _swiglu_impl(gate_up: torch.Tensor) -> torch.Tensor:
    x2 = _rows(gate_up)
    n = x2.shape[1] // 2
    out = torch.empty((x2.shape[0], n), dtype=gate_up.dtype, device=gate_up.device)
    block = min(1024, _pow2(n))
    _swiglu_kernel[(x2.shape[0], _cdiv(n, block))](x2, out, n, x2.stride(0), out.stride(0), BLOCK=block,
                                                           num_warps=_warps(block))
    return out.view(*gate_up.shape[:-1], n)


# -- decode attention (split-K) ---------------------------------------------------------------------------------
@triton.jit
def _decode_attn_kernel(q_ptr, k_ptr, v_ptr, len_ptr, acc_ptr, ml_ptr, scale, chunk,
                        q_row, q_head, k_slot, k_head, k_pos, v_slot, v_head, v_pos,
                        G: tl.constexpr, GB: tl.constexpr, HD: tl.constexpr, HDB: tl.constexpr,
                        BLOCK_N: tl.constexpr, SPLITS: tl.constexpr, IEEE: tl.constexpr):
    b = tl.program_id(0)
    kvh = tl.program_id(1)
    s = tl.program_id(2)
    n_kv = tl.num_programs(1)
    length = tl.load(len_ptr + b)
    lo = s * chunk
    hi = tl.minimum(lo + chunk, length)
    g = tl.arange(0, GB)
    d = tl.arange(0, HDB)
    gm = g < G
    dm = d < HD
    heads = kvh * G + g
    q = tl.load(q_ptr + b * q_row + heads[:, None] * q_head + d[None, :], mask=gm[:, None] & dm[None, :],
                other=0.0).to(tl.float32)
    m_i = tl.full([GB], float("-inf"), tl.float32)
    l_i = tl.zeros([GB], tl.float32)
    acc = tl.zeros([GB, HDB], tl.float32)
    qk_scale = scale * 1.4426950408889634  # log2(e): exp2 below
    k_base = k_ptr + b * k_slot + kvh * k_head
    v_base = v_ptr + b * v_slot + kvh * v_head
    for start in range(lo, hi, BLOCK_N):
        n = start + tl.arange(0, BLOCK_N)
        nm = n < hi
        kv_mask = nm[:, None] & dm[None, :]
        k = tl.load(k_base + n[:, None] * k_pos + d[None, :], mask=kv_mask, other=0.0).to(tl.float32)
        if IEEE:
            sc = tl.dot(q, tl.trans(k), input_precision="ieee")
        else:
            sc = tl.dot(q, tl.trans(k))
        sc = tl.where(nm[None, :], sc * qk_scale, float("-inf"))
        m_new = tl.maximum(m_i, tl.max(sc, axis=1))
        p = tl.exp2(sc - m_new[:, None])
        alpha = tl.exp2(m_i - m_new)
        l_i = l_i * alpha + tl.sum(p, axis=1)
        v = tl.load(v_base + n[:, None] * v_pos + d[None, :], mask=kv_mask, other=0.0).to(tl.float32)
        if IEEE:
            acc = acc * alpha[:, None] + tl.dot(p, v, input_precision="ieee")
        else:
            acc = acc * alpha[:, None] + tl.dot(p, v)
        m_i = m_new
    # partial results: acc [B, H, SPLITS, HDB], (m, l) [B, H, SPLITS, 2]
    part = (b * n_kv * G + heads) * SPLITS + s
    tl.store(acc_ptr + part[:, None] * HDB + d[None, :], acc, mask=gm[:, None])
    tl.store(ml_ptr + part * 2, m_i, mask=gm)
    tl.store(ml_ptr + part * 2 + 1, l_i, mask=gm)


@triton.jit
def _decode_attn_merge_kernel(acc_ptr, ml_ptr, o_ptr, o_row, HD: tl.constexpr, HDB: tl.constexpr,
                              SPLITS: tl.constexpr, SPLITS_B: tl.constexpr):
    b = tl.program_id(0)
    h = tl.program_id(1)
    part = (b * tl.num_programs(1) + h) * SPLITS
    s = tl.arange(0, SPLITS_B)
    sm = s < SPLITS
    d = tl.arange(0, HDB)
    m = tl.load(ml_ptr + (part + s) * 2, mask=sm, other=float("-inf"))
    l = tl.load(ml_ptr + (part + s) * 2 + 1, mask=sm, other=0.0)
    m_all = tl.max(m, axis=0)
    w = tl.where(m > float("-inf"), tl.exp2(m - m_all), 0.0)
    acc = tl.load(acc_ptr + (part + s)[:, None] * HDB + d[None, :], mask=sm[:, None], other=0.0)
    out = tl.sum(acc * w[:, None], axis=0) / tl.sum(l * w, axis=0)
    tl.store(o_ptr + b * o_row + h * HD + d, out.to(o_ptr.dtype.element_ty), mask=d < HD)


#: multiprocessors of the CUDA device the kernels run on (set by :func:`prepare`, outside any compiled code)
_SM_COUNT = {"n": 0}


def prepare(device: torch.device) -> None:
    """Read what the launchers need from the device, once, before the decode step is compiled."""
    if device.type == "cuda":
        _SM_COUNT["n"] = torch.cuda.get_device_properties(device).multi_processor_count


def decode_splits(batch: int, kv_heads: int, window: int, block_n: int) -> int:
    """How many chunks each row's window is cut into: enough programs to fill the GPU (two per multiprocessor),
    never a chunk shorter than one block. Depends only on shapes, so a compiled bucket keeps one value. Without
    a device (Triton's interpreter: each program is numpy work) two chunks per row and K/V head."""
    target = 2 * _SM_COUNT["n"] or 2 * batch * kv_heads
    return max(1, min(_cdiv(window, block_n), _cdiv(target, batch * kv_heads)))


def _block_n(head_dim: int) -> int:
    return 64 if _pow2(head_dim) <= 128 else 32


def _decode_attention_impl(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, lengths: torch.Tensor, scale: float,
                           splits: int) -> torch.Tensor:
    b, h, hd = q.shape
    kv, window = k.shape[1], k.shape[2]
    assert h % kv == 0 and q.stride(-1) == 1 and k.stride(-1) == 1 and v.stride(-1) == 1
    g = h // kv
    hdb = _pow2(hd)
    block_n = _block_n(hd)
    chunk = _cdiv(_cdiv(window, splits), block_n) * block_n
    acc = torch.empty((b, h, splits, hdb), dtype=torch.float32, device=q.device)
    ml = torch.empty((b, h, splits, 2), dtype=torch.float32, device=q.device)
    _decode_attn_kernel[(b, kv, splits)](
        q, k, v, lengths, acc, ml, scale, chunk, q.stride(0), q.stride(1),
        k.stride(0), k.stride(1), k.stride(2), v.stride(0), v.stride(1), v.stride(2),
        G=g, GB=max(_MIN_DOT_ROWS, _pow2(g)), HD=hd, HDB=hdb, BLOCK_N=block_n, SPLITS=splits,
        IEEE=q.dtype == torch.float32, num_warps=4)
    out = torch.empty((b, h * hd), dtype=q.dtype, device=q.device)
    _decode_attn_merge_kernel[(b, h)](acc, ml, out, out.stride(0), HD=hd, HDB=hdb, SPLITS=splits,
                                      SPLITS_B=max(2, _pow2(splits)), num_warps=1)
    return out


# -- multi-LoRA (BGMV) ------------------------------------------------------------------------------------------
@triton.jit
def _bgmv_shrink_kernel(x_ptr, a_ptr, idx_ptr, h_ptr, n_in, rank, x_stride, a_index, a_row, h_stride,
                        BLOCK_R: tl.constexpr, BLOCK_K: tl.constexpr):
    """``h[t] = A[idx[t]] x[t]`` (fp32); rows of the base model (index 0) get zeros without reading A."""
    t = tl.program_id(0)
    i = tl.load(idx_ptr + t)
    r = tl.arange(0, BLOCK_R)
    rm = r < rank
    acc = tl.zeros([BLOCK_R], tl.float32)
    if i != 0:
        for k0 in range(0, n_in, BLOCK_K):
            k = k0 + tl.arange(0, BLOCK_K)
            km = k < n_in
            xv = tl.load(x_ptr + t * x_stride + k, mask=km, other=0.0).to(tl.float32)
            av = tl.load(a_ptr + i * a_index + r[:, None] * a_row + k[None, :], mask=rm[:, None] & km[None, :],
                         other=0.0).to(tl.float32)
            acc += tl.sum(av * xv[None, :], axis=1)
    tl.store(h_ptr + t * h_stride + r, acc, mask=rm)


@triton.jit
def _bgmv_expand_kernel(h_ptr, b_ptr, idx_ptr, y_ptr, o_ptr, n_out, rank, h_stride, b_index, b_row, y_stride,
                        o_stride, BLOCK_N: tl.constexpr, BLOCK_R: tl.constexpr):
    """``out[t] = y[t] + B[idx[t]] h[t]`` (the sum in fp32, rounded once); base rows copy ``y``."""
    t = tl.program_id(0)
    n = tl.program_id(1) * BLOCK_N + tl.arange(0, BLOCK_N)
    nm = n < n_out
    i = tl.load(idx_ptr + t)
    y = tl.load(y_ptr + t * y_stride + n, mask=nm, other=0.0)
    if i != 0:
        r = tl.arange(0, BLOCK_R)
        rm = r < rank
        hv = tl.load(h_ptr + t * h_stride + r, mask=rm, other=0.0)
        bv = tl.load(b_ptr + i * b_index + n[:, None] * b_row + r[None, :], mask=nm[:, None] & rm[None, :],
                     other=0.0).to(tl.float32)
        y = (y.to(tl.float32) + tl.sum(bv * hv[None, :], axis=1)).to(o_ptr.dtype.element_ty)
    tl.store(o_ptr + t * o_stride + n, y, mask=nm)


def _lora_add_impl(y: torch.Tensor, x: torch.Tensor, a: torch.Tensor, b: torch.Tensor,
                   idx: torch.Tensor) -> torch.Tensor:
    t, n_in = x.shape
    rank, n_out = a.shape[1], b.shape[1]
    assert x.stride(-1) == 1 and y.stride(-1) == 1 and a.is_contiguous() and b.is_contiguous()
    block_r = max(16, _pow2(rank))
    h = torch.empty((t, block_r), dtype=torch.float32, device=x.device)
    _bgmv_shrink_kernel[(t,)](x, a, idx, h, n_in, rank, x.stride(0), a.stride(0), a.stride(1), h.stride(0),
                              BLOCK_R=block_r, BLOCK_K=max(16, min(128, 8192 // block_r)), num_warps=4)
    out = torch.empty((t, n_out), dtype=y.dtype, device=y.device)
    block_n = max(16, min(256, 8192 // block_r))
    _bgmv_expand_kernel[(t, _cdiv(n_out, block_n))](h, b, idx, y, out, n_out, rank, h.stride(0), b.stride(0),
                                                     b.stride(1), y.stride(0), out.stride(0), BLOCK_N=block_n,
                                                     BLOCK_R=block_r, num_warps=4)
    return out


# -- custom ops: what torch.compile sees ----------------------------------------------------------------------------
# Each launcher is a torch custom op with a fake (shape-only) implementation: torch.compile records it in the graph
# as one call (CUDA graphs replay the kernels) instead of tracing into Triton's launcher, the same under every torch
# version; and a graph with these ops can be traced and checked on the CPU with the interpreter.
@torch.library.custom_op("puyu_apps::rms_norm", mutates_args=())
def _rms_norm_op(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    return _rms_norm_impl(x, weight, eps)


@_rms_norm_op.register_fake
def _(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    return x.new_empty(x.shape)


@torch.library.custom_op("puyu_apps::add_rms_norm", mutates_args=())
def _add_rms_norm_op(x: torch.Tensor, residual: torch.Tensor, weight: torch.Tensor,
                     eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    return _add_rms_norm_impl(x, residual, weight, eps)


@_add_rms_norm_op.register_fake
def _(x: torch.Tensor, residual: torch.Tensor, weight: torch.Tensor,
      eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    return residual.new_empty(residual.shape), residual.new_empty(residual.shape)


@torch.library.custom_op("puyu_apps::rope_store", mutates_args=("k_cache", "v_cache"))
def _rope_store_op(qkv: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, positions: torch.Tensor,
                   k_cache: torch.Tensor, v_cache: torch.Tensor, n_heads: int, n_kv_heads: int,
                   head_dim: int) -> torch.Tensor:
    return _rope_store_impl(qkv, cos, sin, positions, k_cache, v_cache, n_heads, n_kv_heads, head_dim)


@_rope_store_op.register_fake
def _(qkv: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, positions: torch.Tensor, k_cache: torch.Tensor,
      v_cache: torch.Tensor, n_heads: int, n_kv_heads: int, head_dim: int) -> torch.Tensor:
    return qkv.new_empty((qkv.shape[0], n_heads, head_dim))


@torch.library.custom_op("puyu_apps::swiglu", mutates_args=())
def _swiglu_op(gate_up: torch.Tensor) -> torch.Tensor:
    return _swiglu_impl(gate_up)


@_swiglu_op.register_fake
def _(gate_up: torch.Tensor) -> torch.Tensor:
    return gate_up.new_empty((*gate_up.shape[:-1], gate_up.shape[-1] // 2))


@torch.library.custom_op("puyu_apps::decode_attention", mutates_args=())
def _decode_attention_op(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, lengths: torch.Tensor, scale: float,
                         splits: int) -> torch.Tensor:
    return _decode_attention_impl(q, k, v, lengths, scale, splits)


@_decode_attention_op.register_fake
def _(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, lengths: torch.Tensor, scale: float,
      splits: int) -> torch.Tensor:
    return q.new_empty((q.shape[0], q.shape[1] * q.shape[2]))


@torch.library.custom_op("puyu_apps::lora_add", mutates_args=())
def _lora_add_op(y: torch.Tensor, x: torch.Tensor, a: torch.Tensor, b: torch.Tensor,
                 idx: torch.Tensor) -> torch.Tensor:
    return _lora_add_impl(y, x, a, b, idx)


@_lora_add_op.register_fake
def _(y: torch.Tensor, x: torch.Tensor, a: torch.Tensor, b: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    return y.new_empty(y.shape)


# -- the ops set's functions ------------------------------------------------------------------------------------
def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    return _rms_norm_op(x, weight, eps)


def add_rms_norm(x: torch.Tensor, residual: torch.Tensor, weight: torch.Tensor,
                 eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    """``(residual + x, rms_norm(residual + x))`` in one pass."""
    return _add_rms_norm_op(x, residual, weight, eps)


def rope_store(qkv: torch.Tensor, step: TritonStep, k_cache: torch.Tensor, v_cache: torch.Tensor, n_heads: int,
               n_kv_heads: int, head_dim: int) -> torch.Tensor:
    """Row ``r`` of ``qkv [B, (H + 2 KV) * hd]`` is the token at ``step.positions[r]`` of cache slot ``r``
    (``k_cache``/``v_cache [slots, KV, L, hd]``, last dimension contiguous): its rotated K and its V are written
    there. Returns the rotated Q ``[B, H, hd]``."""
    return _rope_store_op(qkv, step.cos, step.sin, step.positions, k_cache, v_cache, n_heads, n_kv_heads, head_dim)


def swiglu(gate_up: torch.Tensor) -> torch.Tensor:
    """``silu(gate) * up`` of ``[T, 2 * intermediate]``."""
    return _swiglu_op(gate_up)


def decode_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, step: TritonStep, scale: float,
                     splits: int | None = None) -> torch.Tensor:
    """``q [B, H, hd]`` over ``k``/``v [B, KV, window, hd]`` (views of the cache, last dimension contiguous); row
    ``b`` attends to its first ``step.lengths[b]`` positions (``1 <= lengths[b] <= window``). Returns
    ``[B, H * hd]``. ``splits``: chunks per row (default :func:`decode_splits`)."""
    splits = splits or decode_splits(q.shape[0], k.shape[1], k.shape[2], _block_n(q.shape[2]))
    return _decode_attention_op(q, k, v, step.lengths, scale, splits)


def lora_add(y: torch.Tensor, x: torch.Tensor, stack: Any, idx: torch.Tensor) -> torch.Tensor:
    """``y`` plus row ``t`` of ``x [T, in]`` through adapter ``idx[t]`` of ``stack`` (``a [n, R, in]``,
    ``b [n, out, R]``): one pass over each used adapter's rows (from L2 when rows share an adapter), no gathered
    copies; base rows (index 0) are ``y`` exactly."""
    return _lora_add_op(y, x, stack.a, stack.b, idx)



# -- ahead-of-time compilation (no GPU needed) ------------------------------------------------------------------
def _signatures(dtype: str) -> list[tuple[Any, dict[str, str], dict[str, Any]]]:
    """Every kernel with argument types for activations of ``dtype`` (``"bf16"``, ``"fp16"``, ``"fp32"``) and the
    compile-time constants of a typical launch (InternLM3-shaped: head size 128, 8 query heads per K/V head)."""
    p, i, f, idx = f"*{dtype}", "i32", "fp32", "*i64"

    def sig(fn: Any, types: list[str], consts: dict[str, Any]) -> tuple[Any, dict[str, str], dict[str, Any]]:
        names = list(fn.arg_names)
        types = types + ["constexpr"] * len(consts)
        return fn, dict(zip(names, types)), consts

    return [
        sig(_add_rms_norm_kernel, [p, p, p, p, p, i, i, i, i, i, f], {"HAS_X": True, "BLOCK": 2048}),
        sig(_add_rms_norm_kernel, [p, p, p, p, p, i, i, i, i, i, f], {"HAS_X": False, "BLOCK": 2048}),
        sig(_rope_store_kernel, [p, i, p, p, i, idx, p, i, p, p, i, i, i, i, i, i, i, i], {"HALF": 64, "HALF_B": 64}),
        sig(_swiglu_kernel, [p, p, i, i, i], {"BLOCK": 1024}),
        sig(_decode_attn_kernel, [p, p, p, idx, "*fp32", "*fp32", f, i, i, i, i, i, i, i, i, i],
            {"G": 8, "GB": 16, "HD": 128, "HDB": 128, "BLOCK_N": 64, "SPLITS": 4, "IEEE": dtype == "fp32"}),
        sig(_decode_attn_merge_kernel, ["*fp32", "*fp32", p, i], {"HD": 128, "HDB": 128, "SPLITS": 4, "SPLITS_B": 4}),
        sig(_bgmv_shrink_kernel, [p, p, idx, "*fp32", i, i, i, i, i, i], {"BLOCK_R": 64, "BLOCK_K": 128}),
        sig(_bgmv_expand_kernel, ["*fp32", p, idx, p, p, i, i, i, i, i, i, i], {"BLOCK_N": 128, "BLOCK_R": 64}),
    ]


def compile_for(arch: int = 90, dtype: str = "bf16") -> dict[str, int]:
    """Compile every kernel to machine code for CUDA compute capability ``arch`` (90: H100/H200) with Triton's own
    compiler and ptxas, on any machine (no GPU or driver is used). Returns the cubin size of each kernel; raises
    what the compiler raises. Not possible under ``TRITON_INTERPRET=1`` (the kernels are then interpreted)."""
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    out: dict[str, int] = {}
    for fn, signature, consts in _signatures(dtype):
        if not hasattr(fn, "arg_names"):
            raise RuntimeError("the kernels were defined for Triton's interpreter (TRITON_INTERPRET=1)")
        kernel = triton.compile(ASTSource(fn=fn, signature=signature, constexprs=consts),
                                target=GPUTarget("cuda", arch, 32))
        key = fn.__name__ + ("" if "HAS_X" not in consts else f"[HAS_X={consts['HAS_X']}]")
        out[key] = len(kernel.asm["cubin"])
    return out
