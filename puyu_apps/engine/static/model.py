"""``StaticLanguageModel``: the :class:`~puyu_apps.core.LanguageModel` interface on the torch static engine.

Prompts are formatted and tokenized, and text is detokenized, with the model's Hugging Face tokenizer exactly as
on the other backends; decoding runs in :class:`~.scheduler.StaticScheduler` (continuous batching over a static
KV cache); peft adapters are stacked into a LoRA bank and chosen per request, several in one batch.

Code that needs the torch modules (``lm.model``, ``lm.adapters.use(...)`` for a loss, training) gets a
transformers copy of the same weights, loaded on first use with the same adapters attached.
"""

from __future__ import annotations

import os
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

import torch

from ..._env import env_on
from ...core.adapters import base_fingerprint, check_new_adapter
from ...core.config import GenerationConfig, LoadConfig
from ...core.generate import eos_token_ids
from ...core.model import LanguageModel, Prompt, TokenStream, make_result, stream_pieces
from ...core.types import EngineInfo
from ...errors import AdapterError, InvalidInputError, PromptTooLongError
from ..lora_gguf import UnsupportedAdapterError
from ..twin import TransformersTwin
from . import BACKEND
from .lora import AdapterTensors, build_bank, merge_into, read_adapter
from .ops import KernelChoice, select_kernels
from .quant import Int8Matmul
from .scheduler import StaticRequest, StaticRunner, StaticScheduler
from .weights import StaticWeights, WeightFormat, from_transformers

#: default number of KV-cache slots (requests decoded together)
DEFAULT_SLOTS = 8
#: default positions per slot when the model's window is larger
DEFAULT_MAX_CONTEXT = 2048


class StaticAdapters(TransformersTwin):
    """The adapters of a :class:`StaticLanguageModel`: the same surface as
    :class:`~puyu_apps.core.adapters.AdapterSet` (``names``, ``merged``, ``load``, ``unload``, ``merge``,
    ``use``, ``key``). Each peft adapter gets a row of the LoRA bank; rows stay put while requests use them."""

    def __init__(self, owner: "StaticLanguageModel"):
        self.owner = owner
        self.base_name = owner.name
        self.fingerprint = owner.fingerprint
        self.paths: dict[str, Path] = {}
        self.index: dict[str, int] = {}  # name -> bank row (>= 1)
        self.tensors: dict[int, AdapterTensors] = {}  # bank row -> tensors (rows of unloaded adapters stay until free)
        self.keys_: dict[str, tuple[str, int]] = {}  # name -> prefix-cache identity (name, load serial)
        self.merged: list[str] = []
        self.refused: dict[str, str] = {}
        self._serial = 0
        self._init_twin()
        self._lock = threading.RLock()

    @property
    def names(self) -> list[str]:
        return list(self.paths)

    @property
    def keys(self) -> dict[str, str]:
        return {n: n for n in self.paths}

    def _rebuild(self) -> None:
        self.owner.runner.set_bank(build_bank(dict(self.tensors), self.owner.weights))

    def load(self, name: str, path: str | Path) -> None:
        path = Path(path)
        with self._lock:
            check_new_adapter(name, path, self.paths, self.base_name, self.fingerprint)
            owner = self.owner
            try:
                tensors = read_adapter(name, path, owner.weights.arch, owner.weights.layers)
            except UnsupportedAdapterError as exc:
                self.refused[name] = str(exc)
                raise
            row = next(i for i in range(1, len(self.tensors) + 2) if i not in self.tensors)
            self._serial += 1
            with owner.step_lock():
                self.tensors[row] = tensors
                self._rebuild()
            self.refused.pop(name, None)
            self.paths[name] = path
            self.index[name] = row
            self.keys_[name] = (name, self._serial)
            if self._twin is not None:
                self._twin.load(name, path)

    def unload(self, name: str) -> None:
        with self._lock:
            self._check(name)
            row = self.index.pop(name)
            key = self.keys_.pop(name)
            del self.paths[name]

            def free() -> None:
                rest = {i: t for i, t in self.tensors.items() if i != row}
                self.owner.runner.set_bank(build_bank(rest, self.owner.weights))
                self.tensors.pop(row, None)

            self.owner._retire_adapter(row, key, free)
            if self._twin is not None:
                self._twin.unload(name)

    def merge(self, name: str) -> Any:
        """Fold ``name`` into the base weights (int8 weights are re-quantized); every other adapter is unloaded,
        as on the transformers path. Cached prefixes are dropped (they were computed with the old weights)."""
        with self._lock:
            self._check(name)
            tensors = self.tensors[self.index[name]]
            for other in list(self.paths):
                if other != name:
                    self.unload(other)
            owner = self.owner
            owner._wait_idle()
            with owner.step_lock():
                merge_into(owner.weights, tensors)
                self.tensors.pop(self.index.pop(name), None)
                self.keys_.pop(name)
                del self.paths[name]
                self._rebuild()
            owner.clear_prefix_cache()
            self.merged.append(name)
            owner._merged_paths[name] = tensors.path
            if self._twin is not None:
                self._twin.merge(name)
        return None

    def _check(self, name: str) -> None:
        if name not in self.paths:
            if name in self.refused:
                raise UnsupportedAdapterError(
                    f"adapter {name!r} is not usable on the torch-static backend: {self.refused[name]}")
            raise AdapterError(f"no adapter named {name!r} is loaded; loaded: {self.names or 'none'}")

    def key(self, name: str) -> str:
        self._check(name)
        return self.twin.key(name)

    def row_for(self, name: str | None) -> tuple[int, Any]:
        """``(bank row, prefix-cache key)`` of a request for adapter ``name`` (None: the base model)."""
        if name is None:
            return 0, None
        self._check(name)
        return self.index[name], self.keys_[name]


