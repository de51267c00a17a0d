"""Medical vertical: seconds per stage for one study of the sample series (256x256x60 synthetic chest CT) on CPU,
and on GPU where one is available.

In one run:
  * per stage: DICOM read (pydicom), MONAI preprocessing (orientation + 1.5 mm resampling), UNet sliding-window
    inference, measurements (lung mask, components, refinement), image-text features, LLM report, rendering;
  * alternatives compared in the same run with ratios: sliding-window ROI 64^3 against 96^3, overlap 0.25
    against 0.5, 1 thread against 2 (UNet), CPU against GPU (when present).

    .venv/bin/python benchmarks/medical.py [--model smollm2-135m-instruct] [--size 256] [--slices 60]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from puyu_apps._threads import set_torch_threads


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


def unet_seconds(seg, vol, roi, overlap, device="cpu", repeat=1):
    from dataclasses import replace

    seg.cfg = replace(seg.cfg, roi=roi, overlap=overlap)
    seg.net.to(device)
    seg.device = device
    seg.predict(vol)  # warm-up (kernel selection)
    t = time.perf_counter()
    for _ in range(repeat):
        prob = seg.predict(vol)
    if device != "cpu":
        torch.cuda.synchronize()
    return prob, (time.perf_counter() - t) / repeat


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="smollm2-135m-instruct")
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--slices", type=int, default=60)
    ap.add_argument("--tokens", type=int, default=160)
    args = ap.parse_args()

    from puyu_apps.medical import MedicalReportPipeline
    from puyu_apps.medical.dicom_io import load_ct
    from puyu_apps.medical.measure import lung_mask, measure
    from puyu_apps.medical.phantom import make_sample
    from puyu_apps.medical.segment import NoduleSegmenter
    from puyu_apps.medical.transforms import ct_transforms, to_monai

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "sample"
        make_sample(folder, shape=(args.slices, args.size, args.size),
                    spacing=(358.4 / args.size, 358.4 / args.size, 2.5))
        vol, t_read = timed(lambda: load_ct(folder))
        _, t_pre = timed(lambda: ct_transforms()(to_monai(vol)))
        seg = NoduleSegmenter()
        rows = {}
        set_torch_threads(2)
        prob, rows["unet roi64 ov0.25 2 threads"] = unet_seconds(seg, vol, (64, 64, 64), 0.25)
        _, rows["unet roi96 ov0.25 2 threads"] = unet_seconds(seg, vol, (96, 96, 96), 0.25)
        _, rows["unet roi64 ov0.50 2 threads"] = unet_seconds(seg, vol, (64, 64, 64), 0.5)
        set_torch_threads(1)
        _, rows["unet roi64 ov0.25 1 thread"] = unet_seconds(seg, vol, (64, 64, 64), 0.25)
        set_torch_threads(2)
        if torch.cuda.is_available():
            _, rows["unet roi64 ov0.25 cuda"] = unet_seconds(seg, vol, (64, 64, 64), 0.25, "cuda", repeat=3)
            seg.net.to("cpu")
        lung, t_lung = timed(lambda: lung_mask(vol.hu))
        found, t_meas = timed(lambda: measure(vol, prob, lung))
        print(f"series {vol.shape[2]}x{vol.shape[1]}x{vol.shape[0]}, {len(found)} nodules")
        print(f"{'stage':34s} seconds")
        for name, s in [("DICOM read (pydicom)", t_read), ("MONAI preprocess (RAS, 1.5 mm)", t_pre),
                        ("lung mask", t_lung), ("measurements", t_meas)]:
            print(f"{name:34s} {s:7.3f}")
        base = rows["unet roi64 ov0.25 2 threads"]
        for name, s in rows.items():
            print(f"{name:34s} {s:7.3f}   x{s / base:.2f} vs roi64/0.25/2 threads")
        pipe = MedicalReportPipeline(model=args.model, max_new_tokens=args.tokens, use_features=True)
        pipe.warm_up()
        result, t_all = timed(lambda: pipe(folder, history="62-year-old, 35 pack-years, screening."))
        print(f"\nwhole pipeline with {args.model} ({t_all:.1f} s for one study); stages as the pipeline timed them:")
        for k, v in result.timings_s.items():
            print(f"  {k:32s} {v:7.3f}")
        print(f"Lung-RADS {result.lung_rads}; flags: {result.flags}")


if __name__ == "__main__":
    main()
