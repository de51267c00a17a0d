"""Continuous batching on llama.cpp: one background thread decodes every active request together.

Each step the scheduler admits waiting requests into free sequence slots (while the KV cache has room for their
prompt plus their token budget), then, for each group of requests that share the same LoRA adapters, runs one
``llama_decode`` holding the next token of every generating request and a chunk of every prompt still being
read; it samples a token per request and hands it to that request's queue. Finished and cancelled requests
leave between steps and free their slot at once.

Mixed adapters: llama.cpp applies adapters per context. With our masked-LoRA patch (``masked_lora``, on when the
library has it) a context holds one combined adapter of every loaded adapter
(:class:`~puyu_apps.engine.masked_lora.MaskedLora`) and each sequence a row mask naming its request's adapters,
so requests on any mix of adapters (and the base model) decode in one ``llama_decode``. Without the patch, each
adapter group gets its own *lane*, a context (KV cache, graph) over the same loaded weights, up to
``max_lanes``: changing a context's adapters makes its next decode rebuild its compute graph, so no lane ever
switches until there are more groups than lanes (then a new group shares the least-used lane, which switches
between its groups, the adapters already set first). With masked LoRA, lanes only add room: a new lane opens
when every sequence slot of the others is taken. When two or more lanes have work in a step, they decode at the
same time on a pool of threads, one CPU thread each (a decode of a few tokens spends much of its time
synchronising its threads). ``benchmarks/engine_mixed_adapters.py`` compares the ways.

Prefix reuse (``prefix_cache=True``, the default): a finished request leaves its tokens in its slot's KV cells.
A new request takes the free slot, or copies (shares) the cells of any slot, holding the longest run of its own
prompt's first tokens under the same adapters, and reads only the rest of its prompt: a shared system prompt is
read once, and a conversation's next turn skips every earlier turn. Cached cells are dropped, least recently
used first, when an admitted request needs the room. ``Request.cached`` says how many prompt tokens were reused.

Callers consume token ids from :class:`Request` (detokenisation, stop strings and metrics happen in the
caller's thread, in :class:`puyu_apps.engine.model.LlamaCppLanguageModel`).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from typing import Any

import numpy as np

from ..core.config import GenerationConfig
from ..errors import AdapterError, PuyuError
from .llamacpp import Context, LlamaModel, LoraHandle, lora_mask_supported
from .masked_lora import MaskedLora

log = logging.getLogger("puyu_apps.engine")


class EngineBusyError(PuyuError):
    """The request queue is full; retry later (HTTP 503 territory)."""


class EngineError(PuyuError):
    """llama.cpp failed while decoding a request."""


_END = None  # queue sentinel: the request ended (token budget used up, or retired)


class RequestBase:
    """What both engines' requests share: the caller reads token ids with :meth:`get`; :meth:`kv_tokens` is what
    the request's KV cache holds (subclasses set ``prompt``, ``n_read``, ``n_gen``, ``generated``, ``out``)."""

    __slots__ = ()
    prompt: list[int]
    n_read: int
    n_gen: int
    generated: list[int]
    out: queue.SimpleQueue

    def kv_tokens(self) -> list[int]:
        """The tokens whose KV this request holds, from position 0 (the last sampled token is not in it yet)."""
        if self.n_read < len(self.prompt):
            return self.prompt[:self.n_read]
        return self.prompt + self.generated[:max(0, self.n_gen - 1)]

    def get(self, timeout: float | None = None) -> int | None:
        """The next token id; None at the end. Re-raises an engine error."""
        item = self.out.get(timeout=timeout)
        if isinstance(item, BaseException):
            raise item
        return item


class Request(RequestBase):
    """One generation request. Iterate :meth:`tokens` (in the caller's thread) to get token ids."""

    __slots__ = ("prompt", "cfg", "adapters", "group", "out", "cancelled", "seq", "lane", "mask_for", "n_read",
                 "n_gen", "next_token", "seen", "generator", "reserve", "done", "t_submit", "generated", "cached")

    def __init__(self, prompt: list[int], cfg: GenerationConfig, adapters: tuple[LoraHandle, ...]):
        self.prompt = prompt
        self.cfg = cfg
        self.adapters = adapters
        self.group = tuple(id(h) for h in adapters)
        self.out: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self.cancelled = False
        self.seq = -1
        self.lane: _Lane | None = None
        self.mask_for: MaskedLora | None = None  # the combined adapter this request's row mask was set in
        self.n_read = 0  # prompt tokens already in the KV cache
        self.n_gen = 0
        self.next_token = -1
        self.seen: list[int] | None = None  # prompt + generated, kept only when a repetition penalty applies
        self.generator: Any = None
        self.reserve = len(prompt) + cfg.max_new_tokens
        self.done = False
        self.t_submit = time.perf_counter()
        self.generated: list[int] = []
        self.cached = 0  # prompt tokens whose KV was reused from an earlier request



