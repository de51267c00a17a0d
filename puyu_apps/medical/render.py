"""Pictures for the report: the axial key slice of each nodule (lung window) with the nodule contour drawn,
as PNG bytes / base64."""

from __future__ import annotations

import base64
import io

import numpy as np


def window(hu: np.ndarray, level: float = -600.0, width: float = 1500.0) -> np.ndarray:
    lo = level - width / 2
    return (np.clip((hu - lo) / width, 0, 1) * 255).astype(np.uint8)


def contour(mask2d: np.ndarray) -> np.ndarray:
    from scipy import ndimage

    return mask2d & ~ndimage.binary_erosion(mask2d)


def key_slice_png(hu2d: np.ndarray, mask2d: np.ndarray, aspect: float = 1.0, zoom_px: int = 96,
                  colour: tuple[int, int, int] = (255, 40, 40)) -> bytes:
    """Full slice (nodule boxed) beside a zoomed crop with the contour. ``aspect`` = row/column spacing."""
    from PIL import Image, ImageDraw

    g = window(hu2d)
    rgb = np.stack([g] * 3, -1)
    edge = contour(mask2d.astype(bool))
    rgb[edge] = colour
    full = Image.fromarray(rgb)
    ys, xs = np.nonzero(mask2d)
    if len(ys):
        cy, cx = int(ys.mean()), int(xs.mean())
        half = max(12, int(max(np.ptp(ys), np.ptp(xs)) * 1.5) + 6)
        y0, x0 = max(0, cy - half), max(0, cx - half)
        crop = Image.fromarray(rgb[y0:cy + half, x0:cx + half]).resize((zoom_px * 2, zoom_px * 2), Image.NEAREST)
        ImageDraw.Draw(full).rectangle([x0, y0, min(cx + half, g.shape[1] - 1), min(cy + half, g.shape[0] - 1)],
                                       outline=(255, 200, 0))
    else:
        crop = Image.new("RGB", (zoom_px * 2, zoom_px * 2))
    if abs(aspect - 1.0) > 0.01:
        full = full.resize((full.width, max(1, int(round(full.height * aspect)))))
    h = max(full.height, crop.height)
    canvas = Image.new("RGB", (full.width + crop.width + 8, h))
    canvas.paste(full, (0, 0))
    canvas.paste(crop, (full.width + 8, 0))
    buf = io.BytesIO()
    canvas.save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def b64(png: bytes) -> str:
    return base64.b64encode(png).decode("ascii")
