"""De-identification: a DICOM helper (``puyu medical deidentify``) and the text scrubber applied to everything
the pipeline writes or logs unless the caller keeps identifiers."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Iterable

from .._optional import require

#: tags blanked or replaced by the DICOM helper (a subset of PS3.15 basic profile that covers direct identifiers)
DEID_TAGS = ("PatientName", "PatientID", "PatientBirthDate", "PatientBirthTime", "AccessionNumber",
             "OtherPatientIDs", "OtherPatientNames", "PatientAddress", "PatientTelephoneNumbers",
             "ReferringPhysicianName", "PerformingPhysicianName", "OperatorsName", "InstitutionName",
             "InstitutionAddress", "StationName", "RequestingPhysician", "PatientMotherBirthName",
             "MilitaryRank", "EthnicGroup", "AdditionalPatientHistory", "PatientComments")


def deidentify_dataset(ds: object, pseudonym: str = "ANONYMOUS") -> object:
    """Blank identifying tags in place (PatientName/ID get ``pseudonym``), drop private tags, mark the dataset."""
    for tag in DEID_TAGS:
        if tag in ds:  # type: ignore[operator]
            setattr(ds, tag, pseudonym if tag in ("PatientName", "PatientID") else "")
    ds.remove_private_tags()  # type: ignore[attr-defined]
    ds.PatientIdentityRemoved = "YES"  # type: ignore[attr-defined]
    ds.DeidentificationMethod = "puyu_apps basic profile (direct identifiers removed)"  # type: ignore[attr-defined]
    return ds


def deidentify_files(files: Iterable[str | Path], out_dir: str | Path, pseudonym: str = "ANONYMOUS") -> list[Path]:
    """Write de-identified copies of DICOM files into ``out_dir`` (same file names)."""
    pydicom = require("pydicom", "medical")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for f in files:
        f = Path(f)
        ds = pydicom.dcmread(str(f))
        deidentify_dataset(ds, pseudonym)
        target = out / f.name
        ds.save_as(target)
        written.append(target)
    return written


def scrub(text: str, identifiers: dict[str, str]) -> str:
    """Remove identifier values (and the parts of a ``FAMILY^GIVEN`` name) from free text."""
    values: set[str] = set()
    for v in identifiers.values():
        v = str(v).strip()
        if not v:
            continue
        values.add(v)
        values.update(p for p in re.split(r"[\^\s,]+", v) if len(p) >= 3)
    for v in sorted(values, key=len, reverse=True):
        text = re.sub(re.escape(v), "[REDACTED]", text, flags=re.I)
    return text
