"""``LlamaCppLanguageModel``: the :class:`~puyu_apps.core.LanguageModel` interface on llama.cpp.

Prompts are formatted and tokenized, and text is detokenized, with the model's Hugging Face tokenizer exactly as
on the transformers path, so token ids, streaming, stop strings and finish reasons mean the same on both. Decoding
runs in llama.cpp through :class:`~puyu_apps.engine.scheduler.Scheduler` (continuous batching); LoRA adapters in
peft format are converted to GGUF by :mod:`puyu_apps.engine.lora_gguf` and switched per request.

Code that needs the torch modules (``lm.model``, ``lm.adapters.use(...)`` for a loss, training) gets a
transformers copy of the same weights, loaded on first use with the same adapters attached.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any, Iterator

from .._env import env_on
from ..core.adapters import check_new_adapter
from ..core.config import GenerationConfig, LoadConfig
from ..core.model import LanguageModel, Prompt, TokenStream, make_result, stream_pieces
from ..core.types import EngineInfo
from ..errors import AdapterError, InvalidInputError, PromptTooLongError
from . import lora_gguf
from .gguf_model import GgufBase, embedding_rows, fingerprint, read_base
from .llamacpp import LlamaModel, LoraHandle, lora_fused_supported, lora_mask_supported, q4_1_kernels, version
from .scheduler import Request, Scheduler
from .twin import TransformersTwin

BACKEND = "llama.cpp"

#: default number of sequences decoded together
DEFAULT_SEQS = 8
#: default number of llama.cpp contexts (one per adapter group: base model + three verticals)
DEFAULT_LANES = 4
#: default KV cache size (tokens, shared by all sequences) when the model's window is larger
DEFAULT_CTX = 8192


class FastAdapters(TransformersTwin):
    """The adapters of a :class:`LlamaCppLanguageModel`: the same surface as
    :class:`~puyu_apps.core.adapters.AdapterSet` (``names``, ``merged``, ``load``, ``unload``, ``merge``,
    ``use``, ``key``), with each peft adapter converted to a GGUF LoRA and loaded into llama.cpp."""

    def __init__(self, owner: "LlamaCppLanguageModel"):
        self.owner = owner
        self.base_name = owner.name
        self.fingerprint = owner.fingerprint
        self.paths: dict[str, Path] = {}
        self.handles: dict[str, LoraHandle] = {}
        self.gguf_files: dict[str, Path] = {}
        self.merged: list[str] = []
        self.merged_handles: list[LoraHandle] = []
        self.refused: dict[str, str] = {}  # name -> why the fast path could not take it
        self._init_twin()

    @property
    def names(self) -> list[str]:
        return list(self.paths)

    @property
    def keys(self) -> dict[str, str]:
        return {n: n for n in self.paths}

    def load(self, name: str, path: str | Path) -> None:
        path = Path(path)
        check_new_adapter(name, path, self.paths, self.base_name, self.fingerprint)
        owner = self.owner
        try:
            gguf = lora_gguf.cached_convert(name, path, owner.base, self.fingerprint)
        except lora_gguf.UnsupportedAdapterError as exc:
            self.refused[name] = str(exc)
            raise
        handle = owner.llama.load_lora(gguf)
        self.refused.pop(name, None)
        self.paths[name] = path
        self.handles[name] = handle
        self.gguf_files[name] = gguf
        if self._twin is not None:
            self._twin.load(name, path)

    def unload(self, name: str) -> None:
        self._check(name)
        handle = self.handles.pop(name)
        del self.paths[name]
        del self.gguf_files[name]
        self.owner._release(handle)
        if self._twin is not None:
            self._twin.unload(name)

    def merge(self, name: str) -> Any:
        """Make ``name`` part of the base model: it applies to every request from now on (llama.cpp keeps it as a
        runtime LoRA over the quantized weights, which is what merging means for a quantized model); every other
        adapter is unloaded, as on the transformers path."""
        self._check(name)
        keep = self.handles.pop(name)
        for other in list(self.paths):
            if other != name:
                self.owner._release(self.handles.pop(other))
        self.paths.clear()
        self.gguf_files.clear()
        self.merged.append(name)
        self.merged_handles.append(keep)
        if self._twin is not None:
            self._twin.merge(name)
        return None

    def _check(self, name: str) -> None:
        if name not in self.paths:
            if name in self.refused:
                raise lora_gguf.UnsupportedAdapterError(
                    f"adapter {name!r} is not usable on the llama.cpp backend: {self.refused[name]}")
            raise AdapterError(f"no adapter named {name!r} is loaded; loaded: {self.names or 'none'}")

    def key(self, name: str) -> str:
        self._check(name)
        return self.twin.key(name)

    def handles_for(self, name: str | None) -> tuple[LoraHandle, ...]:
        extra = () if name is None else (self.handles[name],)
        return tuple(self.merged_handles) + extra


class LlamaCppLanguageModel(LanguageModel):
    """A GGUF model decoded by llama.cpp behind the :class:`LanguageModel` interface."""

    def __init__(self, *, name: str, gguf: Path, tokenizer: Any, config: Any, source: str, load_config: LoadConfig,
                 eos: set[int], twin_loader: Any, n_seq: int | None = None, n_ctx: int | None = None):
        self.load_config = load_config
        self.name = name
        self.tokenizer = tokenizer
        self.config = config
        self.source = source
        self.gguf_path = Path(gguf)
        self.base: GgufBase = read_base(gguf)
        self.fingerprint = fingerprint(config, embedding_rows(gguf))
        self.llama = LlamaModel(gguf)
        self._q4_1_kernels = q4_1_kernels()  # decided by llama.cpp as it loaded the weights
        self.threads = load_config.threads or _default_threads()
        window = self.base.n_ctx_train or getattr(config, "max_position_embeddings", None) or 2048
        self.n_seq = n_seq or int(os.environ.get("PUYU_APPS_LLAMA_SEQS", DEFAULT_SEQS))
        #: contexts over the shared weights, one per adapter group (``$PUYU_APPS_LLAMA_LANES``); see the scheduler
        self.max_lanes = int(os.environ.get("PUYU_APPS_LLAMA_LANES", DEFAULT_LANES))
        #: requests on different adapters decode in one batch through a combined adapter (our masked-LoRA patch of
        #: llama.cpp; ``$PUYU_APPS_MASKED_LORA=0``: one lane per adapter group instead)
        self.masked_lora = lora_mask_supported() and env_on("PUYU_APPS_MASKED_LORA")
        #: the combined adapter runs our fused kernels: each token multiplies only its own adapter's rank rows
        #: (``$PUYU_APPS_LORA_FUSED=0``: every combined row, then the mask product)
        self.fused_lora = self.masked_lora and lora_fused_supported() and env_on("PUYU_APPS_LORA_FUSED")
        self.n_ctx = min(n_ctx or load_config.max_context or DEFAULT_CTX, window)
        self.max_context = self.n_ctx
        self._eos = eos
        self._twin_loader = twin_loader
        self._merged_paths: dict[str, Path] = {}
        self._lock = threading.RLock()
        self._sched: Scheduler | None = None
        self._sched_lock = threading.Lock()
        #: reuse the KV cells of earlier requests that share a prompt prefix (``$PUYU_APPS_PREFIX_CACHE=0``: off)
        self.prefix_cache = env_on("PUYU_APPS_PREFIX_CACHE")
        self.adapters = FastAdapters(self)  # type: ignore[assignment]

    # -- what the base class reads -----------------------------------------------------------------------------
    @property
    def model(self) -> Any:
        """The transformers copy of the weights (loaded on first use; generation does not need it)."""
        return self.adapters.model

    @property
    def device(self) -> Any:
        import torch

        return torch.device("cpu")

    def _load_twin(self) -> Any:
        return self._twin_loader()

    def merge_adapter(self, name: str) -> None:
        with self._lock:
            path = self.adapters.paths.get(name)
            self.adapters.merge(name)
            if path is not None:
                self._merged_paths[name] = path

    def encode(self, text: str) -> Any:
        import torch

        return torch.tensor([self._encode(text)], dtype=torch.long)

    def _encode(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    # -- engine ---------------------------------------------------------------------------------------------
    @property
    def scheduler(self) -> Scheduler:
        with self._sched_lock:
            if self._sched is None:
                self._sched = Scheduler(self.llama, n_ctx=self.n_ctx, n_seq=self.n_seq, n_threads=self.threads,
                                        prefix_cache=self.prefix_cache, max_lanes=self.max_lanes,
                                        masked_lora=self.masked_lora, fused_lora=self.fused_lora)
                self._sched.eos = frozenset(self._eos)
            self._sched.prefix_cache = self.prefix_cache  # read by the engine thread at each admission
            return self._sched

    def clear_prefix_cache(self) -> None:
        """Forget the KV cells kept for prefix reuse (the next requests read their whole prompt)."""
        if self._sched is not None:
            self._sched.clear_cache()

    def _release(self, handle: LoraHandle) -> None:
        if self._sched is not None:
            self._sched.release_adapter(handle)
        else:
            self.llama.free_lora(handle)

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
        if adapter is not None:
            self.adapters._check(adapter)
        handles = self.adapters.handles_for(adapter)
        ts = TokenStream(iter(()))
        ts._pieces = self._pieces(ts, ids, cfg, adapter, handles)
        return ts

    def _pieces(self, ts: TokenStream, ids: list[int], cfg: GenerationConfig, adapter: str | None,
                handles: tuple[LoraHandle, ...]) -> Iterator[str]:
        t0 = time.perf_counter()
        sched = self.scheduler
        req = sched.submit(Request(ids, cfg, handles))
        try:
            text, finish, out, times = yield from stream_pieces(iter(req.get, None), self.tokenizer, cfg, self._eos)
        finally:
            sched.cancel(req)
        ts.result = make_result(t0, text, finish, len(ids), out, times, adapter=adapter, backend=BACKEND,
                                weight_format=self.weight_format, cached_tokens=req.cached)

    # -- introspection --------------------------------------------------------------------------------------
    @property
    def weight_format(self) -> str:
        fmt = self.base.weight_format
        if fmt.startswith("Q4_1"):  # which Q4_1 kernels ran: ours (scripts/patches/) or llama.cpp's stock ones
            return f"GGUF {fmt} (run by llama.cpp, {self._q4_1_kernels} Q4_1 kernels)"
        return f"GGUF {fmt} (run by llama.cpp)"

    def info(self) -> EngineInfo:
        import torch
        import transformers

        return EngineInfo(
            backend=BACKEND, device="cpu", dtype=self.base.weight_format.split()[0].lower(),
            weight_format=self.weight_format, quantization=self.base.weight_format.split()[0],
            model=self.name, source=self.source, adapters=self.adapters.names,
            merged_adapters=list(self.adapters.merged), threads=self.threads,
            versions={"llama_cpp_python": version(), "torch": torch.__version__,
                      "transformers": transformers.__version__},
            backend_note=getattr(self, "_backend_note", ""),
            mixed_adapters=(f"one batch (masked LoRA{', fused kernels' if self.fused_lora else ''})"
                            if self.masked_lora
                            else "lanes (one llama.cpp context per adapter)"),
        )

    def close(self) -> None:
        """Stop the engine thread and free llama.cpp's memory (also done when the object is collected)."""
        if self._sched is not None:
            self._sched.close()
            self._sched = None
        self.llama.close()

    def __del__(self) -> None:  # pragma: no cover - collection order at shutdown varies
        try:
            self.close()
        except Exception:
            pass


def _default_threads() -> int:
    """Every core. ``OMP_THREAD_LIMIT`` (tesseract's advice, often set beside OCR) binds only an OpenMP build of
    llama.cpp; the one ``make setup`` builds runs its own thread pool."""
    from .._threads import safe_thread_count
    from .llamacpp import uses_openmp

    n = os.cpu_count() or 1
    return safe_thread_count(n) if uses_openmp() else n
