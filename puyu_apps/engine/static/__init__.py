"""The torch "static" engine (backend ``"torch-static"``): our own decode path for Llama-layout models in the
style of gpt-fast, for CUDA (bf16, ``torch.compile`` with CUDA graphs) and for transformers folders on the CPU.

    from puyu_apps.core import LanguageModel
    lm = LanguageModel.load("path/to/llama-folder", backend="torch-static")
    lm.generate("...").backend                    # "torch-static"

- :mod:`.weights`    the model's weights in our layout (fused q/k/v and gate/up), read from a transformers model
- :mod:`.forward`    ``prefill`` and ``decode_one_token`` over a preallocated static KV cache
- :mod:`.ops`        the memory-bound steps (RMSNorm + residual, rotary + KV write, SwiGLU, decode attention) as
  one set: torch ops, or the Triton kernels of :mod:`.triton_ops` (``kernels=``; Triton on CUDA by default)
- :mod:`.quant`      weight-only int8 (per output channel, symmetric)
- :mod:`.lora`       peft LoRA adapters stacked per module (row 0 = none): several adapters in one batch (BGMV)
- :mod:`.scheduler`  continuous batching: one engine thread, slots, prefix reuse
- :mod:`.model`      ``StaticLanguageModel``: the :class:`~puyu_apps.core.LanguageModel` interface

Importing this package imports nothing heavy (no torch, no transformers).
"""

from __future__ import annotations

BACKEND = "torch-static"

#: transformers ``model_type`` values the engine runs (``internlm3`` is Llama code in transformers; Qwen2 adds
#: q/k/v biases; Mistral without a sliding window is Llama)
SUPPORTED_MODEL_TYPES = ("llama", "internlm3", "qwen2", "mistral")

__all__ = ["BACKEND", "SUPPORTED_MODEL_TYPES"]
