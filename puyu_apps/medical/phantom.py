"""Synthetic chest CT phantoms (body, chest wall with ribs, two lungs, vessels, nodules, noise) written as real
DICOM series with pydicom. Used for the sample series, the segmenter's training recipe and the held-out set.

Geometry is in mm around the image centre; the array order is DICOM's ``[slice, row, column]`` with the standard
axial orientation, so column index 0 is the patient's right (LPS +x is the patient's left).
"""

from __future__ import annotations

import datetime as _dt
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .._optional import require

LUNG_HU, SOFT_HU, FAT_HU, BONE_HU, AIR_HU, GGN_HU = -850.0, 40.0, -90.0, 700.0, -1000.0, -620.0
NODULE_TYPES = ("solid", "part-solid", "ground-glass")


@dataclass
class NoduleSpec:
    """One nodule: centre offset (mm) from the centre of its lung, diameter and, for part-solid, its core."""

    diameter_mm: float
    kind: str = "solid"
    side: str = "right"  # patient side
    offset_mm: tuple[float, float, float] = (0.0, 0.0, 0.0)  # (x toward patient left, y posterior, z superior)
    solid_mm: float = 0.0  # diameter of the solid core of a part-solid nodule

    def __post_init__(self) -> None:
        if not 2.0 <= self.diameter_mm <= 40.0:
            raise ValueError(f"diameter_mm must be within 2-40 mm, got {self.diameter_mm}")
        if self.kind not in NODULE_TYPES:
            raise ValueError(f"kind must be one of {NODULE_TYPES}, got {self.kind!r}")
        if self.side not in ("right", "left"):
            raise ValueError(f"side must be 'right' or 'left', got {self.side!r}")
        if self.kind == "part-solid" and not 0 < self.solid_mm < self.diameter_mm:
            raise ValueError(f"solid_mm must be within (0, diameter_mm) for a part-solid nodule, got {self.solid_mm}")


@dataclass
class Phantom:
    hu: np.ndarray  # [Z, Y, X] float32
    label: np.ndarray  # [Z, Y, X] uint8: 1 nodule
    lung: np.ndarray  # [Z, Y, X] bool
    spacing: tuple[float, float, float]  # (column, row, slice) mm
    origin: tuple[float, float, float]  # LPS of voxel (0,0,0)
    nodules: list[dict[str, Any]] = field(default_factory=list)  # specs + LPS centres


SAMPLE_NODULES = (
    NoduleSpec(9.0, "solid", "right", (-6.0, -8.0, 12.0)),
    NoduleSpec(16.0, "part-solid", "left", (4.0, 6.0, -10.0), solid_mm=7.0),
    NoduleSpec(12.0, "ground-glass", "right", (8.0, 14.0, -22.0)),
)


