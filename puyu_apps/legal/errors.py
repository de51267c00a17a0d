"""Typed errors of the contract-review vertical; each names the file and says what to do."""

from __future__ import annotations

from ..errors import InvalidInputError


class DocumentError(InvalidInputError):
    """A contract file cannot be read."""

    def __init__(self, path: object, problem: str, hint: str) -> None:
        self.path, self.problem, self.hint = str(path), problem, hint
        super().__init__(f"{self.path}: {problem}; {hint}")


class UnsupportedFormatError(DocumentError):
    """Not a PDF nor a PNG/JPEG/TIFF image."""


class EncryptedPDFError(DocumentError):
    """The PDF is password-protected and no (or a wrong) password was given."""


class CorruptDocumentError(DocumentError):
    """The file is truncated or not what its name says."""


class EmptyDocumentError(DocumentError):
    """The document has no pages."""
