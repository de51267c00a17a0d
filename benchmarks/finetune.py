"""Cost of `make adapters` (issue 7), compared alternatives in one run on the embedded model:

1. training steps with random batches vs batches grouped by length (padding), same steps, same data;
2. the held-out answers for `puyu eval`: transformers one at a time vs the llama.cpp backend 8 at a time,
   with the shipped adapter.

    .venv/bin/python benchmarks/finetune.py [--vertical legal] [--steps 4] [--answers 16]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def training_steps(vertical: str, steps: int) -> dict[str, dict[str, float]]:
    """Seconds per step and tokens per step (padded / real) for both schedules, ``steps`` steps each."""
    import torch
    from peft import LoraConfig, get_peft_model

    from puyu_apps.core import DEFAULT_MODEL
    from puyu_apps.core.loading import load
    from puyu_apps.finetune.cli import vertical_data
    from puyu_apps.finetune.config import FinetuneConfig
    from puyu_apps.finetune.data import load_jsonl
    from puyu_apps.finetune.trainer import _collate, _schedule, autocast_dtype, causal_lm_loss, encode_example

    train, _ = vertical_data(vertical)
    loaded = load(DEFAULT_MODEL)
    tok = loaded.tokenizer
    model = get_peft_model(loaded.model, LoraConfig(r=16, lora_alpha=32, target_modules=[
        "q_proj", "k_proj", "v_proj", "o_proj"], task_type="CAUSAL_LM"))
    model.train()
    out: dict[str, dict[str, float]] = {}
    cfg0 = FinetuneConfig(batch_size=8, max_steps=steps)
    encoded = [encode_example(tok, ex, cfg0) for ex in load_jsonl(train)]
    amp = autocast_dtype("auto", torch.device("cpu"))
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    warm = _collate([encoded[i] for i in range(8)], pad)
    causal_lm_loss(model, warm, amp).backward()  # kernels built once, outside the timing
    for grouped in (False, True):
        cfg = FinetuneConfig(batch_size=8, max_steps=steps, group_by_length=grouped)
        full = _schedule([len(ids) for ids, _ in encoded], FinetuneConfig(batch_size=8, max_steps=370,
                                                                          group_by_length=grouped))
        padded = sum(_collate([encoded[i] for i in b], pad)["input_ids"].numel() for b in full)
        real = sum(len(encoded[i][0]) for b in full for i in b)
        t0 = time.perf_counter()
        for b in _schedule([len(ids) for ids, _ in encoded], cfg):
            model.zero_grad(set_to_none=True)
            causal_lm_loss(model, _collate([encoded[i] for i in b], pad), amp).backward()
        sec = (time.perf_counter() - t0) / steps
        out["grouped" if grouped else "random"] = {"s_per_step": sec, "padding": padded / real - 1}
        print(f"  {'grouped by length' if grouped else 'random batches':<18} {sec:6.2f} s/step   "
              f"padding over a 370-step run: {padded / real - 1:5.1%}", flush=True)
    return out


def answers(vertical: str, n: int, max_new_tokens: int) -> dict[str, float]:
    """Wall seconds for the adapter's answers to the first ``n`` held-out rows on both engines."""
    from puyu_apps.core import DEFAULT_MODEL, LanguageModel
    from puyu_apps.finetune.cli import vertical_data
    from puyu_apps.finetune.data import load_jsonl
    from puyu_apps.finetune.evaluate import generation_scores
    from puyu_apps.paths import vertical_dir
    from puyu_apps.pipelines import get

    examples = load_jsonl(vertical_data(vertical)[1])[:n]
    scorer = getattr(get(vertical), "eval_scorer", None)
    out = {}
    for backend, conc in (("transformers", 1), ("llama.cpp", 8)):
        lm = LanguageModel.load(DEFAULT_MODEL, backend=backend)
        lm.load_adapter("a", vertical_dir(vertical) / "adapter")
        lm.generate("Hello", adapter="a", max_new_tokens=4)  # warm-up
        t0 = time.perf_counter()
        scores = generation_scores(lm, examples, "a", scorer, max_new_tokens=max_new_tokens, concurrency=conc)
        out[backend] = time.perf_counter() - t0
        shown = ", ".join(f"{k} {v:.3f}" for k, v in sorted(scores.items()))
        print(f"  {backend:<12} {conc} at a time: {out[backend]:6.1f} s   {shown}", flush=True)
        del lm
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--vertical", default="legal")
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--answers", type=int, default=16)
    ap.add_argument("--max-new-tokens", type=int, default=120)
    args = ap.parse_args()
    print(f"training steps ({args.vertical}, batch 8, LoRA r=16 on q/k/v/o, {args.steps} steps each):")
    t = training_steps(args.vertical, args.steps)
    print(f"  ratio random / grouped: {t['random']['s_per_step'] / t['grouped']['s_per_step']:.2f}x")
    print(f"held-out answers with the adapter ({args.answers} rows, up to {args.max_new_tokens} new tokens):")
    a = answers(args.vertical, args.answers, args.max_new_tokens)
    print(f"  ratio transformers / llama.cpp batched: {a['transformers'] / a['llama.cpp']:.2f}x")


if __name__ == "__main__":
    main()
