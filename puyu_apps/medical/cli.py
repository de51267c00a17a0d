"""``puyu medical ...``: make-sample, train-segmenter, evaluate-segmenter, deidentify, report."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def cmd_make_sample(args: argparse.Namespace) -> int:
    from .phantom import make_sample

    paths, ph = make_sample(args.out, shape=(args.slices, args.size, args.size),
                            spacing=(args.fov / args.size, args.fov / args.size, args.thickness), seed=args.seed,
                            multi_frame=args.multi_frame)
    truth = [{k: n[k] for k in ("kind", "diameter_mm", "solid_mm", "side", "centre_lps")} for n in ph.nodules]
    print(f"wrote {len(paths)} DICOM file(s) to {args.out} ({args.size}x{args.size}x{args.slices}, synthetic "
          f"phantom with {len(truth)} nodules)")
    print(json.dumps(truth, indent=1))
    print(f"try: puyu run medical {args.out} --out report.html")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from .segment import TrainConfig, train

    recipe = train(args.out, TrainConfig(seed=args.seed, n_volumes=args.volumes, steps=args.steps,
                                         threads=args.threads))
    print(json.dumps(recipe, indent=1))
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from .evaluate import evaluate

    metrics = evaluate(args.weights, n_cases=args.cases, seed=args.seed, size=args.size)
    print(json.dumps(metrics, indent=1))
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(metrics, indent=1), encoding="utf-8")
    return 0


def cmd_train_encoder(args: argparse.Namespace) -> int:
    from .features import EncoderTrainConfig, evaluate_encoder, train_encoder

    recipe = train_encoder(args.out, EncoderTrainConfig(seed=args.seed, steps=args.steps, n_volumes=args.volumes,
                                                        threads=args.threads))
    print(json.dumps({"recipe": recipe, "held_out": evaluate_encoder(args.out)}, indent=1))
    return 0


def cmd_deidentify(args: argparse.Namespace) -> int:
    from .deid import deidentify_files
    from .dicom_io import _gather

    written = deidentify_files(_gather(args.input), args.out, args.pseudonym)
    print(f"wrote {len(written)} de-identified file(s) to {args.out}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from .pipeline import MedicalReportPipeline

    kw: dict[str, Any] = {"language": args.language, "keep_identifiers": args.keep_identifiers}
    if args.model:
        kw["model"] = args.model
    with MedicalReportPipeline(**kw) as pipe:
        result = pipe(args.input if len(args.input) > 1 else args.input[0], history=args.history or "")
    if args.out:
        out = Path(args.out)
        text = result.to_html() if out.suffix in (".html", ".htm") else (
            result.to_json() if out.suffix == ".json" else result.to_text())
        tmp = out.with_name(out.name + ".partial")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(out)
        print(f"wrote {out}")
    print(result.to_text())
    return 0


def add_commands(sub: Any) -> None:
    s = sub.add_parser("make-sample", help="write a synthetic chest CT series (3 nodules) as DICOM")
    s.add_argument("--out", default="medical_sample", help="folder to write (replaced if it exists)")
    s.add_argument("--size", type=int, default=256, help="rows and columns")
    s.add_argument("--slices", type=int, default=60)
    s.add_argument("--fov", type=float, default=358.4, help="field of view in mm")
    s.add_argument("--thickness", type=float, default=2.5, help="slice spacing in mm")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--multi-frame", action="store_true", help="one enhanced multi-frame file")
    s.set_defaults(func=cmd_make_sample)

    s = sub.add_parser("train-segmenter", help="train the nodule UNet on synthetic phantoms (reproducible)")
    s.add_argument("--out", default=str(Path("verticals") / "medical" / "segmenter.pt"))
    s.add_argument("--steps", type=int, default=2000)
    s.add_argument("--volumes", type=int, default=20)
    s.add_argument("--threads", type=int, default=2)
    s.add_argument("--seed", type=int, default=0)
    s.set_defaults(func=cmd_train)

    s = sub.add_parser("evaluate-segmenter", help="Dice and per-nodule sensitivity on held-out phantoms")
    s.add_argument("--weights", default=None)
    s.add_argument("--cases", type=int, default=6)
    s.add_argument("--size", type=int, default=192)
    s.add_argument("--seed", type=int, default=1234)
    s.add_argument("--json-out")
    s.set_defaults(func=cmd_evaluate)

    s = sub.add_parser("train-encoder", help="train the image-text encoder (contrastive) on phantom key slices")
    s.add_argument("--out", default=str(Path("verticals") / "medical" / "encoder.pt"))
    s.add_argument("--steps", type=int, default=1000)
    s.add_argument("--volumes", type=int, default=24)
    s.add_argument("--threads", type=int, default=2)
    s.add_argument("--seed", type=int, default=0)
    s.set_defaults(func=cmd_train_encoder)

    s = sub.add_parser("deidentify", help="write de-identified copies of DICOM files")
    s.add_argument("input", help="a DICOM file or folder")
    s.add_argument("--out", required=True)
    s.add_argument("--pseudonym", default="ANONYMOUS")
    s.set_defaults(func=cmd_deidentify)

    s = sub.add_parser("report", help="report on a series: puyu medical report DIR --history TEXT --out r.html")
    s.add_argument("input", nargs="+")
    s.add_argument("--history", default="")
    s.add_argument("--language", default="en", choices=["en", "zh"])
    s.add_argument("--keep-identifiers", action="store_true")
    s.add_argument("--model")
    s.add_argument("--out")
    s.set_defaults(func=cmd_report)
