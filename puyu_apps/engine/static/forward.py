"""The forward pass of a Llama-layout model over a preallocated static KV cache (the gpt-fast design).

The cache is two tensors ``[layers, slots, kv_heads, max_len, head_dim]``; a request owns one slot and its token
at position ``p`` lives in row ``p`` of that slot. Position ``max_len - 1`` of every slot is never used by a
request: batch rows of a decode step that have no token to decode (idle slots inside the batch range, slots still
reading their prompt) write there, so a decode step always covers slots ``0 .. B-1`` and reads the cache as
views (no gather).

- :func:`prefill` reads a chunk of one request's prompt (any length; not compiled).
- :func:`decode_one_token` advances ``B`` slots by one token each. Its shapes depend only on ``B`` and on
  ``attn_len`` (the attention window, a power of two covering the longest active slot), so ``torch.compile``
  (CUDA graphs under ``mode="reduce-overhead"``) records one graph per ``(B, attn_len)`` bucket. Nothing inside
  syncs with the host: tokens, positions and adapter indices come in as device tensors and the logits go out.

The memory-bound steps (residual add + RMSNorm, rotary + KV-cache write, SwiGLU, decode attention) are called
through an :class:`~.ops.Ops` set: plain torch (exact on the CPU, fused by ``torch.compile``) or Triton kernels
(:mod:`.triton_ops`); both entry points take it as ``ops``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .lora import LoraBank, lora_delta_one
from .ops import TORCH_OPS, Ops, apply_rotary
from .quant import int8_linear
from .weights import Linear, StaticWeights


@dataclass
class StaticKVCache:
    """``k``/``v``: ``[layers, slots, kv_heads, max_len, head_dim]``."""

    k: torch.Tensor
    v: torch.Tensor

    @classmethod
    def allocate(cls, weights: StaticWeights, slots: int, max_len: int) -> "StaticKVCache":
        a = weights.arch
        shape = (a.n_layers, slots, a.n_kv_heads, max_len, a.head_dim)
        return cls(torch.zeros(shape, dtype=weights.dtype, device=weights.device),
                   torch.zeros(shape, dtype=weights.dtype, device=weights.device))

    @property
    def slots(self) -> int:
        return self.k.shape[1]

    @property
    def max_len(self) -> int:
        return self.k.shape[3]

    def nbytes(self) -> int:
        return 2 * self.k.numel() * self.k.element_size()

    def copy_rows(self, src: int, dst: int, n: int) -> None:
        """Copy the first ``n`` positions of slot ``src`` into slot ``dst`` (prefix sharing)."""
        self.k[:, dst, :, :n] = self.k[:, src, :, :n]
        self.v[:, dst, :, :n] = self.v[:, src, :, :n]


def prefill_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, start: int,
                      scale: float) -> torch.Tensor:
    """Causal attention of a prompt chunk: ``q [S, heads, hd]`` at positions ``start .. start+S-1`` over ``k``/``v
    [kv_heads, start+S, hd]``. Returns ``[S, heads * hd]``."""
    s = q.shape[0]
    qh = q.transpose(0, 1).unsqueeze(0)
    kh, vh = k.unsqueeze(0), v.unsqueeze(0)
    if start == 0:
        out = F.scaled_dot_product_attention(qh, kh, vh, is_causal=s > 1, scale=scale, enable_gqa=True)
    else:
        rows = torch.arange(start, start + s, device=q.device)[:, None]
        mask = torch.arange(start + s, device=q.device)[None, :] <= rows
        out = F.scaled_dot_product_attention(qh, kh, vh, attn_mask=mask, scale=scale, enable_gqa=True)
    return out[0].transpose(0, 1).reshape(s, -1)


# -- projections ---------------------------------------------------------------------------------------------
def linear(x: torch.Tensor, lin: Linear) -> torch.Tensor:
    if lin.scale is None:
        return F.linear(x, lin.weight, lin.bias)
    y = int8_linear(x, lin.weight, lin.scale, lin.int8_matmul)
    return y if lin.bias is None else y + lin.bias


def _proj(x: torch.Tensor, lin: Linear, bank: LoraBank | None, layer: int, name: str,
          adapter: torch.Tensor | int, ops: Ops) -> torch.Tensor:
    y = linear(x, lin)
    stack = bank.layers[layer][name] if bank is not None else None
    if stack is None:
        return y
    if isinstance(adapter, int):
        return y if adapter == 0 else y + lora_delta_one(x, stack, adapter)
    return ops.lora_add(y, x, stack, adapter)


# -- the two entry points ------------------------------------------------------------------------------------------
@torch.inference_mode()
def prefill(w: StaticWeights, cache: StaticKVCache, tokens: torch.Tensor, start: int, slot: int,
            bank: LoraBank | None = None, adapter: int = 0, ops: Ops = TORCH_OPS) -> torch.Tensor:
    """Read ``tokens [S]`` of the request in ``slot`` at positions ``start ..``; writes their K/V into the slot and
    returns the logits of the last one ``[vocab]``. Positions ``< start`` must already hold the request's K/V."""
    a = w.arch
    s = tokens.shape[0]
    end = start + s
    cos, sin = w.cos[start:end], w.sin[start:end]
    scale = a.head_dim ** -0.5
    h = F.embedding(tokens, w.embed)
    x = ops.rms_norm(h, w.layers[0].attn_norm, a.rms_eps)
    for i, layer in enumerate(w.layers):
        qkv = _proj(x, layer.qkv, bank, i, "qkv", adapter, ops)
        q, k, v = qkv.split([a.q_size, a.kv_size, a.kv_size], dim=-1)
        q = apply_rotary(q.view(s, a.n_heads, a.head_dim), cos, sin)
        k = apply_rotary(k.view(s, a.n_kv_heads, a.head_dim), cos, sin)
        v = v.view(s, a.n_kv_heads, a.head_dim)
        cache.k[i, slot, :, start:end] = k.transpose(0, 1)
        cache.v[i, slot, :, start:end] = v.transpose(0, 1)
        if start == 0:
            attn = prefill_attention(q, k.transpose(0, 1), v.transpose(0, 1), 0, scale)
        else:
            attn = prefill_attention(q, cache.k[i, slot, :, :end], cache.v[i, slot, :, :end], start, scale)
        h, x = ops.add_rms_norm(_proj(attn, layer.o, bank, i, "o", adapter, ops), h, layer.mlp_norm, a.rms_eps)
        up = ops.swiglu(_proj(x, layer.gate_up, bank, i, "gate_up", adapter, ops))
        mlp = _proj(up, layer.down, bank, i, "down", adapter, ops)
        nxt = w.layers[i + 1].attn_norm if i + 1 < len(w.layers) else w.norm
        h, x = ops.add_rms_norm(mlp, h, nxt, a.rms_eps)
    return linear(x[-1:], w.lm_head)[0]


