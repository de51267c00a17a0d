"""OpenAI-compatible ``/v1/chat/completions`` (JSON and server-sent events) and ``/v1/models``."""

from __future__ import annotations

import asyncio
import json
import re
import threading
import time
import uuid
from typing import Any, AsyncIterator

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, StreamingResponse

from ..core import GenerationConfig
from ..safety.stream import StreamGuard
from .cache import request_key
from .schemas import ChatCompletion, ChatCompletionRequest, ErrorBody
from .state import BUSY, AppState, authorize, error_response

router = APIRouter(tags=["chat"])
ROUTE = "chat"


def _completion(model: str, content: str, finish: str, usage: tuple[int, int] = (0, 0), **extra: Any) -> dict:
    return ChatCompletion(
        id=f"chatcmpl-{uuid.uuid4().hex[:24]}", created=int(time.time()), model=model,
        choices=[{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": finish}],
        usage={"prompt_tokens": usage[0], "completion_tokens": usage[1], "total_tokens": sum(usage)}, **extra,
    ).model_dump()


def _chunk(cid: str, model: str, delta: dict[str, str], finish: str | None = None) -> str:
    body = {"id": cid, "object": "chat.completion.chunk", "created": int(time.time()), "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
    return f"data: {json.dumps(body, ensure_ascii=False)}\n\n"


def _one_shot_stream(model: str, content: str, finish: str) -> StreamingResponse:
    cid = f"chatcmpl-{uuid.uuid4().hex[:24]}"

    async def gen() -> AsyncIterator[str]:
        yield _chunk(cid, model, {"role": "assistant", "content": content})
        yield _chunk(cid, model, {}, finish)
        yield "data: [DONE]\n\n"

    return StreamingResponse(gen(), media_type="text/event-stream")


def _lang(text: str) -> str:
    return "zh" if re.search(r"[\u4e00-\u9fff]", text) else "en"


@router.get("/v1/models")
async def list_models(request: Request, _key: Any = Depends(authorize)) -> dict:
    state: AppState = request.app.state.puyu
    return {"object": "list", "data": [{"id": m, "object": "model", "owned_by": "puyu_apps"}
                                       for m in state.runtime.served_models()]}


@router.post("/v1/chat/completions", response_model=ChatCompletion,
             responses={400: {"model": ErrorBody}, 401: {"model": ErrorBody}, 404: {"model": ErrorBody},
                        429: {"model": ErrorBody}, 503: {"model": ChatCompletion,
                                                         "description": "queue full: a degraded answer"}})
async def chat_completions(req: ChatCompletionRequest, request: Request, key: Any = Depends(authorize)) -> Any:
    state: AppState = request.app.state.puyu
    cfg = state.config
    t0 = time.perf_counter()
    max_tokens = req.max_completion_tokens or req.max_tokens or cfg.default_max_tokens
    if max_tokens > cfg.max_tokens_limit:
        return error_response(400, f"max_tokens={max_tokens} is above this server's limit of "
                                   f"{cfg.max_tokens_limit}; ask for fewer tokens", code="max_tokens")
    stop = [req.stop] if isinstance(req.stop, str) else list(req.stop or [])
    gen_cfg = GenerationConfig(max_new_tokens=max_tokens, temperature=req.temperature, top_p=req.top_p,
                               stop=stop, seed=req.seed)
    target = await run_in_threadpool(state.runtime.resolve, req.model, req.user or (key.id if key else None))
    labels = (target.vertical, target.adapter_label)
    messages = [m.model_dump() for m in req.messages]
    user_text = "\n".join(m["content"] for m in messages if m["role"] != "assistant")
    verdict = target.filter.check_input(user_text)
    if not verdict.allowed:
        state.metrics.blocks.labels(target.vertical, verdict.tier, verdict.category).inc()
        state.metrics.observe(ROUTE, *labels, 200, time.perf_counter() - t0)
        if req.stream:
            return _one_shot_stream(req.model, verdict.text, "content_filter")
        return _completion(req.model, verdict.text, "content_filter",
                           safety={"blocked": True, "reason": verdict.reason})
    cacheable = (req.temperature == 0 or req.seed is not None) and cfg.cache_size > 0
    ckey = request_key(ROUTE, target.adapter_label, target.adapter, messages, max_tokens, req.temperature,
                       req.top_p, stop, req.seed)
    cached = state.cache.get(ckey) if cacheable else None
    state.metrics.cache.labels("hit" if cached else "miss").inc()
    if cached is not None:
        state.metrics.observe(ROUTE, *labels, 200, time.perf_counter() - t0)
        if req.stream:
            return _one_shot_stream(req.model, cached["choices"][0]["message"]["content"],
                                    cached["choices"][0]["finish_reason"])
        return {**cached, "cached": True}
    ticket = state.gate.try_admit()
    if ticket is None:
        state.metrics.rejections.labels("queue_full").inc()
        state.metrics.observe(ROUTE, *labels, 503, None)
        retry = str(max(1, int(cfg.max_queue / max(cfg.workers, 1))))
        body = _completion(req.model, BUSY[_lang(user_text)], "stop", degraded=True)
        return JSONResponse(body, status_code=503, headers={"Retry-After": retry})
    if req.stream:
        try:  # validation (empty or too long prompt) happens here, so it is a 400, not an error event
            ts = await run_in_threadpool(lambda: target.lm.stream(messages, gen_cfg, adapter=target.adapter))
        except BaseException:
            ticket.close()
            raise
        return StreamingResponse(_stream(state, target, req, ts, ticket, t0, ckey, cacheable),
                                 media_type="text/event-stream")
    try:
        result = await run_in_threadpool(
            ticket.run, lambda: target.lm.generate(messages, gen_cfg, adapter=target.adapter))
    finally:
        ticket.close()
    out = target.filter.check_output(result.text)
    if not out.allowed:
        state.metrics.blocks.labels(target.vertical, out.tier, out.category).inc()
    finish = result.finish_reason if out.allowed else "content_filter"
    finish = "stop" if finish == "eos" else finish
    body = _completion(req.model, out.text, finish, (result.prompt_tokens, result.completion_tokens),
                       safety={"blocked": not out.allowed, "reason": out.reason if not out.allowed else "",
                               "pii_masked": out.pii})
    state.metrics.observe_generation(*labels, result.ttft_s, result.tokens_per_s, result.completion_tokens,
                                     out.repetition)
    state.metrics.observe(ROUTE, *labels, 200, time.perf_counter() - t0)
    if cacheable and out.allowed:
        state.cache.put(ckey, body)
    return body


async def _stream(state: AppState, target: Any, req: ChatCompletionRequest, ts: Any, ticket: Any, t0: float,
                  ckey: str, cacheable: bool) -> AsyncIterator[str]:
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
    cancelled = threading.Event()
    guard = StreamGuard(target.filter)

    def put(item: tuple[str, Any]) -> None:
        loop.call_soon_threadsafe(queue.put_nowait, item)

    def produce() -> None:  # one thread drives the whole generation (the model's lock is thread-owned)
        try:
            with ticket.slot():
                pieces = iter(ts)
                try:
                    for piece in pieces:
                        if cancelled.is_set():
                            break
                        put(("piece", piece))
                finally:
                    close = getattr(pieces, "close", None)
                    if close:
                        close()
                put(("done", ts.result))
        except Exception as exc:  # reported to the client as an error event
            put(("error", exc))
        finally:
            ticket.close()

    threading.Thread(target=produce, name="puyu-stream", daemon=True).start()
    cid = f"chatcmpl-{uuid.uuid4().hex[:24]}"
    labels = (target.vertical, target.adapter_label)
    ttft: float | None = None
    sent: list[str] = []
    try:
        yield _chunk(cid, req.model, {"role": "assistant", "content": ""})
        while True:
            kind, value = await queue.get()
            if kind == "piece":
                text = guard.push(value)
                if text:
                    if ttft is None:
                        ttft = time.perf_counter() - t0
                    sent.append(text)
                    yield _chunk(cid, req.model, {"content": text})
                if guard.blocked is not None:
                    cancelled.set()
                    break
            elif kind == "error":
                msg = {"error": {"message": f"{type(value).__name__}: {value}", "type": "generation_error"}}
                yield f"data: {json.dumps(msg, ensure_ascii=False)}\n\n"
                yield "data: [DONE]\n\n"
                state.metrics.observe(ROUTE, *labels, 500, None)
                return
            else:
                result = value
                tail = guard.finish()
                if tail:
                    if ttft is None:
                        ttft = time.perf_counter() - t0
                    sent.append(tail)
                    yield _chunk(cid, req.model, {"content": tail})
                break
        if guard.blocked is not None:
            v = guard.blocked
            state.metrics.blocks.labels(target.vertical, v.tier, v.category).inc()
            yield _chunk(cid, req.model, {"content": ("\n" if sent else "") + v.text}, "content_filter")
            yield "data: [DONE]\n\n"
            state.metrics.observe(ROUTE, *labels, 200, time.perf_counter() - t0)
            return
        finish = "stop" if result.finish_reason == "eos" else result.finish_reason
        yield _chunk(cid, req.model, {}, finish)
        if req.stream_options and req.stream_options.include_usage:
            usage = {"prompt_tokens": result.prompt_tokens, "completion_tokens": result.completion_tokens,
                     "total_tokens": result.prompt_tokens + result.completion_tokens}
            body = {"id": cid, "object": "chat.completion.chunk", "created": int(time.time()), "model": req.model,
                    "choices": [], "usage": usage}
            yield f"data: {json.dumps(body)}\n\n"
        yield "data: [DONE]\n\n"
        rep = guard.final.repetition if guard.final else 0.0
        state.metrics.observe_generation(*labels, ttft, result.tokens_per_s, result.completion_tokens, rep)
        state.metrics.observe(ROUTE, *labels, 200, time.perf_counter() - t0)
        if cacheable:
            state.cache.put(ckey, _completion(req.model, "".join(sent), finish,
                                              (result.prompt_tokens, result.completion_tokens)))
    finally:
        cancelled.set()
