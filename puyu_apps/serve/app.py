"""The FastAPI application factory.

    from puyu_apps.serve import ServeConfig, create_app
    app = create_app(ServeConfig(model="smollm2-135m-instruct"))   # then: uvicorn.run(app)
"""

from __future__ import annotations

import contextlib
import json
import logging
import traceback
from typing import Any, AsyncIterator

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response

from .._version import __version__
from ..errors import (
    AdapterError, InvalidInputError, MissingDependencyError, ModelLoadError, PluginLoadError, UnknownVerticalError,
)
from ..pipelines import available
from .artifacts import router as artifacts_router
from .config import ServeConfig
from .routes_chat import router as chat_router
from .routes_verticals import add_vertical_route
from .routes_verticals import router as vertical_router
from .state import AppState, error_response
from .worker import JobWorkers

log = logging.getLogger("puyu_apps.serve")


def create_app(config: ServeConfig | None = None, *, start_workers: bool = True) -> FastAPI:
    config = config or ServeConfig()
    if config.mask_logs:
        from ..safety import install_log_masking

        install_log_masking()
    state = AppState.build(config)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        workers = JobWorkers(state, config.job_workers)
        if start_workers:
            workers.start()
            state.extras["workers"] = workers
        try:
            yield
        finally:
            workers.stop()

    app = FastAPI(title="puyu_apps", version=__version__, lifespan=lifespan,
                  description="OpenAI-compatible chat, one endpoint per vertical, background jobs. Safety filter "
                              "and PII masking are applied to every request.")
    app.state.puyu = state

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        return error_response(exc.status_code, str(exc.detail), headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        def safe(v: Any) -> Any:  # undecodable input bytes must not turn a 422 into a 500
            return v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)

        detail = json.loads(json.dumps(list(exc.errors()), default=safe))
        first = detail[0] if detail else {}
        where = ".".join(str(x) for x in first.get("loc", ()))
        message = f"{where}: {first.get('msg', 'invalid request')}" if where else "invalid request"
        return JSONResponse({"error": {"message": message, "type": "invalid_request_error", "code": "422"},
                             "detail": detail}, status_code=422)

    @app.exception_handler(UnknownVerticalError)
    async def unknown(request: Request, exc: UnknownVerticalError) -> JSONResponse:
        return error_response(404, str(exc), code="model_not_found")

    @app.exception_handler(InvalidInputError)
    async def invalid(request: Request, exc: InvalidInputError) -> JSONResponse:
        return error_response(getattr(exc, "status", 400), str(exc))

    @app.exception_handler(AdapterError)
    async def adapter(request: Request, exc: AdapterError) -> JSONResponse:
        return error_response(400, str(exc), code="adapter")

    @app.exception_handler(MissingDependencyError)
    async def missing(request: Request, exc: MissingDependencyError) -> JSONResponse:
        return error_response(501, str(exc), kind="not_installed")

    @app.exception_handler(ModelLoadError)
    async def model_load(request: Request, exc: ModelLoadError) -> JSONResponse:
        return error_response(503, str(exc), kind="engine_unavailable")

    @app.exception_handler(PluginLoadError)
    async def plugin(request: Request, exc: PluginLoadError) -> JSONResponse:
        return error_response(503, str(exc), kind="vertical_unavailable")

    @app.exception_handler(Exception)
    async def internal(request: Request, exc: Exception) -> JSONResponse:
        log.error("internal error on %s %s: %s", request.method, request.url.path, traceback.format_exc())
        return error_response(500, f"internal error ({type(exc).__name__}); see the server log", kind="server_error")

    @app.get("/healthz", tags=["ops"])
    async def healthz() -> dict[str, Any]:
        return {"status": "ok", "version": __version__, "model": config.model,
                "backend": config.backend_url or "local", "queue_depth": state.gate.queue_depth,
                "inflight": state.gate.inflight, "capacity": state.gate.capacity,
                "verticals": list(available())}

    @app.get("/metrics", tags=["ops"], response_class=Response)
    async def metrics() -> Response:
        m = state.metrics
        m.queue_depth.set(state.gate.queue_depth)
        m.inflight.set(state.gate.inflight)
        for status, n in state.jobs.counts().items():
            m.jobs.labels(status).set(n)
        return Response(m.render(), media_type="text/plain; version=0.0.4")

    @app.get("/v1/stats", tags=["ops"])
    async def stats() -> dict[str, Any]:
        """Latency and TTFT quantiles over the last 10,000 requests, queue, cache and jobs."""
        return {**state.metrics.stats(), "queue_depth": state.gate.queue_depth, "inflight": state.gate.inflight,
                "cache": {"entries": len(state.cache), "hits": state.cache.hits, "misses": state.cache.misses},
                "jobs": state.jobs.counts()}

    app.include_router(chat_router)
    for name in available():
        add_vertical_route(app, name)
    app.include_router(vertical_router)
    app.include_router(artifacts_router)
    if config.pages_dir:
        from .pages import mount_pages

        mount_pages(app, config.pages_dir)
    return app
