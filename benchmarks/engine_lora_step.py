"""LoRA cost of one llama.cpp decode step (issue 11), without the scheduler: 8 sequences of the embedded model
(Q4_1), one token each per step, for

- the base model (no adapter);
- one plain adapter (medical) on all 8;
- the combined adapter of medical, legal and service (f32) in masked mode (``scripts/patches/lora_mask.py``), with
  the patch's fused kernels (each token multiplies only its own adapter's rank rows) and unfused (every row of the
  combined adapter, then the mask), with the 8 sequences mixed (base, medical, legal, service) and all on medical.

The cases take turns inside each round; best of ``--repeats``. Then the logits: the combined adapter masked to
one adapter against that plain adapter, in the same batch of synthetic tokens, and teacher-forced over the first
400 tokens of the English and Chinese benchmark texts, each adapter in turn; and, the measure that counts, each
of them against the reference, peft on transformers fp32 (next-token agreement and perplexity). The engine's
figures (``engine_mixed_adapters.py``) add the scheduler, sampling and the callers' detokenisation, the same for
every case, and vary more between runs.

    .venv/bin/python benchmarks/engine_lora_step.py [--repeats 5] [--steps 40] [--skip-peft]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
from engine import TEXT_EN, TEXT_ZH, compare, loadavg, make_adapters, teacher_forced_logits_hf  # noqa: E402

from puyu_apps.core import LanguageModel  # noqa: E402
from puyu_apps.core.registry import DEFAULT_MODEL  # noqa: E402
from puyu_apps.engine import lora_gguf  # noqa: E402
from puyu_apps.engine.llamacpp import Context, lora_mask_supported  # noqa: E402

N_SEQ = 8
PROMPT = 16


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--skip-peft", action="store_true", help="leave out the comparison with peft on transformers")
    args = ap.parse_args()
    if not lora_mask_supported():
        raise SystemExit("this llama.cpp build has no masked LoRA (scripts/patches/lora_mask.py): run `make setup`")
    print(f"load average at start: {loadavg()}")
    tmp = Path(tempfile.mkdtemp(prefix="puyu-lora-step-"))
    names = ["medical", "legal", "service"]
    lm = LanguageModel.load(DEFAULT_MODEL, backend="llama.cpp", threads=args.threads,
                            adapters=make_adapters(tmp, names))
    model = lm.llama
    plain = [lm.adapters.handles[n] for n in names]
    combined = {}
    offsets = lora_gguf.combine([h.path for h in plain], tmp / "combined-f32.gguf", "f32")
    for kind in ("fused", "masked"):
        handle = model.load_lora(tmp / "combined-f32.gguf")
        model.enable_mask(handle, offsets[-1], fused=kind == "fused")
        if kind == "fused" and not handle.mask_fused:
            raise SystemExit("this llama.cpp build has no fused masked LoRA (lora_mask patch 2): run `make setup`")
        combined[kind] = (handle, offsets)
    ctx = Context(model, n_ctx=4096, n_seq=N_SEQ, n_batch=256, n_threads=args.threads)

    def row(offsets: list[int], i: int | None) -> np.ndarray | None:
        if i is None:
            return None
        r = np.zeros(offsets[-1], dtype=np.float32)
        r[offsets[i]:offsets[i + 1]] = 1.0
        return r

    def run(adapters: tuple, masks: list | None = None, keep: list | None = None) -> float:
        for s in range(N_SEQ):
            ctx.clear(s)
            if masks is not None:
                model.set_seq_mask(adapters[0], s, masks[s])
        ctx.set_adapters(adapters)
        tokens = [t for s in range(N_SEQ) for t in range(100 + s, 100 + s + PROMPT)]
        rc = ctx.decode(tokens, list(range(PROMPT)) * N_SEQ, [s for s in range(N_SEQ) for _ in range(PROMPT)],
                        ([False] * (PROMPT - 1) + [True]) * N_SEQ)
        assert rc == 0
        t0 = time.perf_counter()
        for k in range(args.steps):
            assert ctx.decode([200 + s for s in range(N_SEQ)], [PROMPT + k] * N_SEQ, list(range(N_SEQ)),
                              [True] * N_SEQ) == 0
            ctx.logits(0)
            if keep is not None:
                keep.append(np.stack([ctx.logits(i).copy() for i in range(N_SEQ)]))
        return N_SEQ * args.steps / (time.perf_counter() - t0)

    mixed = [None, 0, 1, 2] * (N_SEQ // 4)
    cases = {"base model": lambda: run(()), "plain adapter (medical), all 8": lambda: run((plain[0],))}
    for kind, (h, offs) in combined.items():
        cases[f"{kind}, mixed (base/med/legal/service)"] = (
            lambda h=h, offs=offs: run((h,), [row(offs, i) for i in mixed]))
        cases[f"{kind}, all 8 on medical"] = (
            lambda h=h, offs=offs: run((h,), [row(offs, 0)] * N_SEQ))
    best: dict[str, float] = {}
    for _ in range(args.repeats):
        for key, fn in cases.items():
            best[key] = max(best.get(key, 0.0), fn())
    ref = best["plain adapter (medical), all 8"]
    print(f"decode steps of {N_SEQ} sequences, {args.steps} steps, {args.threads} threads, best of {args.repeats} "
          f"(combined rank {offsets[-1]}, f32):")
    for key, v in best.items():
        print(f"  {key:46s} {v:7.1f} tok/s  ({v / ref:.2f}x the plain adapter)")
    # the same 8 rows, the same batch: the masked adapter on medical against the plain medical adapter
    for kind, (h, offs) in combined.items():
        a: list = []
        b: list = []
        run((plain[0],), keep=a)
        run((h,), [row(offs, 0)] * N_SEQ, keep=b)
        x, y = np.stack(a), np.stack(b)
        agree = float((x.argmax(-1) == y.argmax(-1)).mean())
        print(f"{kind} vs plain adapter, same batch ({x.shape[0]} steps x {N_SEQ} rows): next token "
              f"{100 * agree:.1f}% equal, max |logit difference| {np.abs(x - y).max():.4f} (logits span "
              f"{float(x.max() - x.min()):.1f})")
    # teacher-forced over real text, one sequence: the masked rows of each adapter against that adapter
    text_ctx = Context(model, n_ctx=1024, n_seq=1, n_batch=512, n_threads=args.threads)

    def text_logits(ids: list[int], adapters: tuple, mask: np.ndarray | None = None) -> np.ndarray:
        text_ctx.clear(0)
        if mask is not None:
            model.set_seq_mask(adapters[0], 0, mask)
        text_ctx.set_adapters(adapters)
        assert text_ctx.decode(ids, list(range(len(ids))), [0] * len(ids), [True] * len(ids)) == 0
        return np.stack([text_ctx.logits(i).copy() for i in range(len(ids))])

    for lang, text in (("EN", TEXT_EN), ("ZH", TEXT_ZH)):
        ids = lm._encode(text)[:400]
        for i, name in enumerate(names):
            ref = text_logits(ids, (plain[i],))
            parts = []
            for kind, (h, offs) in combined.items():
                x = text_logits(ids, (h,), row(offs, i))
                parts.append(f"{kind}: next token {100 * float((x.argmax(-1) == ref.argmax(-1)).mean()):.1f}% "
                             f"equal, max |logit difference| {np.abs(x - ref).max():.3f}")
            print(f"{lang} text ({len(ids)} tokens), {name} in the combined adapter vs plain {name}: "
                  + "; ".join(parts))
    # quality against the reference: peft on transformers fp32, teacher-forced over the same texts. Any change of
    # summation order moves llama.cpp's logits (its activations are rounded to 8 bits before every Q4_1 product, so
    # an element near a rounding step flips), hence "equal to the plain adapter" above is not the measure of the
    # fused kernels; agreement with peft, against that of the plain adapter, is.
    if not args.skip_peft:
        hf = LanguageModel.load(DEFAULT_MODEL, dtype="float32", backend="transformers",
                                adapters=make_adapters(tmp, names))
        print("teacher-forced against peft on transformers fp32 (next-token agreement, perplexity; reference ppl):")
        for lang, text in (("EN", TEXT_EN), ("ZH", TEXT_ZH)):
            ids = lm._encode(text)[:400]
            for i, name in enumerate(names):
                ref = teacher_forced_logits_hf(hf, ids, name)
                parts = []
                for label, adapters, mask in (("plain", (plain[i],), None),
                                              *((k, (h,), row(offs, i)) for k, (h, offs) in combined.items())):
                    q = compare(ref, text_logits(ids, adapters, mask), ids)
                    parts.append(f"{label} {100 * q['agree']:.1f}% / {q['ppl']:.2f}")
                print(f"  {lang} {name:8s} (peft ppl {q['ppl_ref']:.2f}): " + "; ".join(parts))
        del hf
    text_ctx.close()
    print(f"load average at the end: {loadavg()}")
    ctx.close()
    lm.close()


if __name__ == "__main__":
    main()
