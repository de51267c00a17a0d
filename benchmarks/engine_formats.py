"""The fast path on each GGUF weight type (issue 11), in one process, each engine decoding from its own thread:
batch 1 and 8 concurrent tok/s, then next-token agreement and perplexity against transformers fp32 on the fixed
English and Chinese texts of benchmarks/engine.py.

    .venv/bin/python benchmarks/engine_formats.py [--formats q4_1,q5_0,q8_0] [--repeats 2]
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from engine import (CONCURRENT, PROMPT, TEXT_EN, TEXT_ZH, FastEngine, HFEngine, compare, loadavg,  # noqa: E402
                    rounds, teacher_forced_logits_hf, teacher_forced_logits_llama)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--formats", default="q4_1,q5_0,q8_0", help="q4_1 is the shipped file; others are re-exports")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    print(f"load average at start: {loadavg()}")
    engines = {f: FastEngine(args.threads, gguf_format=None if f == "q4_1" else f) for f in args.formats.split(",")}
    jobs = [(p, k, None) for p, k in CONCURRENT]
    for e in engines.values():
        e.run(PROMPT, 8)
    cases = {}
    for f, e in engines.items():
        cases[f"{f} batch 1"] = lambda e=e: e.run(PROMPT, 128)
        cases[f"{f} 8 at once"] = lambda e=e: e.run_concurrent(jobs)
    for k, (dt, n) in rounds(cases, args.repeats).items():
        print(f"  {k:16s} {n / dt:7.1f} tok/s", flush=True)
    ref = HFEngine("float32").lm
    for f, e in engines.items():
        for name, text in (("EN", TEXT_EN), ("ZH", TEXT_ZH)):
            ids = e.lm._encode(text)
            q = compare(teacher_forced_logits_hf(ref, ids, None), teacher_forced_logits_llama(e.lm, ids, None), ids)
            print(f"  {f} {name}: next-token agreement with fp32 {q['agree']:.1%}, perplexity {q['ppl']:.2f} "
                  f"(fp32 {q['ppl_ref']:.2f})", flush=True)
    print(f"load average at the end: {loadavg()}")


if __name__ == "__main__":
    main()
