"""Held-out evaluation of the segmenter on synthetic phantoms that go through the whole DICOM path (written
with pydicom, read back, MONAI preprocessing, sliding-window UNet, measurements)."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from .lungrads import nodule_category


def evaluate(weights: str | Path | None = None, n_cases: int = 6, seed: int = 1234, size: int = 192,
             z_mm: float = 120.0) -> dict[str, Any]:
    from .dicom_io import load_ct
    from .measure import lung_mask, measure
    from .phantom import make_phantom, random_nodules, write_series
    from .segment import NoduleSegmenter

    seg = NoduleSegmenter(weights)
    rng = np.random.default_rng(seed)
    inter = total = 0.0
    inter_r = total_r = 0.0
    rows: list[dict[str, Any]] = []
    fps = 0
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for case in range(n_cases):
            dxy = float(rng.uniform(1.2, 1.8))
            dz = float(rng.choice([1.25, 2.0, 2.5]))
            shape = (int(np.ceil(z_mm / dz)), size, size)
            nods = random_nodules(rng, 3, zlen=shape[0] * dz)
            ph = make_phantom(shape, (dxy, dxy, dz), nods, seed=int(rng.integers(1 << 30)),
                              noise_hu=float(rng.uniform(10, 30)))
            write_series(ph, Path(tmp) / f"case{case}")
            vol = load_ct(Path(tmp) / f"case{case}")
            prob = seg.predict(vol)
            found = measure(vol, prob, lung_mask(vol.hu))
            gt, pr = ph.label > 0, prob >= 0.5
            inter += 2 * float((gt & pr).sum())
            total += float(gt.sum() + pr.sum())
            ref = np.zeros_like(gt)
            for f in found:
                ref[f.box] |= f.mask
            inter_r += 2 * float((gt & ref).sum())
            total_r += float(gt.sum() + ref.sum())
            used = set()
            for n in ph.nodules:
                c = np.array(n["centre_lps"])
                best = None
                for j, f in enumerate(found):
                    d = float(np.linalg.norm(np.array(f.info["centre_lps_mm"]) - c))
                    if d <= max(5.0, n["diameter_mm"] / 2) and (best is None or d < best[1]):
                        best = (j, d)
                row = {"case": case, "kind": n["kind"], "diameter_mm": n["diameter_mm"], "solid_mm": n["solid_mm"],
                       "found": best is not None,
                       "true_category": nodule_category(n["kind"], n["diameter_mm"], n["solid_mm"])}
                if best is not None:
                    used.add(best[0])
                    info = found[best[0]].info
                    row.update(measured_mm=info["mean_diameter_mm"], measured_type=info["type"],
                               category=nodule_category(info["type"], info["mean_diameter_mm"],
                                                        info["solid_diameter_mm"]))
                rows.append(row)
            fps += len(found) - len(used)
    hit = [r for r in rows if r["found"]]
    err = [abs(r["measured_mm"] - r["diameter_mm"]) for r in hit]
    bins = {"4-6 mm": (0, 6), "6-10 mm": (6, 10), "10-20 mm": (10, 20), "20-30+ mm": (20, 99)}
    per_bin = {}
    for name, (lo, hi) in bins.items():
        sel = [r for r in rows if lo <= r["diameter_mm"] < hi]
        per_bin[name] = f"{sum(r['found'] for r in sel)}/{len(sel)}"
    return {
        "cases": n_cases, "nodules": len(rows), "seed": seed, "size": size,
        "dice_unet": round(inter / max(total, 1), 3), "dice_refined": round(inter_r / max(total_r, 1), 3),
        "sensitivity": round(len(hit) / max(1, len(rows)), 3), "sensitivity_by_size": per_bin,
        "false_positives_per_case": round(fps / n_cases, 2),
        "diameter_abs_error_mm_mean": round(float(np.mean(err)), 2) if err else None,
        "diameter_abs_error_mm_max": round(float(np.max(err)), 2) if err else None,
        "type_accuracy": round(float(np.mean([r["measured_type"] == r["kind"] for r in hit])), 3) if hit else None,
        "category_accuracy": round(float(np.mean([r["category"] == r["true_category"] for r in hit])), 3)
        if hit else None,
        "seconds": round(time.perf_counter() - t0, 1), "rows": rows,
    }
