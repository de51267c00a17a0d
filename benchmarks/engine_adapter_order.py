"""Mixed-adapter batches: the scheduler's group order (adapters already set on the context first) against the
plain order, and both against one adapter, in one process on the same 8 requests (issue 11).

    .venv/bin/python benchmarks/engine_adapter_order.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine import CONCURRENT, FastEngine, make_adapters, rounds  # noqa: E402

from puyu_apps.engine.scheduler import Scheduler  # noqa: E402


def unordered(self: Scheduler, active: list) -> None:
    """The scheduler's step before the change: groups in arrival order (G adapter switches per step)."""
    groups: dict = {}
    for r in active:
        groups.setdefault(r.group, []).append(r)
    self.stats["steps"] += 1
    for reqs in groups.values():
        self._decode_group(reqs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    adapters = make_adapters(Path(tempfile.mkdtemp(prefix="puyu-order-")), ["medical", "legal", "service"])
    fast = FastEngine(args.threads, adapters)
    mixed = [(p, k, [None, "medical", "legal", "service"][i % 4]) for i, (p, k) in enumerate(CONCURRENT)]
    single = [(p, k, "medical") for p, k in CONCURRENT]
    ordered = Scheduler._step

    def run(step, jobs) -> int:
        Scheduler._step = step
        return fast.run_concurrent(jobs)

    fast.run("hi", 4)
    res = rounds({"single": lambda: run(ordered, single), "mixed-ordered": lambda: run(ordered, mixed),
                  "mixed-unordered": lambda: run(unordered, mixed)}, args.repeats)
    agg = {k: v[1] / v[0] for k, v in res.items()}
    for k, v in agg.items():
        print(f"{k:16s} {v:6.1f} tok/s  ({v / agg['single']:.2f}x one adapter)")
    print(f"ordered / unordered: {agg['mixed-ordered'] / agg['mixed-unordered']:.2f}x")


if __name__ == "__main__":
    main()
