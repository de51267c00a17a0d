"""Mixed-adapter batches (issue 11): 8 concurrent requests over 4 adapter groups (base, medical, legal, service)
against the same 8 requests all with one adapter, and with none, in one process, for each way the scheduler can
run them:

- masked LoRA (the default where the library has our patch, ``scripts/patches/lora_mask.py``): one combined
  adapter of the three, a row mask per sequence, every request in one decode; with the patch's fused kernels (the
  default) each token multiplies only its own adapter's rank rows, unfused every row of the combined adapter and
  then the mask;
- lanes side by side (the default without the patch): one llama.cpp context per adapter group, the lanes of a step
  decoded at the same time, one thread each;
- lanes one after another: the same contexts, each decode on all threads;
- one shared context: every group in one context, adapters switched between groups (the groups already set first);
  this was the engine before lanes.

A second table takes 8 requests over 6 groups (base + the three + two more adapters, random): more groups than
the 4 lanes, so the lanes engine shares a context between groups and switches adapters in it.

"One adapter" is measured on both engines (both decode a step of one adapter group on that adapter alone, without
a mask); the mixed rows are compared with the faster of the two.

    .venv/bin/python benchmarks/engine_mixed_adapters.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine import CONCURRENT, FastEngine, in_threads, loadavg, make_adapters, rounds  # noqa: E402

from puyu_apps.core import GenerationConfig  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    print(f"load average at start: {loadavg()}")
    adapters = make_adapters(Path(tempfile.mkdtemp(prefix="puyu-mixed-")), ["medical", "legal", "service"])
    engines = {}
    for name, lanes, masked, fused in (("masked", "4", "1", "1"), ("unfused", "4", "1", "0"),
                                       ("lanes", "4", "0", "0"), ("shared", "1", "0", "0")):
        os.environ["PUYU_APPS_LLAMA_LANES"] = lanes
        os.environ["PUYU_APPS_MASKED_LORA"] = masked
        os.environ["PUYU_APPS_LORA_FUSED"] = fused
        engines[name] = FastEngine(args.threads, adapters)
    for key in ("PUYU_APPS_LLAMA_LANES", "PUYU_APPS_MASKED_LORA", "PUYU_APPS_LORA_FUSED"):
        os.environ.pop(key)
    masked, unfused, lanes, shared = engines["masked"], engines["unfused"], engines["lanes"], engines["shared"]
    if not masked.lm.masked_lora:
        print("this llama.cpp build has no masked LoRA (scripts/patches/lora_mask.py): its rows repeat the lanes")
    mixed = [(p, k, [None, "medical", "legal", "service"][i % 4]) for i, (p, k) in enumerate(CONCURRENT)]
    single = [(p, k, "medical") for p, k in CONCURRENT]
    base = [(p, k, None) for p, k in CONCURRENT]

    def sequential_lanes() -> int:
        lanes.lm.scheduler.parallel_lanes = False
        try:
            return lanes.run_concurrent(mixed)
        finally:
            lanes.lm.scheduler.parallel_lanes = True

    for e in engines.values():
        e.run_concurrent(mixed)  # warm-up: every lane made, every graph built once
        e.run_concurrent(single)
    res = rounds({"base model, no adapter": lambda: masked.run_concurrent(base),
                  "one adapter, masked engine": lambda: masked.run_concurrent(single),
                  "one adapter, plain": lambda: lanes.run_concurrent(single),
                  "mixed, masked LoRA (one batch)": lambda: masked.run_concurrent(mixed),
                  "mixed, masked LoRA, unfused": lambda: unfused.run_concurrent(mixed),
                  "mixed, lanes side by side": lambda: lanes.run_concurrent(mixed),
                  "mixed, lanes one after another": sequential_lanes,
                  "mixed, one shared context": lambda: shared.run_concurrent(mixed)}, args.repeats)
    agg = {k: v[1] / v[0] for k, v in res.items()}
    one = max(agg["one adapter, masked engine"], agg["one adapter, plain"])
    total = sum(k for _, k in CONCURRENT)
    print(f"8 concurrent requests, {total} new tokens, Q4_1, {args.threads} threads, best of {args.repeats}; "
          f"mixed adapters: {masked.lm.info().mixed_adapters}:")
    for k, v in agg.items():
        print(f"  {k:34s} {v:6.1f} tok/s  ({v / one:.2f}x the faster one-adapter row)")
    print(f"mixed adapters vs one adapter: masked {agg['mixed, masked LoRA (one batch)'] / one:.2f}x, "
          f"unfused {agg['mixed, masked LoRA, unfused'] / one:.2f}x, "
          f"lanes side by side {agg['mixed, lanes side by side'] / one:.2f}x")

    # more groups than lanes
    more = dict(adapters, **make_adapters(Path(tempfile.mkdtemp(prefix="puyu-mixed-")), ["extra1", "extra2"]))
    six = [None, "medical", "legal", "service", "extra1", "extra2"]
    engines6 = {}
    for name, masked_on in (("masked", "1"), ("lanes", "0")):
        os.environ["PUYU_APPS_MASKED_LORA"] = masked_on
        engines6[name] = FastEngine(args.threads, more)
    os.environ.pop("PUYU_APPS_MASKED_LORA")
    mixed6 = [(p, k, six[i % 6]) for i, (p, k) in enumerate(CONCURRENT)]
    for e in engines6.values():
        e.run_concurrent(mixed6)
    res6 = rounds({"one adapter": lambda: engines6["lanes"].run_concurrent(single),
                   "6 groups, masked LoRA (one batch)": lambda: engines6["masked"].run_concurrent(mixed6),
                   "6 groups, 4 lanes (two shared)": lambda: engines6["lanes"].run_concurrent(mixed6)},
                  args.repeats)
    agg6 = {k: v[1] / v[0] for k, v in res6.items()}
    print(f"8 concurrent requests over 6 groups (5 adapters loaded), best of {args.repeats}:")
    for k, v in agg6.items():
        print(f"  {k:34s} {v:6.1f} tok/s  ({v / agg6['one adapter']:.2f}x one adapter)")
    # the outputs: each mixed request (greedy, EOS ignored) decoded in the batch against the same request alone. A
    # batch changes the order of float sums in llama.cpp's kernels (4-row GEMM against 1-row GEMV), so long greedy
    # outputs part ways even for the base model; the lanes are the yardstick for the masked batch
    for name, eng in (("masked LoRA", masked), ("lanes side by side", lanes)):
        def ids(i: int, eng: FastEngine = eng) -> list[int]:
            p, k, a = mixed[i]
            return eng.lm.generate(p, GenerationConfig(max_new_tokens=k), adapter=a).token_ids

        alone = [ids(i) for i in range(len(mixed))]
        together = in_threads(ids, len(mixed))
        same = sum(x == y for x, y in zip(alone, together))
        prefix = [next((i for i, (u, v) in enumerate(zip(x, y)) if u != v), len(x)) / max(len(x), 1)
                  for x, y in zip(alone, together)]
        print(f"mixed batch vs each request alone, {name}: {same}/{len(mixed)} identical, mean agreeing prefix "
              f"{100 * sum(prefix) / len(prefix):.0f}%")
    print(f"load average at the end: {loadavg()}")


if __name__ == "__main__":
    main()
