"""Medical vertical: DICOM chest CT -> MONAI UNet nodules -> measurements -> Lung-RADS v2022 -> LLM report.

``from puyu_apps.medical import MedicalReportPipeline``. Importing this package loads no pydicom, MONAI or
image library: they are imported when the pipeline first runs.
"""

from .errors import (DicomError, EmptySeriesError, MixedSeriesError, NotDicomError, SliceGeometryError,
                     TruncatedDicomError, UnsupportedModalityError)
from .pipeline import MedicalReportPipeline
from .result import KeyImage, MedicalReportResult, NoduleFinding

__all__ = ["DicomError", "EmptySeriesError", "KeyImage", "MedicalReportPipeline", "MedicalReportResult",
           "MixedSeriesError", "NoduleFinding", "NotDicomError", "SliceGeometryError", "TruncatedDicomError",
           "UnsupportedModalityError"]
