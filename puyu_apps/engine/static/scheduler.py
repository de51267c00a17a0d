"""Continuous batching for the static engine: one engine thread, a fixed number of KV-cache slots.

Each step the thread

1. retires cancelled requests and admits waiting ones into free slots (first come, first served), taking the
   longest cached prefix of their prompt under the same adapter (see below);
2. decodes one token for every generating request in one :func:`~.forward.decode_one_token` call over slots
   ``0 .. B-1`` (``B`` = the smallest power of two covering the highest busy slot), every row with its own
   position and adapter index; the token ids are fetched from the device once per step;
3. reads up to ``prefill_chunk`` prompt tokens of the requests still reading their prompt
   (:func:`~.forward.prefill`, one request at a time); a request whose prompt is read samples its first token
   and joins the next decode step.

Finished requests (EOS, token budget) and cancelled ones (the caller stopped reading, a stop string matched)
leave between steps and free their slot at once. Each request gets its token ids through its own queue;
detokenisation, stop strings and metrics happen in the caller's thread
(:class:`~puyu_apps.engine.static.model.StaticLanguageModel`).

Prefix reuse (``prefix_cache=True``): a finished request leaves its tokens' K/V in its slot. A new request under
the same adapter takes that slot when it holds the longest run of the new prompt's first tokens, or gets the rows
copied from the slot of a running request (:meth:`~.forward.StaticKVCache.copy_rows`), and reads only the rest
(``StaticRequest.cached``). Otherwise it takes the empty slot with the lowest index (a decode step covers slots
``0 .. B-1``, so low slots keep the batch small), else the cached slot used least recently.

A bounded queue raises :class:`~puyu_apps.engine.scheduler.EngineBusyError` when full.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import deque
from typing import Any, Callable

import torch

from ...core.config import GenerationConfig
from ...errors import PuyuError
from ..scheduler import EngineError, EngineQueue, RequestBase, _common_prefix
from .forward import StaticKVCache, decode_one_token, prefill
from .lora import LoraBank
from .ops import TORCH_OPS, Ops
from .weights import StaticWeights

_END = None  # queue sentinel: the request ended


def next_pow2(n: int) -> int:
    return 1 << max(0, (int(n) - 1).bit_length())


class StaticRequest(RequestBase):
    """One generation request. Iterate :meth:`get` (in the caller's thread) to get token ids."""

    __slots__ = ("prompt", "cfg", "adapter_key", "adapter_index", "out", "cancelled", "slot", "n_read", "n_gen",
                 "next_token", "generated", "seen", "generator", "done", "cached", "t_submit")

    def __init__(self, prompt: list[int], cfg: GenerationConfig, adapter_index: int = 0,
                 adapter_key: Any = None):
        self.prompt = prompt
        self.cfg = cfg
        self.adapter_index = adapter_index  # row of the LoRA bank (0: the base model)
        self.adapter_key = adapter_key  # identity of the adapter for prefix reuse (None: base model)
        self.out: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self.cancelled = False
        self.slot = -1
        self.n_read = 0  # prompt tokens whose K/V is in the slot
        self.n_gen = 0
        self.next_token = -1
        self.generated: list[int] = []
        self.seen: torch.Tensor | None = None  # prompt + generated, only when a repetition penalty applies
        self.generator: torch.Generator | None = None
        self.done = False
        self.cached = 0  # prompt tokens whose K/V was reused from an earlier request
        self.t_submit = time.perf_counter()

    @property
    def reserve(self) -> int:
        return len(self.prompt) + self.cfg.max_new_tokens



class _Slot:
    """What a free slot's K/V rows hold (for prefix reuse)."""

    __slots__ = ("tokens", "key", "used")

    def __init__(self) -> None:
        self.tokens: list[int] = []
        self.key: Any = None
        self.used = 0.0


class StaticRunner:
    """The device side: weights, the KV cache, the LoRA bank, the ops set (torch or Triton kernels) and the
    (optionally compiled) decode step."""

    #: shortest attention window (positions) of a decode step; windows are powers of two up to ``max_len``
    min_attn = 128

    def __init__(self, weights: StaticWeights, slots: int, max_len: int, compile: bool = False,
                 ops: Ops = TORCH_OPS):
        self.weights = weights
        self.ops = ops
        self.cache = StaticKVCache.allocate(weights, slots, max_len)
        self.bank: LoraBank | None = None
        self.compiled = False
        self.compile_mode = ""
        self._decode: Callable[..., torch.Tensor] = decode_one_token
        if compile:
            self.enable_compile()

    def enable_compile(self) -> None:
        """``torch.compile`` the decode step: ``mode="reduce-overhead"`` (CUDA graphs) on CUDA, the default mode
        elsewhere. Weights, cache and LoRA stacks are marked as static addresses so graphs never copy them."""
        import torch._dynamo

        cuda = self.weights.device.type == "cuda"
        self.compile_mode = "reduce-overhead" if cuda else "default"
        cfg = torch._dynamo.config
        for attr in ("recompile_limit", "cache_size_limit"):  # (batch, window) buckets, adapter banks
            if hasattr(cfg, attr):
                setattr(cfg, attr, max(getattr(cfg, attr), 64))
        if cuda:
            self._mark_static()
        # automatic dynamic shapes: the first bucket compiles static, the next one recompiles with symbolic batch and
        # window sizes, and every later bucket reuses that code (CUDA graphs are still recorded per bucket, cheaply)
        self._decode = torch.compile(decode_one_token, mode=self.compile_mode, fullgraph=True)
        self.compiled = True

    def _mark_static(self) -> None:
        import torch._dynamo

        tensors = [self.cache.k, self.cache.v, self.weights.embed, self.weights.norm, self.weights.cos,
                   self.weights.sin, self.weights.lm_head.weight]
        for layer in self.weights.layers:
            tensors += [layer.attn_norm, layer.mlp_norm]
            for lin in layer.linears().values():
                tensors += [t for t in (lin.weight, lin.bias, lin.scale) if t is not None]
        if self.bank is not None:
            for stacks in self.bank.layers:
                for st in stacks.values():
                    if st is not None:
                        tensors += [st.a, st.b]
        for t in tensors:
            torch._dynamo.mark_static_address(t)

    def set_bank(self, bank: LoraBank | None) -> None:
        self.bank = bank
        if self.compiled and self.weights.device.type == "cuda":
            self._mark_static()

    @property
    def slots(self) -> int:
        return self.cache.slots

    @property
    def max_len(self) -> int:
        return self.cache.max_len

    def attn_window(self, longest: int) -> int:
        return min(self.max_len, max(self.min_attn, next_pow2(longest)))

    def prefill(self, tokens: list[int], start: int, slot: int, adapter: int) -> torch.Tensor:
        t = torch.tensor(tokens, dtype=torch.long, device=self.weights.device)
        return prefill(self.weights, self.cache, t, start, slot, self.bank, adapter, self.ops)

    @torch.inference_mode()
    def decode(self, tokens: list[int], positions: list[int], adapters: list[int]) -> torch.Tensor:
        dev = self.weights.device
        window = self.attn_window(max(p for p in positions if p < self.max_len - 1) + 1)
        return self._decode(self.weights, self.cache, torch.tensor(tokens, dtype=torch.long, device=dev),
                            torch.tensor(positions, dtype=torch.long, device=dev),
                            torch.tensor(adapters, dtype=torch.long, device=dev), self.bank, window, self.ops)


class StaticScheduler(EngineQueue):
    """Owns the engine thread; requests come in through :meth:`submit` and leave through their queues."""

    thread_name = "puyu-torch-static"

    #: shortest shared prefix worth reusing
    min_reuse = 4
    #: seconds without work after which the engine thread ends (submit starts another); None: never (CUDA graphs
    #: recorded by ``torch.compile`` belong to the thread that recorded them)
    idle_exit_s: float | None = 2.0

    def __init__(self, runner: StaticRunner, *, eos: frozenset[int] = frozenset(), max_queue: int = 256,
                 prefix_cache: bool = True, prefill_chunk: int = 512):
        self.runner = runner
        self.eos = eos
        self.max_queue = max_queue
        self.prefix_cache = prefix_cache
        self.prefill_chunk = prefill_chunk
        self.slots = [_Slot() for _ in range(runner.slots)]
        self.free = list(range(runner.slots))
        self._pending: deque[StaticRequest] = deque()
        self._active: list[StaticRequest] = []
        self._cond = threading.Condition()
        #: held by the engine thread during a step; hold it to change weights or adapters between steps
        self.step_lock = threading.RLock()
        self._stop = False
        self._drop_requested = False
        self._thread: threading.Thread | None = None
        self._retiring: dict[int, Callable[[], None]] = {}  # adapter index -> called once no request uses it
        self.stats = {"steps": 0, "decode_steps": 0, "decoded": 0, "prefill_tokens": 0, "reused": 0,
                      "max_batch": 0, "copies": 0, "mixed_adapter_steps": 0}

    # -- the caller's side ---------------------------------------------------------------------------------------
    def submit(self, req: StaticRequest) -> StaticRequest:
        if req.reserve > self.runner.max_len - 1:
            raise EngineError(f"the request needs {req.reserve} positions (prompt + max_new_tokens) but a slot "
                              f"holds {self.runner.max_len - 1}")
        return self._enqueue(req)

    def uses_adapter(self, index: int) -> bool:
        with self._cond:
            return any(r.adapter_index == index for r in list(self._active) + list(self._pending))

    def retire_adapter(self, index: int, key: Any, on_free: Callable[[], None]) -> None:
        """Forget the cached prefixes of adapter ``key``; call ``on_free`` once no request uses bank row
        ``index`` (at once when none does)."""
        with self._cond:
            for q in self.free:
                if self.slots[q].key == key:
                    self.slots[q].tokens, self.slots[q].key = [], None
            in_use = any(r.adapter_index == index for r in list(self._active) + list(self._pending))
            if in_use:
                self._retiring[index] = on_free
                self._cond.notify()
                return
        with self.step_lock:
            on_free()

    def clear_cache(self) -> None:
        """Forget every cached prefix (at once when idle, else before the next admission)."""
        with self._cond:
            self._drop_requested = True
            self._cond.notify()
            if self._thread is None or not self._thread.is_alive():
                self._drop_cache()

    def close(self) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify()
        if self._thread is not None:
            self._thread.join(timeout=30)
        for r in list(self._active) + list(self._pending):
            r.out.put(EngineError("the engine was closed"))

    # -- the engine thread ---------------------------------------------------------------------------------------
    def _drop_cache(self) -> None:
        self._drop_requested = False
        for q in self.free:
            self.slots[q].tokens, self.slots[q].key = [], None

    def _pick_slot(self, req: StaticRequest) -> tuple[int, int, int]:
        """``(free slot to use, slot to take the prefix from or -1, prefix length)``."""
        src, best = -1, 0
        if self.prefix_cache:
            limit = len(req.prompt) - 1  # the last prompt token is read again: its logits start decoding
            for q in self.free:
                s = self.slots[q]
                k = min(_common_prefix(s.tokens, req.prompt), limit) if s.key == req.adapter_key else 0
                if k > best:
                    src, best = q, k
            for r in self._active:
                if r.adapter_key == req.adapter_key:
                    k = min(_common_prefix(r.kv_tokens(), req.prompt), limit)
                    if k > best:
                        src, best = r.slot, k
        if best < self.min_reuse:
            src, best = -1, 0
        if src in self.free:
            return src, src, best
        # empty slots first, lowest index first (a decode step covers slots 0 .. B-1), then the least recently used
        target = min(self.free, key=lambda q: (1, self.slots[q].used, q) if self.slots[q].tokens else (0, 0.0, q))
        return target, src, best

    def _admit(self) -> None:
        if self._drop_requested:
            self._drop_cache()
        for req in list(self._pending):
            if req.cancelled:
                self._pending.remove(req)
                req.done = True
                continue
            if not self.free:
                break
            slot, src, k = self._pick_slot(req)
            self._pending.remove(req)
            self.free.remove(slot)
            if src >= 0 and src != slot:
                self.runner.cache.copy_rows(src, slot, k)
                self.stats["copies"] += 1
            self.slots[slot].tokens, self.slots[slot].key = [], req.adapter_key
            req.slot, req.n_read, req.cached = slot, k, k
            self.stats["reused"] += k
            dev = self.runner.weights.device
            if req.cfg.repetition_penalty != 1.0:
                req.seen = torch.tensor([req.prompt], dtype=torch.long, device=dev)
            if req.cfg.do_sample:
                req.generator = torch.Generator(device=dev)
                req.generator.manual_seed(req.cfg.seed if req.cfg.seed is not None else int(time.time_ns() % 2**31))
            self._active.append(req)

    def _retire(self, req: StaticRequest, error: BaseException | None = None) -> None:
        req.done = True
        if req.slot >= 0:
            slot = self.slots[req.slot]
            if self.prefix_cache and error is None and req.adapter_index not in self._retiring:
                slot.tokens, slot.key, slot.used = req.kv_tokens(), req.adapter_key, time.perf_counter()
            else:
                slot.tokens, slot.key = [], None
            self.free.append(req.slot)
            req.slot = -1
        req.out.put(error if error is not None else _END)

    def _free_retiring(self) -> None:
        in_use = {r.adapter_index for r in list(self._active) + list(self._pending)}
        for index in [i for i in self._retiring if i not in in_use]:
            on_free = self._retiring.pop(index)
            with self.step_lock:
                on_free()

    def _loop(self) -> None:
        while True:
            with self._cond:
                for r in [r for r in self._active if r.cancelled]:
                    self._active.remove(r)
                    self._retire(r)
                if self._retiring:
                    self._free_retiring()
                self._admit()
                while not self._active and not self._stop:
                    if not self._pending and not self._cond.wait(timeout=self.idle_exit_s) \
                            and self.idle_exit_s is not None:
                        if not self._pending and not self._active:
                            self._thread = None
                            return
                    if self._retiring:
                        self._free_retiring()
                    self._admit()
                if self._stop:
                    return
                active = list(self._active)
            try:
                with self.step_lock:
                    finished = self._step(active)
            except BaseException as exc:  # never leave callers waiting forever
                with self._cond:
                    self._drop_cache()
                    for r in active:
                        if r in self._active:
                            self._active.remove(r)
                            self._retire(r, exc if isinstance(exc, PuyuError) else EngineError(
                                f"the torch static engine failed: {type(exc).__name__}: {exc}"))
                continue
            if finished:
                with self._cond:
                    for r in finished:
                        if r in self._active:
                            self._active.remove(r)
                            self._retire(r)

    def _step(self, active: list[StaticRequest]) -> list[StaticRequest]:
        self.stats["steps"] += 1
        finished: list[StaticRequest] = []
        runner = self.runner
        gen = [r for r in active if r.n_read == len(r.prompt) and r.n_gen > 0 and not r.cancelled]
        if gen:
            b = min(runner.slots, next_pow2(max(r.slot for r in gen) + 1))
            trash = runner.max_len - 1
            tokens, positions, adapters = [0] * b, [trash] * b, [0] * b
            for r in gen:
                tokens[r.slot] = r.next_token
                positions[r.slot] = len(r.prompt) + r.n_gen - 1
                adapters[r.slot] = r.adapter_index
            logits = runner.decode(tokens, positions, adapters)
            ids = self._sample(logits, [(r.slot, r) for r in gen])
            self.stats["decode_steps"] += 1
            self.stats["decoded"] += len(gen)
            self.stats["max_batch"] = max(self.stats["max_batch"], len(gen))
            if len({r.adapter_index for r in gen}) > 1:
                self.stats["mixed_adapter_steps"] += 1
            for r, tid in zip(gen, ids):
                if self._deliver(r, tid):
                    finished.append(r)
        budget = self.prefill_chunk
        for r in active:
            left = len(r.prompt) - r.n_read
            if left <= 0 or budget <= 0 or r.cancelled:
                continue
            take = min(left, budget)
            logits = runner.prefill(r.prompt[r.n_read:r.n_read + take], r.n_read, r.slot, r.adapter_index)
            r.n_read += take
            budget -= take
            self.stats["prefill_tokens"] += take
            if r.n_read == len(r.prompt):
                (tid,) = self._sample(logits.unsqueeze(0), [(0, r)])
                if self._deliver(r, tid):
                    finished.append(r)
        return finished

    def _sample(self, logits: torch.Tensor, rows: list[tuple[int, StaticRequest]]) -> list[int]:
        """The next token of each ``(row of logits, request)``, fetched from the device in one transfer."""
        from ...core.sampling import select_next

        picked = logits.argmax(dim=-1)
        for row, r in rows:
            cfg = r.cfg
            if cfg.do_sample or cfg.repetition_penalty != 1.0:
                seen = r.seen if r.seen is not None else torch.empty(1, 0, dtype=torch.long, device=logits.device)
                picked[row] = select_next(logits[row:row + 1], cfg, seen, r.generator)[0]
        ids = picked.tolist()
        return [ids[row] for row, _ in rows]

    def _deliver(self, r: StaticRequest, tid: int) -> bool:
        """Hand ``tid`` to the caller; True when the request is finished."""
        r.next_token = tid
        r.generated.append(tid)
        r.n_gen += 1
        if r.seen is not None:
            r.seen = torch.cat([r.seen, torch.tensor([[tid]], device=r.seen.device)], dim=1)
        r.out.put(tid)
        return tid in self.eos or r.n_gen >= r.cfg.max_new_tokens
