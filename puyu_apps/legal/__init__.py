"""Contract review vertical: ``from puyu_apps.legal import ContractReviewPipeline``.

Importing this package loads no PDF, OCR or OpenCV library; they are imported when a document is processed.
"""

from .errors import CorruptDocumentError, DocumentError, EmptyDocumentError, EncryptedPDFError, UnsupportedFormatError
from .pipeline import ContractReviewPipeline
from .result import ContractReview

__all__ = ["ContractReview", "ContractReviewPipeline", "CorruptDocumentError", "DocumentError",
           "EmptyDocumentError", "EncryptedPDFError", "UnsupportedFormatError"]
