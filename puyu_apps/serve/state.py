"""The service's shared state and the pieces every route uses: authentication, rate limits, error bodies."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from fastapi import HTTPException, Request
from fastapi.responses import JSONResponse

from .cache import ResponseCache
from .config import ServeConfig
from .gate import Gate
from .jobs import JobStore
from .keys import KeyRecord, KeyStore, RateLimiter
from .metrics import Metrics
from .runtime import Runtime

log = logging.getLogger("puyu_apps.serve")

BUSY = {"zh": "服务繁忙，请稍后重试。", "en": "The service is busy right now; please retry in a few seconds."}


@dataclass
class AppState:
    config: ServeConfig
    runtime: Runtime
    gate: Gate
    cache: ResponseCache
    metrics: Metrics
    keys: KeyStore
    jobs: JobStore
    limiter: RateLimiter = field(default_factory=RateLimiter)
    extras: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def build(cls, config: ServeConfig) -> "AppState":
        db = config.db_file
        return cls(config=config, runtime=Runtime(config), gate=Gate(config.workers, config.max_queue),
                   cache=ResponseCache(config.cache_size, config.cache_ttl_s), metrics=Metrics(),
                   keys=KeyStore(db), jobs=JobStore(db))

    def keys_required(self) -> bool:
        if self.config.require_api_key is not None:
            return self.config.require_api_key
        return self.keys.active_count() > 0


def error_response(status: int, message: str, kind: str = "invalid_request_error", code: str | None = None,
                   headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": {"message": message, "type": kind, "code": code or str(status)}},
                        status_code=status, headers=headers)


def authorize(request: Request) -> KeyRecord | None:
    """FastAPI dependency: the caller's key (None when keys are not required), or 401 / 429."""
    state: AppState = request.app.state.puyu
    token = request.headers.get("x-api-key")
    auth = request.headers.get("authorization", "")
    if not token and auth.lower().startswith("bearer "):
        token = auth[7:].strip()
    record = state.keys.verify(token) if token else None
    if record is None and state.keys_required():
        state.metrics.rejections.labels("unauthorized").inc()
        raise HTTPException(401, "a valid API key is required: send 'Authorization: Bearer <key>' (create one with "
                                 "'puyu serve --create-key NAME')", headers={"WWW-Authenticate": "Bearer"})
    if record is not None:
        client, rate = f"key:{record.id}", record.rate_per_min
    else:
        client, rate = f"ip:{request.client.host if request.client else '-'}", state.config.anonymous_rate_per_min
    ok, wait = state.limiter.allow(client, rate)
    if not ok:
        state.metrics.rejections.labels("rate_limited").inc()
        raise HTTPException(429, f"rate limit of {rate:g} requests per minute reached; retry in {wait:.1f} s",
                            headers={"Retry-After": str(max(1, int(wait + 0.999)))})
    return record
