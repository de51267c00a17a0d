"""Tokens/s of puyu_apps' reference decode loop next to plain transformers ``generate``.

Same model, same prompt, same number of new tokens, greedy, in one run; prints the ratio.

    .venv/bin/python benchmarks/generate.py [--model smollm2-135m-instruct] [--tokens 128] [--repeats 3]
"""

from __future__ import annotations

import argparse
import platform
import time

import torch

from puyu_apps.core import GenerationConfig, LanguageModel

PROMPT = "Explain in a few sentences what a CT scan of the chest shows and why doctors order one."


def best_of(fn, repeats: int) -> tuple[float, int]:
    best, n = float("inf"), 0
    for _ in range(repeats):
        t = time.perf_counter()
        n = fn()
        best = min(best, time.perf_counter() - t)
    return best, n


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="smollm2-135m-instruct")
    ap.add_argument("--tokens", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()

    lm = LanguageModel.load(args.model)
    ids = lm.encode(lm.format_prompt(PROMPT))
    # no EOS: both sides generate exactly --tokens tokens
    cfg = GenerationConfig(max_new_tokens=args.tokens)
    lm._eos = set()

    def ours() -> int:
        return lm.generate(PROMPT, cfg).completion_tokens

    def hf() -> int:
        with torch.inference_mode():
            out = lm.model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=args.tokens,
                                    min_new_tokens=args.tokens, do_sample=False, pad_token_id=0)
        return out.shape[1] - ids.shape[1]

    ours()  # warm-up
    hf()
    t_ours, n_ours = best_of(ours, args.repeats)
    t_hf, n_hf = best_of(hf, args.repeats)
    info = lm.info()
    print(f"machine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, "
          f"torch {torch.__version__}")
    print(f"model: {info.model} ({info.weight_format}), prompt {ids.shape[1]} tokens, {args.tokens} new tokens, "
          f"greedy, best of {args.repeats}")
    print(f"{'engine':<40}{'tok/s':>10}{'ratio':>10}")
    hf_tps, our_tps = n_hf / t_hf, n_ours / t_ours
    print(f"{'transformers generate (fp32)':<40}{hf_tps:>10.1f}{1.0:>10.2f}")
    print(f"{'puyu_apps ' + info.backend + ' (fp32)':<40}{our_tps:>10.1f}{our_tps / hf_tps:>10.2f}")


if __name__ == "__main__":
    main()