class StaticLanguageModel(LanguageModel):
    """A Llama-layout model decoded by the torch static engine behind the :class:`LanguageModel` interface.

    ``slots``: requests decoded together (``$PUYU_APPS_STATIC_SLOTS``, default 8). ``max_context``: positions
    per request (prompt + generated; default the model's window, at most 2048). ``weights``: ``"auto"`` (the
    loaded dtype) or ``"int8"`` (weight-only, per output channel). ``compile``: ``torch.compile`` the decode
    step (default: on for CUDA, off on the CPU, where it did not pay; ``$PUYU_APPS_STATIC_COMPILE=1``/``0``
    overrides). ``kernels``: the memory-bound steps as ``"torch"`` ops or ``"triton"`` kernels (default
    ``$PUYU_APPS_STATIC_KERNELS``, else ``"auto"``: Triton on CUDA when it imports; see :mod:`.ops`)."""

    def __init__(self, loaded: Any, load_config: LoadConfig, *, slots: int | None = None,
                 weights: WeightFormat = "auto", compile: bool | None = None, int8_matmul: Int8Matmul | None = None,
                 kernels: KernelChoice | None = None, twin_loader: Callable[[], Any] | None = None):
        model = loaded.model
        self.load_config = load_config
        self.name = loaded.name
        self.tokenizer = loaded.tokenizer
        self.source = loaded.source
        self._loaded_format = loaded.weight_format
        self.config = model.config
        self.fingerprint = base_fingerprint(model)
        self._eos = eos_token_ids(model, loaded.tokenizer)
        window = getattr(model.config, "max_position_embeddings", None) or 2048
        self.max_context = min(load_config.max_context or DEFAULT_MAX_CONTEXT, window)
        self.n_slots = slots or int(os.environ.get("PUYU_APPS_STATIC_SLOTS", DEFAULT_SLOTS))
        self.weights: StaticWeights = from_transformers(model, max_len=self.max_context + 1, weights=weights,
                                                        int8_matmul=int8_matmul)
        if compile is None:
            env = os.environ.get("PUYU_APPS_STATIC_COMPILE", "").strip()
            compile = env not in ("0", "false", "no") if env else self.weights.device.type == "cuda"
        self.ops = select_kernels(kernels, self.weights.device, self.weights.dtype)
        self.runner = StaticRunner(self.weights, self.n_slots, self.max_context + 1, compile=compile, ops=self.ops)
        # without a loader the transformers model given here is kept as the copy for torch-side code; with one,
        # it is dropped after the weights were read and reloaded on first use
        self._twin_loader = twin_loader or (lambda: loaded)
        self._merged_paths: dict[str, Path] = {}
        self._lock = threading.RLock()
        self._sched: StaticScheduler | None = None
        self._sched_lock = threading.Lock()
        #: reuse the K/V rows of earlier requests that share a prompt prefix (``$PUYU_APPS_PREFIX_CACHE=0``: off)
        self.prefix_cache = env_on("PUYU_APPS_PREFIX_CACHE")
        self.adapters = StaticAdapters(self)  # type: ignore[assignment]

    # -- what the base class reads -----------------------------------------------------------------------------
    @property
    def model(self) -> Any:
        """The transformers copy of the weights (loaded on first use; generation does not need it)."""
        return self.adapters.model

    @property
    def device(self) -> torch.device:
        return self.weights.device

    def _load_twin(self) -> Any:
        return self._twin_loader()

    def merge_adapter(self, name: str) -> None:
        with self._lock:
            self.adapters.merge(name)

    def encode(self, text: str) -> torch.Tensor:
        return torch.tensor([self._encode(text)], dtype=torch.long)

    def _encode(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    # -- engine ---------------------------------------------------------------------------------------------
    @property
    def scheduler(self) -> StaticScheduler:
        with self._sched_lock:
            if self._sched is None:
                self._sched = StaticScheduler(self.runner, eos=frozenset(self._eos), prefix_cache=self.prefix_cache)
                if self.runner.compiled and self.weights.device.type == "cuda":
                    self._sched.idle_exit_s = None  # keep the thread that owns the recorded CUDA graphs
            self._sched.prefix_cache = self.prefix_cache
            return self._sched

    @contextmanager
    def step_lock(self) -> Iterator[None]:
        """Hold the engine between steps (to change weights or the LoRA bank)."""
        if self._sched is None:
            yield
            return
        with self._sched.step_lock:
            yield

    def _retire_adapter(self, row: int, key: Any, free: Callable[[], None]) -> None:
        if self._sched is None:
            free()
        else:
            self._sched.retire_adapter(row, key, free)

    def _wait_idle(self, timeout: float = 60.0) -> None:
        end = time.monotonic() + timeout
        while self._sched is not None and self._sched.busy() and time.monotonic() < end:
            time.sleep(0.01)

    def clear_prefix_cache(self) -> None:
        """Forget the K/V rows kept for prefix reuse (the next requests read their whole prompt)."""
        if self._sched is not None:
            self._sched.clear_cache()

    # -- generation -----------------------------------------------------------------------------------------
    def stream(self, prompt: Prompt, config: GenerationConfig | None = None, *, adapter: str | None = None,
               system: str | None = None, chat: bool | None = None, **overrides: Any) -> TokenStream:
        cfg = (config or GenerationConfig()).replace(**overrides) if overrides else (config or GenerationConfig())
        text = self.format_prompt(prompt, system=system, chat=chat)
        ids = self._encode(text)
        if not ids:
            raise InvalidInputError("the prompt encodes to zero tokens")
        if len(ids) + 1 > self.max_context:
            raise PromptTooLongError(len(ids), self.max_context)
        cfg = cfg.replace(max_new_tokens=min(cfg.max_new_tokens, self.max_context - len(ids)))
        self.adapters.row_for(adapter)  # an unknown or refused adapter fails here, before the first piece
        ts = TokenStream(iter(()))
        ts._pieces = self._pieces(ts, ids, cfg, adapter)
        return ts

    def _pieces(self, ts: TokenStream, ids: list[int], cfg: GenerationConfig, adapter: str | None) -> Iterator[str]:
        t0 = time.perf_counter()
        sched = self.scheduler
        with self.adapters._lock:  # resolved when the request is submitted; an unload waits for the submit
            row, key = self.adapters.row_for(adapter)
            req = sched.submit(StaticRequest(ids, cfg, row, key))
        try:
            text, finish, out, times = yield from stream_pieces(iter(req.get, None), self.tokenizer, cfg, self._eos)
        finally:
            sched.cancel(req)
        ts.result = make_result(t0, text, finish, len(ids), out, times, adapter=adapter, backend=BACKEND,
                                weight_format=self.weight_format, cached_tokens=req.cached)

    # -- introspection --------------------------------------------------------------------------------------
    @property
    def weight_format(self) -> str:
        if self.weights.weights == "int8":
            dt = str(self.weights.dtype).removeprefix("torch.")
            return f"int8 weight-only, per-channel scales ({dt} activations; from {self._loaded_format})"
        return self._loaded_format

    @property
    def decode_path(self) -> str:
        """Which decode step runs: eager torch or ``torch.compile`` (and its mode), with which ops."""
        kernels = self.ops.describe
        if self.runner.compiled:
            extra = ", CUDA graphs" if self.runner.compile_mode == "reduce-overhead" else ""
            return f"torch.compile (mode={self.runner.compile_mode}{extra}), {kernels}"
        return f"eager, {kernels}"

    def info(self) -> EngineInfo:
        import transformers

        note = getattr(self, "_backend_note", "")
        note = f"{note}; decode step: {self.decode_path}" if note else f"decode step: {self.decode_path}"
        quant = "none"
        if self.weights.weights == "int8":
            quant = f"int8 weight-only per-channel ({self.weights.lm_head.int8_matmul})"
        return EngineInfo(
            backend=BACKEND, device=str(self.weights.device), dtype=str(self.weights.dtype).removeprefix("torch."),
            weight_format=self.weight_format, quantization=quant, model=self.name, source=self.source,
            adapters=self.adapters.names, merged_adapters=list(self.adapters.merged),
            threads=torch.get_num_threads(),
            versions={"torch": torch.__version__, "transformers": transformers.__version__},
            backend_note=note,
        )

    def close(self) -> None:
        """Stop the engine thread (also done when the object is collected)."""
        if self._sched is not None:
            self._sched.close()
            self._sched = None

    def __del__(self) -> None:  # pragma: no cover - collection order at shutdown varies
        try:
            self.close()
        except Exception:
            pass


def open_static(name_or_path: str | Path, cfg: LoadConfig, note: str = "", **options: Any) -> StaticLanguageModel:
    """Load ``name_or_path`` with transformers (any device and dtype :func:`~puyu_apps.core.loading.load` takes)
    and build the static engine from it. ``options`` go to :class:`StaticLanguageModel`;
    ``$PUYU_APPS_STATIC_WEIGHTS=int8`` selects int8 weights when ``weights`` is not given."""
    from ...core.loading import load, resolve_device

    options.setdefault("weights", os.environ.get("PUYU_APPS_STATIC_WEIGHTS", "").strip() or "auto")

    def twin_loader() -> Any:
        return load(name_or_path, cfg)

    def build() -> StaticLanguageModel:
        return StaticLanguageModel(load(name_or_path, cfg), cfg, twin_loader=twin_loader, **options)

    # on the CPU, load in a thread that ends with the load: torch's OpenMP (libgomp) keeps a team of worker threads
    # for every thread that ran a parallel region until that thread ends, and with two teams alive on few cores
    # every barrier stops spinning: the engine thread's decode steps ran 1.5x slower (28.6 -> 43.0 ms per step of
    # a 30-layer model) while the loading thread's team was alive (docs/engine.md, "Threads")
    lm = build() if resolve_device(cfg.device).type != "cpu" else in_own_thread(build)
    lm._backend_note = note
    return lm


def in_own_thread(fn: Callable[[], Any]) -> Any:
    """``fn()`` run in a thread of its own that ends with it (and its OpenMP team with it); re-raises its error."""
    out: list[Any] = []
    err: list[BaseException] = []

    def run() -> None:
        try:
            out.append(fn())
        except BaseException as exc:  # re-raised in the caller
            err.append(exc)

    t = threading.Thread(target=run, name="puyu-static-load")
    t.start()
    t.join()
    if err:
        raise err[0]
    return out[0]
