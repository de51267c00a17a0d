"""Weight-only int8: per-output-channel symmetric int8 weights with one scale per row.

``w ~= q * scale[:, None]`` with ``q`` in [-127, 127] and ``scale = max|w_row| / 127``. Activations stay in the
model dtype; the product is ``(x @ q^T) * scale``, exact in the factoring (the scale is per output column).

Two ways to multiply are implemented (:data:`INT8_MATMULS`):

- ``"dequant"``: cast ``q`` to the activation dtype inside the matmul call (``F.linear(x, q.to(x.dtype))``), then
  scale. Memory traffic of the weights is int8; the cast is a full pass, so on the CPU it is not faster than
  fp32, but it halves (bf16) or quarters (fp32) the weight memory.
- ``"int8pack"``: ``torch._weight_int8pack_mm`` (the kernel gpt-fast uses on CPU/MPS).

``benchmarks/engine_static.py`` measures int8 against fp32/bf16; :func:`default_int8_matmul` picks the multiply
measured faster for the device and activation dtype (see ``docs/engine.md``).
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F

Int8Matmul = Literal["dequant", "int8pack"]
INT8_MATMULS: tuple[str, ...] = ("dequant", "int8pack")


def quantize_int8(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(q int8 [out, in], scale [out] in w's dtype)`` with ``w ~= q * scale[:, None]``."""
    wf = w.detach().float()
    amax = wf.abs().amax(dim=1).clamp(min=1e-8)
    scale = amax / 127.0
    q = torch.round(wf / scale[:, None]).clamp(-127, 127).to(torch.int8)
    return q.contiguous(), scale.to(w.dtype)


def dequantize_int8(q: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return q.to(scale.dtype) * scale[:, None]


def default_int8_matmul(device: torch.device, dtype: torch.dtype) -> Int8Matmul:
    """The multiply to use. CPU, measured on this 2-core machine (``benchmarks/engine_static.py``): bf16/fp16
    activations -> ``"int8pack"`` (at one token per step it beat bf16 weights 1.5-4x); fp32 activations ->
    ``"dequant"`` (``_weight_int8pack_mm`` with fp32 activations was 2-10x slower than fp32 weights, and
    ``"dequant"`` ~2-3x slower too: int8 with fp32 activations saves memory, not time, here). CUDA ->
    ``"dequant"``, the gpt-fast form, which ``torch.compile`` fuses into the matmul (not measured here: no GPU)."""
    if device.type == "cpu" and dtype in (torch.bfloat16, torch.float16):
        return "int8pack"
    return "dequant"


def int8_linear(x: torch.Tensor, q: torch.Tensor, scale: torch.Tensor, how: Int8Matmul = "dequant") -> torch.Tensor:
    """``x @ (q * scale)^T`` for x ``[T, in]``, q ``[out, in]`` int8, scale ``[out]``."""
    if how == "int8pack":
        return torch._weight_int8pack_mm(x, q, scale.to(x.dtype))
    return F.linear(x, q.to(x.dtype)) * scale.to(x.dtype)
