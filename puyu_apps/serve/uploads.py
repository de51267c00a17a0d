"""Uploads bounded in size and type, and zip archives unpacked without path traversal, links or zip bombs."""

from __future__ import annotations

import re
import stat
import zipfile
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from ..errors import InvalidInputError

DEFAULT_SUFFIXES = (".zip", ".dcm", ".pdf", ".png", ".jpg", ".jpeg", ".tif", ".tiff", ".wav", ".flac", ".ogg",
                    ".mp3", ".m4a", ".txt", ".json", ".md", ".nii", ".gz")
# leading bytes that a file of that suffix must start with (checked when listed)
_MAGIC = {".zip": (b"PK\x03\x04", b"PK\x05\x06"), ".pdf": (b"%PDF",), ".wav": (b"RIFF",), ".flac": (b"fLaC",),
          ".ogg": (b"OggS",), ".png": (b"\x89PNG",), ".jpg": (b"\xff\xd8",), ".jpeg": (b"\xff\xd8",),
          ".gz": (b"\x1f\x8b",)}


class UploadError(InvalidInputError):
    """An upload was refused; ``status`` is the HTTP status to answer (400, 413 or 415)."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


def safe_name(filename: str | None) -> str:
    base = PurePosixPath((filename or "upload").replace("\\", "/")).name
    base = re.sub(r"[^A-Za-z0-9._-]", "_", base).lstrip(".")
    return base[:120] or "upload"


def save_upload(src: BinaryIO, filename: str | None, dest_dir: Path, *, max_bytes: int,
                suffixes: tuple[str, ...] = DEFAULT_SUFFIXES) -> Path:
    """Copy an uploaded stream to ``dest_dir`` (bounded) after checking its suffix and leading bytes."""
    name = safe_name(filename)
    suffix = Path(name).suffix.lower()
    if suffix not in suffixes:
        raise UploadError(f"file {name!r}: type {suffix or '(none)'} is not accepted here; send one of "
                          f"{', '.join(suffixes)}", 415)
    dest_dir.mkdir(parents=True, exist_ok=True)
    out = dest_dir / name
    size = 0
    head = b""
    with open(out, "wb") as fh:
        while chunk := src.read(1 << 20):
            size += len(chunk)
            if size > max_bytes:
                fh.close()
                out.unlink(missing_ok=True)
                raise UploadError(f"file {name!r} is larger than the {max_bytes // (1 << 20)} MB limit; split it "
                                  f"or ask the operator to raise max_upload_mb", 413)
            if len(head) < 16:
                head += chunk[:16]
            fh.write(chunk)
    if size == 0:
        out.unlink(missing_ok=True)
        raise UploadError(f"file {name!r} is empty; send the file's contents")
    if suffix in _MAGIC and not head.startswith(_MAGIC[suffix]):
        out.unlink(missing_ok=True)
        raise UploadError(f"file {name!r} does not look like a {suffix} file (its first bytes do not match); "
                          f"check that the right file was sent", 415)
    return out


def safe_extract(archive: Path, dest: Path, *, max_total_bytes: int, max_members: int) -> Path:
    """Unpack ``archive`` into ``dest``; refuse absolute paths, ``..``, links, and too many or too large members."""
    try:
        zf = zipfile.ZipFile(archive)
    except zipfile.BadZipFile as exc:
        raise UploadError(f"file {archive.name!r} is not a valid zip archive ({exc}); re-create the archive") from exc
    dest = dest.resolve()
    dest.mkdir(parents=True, exist_ok=True)
    with zf:
        members = zf.infolist()
        if len(members) > max_members:
            raise UploadError(f"archive {archive.name!r} has {len(members)} entries, more than the {max_members} "
                              f"allowed; split it", 413)
        total = sum(m.file_size for m in members)
        if total > max_total_bytes:
            raise UploadError(f"archive {archive.name!r} unpacks to {total} bytes, more than the "
                              f"{max_total_bytes} allowed", 413)
        for m in members:
            name = m.filename.replace("\\", "/")
            parts = PurePosixPath(name).parts
            if name.startswith("/") or re.match(r"^[A-Za-z]:", name) or ".." in parts or "\x00" in name:
                raise UploadError(f"archive {archive.name!r}: entry {m.filename!r} points outside the archive "
                                  f"folder; refusing it (path traversal)")
            if stat.S_ISLNK(m.external_attr >> 16):
                raise UploadError(f"archive {archive.name!r}: entry {m.filename!r} is a symbolic link; links are "
                                  f"not accepted")
            target = (dest / name).resolve()
            if dest != target and dest not in target.parents:
                raise UploadError(f"archive {archive.name!r}: entry {m.filename!r} resolves outside the archive "
                                  f"folder; refusing it")
            if m.is_dir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            written = 0
            with zf.open(m) as src, open(target, "wb") as fh:
                while chunk := src.read(1 << 20):
                    written += len(chunk)
                    if written > m.file_size or written > max_total_bytes:
                        raise UploadError(f"archive {archive.name!r}: entry {m.filename!r} is larger than its "
                                          f"header says (a zip bomb?); refusing it", 413)
                    fh.write(chunk)
    return dest
