"""Measurements from the segmentation: lung mask and volume; per nodule mean axial diameter (Lung-RADS way:
mean of long axis and perpendicular short axis on the axial slice of largest area), volume, mean HU, type,
solid-part diameter, slice range, side and rough lobe."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .dicom_io import CTVolume

SOLID_HU = -300.0  # voxels above this are "solid" (soft tissue); ground glass lies below it


@dataclass(frozen=True)
class MeasureConfig:
    threshold: float = 0.5  # nodule probability
    min_volume_mm3: float = 20.0  # smaller components are noise (a 3.4 mm sphere)
    min_peak: float = 0.8  # a component must reach this probability somewhere
    max_elongation: float = 3.0  # long / short axis above this: a vessel or rib, not a nodule
    refine: bool = True  # move the boundary to half-way between the nodule's HU level and the lung around it

    def __post_init__(self) -> None:
        if not 0 < self.threshold < 1:
            raise ValueError(f"threshold must be within (0, 1), got {self.threshold}")
        if self.min_volume_mm3 < 0:
            raise ValueError(f"min_volume_mm3 must be >= 0, got {self.min_volume_mm3}")


def lung_mask(hu: np.ndarray) -> np.ndarray:
    """Air-filled regions inside the body, holes (vessels, nodules) filled slice by slice. [Z, Y, X] bool."""
    from scipy import ndimage

    air = hu < -400
    lab, n = ndimage.label(air)
    if n == 0:
        return np.zeros_like(air)
    border = np.unique(np.concatenate([lab[:, 0, :].ravel(), lab[:, -1, :].ravel(), lab[:, :, 0].ravel(),
                                       lab[:, :, -1].ravel()]))
    sizes = ndimage.sum(air, lab, index=np.arange(1, n + 1))
    outside = set(border.tolist())
    inner = [i + 1 for i in np.argsort(sizes)[::-1] if (i + 1) not in outside and sizes[i] > 0.002 * air.size]
    keep = inner[:2]
    lung = np.isin(lab, keep)
    for k in range(lung.shape[0]):
        lung[k] = ndimage.binary_fill_holes(lung[k])
    return lung


def _axes_mm(mask2d: np.ndarray, dx: float, dy: float) -> tuple[float, float]:
    """Long axis and perpendicular short axis (mm) of a 2D mask, each extent widened by one pixel."""
    ys, xs = np.nonzero(mask2d)
    pts = np.stack([xs * dx, ys * dy], 1).astype(float)
    if len(pts) < 2:
        return dx, dy
    pts -= pts.mean(0)
    _, vecs = np.linalg.eigh(np.cov(pts.T))
    major, minor = vecs[:, 1], vecs[:, 0]

    def extent(v: np.ndarray) -> float:
        proj = pts @ v
        return float(proj.max() - proj.min()) + float(np.hypot(v[0] * dx, v[1] * dy))

    return extent(major), extent(minor)


def _mean_diameter(mask: np.ndarray, dx: float, dy: float) -> tuple[float, float, float, int]:
    areas = mask.reshape(mask.shape[0], -1).sum(1)
    k = int(np.argmax(areas))
    long_ax, short_ax = _axes_mm(mask[k], dx, dy)
    return (long_ax + short_ax) / 2, long_ax, short_ax, k


def _lobe(side: str, zfrac: float) -> str:
    if side == "right":
        return "right upper lobe" if zfrac > 0.62 else "right middle lobe" if zfrac > 0.38 else "right lower lobe"
    return "left upper lobe" if zfrac > 0.5 else "left lower lobe"


def refine_component(hu: np.ndarray, comp: np.ndarray, spacing: tuple[float, float, float] = (1.0, 1.0, 1.0),
                     lung_hu: float = -850.0) -> np.ndarray:
    """Boundary at the half-way HU between the nodule (its ground-glass part when it has one) and the lung
    around it, searched within two voxels of the network's mask; the connected part touching the mask."""
    from scipy import ndimage

    region = ndimage.binary_dilation(comp, iterations=2)
    smooth = ndimage.gaussian_filter(hu, sigma=(0.5, 0.8, 0.8))
    shell = ndimage.binary_dilation(comp, iterations=6) & ~ndimage.binary_dilation(comp, iterations=4)
    far = smooth[shell]
    far = far[far < SOLID_HU]  # lung around the nodule, vessels left out
    bg = float(np.median(far)) if far.size > 10 else lung_hu
    core = ndimage.binary_erosion(comp) if comp.sum() > 30 else comp
    vals = smooth[core if core.any() else comp]
    soft = vals[vals < SOLID_HU]
    level = float(np.median(soft)) if soft.size > 0.3 * vals.size else float(np.median(vals))
    if level - bg < 80:  # no contrast to work with: keep the network's mask
        return comp
    cand = region & (smooth > (bg + level) / 2)
    if level < SOLID_HU:  # a ground-glass boundary grows into ground glass only, not into touching vessels
        bright = ndimage.binary_dilation((smooth > SOLID_HU) & ~comp, iterations=1)
        cand &= comp | ~bright
        cand = ndimage.binary_opening(cand, structure=np.ones((1, 3, 3))) | (cand & comp)
    lab, _ = ndimage.label(cand, structure=np.ones((3, 3, 3)))
    ids = np.unique(lab[comp & cand])
    ids = ids[ids > 0]
    out = np.isin(lab, ids)
    if out.sum() < 0.3 * comp.sum():
        return comp
    return detach_vessels(out, comp, spacing)