def decode_one_token(w: StaticWeights, cache: StaticKVCache, tokens: torch.Tensor, positions: torch.Tensor,
                     adapters: torch.Tensor, bank: LoraBank | None, attn_len: int,
                     ops: Ops = TORCH_OPS) -> torch.Tensor:
    """One token for each of the slots ``0 .. B-1``: ``tokens``, ``positions`` and ``adapters`` are ``[B]`` device
    tensors (a row with nothing to decode has position ``max_len - 1``). Attention reads positions
    ``< attn_len`` of each slot, up to the row's own length. Returns the logits ``[B, vocab]``.

    Static shapes for a given ``(B, attn_len)``, no host sync: this is the function ``torch.compile`` takes."""
    a = w.arch
    b = tokens.shape[0]
    step = ops.step(w.cos, w.sin, positions, attn_len)
    scale = a.head_dim ** -0.5
    h = F.embedding(tokens, w.embed)
    x = ops.rms_norm(h, w.layers[0].attn_norm, a.rms_eps)
    for i, layer in enumerate(w.layers):
        qkv = _proj(x, layer.qkv, bank, i, "qkv", adapters, ops)
        kc, vc = cache.k[i], cache.v[i]
        q = ops.rope_store(qkv, step, kc, vc, a.n_heads, a.n_kv_heads, a.head_dim)
        attn = ops.decode_attention(q, kc[:b, :, :attn_len], vc[:b, :, :attn_len], step, scale)
        h, x = ops.add_rms_norm(_proj(attn, layer.o, bank, i, "o", adapters, ops), h, layer.mlp_norm, a.rms_eps)
        up = ops.swiglu(_proj(x, layer.gate_up, bank, i, "gate_up", adapters, ops))
        mlp = _proj(up, layer.down, bank, i, "down", adapters, ops)
        nxt = w.layers[i + 1].attn_norm if i + 1 < len(w.layers) else w.norm
        h, x = ops.add_rms_norm(mlp, h, nxt, a.rms_eps)
    return linear(x, w.lm_head)
