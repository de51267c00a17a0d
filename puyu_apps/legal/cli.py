"""``puyu legal make-sample``: write sample contracts (English and Chinese, digital and scanned)."""

from __future__ import annotations

import argparse
from typing import Any


def add_commands(subparsers: Any) -> None:
    p = subparsers.add_parser("make-sample", help="write sample contracts (digital + scanned, English + Chinese) "
                                                  "with planted risky clauses, signed and empty signature blocks")
    p.add_argument("--out", default="legal_samples", help="output folder (default: ./legal_samples)")
    p.set_defaults(func=_make_sample)


def _make_sample(args: argparse.Namespace) -> int:
    from .samples import make_samples

    for path in make_samples(args.out):
        print(f"wrote {path}  (ground truth: {path.name}.truth.json)")
    print(f"try: puyu run legal {args.out}/contract_en_digital.pdf --out review.html")
    return 0