def detach_vessels(mask: np.ndarray, seed: np.ndarray, spacing: tuple[float, float, float] = (1.0, 1.0, 1.0)
                   ) -> np.ndarray:
    """Open each axial slice with a disk of ~0.3 nodule radius: touching vessels (thinner) come off; keep the
    part that overlaps ``seed`` most."""
    from scipy import ndimage

    r_mm = (3 * mask.sum() * spacing[0] * spacing[1] * spacing[2] / (4 * np.pi)) ** (1 / 3)
    k = int(max(1, round(0.35 * r_mm / min(spacing[0], spacing[1]))))
    yy, xx = np.mgrid[-k:k + 1, -k:k + 1]
    disk = (yy ** 2 + xx ** 2 <= k * k)[None]
    opened = ndimage.binary_opening(mask, structure=disk)
    lab, n = ndimage.label(opened, structure=np.ones((3, 3, 3)))
    if n == 0:
        return mask
    overlap = ndimage.sum(seed, lab, index=np.arange(1, n + 1))
    best = lab == int(np.argmax(overlap)) + 1
    return best if best.sum() >= 0.5 * mask.sum() else mask


@dataclass
class Found:
    """One measured nodule: its measurements and its mask inside ``box`` (slices of the [Z, Y, X] volume)."""

    info: dict
    box: tuple
    mask: np.ndarray


def measure(vol: CTVolume, prob: np.ndarray, lung: np.ndarray, cfg: MeasureConfig = MeasureConfig()) -> list[Found]:
    """One :class:`Found` per nodule, largest first."""
    from scipy import ndimage

    dx, dy, dz = vol.spacing
    voxel_mm3 = dx * dy * dz
    near_lung = ndimage.binary_dilation(lung, iterations=2) if lung.any() else np.ones_like(lung)
    mask = (prob >= cfg.threshold) & near_lung
    lab, n = ndimage.label(mask, structure=np.ones((3, 3, 3)))
    aff = vol.affine_lps()
    lung_idx = np.argwhere(lung) if lung.any() else None
    mid_x = float((aff @ np.r_[vol.shape[2] / 2, vol.shape[1] / 2, 0, 1])[0])
    if lung_idx is not None:
        mid_x = float((aff[:3, :3] @ lung_idx[:, ::-1].mean(0) + aff[:3, 3])[0])
    out = []
    for i, sl in enumerate(ndimage.find_objects(lab), start=1):
        if sl is None:
            continue
        sl = tuple(slice(max(0, s.start - 3), s.stop + 3) for s in sl)  # room for the refined boundary
        comp = lab[sl] == i
        peak = float(prob[sl][comp].max())
        if comp.sum() * voxel_mm3 < cfg.min_volume_mm3 or peak < cfg.min_peak:
            continue
        hu = vol.hu[sl]
        if cfg.refine:
            comp = refine_component(hu, comp, vol.spacing)
        volume = float(comp.sum() * voxel_mm3)
        mean_d, long_ax, short_ax, k = _mean_diameter(comp, dx, dy)
        z_extent = float(np.ptp(np.nonzero(comp.any(axis=(1, 2)))[0]) + 1) * dz
        if long_ax > cfg.max_elongation * short_ax or z_extent > cfg.max_elongation * max(long_ax, 2 * dz):
            continue  # a vessel running in-plane or along z
        core = ndimage.binary_erosion(comp) if comp.sum() > 30 else comp
        core = core if core.any() else comp
        solid_frac = float((hu[core] > SOLID_HU).mean())
        solid = comp & (ndimage.median_filter(hu, size=(1, 3, 3)) > SOLID_HU)
        solid_d = 0.0
        if solid.any():
            sl_lab, m = ndimage.label(solid)
            big = np.argmax(ndimage.sum(solid, sl_lab, index=np.arange(1, m + 1))) + 1
            solid_d = _mean_diameter(sl_lab == big, dx, dy)[0]
        if solid_frac >= 0.8:
            kind, solid_d = "solid", mean_d
        elif solid_d >= 2.5:
            kind = "part-solid"
        else:
            kind, solid_d = "ground-glass", 0.0
        idx = np.argwhere(comp) + np.array([s.start for s in sl])  # [N, (z, y, x)]
        centre_vox = idx.mean(0)
        centre = aff[:3, :3] @ centre_vox[::-1] + aff[:3, 3]
        side = "right" if centre[0] < mid_x else "left"
        zfrac = 0.5
        if lung_idx is not None:
            zs = lung_idx[:, 0]
            zfrac = float((centre_vox[0] - zs.min()) / max(1, zs.max() - zs.min()))
            if float(np.dot(vol.slice_dir, [0, 0, 1])) < 0:
                zfrac = 1 - zfrac
        z0, z1 = int(idx[:, 0].min()), int(idx[:, 0].max())
        out.append(Found({
            "mean_diameter_mm": round(mean_d, 1), "long_axis_mm": round(long_ax, 1),
            "short_axis_mm": round(short_ax, 1), "solid_diameter_mm": round(solid_d, 1),
            "volume_mm3": round(volume, 1), "mean_hu": round(float(hu[comp].mean()), 1), "type": kind,
            "solid_fraction": round(solid_frac, 2), "slices": [z0 + 1, z1 + 1], "key_slice": int(sl[0].start + k),
            "side": side, "lobe": _lobe(side, zfrac), "centre_lps_mm": [round(float(c), 1) for c in centre],
            "max_probability": round(peak, 3),
        }, sl, comp))
    out.sort(key=lambda f: -f.info["mean_diameter_mm"])
    return out


def lung_volume_ml(vol: CTVolume, lung: np.ndarray) -> float:
    dx, dy, dz = vol.spacing
    return round(float(lung.sum()) * dx * dy * dz / 1000.0, 1)
