"""Evaluation on a held-out set: loss on the reference outputs, and generation-based task scores."""

from __future__ import annotations

import math
from typing import Any, Callable

import torch

from .config import FinetuneConfig
from .data import Example


@torch.inference_mode()
def eval_loss(model: Any, tokenizer: Any, examples: list[Example], cfg: FinetuneConfig) -> float:
    """Mean token cross-entropy of the reference outputs (lower is better), under the autocast of training
    (``cfg.precision``: bf16 where the CPU has native bf16, else float32; pass ``precision="fp32"`` for exact
    float32). The output projection runs only at the reference positions
    (:func:`~puyu_apps.finetune.trainer.causal_lm_loss`): the same value as the model's own loss, at a fraction
    of the cost for a large vocabulary. Rows are read longest first in batches of similar length."""
    from .trainer import _collate, autocast_dtype, causal_lm_loss, encode_example

    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    was_training = model.training
    model.eval()
    dtype = autocast_dtype(cfg.precision, next(model.parameters()).device)
    encoded = sorted((encode_example(tokenizer, ex, cfg) for ex in examples), key=lambda r: -len(r[0]))
    total, count = 0.0, 0
    for i in range(0, len(encoded), cfg.batch_size):
        batch = _collate(encoded[i: i + cfg.batch_size], pad)
        n = int((batch["labels"][:, 1:] != -100).sum())
        total += float(causal_lm_loss(model, batch, dtype)) * n
        count += n
    if was_training:
        model.train()
    return total / max(count, 1)


def rouge_l(reference: str, candidate: str) -> float:
    """ROUGE-L F1 over whitespace tokens (characters for CJK text)."""
    def toks(s: str) -> list[str]:
        return list(s.replace(" ", "")) if any("\u4e00" <= c <= "\u9fff" for c in s) else s.lower().split()

    a, b = toks(reference), toks(candidate)
    if not a or not b:
        return 0.0
    prev = [0] * (len(b) + 1)
    for x in a:
        cur = [0]
        for j, y in enumerate(b):
            cur.append(prev[j] + 1 if x == y else max(prev[j + 1], cur[j]))
        prev = cur
    lcs = prev[-1]
    if lcs == 0:
        return 0.0
    p, r = lcs / len(b), lcs / len(a)
    return 2 * p * r / (p + r)


#: A vertical's task scorer: ``(example, generated text) -> scores``. Float values are averaged over the set.
#: A pair of string values ``"gold:NAME"`` / ``"pred:NAME"`` (labels) becomes ``NAME_macro_f1`` over the set.
Scorer = Callable[[Example, str], dict[str, Any]]


def macro_f1(gold: list[str], pred: list[str]) -> float:
    """Macro-averaged F1 over the gold labels' classes (a predicted class never in gold counts as a false
    positive only)."""
    classes = sorted(set(gold))
    if not classes:
        return 0.0
    f1s = []
    for c in classes:
        tp = sum(g == c and p == c for g, p in zip(gold, pred))
        fp = sum(g != c and p == c for g, p in zip(gold, pred))
        fn = sum(g == c and p != c for g, p in zip(gold, pred))
        f1s.append(2 * tp / (2 * tp + fp + fn) if tp else 0.0)
    return sum(f1s) / len(f1s)


def aggregate(per_example: list[dict[str, Any]]) -> dict[str, float]:
    """Means of the float scores, macro-F1 of the gold/pred label pairs."""
    out: dict[str, float] = {}
    if not per_example:
        return out
    keys = {k for s in per_example for k in s}
    for k in sorted(keys):
        if k.startswith("gold:"):
            name = k[5:]
            gold = [str(s.get(k, "")) for s in per_example]
            pred = [str(s.get("pred:" + name, "")) for s in per_example]
            out[f"{name}_macro_f1"] = macro_f1(gold, pred)
        elif not k.startswith("pred:"):
            vals = [float(s[k]) for s in per_example if k in s]
            out[k] = sum(vals) / len(vals)
    return out


def generation_scores(lm: Any, examples: list[Example], adapter: str | None, scorer: Scorer | None,
                      max_new_tokens: int = 96, system: str | None = None, concurrency: int = 1) -> dict[str, float]:
    """Generate (greedy) for each example and score ROUGE-L plus the vertical's own task scores.

    ``concurrency`` > 1 sends that many requests at once from threads: on the llama.cpp backend they decode in
    one batch (:mod:`puyu_apps.engine.scheduler`); the transformers backend takes them one at a time anyway."""
    from concurrent.futures import ThreadPoolExecutor

    from tqdm.auto import tqdm

    def one(ex: Example) -> dict[str, Any]:
        out = lm.generate(ex.prompt_messages(system), adapter=adapter, max_new_tokens=max_new_tokens).text
        scores: dict[str, Any] = {"rouge_l": rouge_l(ex.output, out)}
        if scorer is not None:
            scores.update(scorer(ex, out))
        return scores

    with ThreadPoolExecutor(max(1, concurrency)) as pool:  # results come back in the examples' order
        rows = list(tqdm(pool.map(one, examples), total=len(examples), desc=f"eval {adapter or 'base'}", leave=False))
    return aggregate(rows)


def perplexity(loss: float) -> float:
    return math.exp(min(loss, 50))