class _Slot:
    """What a sequence slot's KV cells hold after its request left (for prefix reuse)."""

    __slots__ = ("tokens", "group", "used")

    def __init__(self) -> None:
        self.tokens: list[int] = []
        self.group: tuple[int, ...] = ()
        self.used = 0.0


class _Lane:
    """One llama.cpp context (its own KV cache and compute graph) with its sequence slots, and the adapter groups
    that decode in it."""

    __slots__ = ("ctx", "free", "slots", "reserved", "groups", "masked")

    def __init__(self, ctx: Context, n_seq: int):
        self.ctx = ctx
        self.free = list(range(n_seq - 1, -1, -1))
        self.slots = [_Slot() for _ in range(n_seq)]
        self.reserved = 0  # KV cells promised to the admitted requests
        self.groups: set[tuple[int, ...]] = set()
        self.masked: MaskedLora | None = None  # the combined adapter of this context (masked LoRA)


def _common_prefix(a: list[int], b: list[int]) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


class EngineQueue:
    """The caller's side of an engine thread, shared by the llama.cpp and the torch static schedulers: a bounded
    queue of waiting requests, the thread that serves it (started on demand, named ``thread_name``), cancelling.
    Subclasses set ``_pending``, ``_active``, ``_cond``, ``_stop``, ``_thread`` and ``max_queue`` in
    ``__init__`` and define ``_loop``."""

    thread_name = "puyu-engine"
    _pending: deque
    _active: list
    _cond: threading.Condition
    _stop: bool
    _thread: threading.Thread | None
    max_queue: int

    def _loop(self) -> None:  # pragma: no cover - every engine defines it
        raise NotImplementedError

    def _enqueue(self, req: Any) -> Any:
        """Queue ``req`` (``EngineBusyError`` when full) and make sure the engine thread runs."""
        with self._cond:
            if self._stop:
                raise EngineError("the engine was closed")
            if len(self._pending) >= self.max_queue:
                raise EngineBusyError(f"the engine queue is full ({self.max_queue} waiting requests); retry later")
            self._pending.append(req)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, name=self.thread_name, daemon=True)
                self._thread.start()
            self._cond.notify()
        return req

    def cancel(self, req: Any) -> None:
        """Stop a request (the caller hung up or a stop string matched). Safe at any time, more than once."""
        if req.done:
            return
        req.cancelled = True
        with self._cond:
            if req in self._pending:
                self._pending.remove(req)
                req.done = True
            self._cond.notify()

    def busy(self) -> int:
        with self._cond:
            return len(self._active) + len(self._pending)


