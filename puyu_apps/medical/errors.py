"""Typed errors of the medical vertical. Every message names the file (or field) and says what to do."""

from __future__ import annotations

from ..errors import InvalidInputError


class DicomError(InvalidInputError):
    """The DICOM input cannot be used. ``path`` is the offending file or folder."""

    def __init__(self, message: str, path: object = None):
        self.path = str(path) if path is not None else None
        super().__init__(message)


class NotDicomError(DicomError):
    """A file is not DICOM (no DICM preamble / unreadable dataset)."""


class TruncatedDicomError(DicomError):
    """A DICOM file ends before its pixel data does."""


class EmptySeriesError(DicomError):
    """The folder or list holds no DICOM file."""


class UnsupportedModalityError(DicomError):
    """The series is not CT (MR, PT, ...): Hounsfield units and the nodule model need CT."""


class MixedSeriesError(DicomError):
    """The input mixes several series (SeriesInstanceUID) or incompatible geometry."""


class SliceGeometryError(DicomError):
    """Duplicate or missing slice positions, or slices that are not parallel."""
