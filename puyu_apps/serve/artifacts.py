"""Files a finished job leaves beside its JSON result: what the vertical itself renders.

The JSON result carries what a program needs; a person also wants the pictures and the sound, which the typed
results keep out of their JSON (they are large). When a job finishes, :func:`write_artifacts` asks the result
for each rendering it offers, found by what the result can do:

- ``report.html``: ``result.to_html()`` (medical: with the key slices; legal; service)
- ``report.pdf``: ``result.to_pdf(path)`` (legal: the page images with clauses and signatures drawn)
- ``page-<n>.png``: ``result.page_images``, base64 PNG by page (legal)
- ``reply.wav``: ``result.save(path)`` when ``result.reply_audio`` is set (service: the spoken reply)

Text renderings are made from the result *after* PII masking (the same masked JSON the caller gets), so a
report never shows what the JSON hides; images and audio are copied as they are.

    GET /v1/jobs/{id}/artifacts          -> {"artifacts": [{"name", "url", "media_type", "bytes"}]}
    GET /v1/jobs/{id}/artifacts/{name}   -> the file
"""

from __future__ import annotations

import base64
import logging
import mimetypes
import re
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse

from .schemas import ErrorBody
from .state import AppState, authorize, error_response

log = logging.getLogger("puyu_apps.serve.jobs")
router = APIRouter()
FOLDER = "artifacts"  # under <data-dir>/jobs/<id>/
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
# a rendered report holds only inline styles and data: images; it may run no script and load nothing
_REPORT_CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; media-src data:"


def artifacts_dir(state: AppState, job_id: str) -> Path:
    return state.config.data_path / "jobs" / job_id / FOLDER


def _masked_view(result: Any, data: dict[str, Any]) -> Any:
    """The result rebuilt from its (masked) JSON, with the fields the JSON leaves out copied back."""
    cls = type(result)
    view = cls.model_validate(data)
    for name, field in cls.model_fields.items():
        if field.exclude:
            setattr(view, name, getattr(result, name))
    if getattr(result, "__pydantic_private__", None):
        view.__pydantic_private__ = dict(result.__pydantic_private__)
    return view


def write_artifacts(result: Any, data: dict[str, Any], out: Path) -> list[str]:
    """Write every rendering ``result`` offers into ``out``; returns the file names. ``data`` is the JSON the
    caller gets (masked when the vertical's policy says so). Each rendering that fails is logged and skipped:
    a job never fails because of its pictures."""
    out.mkdir(parents=True, exist_ok=True)
    written: list[str] = []
    try:
        view = _masked_view(result, data)
    except Exception as exc:  # a result that does not round-trip through its JSON: no text renderings
        log.warning("no report for a %s result: %s", type(result).__name__, exc)
        view = None

    def attempt(name: str, make: Any) -> None:
        tmp = out / f".partial-{name}"  # keeps the suffix: writers pick the format from it
        try:
            make(tmp)
            tmp.replace(out / name)
            written.append(name)
        except Exception as exc:
            tmp.unlink(missing_ok=True)
            log.warning("artifact %s of a %s result failed: %s: %s", name, type(result).__name__,
                        type(exc).__name__, exc)

    if view is not None and callable(getattr(view, "to_html", None)):
        attempt("report.html", lambda p: p.write_text(view.to_html(), encoding="utf-8"))
    if view is not None and callable(getattr(view, "to_pdf", None)):
        attempt("report.pdf", lambda p: view.to_pdf(p))
    pages = getattr(result, "page_images", None)
    if isinstance(pages, dict):
        for page, b64 in sorted(pages.items()):
            attempt(f"page-{page}.png", lambda p, b64=b64: p.write_bytes(base64.b64decode(b64)))
    if getattr(result, "reply_audio", None) is not None and callable(getattr(result, "save", None)):
        attempt("reply.wav", lambda p: result.save(p))
    return written


def _job(request: Request, job_id: str, key: Any) -> Any:
    from .routes_verticals import _own_job

    return _own_job(request, job_id, key)


@router.get("/v1/jobs/{job_id}/artifacts", tags=["jobs"], responses={404: {"model": ErrorBody}})
async def list_artifacts(request: Request, job_id: str, key: Any = Depends(authorize)) -> Any:
    """The files the job's vertical rendered (report, page images, spoken reply); empty until the job is done."""
    job = await run_in_threadpool(_job, request, job_id, key)
    if job is None:
        return error_response(404, f"no job {job_id!r}; submit one with POST /v1/jobs", code="job_not_found")
    folder = artifacts_dir(request.app.state.puyu, job_id)
    files = sorted(folder.iterdir()) if job.status == "done" and folder.is_dir() else []
    return {"id": job_id, "status": job.status, "artifacts": [
        {"name": f.name, "url": f"/v1/jobs/{job_id}/artifacts/{f.name}", "media_type": _media_type(f.name),
         "bytes": f.stat().st_size} for f in files if _NAME.match(f.name) and f.is_file()]}


@router.get("/v1/jobs/{job_id}/artifacts/{name}", tags=["jobs"], response_class=FileResponse,
            responses={404: {"model": ErrorBody}})
async def get_artifact(request: Request, job_id: str, name: str, key: Any = Depends(authorize)) -> Any:
    """One rendered file of a finished job."""
    job = await run_in_threadpool(_job, request, job_id, key)
    if job is None:
        return error_response(404, f"no job {job_id!r}; submit one with POST /v1/jobs", code="job_not_found")
    path = artifacts_dir(request.app.state.puyu, job_id) / name
    if not _NAME.match(name) or not path.is_file():
        return error_response(404, f"job {job_id!r} has no artifact {name!r}; list them with GET "
                                   f"/v1/jobs/{job_id}/artifacts", code="artifact_not_found")
    headers = {"Content-Security-Policy": _REPORT_CSP} if name.endswith(".html") else None
    return FileResponse(path, media_type=_media_type(name), headers=headers)


def _media_type(name: str) -> str:
    if name.endswith(".wav"):
        return "audio/wav"
    return mimetypes.guess_type(name)[0] or "application/octet-stream"
