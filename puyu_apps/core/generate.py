"""The reference decode loop over a transformers model: prefill, then one token at a time from the KV cache.

This is the portable path; the fast engine replaces it where it can and says so in ``EngineInfo``.
"""

from __future__ import annotations

import time
from typing import Any, Iterator

import torch

from .config import GenerationConfig
from .sampling import select_next


@torch.inference_mode()
def decode_tokens(
    model: Any, input_ids: torch.Tensor, cfg: GenerationConfig, eos_ids: set[int]
) -> Iterator[int]:
    """Yield generated token ids (an EOS id is yielded last when it ends the sequence).

    input_ids: [1, S] on the model's device.
    """
    from transformers import DynamicCache

    generator = None
    if cfg.do_sample:
        generator = torch.Generator(device=input_ids.device)
        generator.manual_seed(cfg.seed if cfg.seed is not None else int(time.time_ns() % 2**31))
    cache = DynamicCache(config=model.config)
    seen = input_ids
    out = model(input_ids=input_ids, past_key_values=cache, use_cache=True, logits_to_keep=1)
    for _ in range(cfg.max_new_tokens):
        next_id = select_next(out.logits[:, -1, :], cfg, seen, generator)  # [1]
        tid = int(next_id.item())
        yield tid
        if tid in eos_ids:
            return
        step = next_id.view(1, 1)
        if cfg.repetition_penalty != 1.0:
            seen = torch.cat([seen, step], dim=1)
        out = model(input_ids=step, past_key_values=out.past_key_values, use_cache=True)


def eos_token_ids(model: Any, tokenizer: Any) -> set[int]:
    ids: set[int] = set()
    gen_eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    for v in (gen_eos, model.config.eos_token_id, tokenizer.eos_token_id):
        if isinstance(v, int):
            ids.add(v)
        elif isinstance(v, (list, tuple)):
            ids.update(int(x) for x in v)
    return ids