def _grid(shape: Sequence[int], spacing: Sequence[float]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    z, y, x = shape
    dx, dy, dz = spacing
    xs = (np.arange(x) - (x - 1) / 2) * dx
    ys = (np.arange(y) - (y - 1) / 2) * dy
    zs = (np.arange(z) - (z - 1) / 2) * dz
    return zs[:, None, None], ys[None, :, None], xs[None, None, :]


def make_phantom(shape: Sequence[int] = (60, 256, 256), spacing: Sequence[float] = (1.4, 1.4, 2.5),
                 nodules: Sequence[NoduleSpec] = SAMPLE_NODULES, seed: int = 0, noise_hu: float = 18.0,
                 n_vessels: int = 14) -> Phantom:
    """Build the phantom volume and its nodule label. Deterministic for a given ``seed``."""
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    z, y, x = _grid(shape, spacing)
    fov_x, fov_y = shape[2] * spacing[0], shape[1] * spacing[1]
    zlen = shape[0] * spacing[2]
    hu = np.full(shape, AIR_HU, np.float32)
    bx, by = 0.44 * fov_x, 0.32 * fov_y
    body = (x / bx) ** 2 + (y / by) ** 2 <= 1.0
    body = np.broadcast_to(body, shape)
    hu[body] = FAT_HU
    inner = np.broadcast_to((x / (bx - 6)) ** 2 + (y / (by - 6)) ** 2 <= 1.0, shape)
    hu[inner] = SOFT_HU
    # ribs: small bright ellipses on the chest wall, one ring of them per 20 mm of z
    ang = np.linspace(0, 2 * np.pi, 18, endpoint=False)
    for a in ang:
        cx, cy = (bx - 12) * np.cos(a), (by - 12) * np.sin(a)
        rib = ((x - cx) / 5.0) ** 2 + ((y - cy) / 4.0) ** 2 + (((z + zlen) % 20.0 - 10.0) / 6.0) ** 2 <= 1.0
        hu[np.broadcast_to(rib, shape)] = BONE_HU
    # lungs: ellipsoids tapering toward the apex (top slices)
    taper = np.clip(1.0 - np.clip(z / (0.9 * zlen), 0, None) ** 2 * 0.6, 0.3, 1.0)
    lx, ly = 0.17 * fov_x * taper, 0.23 * fov_y * taper
    lung = np.zeros(shape, bool)
    centres = {"right": -0.2 * fov_x, "left": 0.2 * fov_x}
    for cx in centres.values():
        lung |= np.broadcast_to(((x - cx) / lx) ** 2 + ((y + 0.02 * fov_y) / ly) ** 2 <= 1.0, shape)
    hu[lung] = LUNG_HU + rng.normal(0, 8, size=int(lung.sum())).astype(np.float32)  # parenchymal texture
    # vessels: tubes that wander through the lungs, radius 0.8-2.5 mm
    zz, yy, xx = np.meshgrid(z.ravel(), y.ravel(), x.ravel(), indexing="ij")
    for _ in range(n_vessels):
        side = rng.choice(list(centres))
        p = np.array([centres[side] + rng.uniform(-0.6, 0.6) * 0.17 * fov_x,
                      rng.uniform(-0.5, 0.5) * 0.23 * fov_y, -zlen / 2])
        d = np.array([rng.uniform(-0.3, 0.3), rng.uniform(-0.3, 0.3), 1.0])
        d /= np.linalg.norm(d)
        r = rng.uniform(0.8, 2.5)
        v = np.stack([xx - p[0], yy - p[1], zz - p[2]], -1) @ d
        dist2 = (xx - p[0] - v * d[0]) ** 2 + (yy - p[1] - v * d[1]) ** 2 + (zz - p[2] - v * d[2]) ** 2
        tube = (dist2 <= r * r) & lung
        hu[tube] = SOFT_HU
    del zz, yy, xx
    label = np.zeros(shape, np.uint8)
    truth = []
    dx, dy, dz = spacing
    origin = (-(shape[2] - 1) / 2 * dx, -(shape[1] - 1) / 2 * dy, -(shape[0] - 1) / 2 * dz)
    for k, n in enumerate(nodules):
        c = np.array([centres[n.side] + n.offset_mm[0], n.offset_mm[1], n.offset_mm[2]])
        # mild anisotropy (axial ellipse 0.93-1.0), kept so that the axial mean diameter equals diameter_mm
        e = rng.uniform(0.93, 1.0)
        ax, ay = n.diameter_mm / 2 * 2 / (1 + e), n.diameter_mm / 2 * 2 * e / (1 + e)
        az = n.diameter_mm / 2
        r2 = ((x - c[0]) / ax) ** 2 + ((y - c[1]) / ay) ** 2 + ((z - c[2]) / az) ** 2
        blob = r2 <= 1.0
        level = {"solid": SOFT_HU + rng.uniform(-20, 20), "part-solid": GGN_HU + rng.uniform(-40, 40),
                 "ground-glass": GGN_HU + rng.uniform(-40, 60)}[n.kind]
        hu[blob] = level
        if n.kind == "part-solid":
            core = r2 * (n.diameter_mm / n.solid_mm) ** 2 <= 1.0
            hu[core] = SOFT_HU + rng.uniform(-20, 20)
        label[blob] = 1
        truth.append({**asdict(n), "index": k, "centre_lps": [float(c[0]), float(c[1]), float(c[2])],
                      "hu_level": float(level)})
    hu = ndimage.gaussian_filter(hu, sigma=(0.4, 0.6, 0.6)).astype(np.float32)
    hu += rng.normal(0, noise_hu, size=shape).astype(np.float32)
    return Phantom(hu=hu, label=label, lung=lung, spacing=tuple(spacing), origin=origin, nodules=truth)


def random_nodules(rng: np.random.Generator, n: int, min_mm: float = 4.0, max_mm: float = 30.0,
                   zlen: float = 100.0) -> list[NoduleSpec]:
    """Nodules of 4-30 mm of all three types, placed inside the lungs (used for training and evaluation)."""
    out: list[NoduleSpec] = []
    tries = 0
    while len(out) < n and tries < 50 * n:
        tries += 1
        d = float(np.exp(rng.uniform(np.log(min_mm), np.log(max_mm))))
        kind = str(rng.choice(NODULE_TYPES, p=[0.4, 0.3, 0.3]))
        if kind != "solid" and d < 6:
            d = 6.0 + d
        solid = float(rng.uniform(0.3, 0.6) * d) if kind == "part-solid" else 0.0
        lim = max(1.0, 0.35 * zlen - d / 2)
        off = (float(rng.uniform(-8, 8)), float(rng.uniform(-15, 15)), float(rng.uniform(-lim, lim)))
        side = str(rng.choice(["right", "left"]))
        # separate nodules: one that touches another would be one lesion, not two
        if any(o.side == side and np.linalg.norm(np.subtract(o.offset_mm, off)) < (o.diameter_mm + d) / 2 + 6
               for o in out):
            continue
        out.append(NoduleSpec(round(d, 1), kind, side, off, round(solid, 1)))
    return out


def _uid() -> str:
    pydicom = require("pydicom", "medical")
    return str(pydicom.uid.generate_uid())


def write_series(ph_or_hu: Any, out_dir: str | Path, *, spacing: Sequence[float] | None = None,
                 origin: Sequence[float] | None = None, patient_name: str = "PHANTOM^SYNTHETIC",
                 patient_id: str = "SYN-0001", birth_date: str = "19600101", accession: str = "ACC0001",
                 modality: str = "CT", multi_frame: bool = False, series_uid: str | None = None) -> list[Path]:
    """Write a volume as a DICOM series (one file per slice, or one enhanced multi-frame file).

    The folder is written under a temporary name and renamed at the end: a failure leaves nothing half-written.
    """
    pydicom = require("pydicom", "medical")
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.sequence import Sequence as DSeq
    from pydicom.uid import CTImageStorage, EnhancedCTImageStorage, ExplicitVRLittleEndian, MRImageStorage

    if isinstance(ph_or_hu, Phantom):
        hu, spacing, origin = ph_or_hu.hu, ph_or_hu.spacing, ph_or_hu.origin
    else:
        hu = np.asarray(ph_or_hu)
        spacing = spacing or (1.0, 1.0, 1.0)
        origin = origin or (0.0, 0.0, 0.0)
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".partial-", dir=out_dir.parent))
    stored = np.clip(np.round(hu + 1024.0), 0, 4095).astype(np.uint16)
    study, series = _uid(), series_uid or _uid()
    frame_of_ref = _uid()
    now = _dt.datetime(2024, 1, 1, 9, 0, 0)
    sop_class = {"CT": EnhancedCTImageStorage if multi_frame else CTImageStorage, "MR": MRImageStorage}.get(
        modality, CTImageStorage)

    def base(instance: int) -> Dataset:
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = sop_class
        meta.MediaStorageSOPInstanceUID = _uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = Dataset()
        ds.file_meta = meta
        ds.SOPClassUID, ds.SOPInstanceUID = sop_class, meta.MediaStorageSOPInstanceUID
        ds.PatientName, ds.PatientID, ds.PatientBirthDate = patient_name, patient_id, birth_date
        ds.PatientSex, ds.AccessionNumber = "O", accession
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study, series, frame_of_ref
        ds.StudyDate = ds.SeriesDate = now.strftime("%Y%m%d")
        ds.StudyTime = now.strftime("%H%M%S")
        ds.Modality, ds.Manufacturer = modality, "puyu_apps synthetic phantom"
        ds.StudyDescription, ds.SeriesDescription = "CHEST CT (synthetic)", "phantom"
        ds.SeriesNumber, ds.InstanceNumber = 1, instance
        ds.Rows, ds.Columns = hu.shape[1], hu.shape[2]
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
        ds.KVP, ds.SliceThickness = "120", f"{spacing[2]:.3f}"
        return ds

    try:
        paths: list[Path] = []
        iop = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
        if multi_frame:
            ds = base(1)
            ds.NumberOfFrames = hu.shape[0]
            shared = Dataset()
            pm = Dataset()
            pm.PixelSpacing, pm.SliceThickness = [f"{spacing[1]:.4f}", f"{spacing[0]:.4f}"], f"{spacing[2]:.3f}"
            po = Dataset()
            po.ImageOrientationPatient = iop
            pv = Dataset()
            pv.RescaleSlope, pv.RescaleIntercept, pv.RescaleType = "1", "-1024", "HU"
            shared.PixelMeasuresSequence, shared.PlaneOrientationSequence = DSeq([pm]), DSeq([po])
            shared.PixelValueTransformationSequence = DSeq([pv])
            ds.SharedFunctionalGroupsSequence = DSeq([shared])
            per = []
            for k in range(hu.shape[0]):
                g, pp = Dataset(), Dataset()
                pp.ImagePositionPatient = [f"{origin[0]:.4f}", f"{origin[1]:.4f}", f"{origin[2] + k * spacing[2]:.4f}"]
                g.PlanePositionSequence = DSeq([pp])
                per.append(g)
            ds.PerFrameFunctionalGroupsSequence = DSeq(per)
            ds.PixelData = stored.tobytes()
            p = tmp / "multiframe.dcm"
            ds.save_as(p, enforce_file_format=True)
            paths.append(p)
        else:
            for k in range(hu.shape[0]):
                ds = base(k + 1)
                ds.ImageOrientationPatient = iop
                ds.ImagePositionPatient = [f"{origin[0]:.4f}", f"{origin[1]:.4f}", f"{origin[2] + k * spacing[2]:.4f}"]
                ds.SliceLocation = f"{origin[2] + k * spacing[2]:.4f}"
                ds.PixelSpacing = [f"{spacing[1]:.4f}", f"{spacing[0]:.4f}"]
                ds.RescaleSlope, ds.RescaleIntercept, ds.RescaleType = "1", "-1024", "HU"
                ds.PixelData = stored[k].tobytes()
                p = tmp / f"slice_{k:04d}.dcm"
                ds.save_as(p, enforce_file_format=True)
                paths.append(p)
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return [out_dir / p.name for p in paths]


def make_sample(out_dir: str | Path, shape: Sequence[int] = (60, 256, 256), spacing: Sequence[float] = (1.4, 1.4, 2.5),
                seed: int = 0, nodules: Sequence[NoduleSpec] = SAMPLE_NODULES, **kw: Any) -> tuple[list[Path], Phantom]:
    """The sample study: a phantom with three nodules (solid 9 mm, part-solid 16/7 mm, ground-glass 12 mm)."""
    ph = make_phantom(shape, spacing, nodules, seed=seed)
    return write_series(ph, out_dir, **kw), ph
