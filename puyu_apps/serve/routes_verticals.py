"""One endpoint per registered vertical (text or an uploaded file in, the typed result out) and the job API."""

from __future__ import annotations

import hashlib
import json
import shutil
import time
import uuid
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from ..errors import InvalidInputError
from ..pipelines import get
from ..safety import mask_pii
from .cache import request_key
from .runtime import mask_strings
from .schemas import ErrorBody, JobInfo, JobResult, VerticalResponse
from .state import BUSY, AppState, authorize, error_response
from .uploads import safe_extract, save_upload

router = APIRouter()
ERRORS = {400: {"model": ErrorBody}, 401: {"model": ErrorBody}, 404: {"model": ErrorBody},
          413: {"model": ErrorBody}, 415: {"model": ErrorBody}, 429: {"model": ErrorBody}}


def _params(raw: str | None) -> dict[str, Any]:
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise InvalidInputError(f"params: not valid JSON ({exc.msg} at {exc.pos}); send a JSON object") from exc
    if not isinstance(value, dict):
        raise InvalidInputError("params: send a JSON object such as {\"max_new_tokens\": 64}")
    return value


async def _inputs(state: AppState, vertical: str, file: UploadFile | None, text: str | None,
                  dest: Path) -> tuple[Any, str]:
    """The pipeline's input (a saved file, an unpacked folder, or the text) and a digest of it for the cache."""
    cfg = state.config
    if file is not None and file.filename:
        suffixes = state.runtime.suffixes(vertical)
        path = await run_in_threadpool(save_upload, file.file, file.filename, dest, max_bytes=int(
            cfg.max_upload_mb * (1 << 20)), suffixes=suffixes)
        digest = await run_in_threadpool(lambda: hashlib.sha256(path.read_bytes()).hexdigest())
        if path.suffix.lower() == ".zip":
            folder = await run_in_threadpool(safe_extract, path, dest / "unpacked",
                                             max_total_bytes=int(cfg.max_unzipped_mb * (1 << 20)),
                                             max_members=cfg.max_zip_members)
            return str(folder), digest
        return str(path), digest
    if text is not None and text.strip():
        return text, hashlib.sha256(text.encode()).hexdigest()
    raise InvalidInputError("send either a file (multipart field 'file') or a non-empty 'text' field")


def _adapter_label(state: AppState, vertical: str) -> str:
    pipe = state.runtime._pipes.get(vertical)
    return (pipe[0]._adapter_name or "base") if pipe else "base"


def _finish(state: AppState, vertical: str, result: Any) -> VerticalResponse:
    filt = state.runtime.filter_for(vertical)
    verdict = filt.check_output(result.to_text())
    if not verdict.allowed:
        state.metrics.blocks.labels(vertical, verdict.tier, verdict.category).inc()
        return VerticalResponse(vertical=vertical, blocked=True, reason=verdict.reason, message=verdict.text)
    data = result.model_dump(mode="json")
    if filt.policy.enabled and filt.policy.mask_output_pii:
        data = mask_strings(data, lambda s: mask_pii(s, filt.policy.pii_kinds))
    return VerticalResponse(vertical=vertical, result=data)


async def run_vertical(request: Request, vertical: str, file: UploadFile | None, text: str | None,
                       params: str | None) -> Any:
    state: AppState = request.app.state.puyu
    t0 = time.perf_counter()
    get(vertical)  # 404 listing the available verticals
    kwargs = _params(params)
    dest = state.config.data_path / "uploads" / uuid.uuid4().hex
    try:
        inputs, digest = await _inputs(state, vertical, file, text, dest)
        if text and not file:
            verdict = state.runtime.filter_for(vertical).check_input(text)
            if not verdict.allowed:
                state.metrics.blocks.labels(vertical, verdict.tier, verdict.category).inc()
                state.metrics.observe("vertical", vertical, _adapter_label(state, vertical), 200, time.perf_counter() - t0)
                return VerticalResponse(vertical=vertical, blocked=True, reason=verdict.reason,
                                        message=verdict.text)
        ckey = request_key("vertical", vertical, digest, kwargs)
        cached = state.cache.get(ckey)
        state.metrics.cache.labels("hit" if cached else "miss").inc()
        if cached is not None:
            state.metrics.observe("vertical", vertical, _adapter_label(state, vertical), 200, time.perf_counter() - t0)
            return cached.model_copy(update={"cached": True})
        ticket = state.gate.try_admit()
        if ticket is None:
            state.metrics.rejections.labels("queue_full").inc()
            state.metrics.observe("vertical", vertical, _adapter_label(state, vertical), 503, None)
            body = VerticalResponse(vertical=vertical, degraded=True, message=BUSY["en"] + " / " + BUSY["zh"] +
                                    " For long work submit a job: POST /v1/jobs.")
            return JSONResponse(body.model_dump(), status_code=503, headers={"Retry-After": "2"})
        try:
            result = await run_in_threadpool(ticket.run, lambda: state.runtime.run_pipeline(vertical, inputs, kwargs))
        finally:
            ticket.close()
        response = _finish(state, vertical, result)
        state.metrics.observe("vertical", vertical, _adapter_label(state, vertical), 200, time.perf_counter() - t0)
        if not response.blocked:
            state.cache.put(ckey, response)
        return response
    finally:
        shutil.rmtree(dest, ignore_errors=True)


