#!/usr/bin/env python
"""Train the medical vertical's nodule UNet from scratch on synthetic chest phantoms, then evaluate it on a
held-out synthetic set (different seed) that goes through the whole DICOM path.

    .venv/bin/python scripts/train_segmenter.py --out verticals/medical/segmenter.pt

Same as ``puyu medical train-segmenter`` followed by ``puyu medical evaluate-segmenter``. Deterministic for a
given seed and thread count on CPU; ~4-6 minutes on 2 shared cores.
"""

from __future__ import annotations

import argparse
import json


def main() -> None:
    from puyu_apps.medical.evaluate import evaluate
    from puyu_apps.medical.segment import TrainConfig, train

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="verticals/medical/segmenter.pt")
    p.add_argument("--steps", type=int, default=TrainConfig.steps)
    p.add_argument("--volumes", type=int, default=TrainConfig.n_volumes)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--eval-cases", type=int, default=8, help="held-out phantoms (0: skip the evaluation)")
    args = p.parse_args()
    recipe = train(args.out, TrainConfig(seed=args.seed, steps=args.steps, n_volumes=args.volumes,
                                         threads=args.threads))
    print(json.dumps(recipe, indent=1))
    if args.eval_cases:
        metrics = evaluate(args.out, n_cases=args.eval_cases)
        metrics.pop("rows")
        print(json.dumps(metrics, indent=1))


if __name__ == "__main__":
    main()
