"""Mixed-adapter batches (issue 11): 8 concurrent requests over 4 adapter groups (base, medical, legal, service)
against the same 8 requests all with one adapter, in one process, for each way the scheduler can run them:

- lanes side by side (the default): one llama.cpp context per adapter group, the lanes of a step decoded at the
  same time, one thread each;
- lanes one after another: the same contexts, each decode on all threads;
- one shared context: every group in one context, adapters switched between groups (the groups already set first);
  this was the engine before lanes.

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

from engine import CONCURRENT, FastEngine, loadavg, make_adapters, rounds  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    print(f"load average at start: {loadavg()}")
    adapters = make_adapters(Path(tempfile.mkdtemp(prefix="puyu-mixed-")), ["medical", "legal", "service"])
    engines = {}
    for name, lanes in (("lanes", "4"), ("shared", "1")):
        os.environ["PUYU_APPS_LLAMA_LANES"] = lanes
        engines[name] = FastEngine(args.threads, adapters)
    os.environ.pop("PUYU_APPS_LLAMA_LANES")
    lanes, shared = engines["lanes"], engines["shared"]
    mixed = [(p, k, [None, "medical", "legal", "service"][i % 4]) for i, (p, k) in enumerate(CONCURRENT)]
    single = [(p, k, "medical") for p, k in CONCURRENT]

    def sequential_lanes() -> int:
        lanes.lm.scheduler.parallel_lanes = False
        try:
            return lanes.run_concurrent(mixed)
        finally:
            lanes.lm.scheduler.parallel_lanes = True

    for e in engines.values():
        e.run_concurrent(mixed)  # warm-up: every lane made, every graph built once
    res = rounds({"one adapter": lambda: lanes.run_concurrent(single),
                  "mixed, lanes side by side": lambda: lanes.run_concurrent(mixed),
                  "mixed, lanes one after another": sequential_lanes,
                  "mixed, one shared context": lambda: shared.run_concurrent(mixed)}, args.repeats)
    agg = {k: v[1] / v[0] for k, v in res.items()}
    total = sum(k for _, k in CONCURRENT)
    print(f"8 concurrent requests, {total} new tokens, Q4_1, {args.threads} threads, best of {args.repeats}:")
    for k, v in agg.items():
        print(f"  {k:32s} {v:6.1f} tok/s  ({v / agg['one adapter']:.2f}x one adapter)")
    print(f"load average at the end: {loadavg()}")


if __name__ == "__main__":
    main()