def add_vertical_route(app: Any, name: str) -> None:
    """A named endpoint for one vertical (so it appears in the OpenAPI schema under its own path)."""

    async def endpoint(request: Request, file: UploadFile | None = File(None), text: str | None = Form(None),
                       params: str | None = Form(None), _key: Any = Depends(authorize)) -> Any:
        return await run_vertical(request, name, file, text, params)

    app.add_api_route(f"/v1/verticals/{name}", endpoint, methods=["POST"], response_model=VerticalResponse,
                      responses=ERRORS, tags=["verticals"], name=f"vertical_{name}",
                      summary=f"Run the {name!r} vertical on text or an uploaded file")


@router.post("/v1/verticals/{vertical}", response_model=VerticalResponse, responses=ERRORS, tags=["verticals"])
async def vertical_endpoint(request: Request, vertical: str, file: UploadFile | None = File(None),
                            text: str | None = Form(None), params: str | None = Form(None),
                            _key: Any = Depends(authorize)) -> Any:
    """Any registered vertical (also those registered after the server started)."""
    return await run_vertical(request, vertical, file, text, params)


# -- jobs -------------------------------------------------------------------------------------------------
@router.post("/v1/jobs", status_code=202, response_model=JobInfo, responses=ERRORS, tags=["jobs"])
async def submit_job(request: Request, vertical: str = Form(..., max_length=100), file: UploadFile | None = File(None),
                     text: str | None = Form(None), params: str | None = Form(None),
                     key: Any = Depends(authorize)) -> Any:
    """Queue long work; poll ``GET /v1/jobs/{id}``, fetch ``GET /v1/jobs/{id}/result``. Jobs survive restarts."""
    state: AppState = request.app.state.puyu
    get(vertical)
    kwargs = _params(params)
    if state.jobs.count("queued") >= state.config.max_pending_jobs:
        state.metrics.rejections.labels("jobs_full").inc()
        return error_response(503, f"{state.config.max_pending_jobs} jobs are already waiting; retry later",
                              kind="server_busy", headers={"Retry-After": "5"})
    job_id = uuid.uuid4().hex
    dest = state.config.data_path / "jobs" / job_id
    try:
        inputs, _ = await _inputs(state, vertical, file, text, dest)
    except BaseException:
        shutil.rmtree(dest, ignore_errors=True)
        raise
    if text and not file:
        verdict = state.runtime.filter_for(vertical).check_input(text)
        if not verdict.allowed:
            state.metrics.blocks.labels(vertical, verdict.tier, verdict.category).inc()
            return error_response(400, f"the text was refused by the safety filter ({verdict.reason})",
                                  kind="content_filter")
    is_file = file is not None and bool(file.filename)
    await run_in_threadpool(state.jobs.submit, vertical, input_path=inputs if is_file else None,
                            text=None if is_file else inputs, params=kwargs, key_id=key.id if key else None,
                            job_id=job_id)
    workers = state.extras.get("workers")
    if workers is not None:
        workers.wake.set()
    job = state.jobs.get(job_id)
    return job.public()


def _own_job(request: Request, job_id: str, key: Any) -> Any:
    state: AppState = request.app.state.puyu
    job = state.jobs.get(job_id)
    if job is None or (key is not None and job.key_id not in (None, key.id)):
        return None
    return job


@router.get("/v1/jobs/{job_id}", response_model=JobInfo, responses=ERRORS, tags=["jobs"])
async def job_status(request: Request, job_id: str, key: Any = Depends(authorize)) -> Any:
    job = await run_in_threadpool(_own_job, request, job_id, key)
    if job is None:
        return error_response(404, f"no job {job_id!r}; submit one with POST /v1/jobs", code="job_not_found")
    return job.public()


@router.get("/v1/jobs/{job_id}/result", response_model=JobResult, responses={**ERRORS, 202: {"model": JobResult}},
            tags=["jobs"])
async def job_result(request: Request, job_id: str, key: Any = Depends(authorize)) -> Any:
    """200 with the result when the job is done (or failed, with ``error``); 202 while it is queued or running."""
    job = await run_in_threadpool(_own_job, request, job_id, key)
    if job is None:
        return error_response(404, f"no job {job_id!r}; submit one with POST /v1/jobs", code="job_not_found")
    body = {**job.public(), "result": job.result}
    if job.status in ("queued", "running"):
        return JSONResponse(body, status_code=202)
    return body