class Scheduler(EngineQueue):
    """Owns the llama.cpp contexts (lanes) and the thread that decodes into them."""

    thread_name = "puyu-llama.cpp"

    #: shortest shared prefix worth reusing (shorter ones are read again)
    min_reuse = 4
    #: decode lanes side by side, one thread each, when two or more have work (False: one after another)
    parallel_lanes = True

    def __init__(self, model: LlamaModel, *, n_ctx: int, n_seq: int = 8, n_batch: int = 256, n_threads: int = 2,
                 max_queue: int = 256, flash_attn: int = -1, prefix_cache: bool = True, max_lanes: int = 4,
                 masked_lora: bool | None = None, fused_lora: bool | None = None):
        self.model = model
        #: requests on different adapters decode together through one combined adapter (None: when the library
        #: has our masked-LoRA patch); False: one lane per adapter group
        self.masked_lora = lora_mask_supported() if masked_lora is None else masked_lora
        #: the combined adapters run the fused kernels of the patch (None: where the library has them, unless
        #: ``$PUYU_APPS_LORA_FUSED`` is 0)
        self.fused_lora = fused_lora
        self._ctx_args = dict(n_ctx=n_ctx, n_seq=n_seq, n_batch=n_batch, n_threads=n_threads, flash_attn=flash_attn,
                              kv_unified=True)
        self.lanes = [_Lane(Context(model, **self._ctx_args), n_seq)]
        self.n_ctx = self.lanes[0].ctx.n_ctx
        self.n_seq = n_seq
        self.n_threads = n_threads
        self.max_lanes = max(1, max_lanes)
        self._pool: Any = None  # threads that decode lanes side by side (made on first use)
        self._stats_lock = threading.Lock()
        self.max_queue = max_queue
        self._pending: deque[Request] = deque()
        self._active: list[Request] = []
        self.prefix_cache = prefix_cache
        self._retire_adapters: list[LoraHandle] = []
        self._cond = threading.Condition()
        self._stop = False
        self._thread: threading.Thread | None = None
        self.stats = {"steps": 0, "decodes": 0, "tokens": 0, "reused": 0, "switches": 0, "lanes": 1,
                      "masked_decodes": 0, "combined_builds": 0}

    # -- the caller's side ------------------------------------------------------------------------------------
    def submit(self, req: Request) -> Request:
        if req.reserve > self.n_ctx:
            raise EngineError(f"the request needs {req.reserve} KV cells (prompt + max_new_tokens) but the context "
                              f"holds {self.n_ctx}")
        return self._enqueue(req)

    def release_adapter(self, handle: LoraHandle) -> None:
        """Free ``handle`` once no admitted or waiting request uses it."""
        with self._cond:
            self._retire_adapters.append(handle)
            self._cond.notify()
        if self._thread is None or not self._thread.is_alive():
            self._free_retired()

    def close(self) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify()
        if self._thread is not None:
            self._thread.join(timeout=30)
        for r in list(self._active) + list(self._pending):
            r.out.put(EngineError("the engine was closed"))
        if self._pool is not None:
            self._pool.shutdown(wait=True)
        for lane in self.lanes:
            lane.ctx.close()
            if lane.masked is not None:
                lane.masked.free()
                lane.masked = None

    # -- the engine thread --------------------------------------------------------------------------------------
    def _free_retired(self) -> None:
        in_use = {id(h) for r in list(self._active) + list(self._pending) for h in r.adapters}
        keep, freed = [], set()
        for h in self._retire_adapters:
            if id(h) in in_use:
                keep.append(h)
            else:
                self.model.free_lora(h)
                freed.add(id(h))
        self._retire_adapters = keep
        if freed:  # the group keys of freed adapters may come back with a new adapter at the same address
            for lane in self.lanes:
                if lane.masked is not None and lane.masked.holds(freed):
                    self._drop_masked(lane)
                lane.groups = {g for g in lane.groups if not freed.intersection(g)}
                for q in lane.free:
                    if freed.intersection(lane.slots[q].group):
                        lane.ctx.clear(q)
                        lane.slots[q].tokens, lane.slots[q].group = [], ()

    def _drop_masked(self, lane: _Lane) -> None:
        """Free the combined adapter of ``lane`` (its requests get their row masks again in the next one)."""
        assert lane.masked is not None
        if id(lane.masked.handle) in lane.ctx._adapters:
            lane.ctx.set_adapters(())
        lane.masked.free()
        lane.masked = None

    def _lane_for(self, group: tuple[int, ...]) -> _Lane:
        """The lane of ``group``. Masked LoRA: the first lane with a free slot, a new one when all are full (up to
        ``max_lanes``), else the least busy. Lanes per group: its own, a new one while fewer than ``max_lanes``
        exist, else the least used."""
        if self.masked_lora:
            lane = next((ln for ln in self.lanes if ln.free), None)
            if lane is None:
                lane = self._new_lane() or min(self.lanes, key=lambda ln: sum(r.lane is ln for r in self._active))
            lane.groups.add(group)
            return lane
        for lane in self.lanes:
            if group in lane.groups:
                return lane
        lane = next((ln for ln in self.lanes if not ln.groups), None)
        if lane is None:
            lane = self._new_lane()
        if lane is None:
            lane = min(self.lanes, key=lambda ln: (len(ln.groups), sum(r.lane is ln for r in self._active)))
        lane.groups.add(group)
        return lane

    def _new_lane(self) -> _Lane | None:
        """Another context, while fewer than ``max_lanes`` exist and memory allows."""
        if len(self.lanes) >= self.max_lanes:
            return None
        try:
            lane = _Lane(Context(self.model, **self._ctx_args), self.n_seq)
        except PuyuError:  # no memory for another context: share the existing ones from now on
            self.max_lanes = len(self.lanes)
            return None
        self.lanes.append(lane)
        self.stats["lanes"] = len(self.lanes)
        return lane

    @staticmethod
    def _cached_cells(lane: _Lane, skip: int = -1) -> int:
        return sum(len(lane.slots[q].tokens) for q in lane.free if q != skip)

    def _pick_slot(self, lane: _Lane, req: Request) -> tuple[int, int, int]:
        """(free slot of ``lane`` to use, slot to take the prefix from or -1, prefix length) for ``req``."""
        slots = lane.slots
        oldest = min(lane.free, key=lambda q: (len(slots[q].tokens) > 0, slots[q].used))
        src, src_k = -1, 0
        if self.prefix_cache:
            limit = len(req.prompt) - 1  # the last prompt token is always read again: its logits start decoding
            for q in lane.free:
                k = min(_common_prefix(slots[q].tokens, req.prompt), limit) if slots[q].group == req.group else 0
                if k > src_k:
                    src, src_k = q, k
            for r in self._active:
                if r.lane is lane and r.group == req.group:
                    k = min(_common_prefix(r.kv_tokens(), req.prompt), limit)
                    if k > src_k:
                        src, src_k = r.seq, k
        if src_k < self.min_reuse:
            return oldest, -1, 0
        if src in lane.free:
            return src, src, src_k
        # the prefix lives in an active sequence: share its cells into the emptiest free slot
        return oldest, src, src_k

    def _admit(self) -> None:
        if self._drop_requested:  # asked while the engine thread was running or waiting: before any admission
            self.drop_cache()
        waiting: set[int] = set()  # lanes whose first waiting request is held back: later ones wait behind it
        for req in list(self._pending):
            if req.cancelled:
                self._pending.remove(req)
                req.done = True
                continue
            lane = self._lane_for(req.group)
            if id(lane) in waiting or not lane.free:
                waiting.add(id(lane))
                continue
            seq, src, k = self._pick_slot(lane, req)
            if lane.reserved + req.reserve + self._cached_cells(lane, skip=seq) > self.n_ctx:
                if lane.reserved + req.reserve > self.n_ctx and any(r.lane is lane for r in self._active):
                    waiting.add(id(lane))  # wait for room in this lane's KV cache (first come, first served)
                    continue
                self._evict(lane, req.reserve, keep=(seq, src))
            self._pending.remove(req)
            lane.free.remove(seq)
            lane.reserved += req.reserve
            slot = lane.slots[seq]
            if src == seq:
                lane.ctx.remove(seq, k)
            else:
                lane.ctx.clear(seq)
                if src >= 0:
                    lane.ctx.copy(src, seq, k)
            slot.tokens, slot.group = [], req.group
            req.seq, req.lane, req.n_read, req.cached = seq, lane, k, k
            self.stats["reused"] += k
            if req.cfg.repetition_penalty != 1.0:
                req.seen = list(req.prompt)
            if req.cfg.do_sample:
                import torch

                req.generator = torch.Generator()
                req.generator.manual_seed(req.cfg.seed if req.cfg.seed is not None else int(time.time_ns() % 2**31))
            self._active.append(req)

    def clear_cache(self) -> None:
        """Forget every cached prefix, from any thread: at once when the engine is idle, else before the next
        admission."""
        with self._cond:
            if self._thread is None or not self._thread.is_alive():
                self.drop_cache()
            else:
                self._drop_requested = True
                self._cond.notify()

    _drop_requested = False

    def drop_cache(self) -> None:
        """Forget every cached prefix (the cells of finished requests). Engine thread, or no engine thread."""
        self._drop_requested = False
        for lane in self.lanes:
            for q in lane.free:
                if lane.slots[q].tokens:
                    lane.ctx.clear(q)
                    lane.slots[q].tokens = []

    def _evict(self, lane: _Lane, need: int, keep: tuple[int, int]) -> None:
        """Drop cached prefixes of ``lane`` (least recently used first) until ``need`` more cells fit."""
        for q in sorted(lane.free, key=lambda q: lane.slots[q].used):
            if lane.reserved + need + self._cached_cells(lane) <= self.n_ctx:
                return
            if q in keep or not lane.slots[q].tokens:
                continue
            lane.ctx.clear(q)
            lane.slots[q].tokens = []

    def _retire(self, req: Request, error: BaseException | None = None) -> None:
        req.done = True
        lane = req.lane
        if lane is not None and req.seq >= 0:
            slot = lane.slots[req.seq]
            if self.prefix_cache and error is None:
                slot.tokens, slot.group, slot.used = req.kv_tokens(), req.group, time.perf_counter()
            else:
                lane.ctx.clear(req.seq)
                slot.tokens = []
            lane.free.append(req.seq)
            lane.reserved -= req.reserve
            req.seq = -1
        req.out.put(error if error is not None else _END)

    def _loop(self) -> None:
        while True:
            with self._cond:
                for r in [r for r in self._active if r.cancelled]:
                    self._active.remove(r)
                    self._retire(r)
                if self._retire_adapters:
                    self._free_retired()
                self._admit()
                while not self._active and not self._stop:
                    if not self._pending and not self._cond.wait(timeout=self.idle_exit_s):
                        if not self._pending and not self._active:
                            self._thread = None  # idle: end the thread (submit starts another); the
                            return  # scheduler and its llama.cpp context can then be collected
                    self._admit()
                if self._stop:
                    return
                active = list(self._active)
            try:
                self._step(active)
            except BaseException as exc:  # never leave callers waiting forever
                with self._cond:
                    self.drop_cache()
                    for r in active:
                        if r in self._active:
                            self._active.remove(r)
                            self._retire(r, exc if isinstance(exc, PuyuError) else EngineError(
                                f"llama.cpp decode failed: {type(exc).__name__}: {exc}"))

    def _step(self, active: list[Request]) -> None:
        lanes: dict[int, tuple[_Lane, dict[tuple[int, ...], list[Request]]]] = {}
        for r in active:
            assert r.lane is not None
            lanes.setdefault(id(r.lane), (r.lane, {}))[1].setdefault(r.group, []).append(r)
        self.stats["steps"] += 1
        work = list(lanes.values())
        if len(work) == 1 or self.n_threads < 2 or not self.parallel_lanes:
            for lane, groups in work:
                self._run_lane(lane, groups, self.n_threads)
            return
        # lanes side by side: as many workers as threads, the lanes spread by their tokens in this step
        n_workers = min(self.n_threads, len(work))
        buckets: list[list[tuple[_Lane, dict]]] = [[] for _ in range(n_workers)]
        loads = [0] * n_workers
        for n, lane, groups in sorted(((self._tokens(g), ln, g) for ln, g in work), key=lambda w: -w[0]):
            i = loads.index(min(loads))
            buckets[i].append((lane, groups))
            loads[i] += n
        each = max(1, self.n_threads // n_workers)
        if self._pool is None:
            from concurrent.futures import ThreadPoolExecutor

            self._pool = ThreadPoolExecutor(self.n_threads, thread_name_prefix="puyu-lane")

        def run(bucket: list[tuple[_Lane, dict]]) -> None:
            for lane, groups in bucket:
                self._run_lane(lane, groups, each)

        for future in [self._pool.submit(run, b) for b in buckets]:
            future.result()  # an error in any lane ends the step (the loop retires its requests)

    def _tokens(self, groups: dict[tuple[int, ...], list[Request]]) -> int:
        """The tokens a lane's decodes hold in this step (a generating request 1, a prompt its next chunk)."""
        n_batch = self.lanes[0].ctx.n_batch
        return sum(1 if r.n_read == len(r.prompt) else min(len(r.prompt) - r.n_read, n_batch)
                   for reqs in groups.values() for r in reqs)

    def _run_lane(self, lane: _Lane, groups: dict[tuple[int, ...], list[Request]], threads: int) -> None:
        lane.ctx.set_threads(threads)
        # masked LoRA when the step mixes groups; one group decodes on its own adapters (no mask to apply), so a
        # context switches between the combined adapter and a plain one only as the mix of its requests changes
        if self.masked_lora and len(groups) > 1:
            masked = self._masked_for(lane, groups)
            if masked is not None:  # every group in one decode
                self._decode_group(lane.ctx, [r for reqs in groups.values() for r in reqs], masked)
                return
        # in a shared lane the adapters already set go first: a switch costs a graph rebuild in llama.cpp, and the
        # last group of this step is then the first of the next (G - 1 switches per step, not G)
        current = lane.ctx._adapters
        for key in sorted(groups, key=lambda g: g != current):
            if key != lane.ctx._adapters:
                with self._stats_lock:
                    self.stats["switches"] += 1
            self._decode_group(lane.ctx, groups[key])

    def _masked_for(self, lane: _Lane, groups: dict[tuple[int, ...], list[Request]]) -> MaskedLora | None:
        """The combined adapter of ``lane``, (re)built over every loaded adapter when it lacks one these groups use;
        None (and lanes per group from now on) if it cannot be built."""
        m = lane.masked
        if m is not None and all(m.covers(reqs[0].adapters) for reqs in groups.values()):
            return m
        retired = {id(h) for h in self._retire_adapters}
        sources = [h for h in self.model.loras if h.mask_rank == 0 and id(h) not in retired]
        needed = {id(h): h for reqs in groups.values() for h in reqs[0].adapters}
        sources += [h for h in needed.values() if all(s is not h for s in sources)]
        try:
            new = MaskedLora(self.model, sources, fused=self.fused_lora)
        except (AdapterError, OSError, ValueError, KeyError) as exc:
            log.warning("requests on different adapters decode in separate llama.cpp contexts from now on: the "
                        "combined adapter could not be built (%s: %s)", type(exc).__name__, exc)
            self.masked_lora = False
            return None
        if m is not None:
            self._drop_masked(lane)
        lane.masked = new
        self.stats["combined_builds"] += 1
        return new

    def _decode_group(self, ctx: Context, reqs: list[Request], masked: MaskedLora | None = None) -> None:
        tokens: list[int] = []
        positions: list[int] = []
        seqs: list[int] = []
        outputs: list[bool] = []
        owners: list[tuple[int, Request]] = []
        budget = ctx.n_batch
        for r in reqs:  # generating requests first: one token each
            if r.n_read == len(r.prompt) and budget > 0:
                owners.append((len(tokens), r))
                tokens.append(r.next_token)
                positions.append(r.n_read + r.n_gen - 1)
                seqs.append(r.seq)
                outputs.append(True)
                budget -= 1
        for r in reqs:  # then a chunk of every prompt still being read
            left = len(r.prompt) - r.n_read
            if left > 0 and budget > 0:
                take = min(left, budget)
                start = r.n_read
                tokens.extend(r.prompt[start:start + take])
                positions.extend(range(start, start + take))
                seqs.extend([r.seq] * take)
                outputs.extend([False] * (take - 1))
                last = start + take == len(r.prompt)
                outputs.append(last)
                if last:
                    owners.append((len(tokens) - 1, r))
                r.n_read += take
                budget -= take
        if not tokens:
            return
        if masked is None:
            ctx.set_adapters(reqs[0].adapters)
        else:
            for r in reqs:
                if r.mask_for is not masked:
                    masked.set_seq(r.seq, r.adapters)
                    r.mask_for = masked
            ctx.set_adapters((masked.handle,))  # a mixed step: some request is on an adapter
        rc = ctx.decode(tokens, positions, seqs, outputs)
        with self._stats_lock:
            self.stats["decodes"] += 1
            self.stats["masked_decodes"] += masked is not None
            self.stats["tokens"] += len(tokens)
        if rc != 0:
            raise EngineError(f"llama_decode returned {rc} ({'no room in the KV cache' if rc == 1 else 'error'})")
        finished: list[Request] = []
        for idx, r in owners:
            if r.cancelled:
                finished.append(r)
                continue
            tid = self._sample(r, ctx.logits(idx))
            r.next_token = tid
            r.generated.append(tid)
            r.n_gen += 1
            if r.seen is not None:
                r.seen.append(tid)
            r.out.put(tid)
            if tid in self.eos or r.n_gen >= r.cfg.max_new_tokens:
                finished.append(r)
        if finished:
            with self._cond:
                for r in finished:
                    if r in self._active:
                        self._active.remove(r)
                        self._retire(r)

    eos: frozenset[int] = frozenset()
    #: seconds without work after which the engine thread ends
    idle_exit_s = 2.0

    @staticmethod
    def _sample(r: Request, logits: np.ndarray) -> int:
        cfg = r.cfg
        if not cfg.do_sample and cfg.repetition_penalty == 1.0:
            return int(logits.argmax())
        import torch

        from ..core.sampling import select_next

        row = torch.from_numpy(logits).unsqueeze(0)
        seen = torch.tensor([r.seen], dtype=torch.long) if r.seen is not None else torch.empty(1, 0, dtype=torch.long)
        return int(select_next(row, cfg, seen, r.generator).item())
