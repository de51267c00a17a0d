"""Read a CT series (folder, single multi-frame file, or list of files) with pydicom into Hounsfield units.

Slices are grouped by series, checked (modality, duplicate / missing positions, geometry) and sorted along the
slice normal. Identifiers (name, ID, birth date, accession) are kept apart in ``CTVolume.identifiers`` so that
nothing downstream writes them unless the caller asks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from .._optional import require
from .errors import (DicomError, EmptySeriesError, MixedSeriesError, NotDicomError, SliceGeometryError,
                     TruncatedDicomError, UnsupportedModalityError)

IDENTIFIER_TAGS = ("PatientName", "PatientID", "PatientBirthDate", "AccessionNumber", "OtherPatientIDs",
                   "InstitutionName", "ReferringPhysicianName")


@dataclass
class CTVolume:
    """A CT volume in Hounsfield units, DICOM voxel order ``hu[slice, row, column]``.

    ``spacing`` is (column, row, slice) in mm; ``row_dir``/``col_dir`` are the ImageOrientationPatient cosines
    (direction of increasing column / increasing row) and ``origin`` the LPS position of voxel (0, 0, 0).
    """

    hu: np.ndarray  # [Z, Y, X] float32
    spacing: tuple[float, float, float]
    origin: np.ndarray  # [3] LPS mm
    row_dir: np.ndarray  # [3] increasing column index
    col_dir: np.ndarray  # [3] increasing row index
    slice_dir: np.ndarray  # [3] increasing slice index
    series_uid: str = ""
    modality: str = "CT"
    files: list[str] = field(default_factory=list)
    identifiers: dict[str, str] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.hu.shape)  # type: ignore[return-value]

    def affine_lps(self) -> np.ndarray:
        """4x4 map from voxel (column i, row j, slice k) to patient LPS mm."""
        a = np.eye(4)
        a[:3, 0] = self.row_dir * self.spacing[0]
        a[:3, 1] = self.col_dir * self.spacing[1]
        a[:3, 2] = self.slice_dir * self.spacing[2]
        a[:3, 3] = self.origin
        return a

    def affine_ras(self) -> np.ndarray:
        return lps_to_ras(self.affine_lps())

    def xyz_array(self) -> np.ndarray:
        """The voxels as [X(column), Y(row), Z(slice)], the order of :meth:`affine_lps`."""
        return np.ascontiguousarray(self.hu.transpose(2, 1, 0))


def lps_to_ras(affine: np.ndarray) -> np.ndarray:
    """LPS <-> RAS is a flip of the first two world axes (its own inverse)."""
    flip = np.diag([-1.0, -1.0, 1.0, 1.0])
    return flip @ np.asarray(affine, dtype=float)


ras_to_lps = lps_to_ras


def _gather(inputs: Any) -> list[Path]:
    if isinstance(inputs, (str, Path)):
        p = Path(inputs)
        if not p.exists():
            raise EmptySeriesError(f"{p}: no such file or folder; pass a DICOM series folder, a DICOM file or a "
                                   f"list of DICOM files", p)
        if p.is_dir():
            files = sorted(f for f in p.rglob("*") if f.is_file() and not f.name.startswith(".")
                           and f.name.upper() != "DICOMDIR")
            if not files:
                raise EmptySeriesError(f"{p}: the folder holds no files; pass a folder of DICOM slices", p)
            return files
        return [p]
    if isinstance(inputs, Iterable):
        files = [Path(x) for x in inputs]
        if not files:
            raise EmptySeriesError("the list of DICOM files is empty; pass at least one file")
        for f in files:
            if not f.is_file():
                raise EmptySeriesError(f"{f}: no such file", f)
        return files
    raise TypeError(f"medical input must be a folder, a DICOM file or a list of files, got {type(inputs).__name__}")


def _read(path: Path) -> Any:
    pydicom = require("pydicom", "medical")
    from pydicom.errors import InvalidDicomError

    try:
        ds = pydicom.dcmread(str(path))
    except InvalidDicomError as exc:
        raise NotDicomError(f"{path}: not a DICOM file ({exc}); remove it from the folder or pass only DICOM "
                            f"files", path) from exc
    except (EOFError, OSError, ValueError, TypeError, KeyError) as exc:
        raise TruncatedDicomError(f"{path}: the DICOM file is truncated or corrupt ({exc}); re-export or copy it "
                                  f"again", path) from exc
    if "PixelData" not in ds:
        raise NotDicomError(f"{path}: DICOM file without image pixels (e.g. a report or DICOMDIR); pass image "
                            f"slices only", path)
    return ds


def _pixels(ds: Any, path: Path) -> np.ndarray:
    expected = int(ds.Rows) * int(ds.Columns) * int(getattr(ds, "NumberOfFrames", 1) or 1) * (
        int(ds.BitsAllocated) // 8) * int(getattr(ds, "SamplesPerPixel", 1))
    ts = ds.file_meta.TransferSyntaxUID if "TransferSyntaxUID" in getattr(ds, "file_meta", {}) else None
    compressed = bool(ts is not None and ts.is_compressed)
    if not compressed and len(ds.PixelData) < expected:
        raise TruncatedDicomError(f"{path}: pixel data has {len(ds.PixelData)} bytes, {expected} expected: the "
                                  f"file is truncated; re-export or copy it again", path)
    try:
        arr = ds.pixel_array
    except Exception as exc:  # decoder errors come in many types
        raise DicomError(f"{path}: cannot decode the pixel data (transfer syntax {ts}): {exc}. For JPEG / JPEG "
                         f"2000 install pylibjpeg and pylibjpeg-openjpeg (pip install 'puyu_apps[medical]')",
                         path) from exc
    return np.asarray(arr)


def _rescale(ds: Any, frame_groups: Any = None) -> tuple[float, float]:
    src = ds
    if frame_groups is not None and "PixelValueTransformationSequence" in frame_groups:
        src = frame_groups.PixelValueTransformationSequence[0]
    return float(getattr(src, "RescaleSlope", 1.0) or 1.0), float(getattr(src, "RescaleIntercept", 0.0) or 0.0)


def _identifiers(ds: Any) -> dict[str, str]:
    return {t: str(ds.get(t, "")) for t in IDENTIFIER_TAGS if str(ds.get(t, "")).strip()}


def _meta(ds: Any) -> dict[str, Any]:
    keep = ("Manufacturer", "StudyDescription", "SeriesDescription", "KVP", "SliceThickness", "ConvolutionKernel",
            "PatientSex", "PatientAge", "BodyPartExamined")
    return {k: str(ds.get(k)) for k in keep if ds.get(k) not in (None, "")}


def _orientation(ds: Any, groups: Any = None) -> tuple[np.ndarray, np.ndarray]:
    iop = None
    if groups is not None and "PlaneOrientationSequence" in groups:
        iop = groups.PlaneOrientationSequence[0].ImageOrientationPatient
    iop = iop if iop is not None else ds.get("ImageOrientationPatient")
    if iop is None:
        return np.array([1.0, 0, 0]), np.array([0, 1.0, 0])
    v = np.array([float(x) for x in iop])
    return v[:3], v[3:]


def _pixel_spacing(ds: Any, groups: Any = None) -> tuple[float, float, float | None]:
    src = ds
    if groups is not None and "PixelMeasuresSequence" in groups:
        src = groups.PixelMeasuresSequence[0]
    ps = src.get("PixelSpacing") or [1.0, 1.0]
    thick = src.get("SliceThickness") or ds.get("SliceThickness")
    # PixelSpacing is (row spacing, column spacing)
    return float(ps[1]), float(ps[0]), float(thick) if thick else None


def _check_modality(ds: Any, path: Path) -> None:
    modality = str(ds.get("Modality", "")).upper()
    if modality != "CT":
        raise UnsupportedModalityError(f"{path}: modality is {modality or 'missing'}, not CT; the nodule model and "
                                       f"Hounsfield units need a CT series", path)


def _multiframe(ds: Any, path: Path) -> CTVolume:
    frames = _pixels(ds, path).astype(np.float32)
    if frames.ndim == 2:
        frames = frames[None]
    shared = ds.SharedFunctionalGroupsSequence[0] if "SharedFunctionalGroupsSequence" in ds else None
    per = list(ds.PerFrameFunctionalGroupsSequence) if "PerFrameFunctionalGroupsSequence" in ds else []
    row_dir, col_dir = _orientation(ds, shared)
    dx, dy, thick = _pixel_spacing(ds, shared)
    normal = np.cross(row_dir, col_dir)
    positions, slopes = [], []
    for i in range(frames.shape[0]):
        g = per[i] if i < len(per) else None
        if g is not None and "PlanePositionSequence" in g:
            positions.append(np.array([float(x) for x in g.PlanePositionSequence[0].ImagePositionPatient]))
        else:
            base = np.array([float(x) for x in ds.get("ImagePositionPatient", [0, 0, 0])])
            positions.append(base + normal * i * (thick or 1.0))
        slopes.append(_rescale(ds, g if g is not None and "PixelValueTransformationSequence" in g else shared))
    order, spacing_z = _sort_positions(positions, normal, [f"{path} frame {i + 1}" for i in range(len(positions))])
    hu = np.stack([frames[i] * slopes[i][0] + slopes[i][1] for i in order])
    slice_dir = normal if len(order) < 2 else _unit(positions[order[-1]] - positions[order[0]])
    return CTVolume(hu=hu, spacing=(dx, dy, spacing_z or thick or 1.0), origin=positions[order[0]],
                    row_dir=row_dir, col_dir=col_dir, slice_dir=slice_dir, series_uid=str(ds.get("SeriesInstanceUID", "")),
                    files=[str(path)], identifiers=_identifiers(ds), meta=_meta(ds))


def _unit(v: np.ndarray) -> np.ndarray:
    n = float(np.linalg.norm(v))
    return v / n if n > 0 else v


def _sort_positions(positions: Sequence[np.ndarray], normal: np.ndarray,
                    names: Sequence[str]) -> tuple[list[int], float | None]:
    """Order slices along the normal; duplicate or missing positions raise :class:`SliceGeometryError`."""
    d = np.array([float(np.dot(p, normal)) for p in positions])
    order = [int(i) for i in np.argsort(d, kind="stable")]
    if len(order) < 2:
        return order, None
    steps = np.diff(d[order])
    for k, s in enumerate(steps):
        if abs(s) < 1e-3:
            a, b = names[order[k]], names[order[k + 1]]
            raise SliceGeometryError(f"{b}: duplicate slice position {d[order[k]]:.2f} mm (same as {a}); remove "
                                     f"the duplicate or pass one series only", b)
    step = float(np.median(steps))
    for k, s in enumerate(steps):
        if s > 1.5 * step:
            a, b = names[order[k]], names[order[k + 1]]
            raise SliceGeometryError(f"{b}: missing slice(s): gap of {s:.2f} mm after {a} where the series steps "
                                     f"{step:.2f} mm; export the complete series", b)
    if float(steps.max() - steps.min()) > 0.1 * step + 0.01:
        raise SliceGeometryError(f"{names[order[0]]}: uneven slice spacing ({steps.min():.2f}-{steps.max():.2f} "
                                 f"mm); resample the series or export it with constant spacing", names[order[0]])
    return order, step


def load_ct(inputs: Any, series_uid: str | None = None) -> CTVolume:
    """Load a CT series. ``series_uid`` selects one series from a folder that holds several."""
    files = _gather(inputs)
    datasets = [(f, _read(f)) for f in files]
    if series_uid:
        datasets = [(f, ds) for f, ds in datasets if str(ds.get("SeriesInstanceUID", "")) == series_uid]
        if not datasets:
            raise EmptySeriesError(f"{files[0].parent}: no file of series {series_uid}", files[0].parent)
    series: dict[str, list[Path]] = {}
    for f, ds in datasets:
        series.setdefault(str(ds.get("SeriesInstanceUID", "")), []).append(f)
    if len(series) > 1:
        parts = "; ".join(f"{uid or '(no UID)'}: {len(fs)} file(s), e.g. {fs[0]}" for uid, fs in series.items())
        raise MixedSeriesError(f"the input mixes {len(series)} series ({parts}); pass one series folder or choose "
                               f"one with series_uid=...", next(iter(series.values()))[0])
    for f, ds in datasets:
        _check_modality(ds, f)
    if len(datasets) == 1 and int(getattr(datasets[0][1], "NumberOfFrames", 1) or 1) > 1:
        return _multiframe(datasets[0][1], datasets[0][0])
    first_path, first = datasets[0]
    shape = (int(first.Rows), int(first.Columns))
    row_dir, col_dir = _orientation(first)
    for f, ds in datasets[1:]:
        if (int(ds.Rows), int(ds.Columns)) != shape:
            raise MixedSeriesError(f"{f}: image size {ds.Rows}x{ds.Columns} differs from {shape[0]}x{shape[1]} of "
                                   f"{first_path}; pass slices of one series", f)
        r, c = _orientation(ds)
        if not (np.allclose(r, row_dir, atol=1e-3) and np.allclose(c, col_dir, atol=1e-3)):
            raise SliceGeometryError(f"{f}: slice orientation differs from {first_path}; the slices are not "
                                     f"parallel (a localizer?) - remove it", f)
    normal = np.cross(row_dir, col_dir)
    positions = [np.array([float(x) for x in ds.get("ImagePositionPatient", [0, 0, i])])
                 for i, (_, ds) in enumerate(datasets)]
    order, step = _sort_positions(positions, normal, [str(f) for f, _ in datasets])
    slices = []
    for i in order:
        f, ds = datasets[i]
        px = _pixels(ds, f).astype(np.float32)
        if px.ndim != 2:
            raise DicomError(f"{f}: expected a grayscale slice, got pixel array of shape {px.shape}", f)
        slope, intercept = _rescale(ds)
        slices.append(px * slope + intercept)
    dx, dy, thick = _pixel_spacing(first)
    slice_dir = normal if len(order) < 2 else _unit(positions[order[-1]] - positions[order[0]])
    vol = CTVolume(hu=np.stack(slices), spacing=(dx, dy, step or thick or 1.0), origin=positions[order[0]],
                   row_dir=row_dir, col_dir=col_dir, slice_dir=slice_dir,
                   series_uid=str(first.get("SeriesInstanceUID", "")), files=[str(datasets[i][0]) for i in order],
                   identifiers=_identifiers(first), meta=_meta(first))
    return vol
