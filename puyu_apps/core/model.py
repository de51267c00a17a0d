"""``LanguageModel``: the one object the pipelines talk to.

    lm = LanguageModel.load()                      # the embedded default, offline
    lm.generate("What is a CT scan?").text
    for piece in lm.stream("Hello"): print(piece, end="")
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any, Generator, Iterable, Iterator, Sequence

import torch

from ..engine.metrics import generation_metrics
from ..errors import InvalidInputError, PromptTooLongError
from .adapters import AdapterSet
from .config import GenerationConfig, LoadConfig
from .generate import decode_tokens, eos_token_ids
from .loading import Loaded, load
from .registry import DEFAULT_MODEL, get_entry
from .streaming import TextAccumulator
from .types import EngineInfo, GenerationResult

Messages = Sequence[dict[str, str]]
Prompt = str | Messages

BACKEND = "transformers-eager"


class TokenStream:
    """Iterate to get text pieces as they are generated; ``result`` is set once the stream is exhausted."""

    def __init__(self, pieces: Iterator[str]):
        self._pieces = pieces
        self.result: GenerationResult | None = None

    def __iter__(self) -> Iterator[str]:
        return self._pieces

    def text(self) -> str:
        return "".join(self)

    def close(self) -> None:
        """Stop generating now (the caller hung up, barge-in). The model is free for the next call at once;
        ``result`` stays None for a stream closed before its end. Safe to call more than once."""
        close = getattr(self._pieces, "close", None)
        if close is not None:
            close()

    cancel = close

    def __enter__(self) -> "TokenStream":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def stream_pieces(tokens: Iterable[int], tokenizer: Any, cfg: GenerationConfig,
                  eos: set[int]) -> Generator[str, None, tuple[str, str, list[int], list[float]]]:
    """Text pieces of a token stream (stop strings held back until decided), for every backend; returns
    ``(text, finish_reason, token ids, arrival time of each token)``."""
    acc = TextAccumulator(tokenizer, cfg.stop)
    finish = "length"
    ids: list[int] = []
    times: list[float] = []
    for tid in tokens:
        times.append(time.perf_counter())
        if tid in eos:
            finish = "eos"
            break
        ids.append(tid)
        piece = acc.push(tid)
        if piece:
            yield piece
        if acc.stopped:
            finish = "stop"
            break
    tail = acc.finish()
    if tail:
        yield tail
    return acc.text, finish, ids, times


def make_result(t0: float, text: str, finish: str, prompt_tokens: int, ids: list[int], times: list[float], *,
                adapter: str | None, backend: str, weight_format: str, **extra: Any) -> GenerationResult:
    """The :class:`GenerationResult` of a stream that started at ``t0`` (``time.perf_counter()``)."""
    total = time.perf_counter() - t0
    ttft = times[0] - t0 if times else 0.0
    n = len(ids)
    return GenerationResult(
        text=text, finish_reason=finish, prompt_tokens=prompt_tokens, completion_tokens=n, token_ids=ids,
        adapter=adapter, ttft_s=ttft, total_s=total,
        tokens_per_s=(n - 1) / (total - ttft) if n > 1 and total > ttft else 0.0, backend=backend,
        **extra, **generation_metrics(times, ids, weight_format),
    )


class LanguageModel:
    """A causal LM with its tokenizer, chat template, adapters and a reference decode loop."""

    def __init__(self, loaded: Loaded, load_config: LoadConfig):
        self._loaded = loaded
        self.load_config = load_config
        self.tokenizer = loaded.tokenizer
        self.name = loaded.name
        self.adapters = AdapterSet(loaded.model, loaded.name)
        self._eos = eos_token_ids(loaded.model, loaded.tokenizer)
        window = getattr(loaded.model.config, "max_position_embeddings", None) or 2048
        self.max_context = min(load_config.max_context or window, window)
        self._lock = threading.RLock()

    # -- construction -------------------------------------------------------------------------------------
    @classmethod
    def load(
        cls,
        name_or_path: str | Path = DEFAULT_MODEL,
        *,
        device: str = "cpu",
        dtype: str = "auto",
        max_context: int | None = None,
        trust_remote_code: bool = False,
        threads: int | None = None,
        adapters: dict[str, str | Path] | None = None,
        backend: str = "auto",
        gguf_format: str | None = None,
    ) -> "LanguageModel":
        """``backend``: ``"auto"`` (llama.cpp for GGUF models on the CPU when llama-cpp-python is installed, the
        torch static engine for Llama-layout models on CUDA), ``"transformers"``, ``"llama.cpp"`` or
        ``"torch-static"``; see :mod:`puyu_apps.engine.backend`. ``info()`` says what runs.
        ``gguf_format``: on llama.cpp, the GGUF weight type to run (see :class:`LoadConfig`)."""
        cfg = LoadConfig(device=device, dtype=dtype, max_context=max_context,
                         trust_remote_code=trust_remote_code, threads=threads, backend=backend,
                         gguf_format=gguf_format)
        from ..engine.backend import choose_backend, open_llamacpp

        chosen, note = choose_backend(name_or_path, cfg)
        if chosen == "llama.cpp":
            lm = open_llamacpp(name_or_path, cfg, note)
        elif chosen == "torch-static":
            from ..engine.static.model import open_static

            lm = open_static(name_or_path, cfg, note)
        else:
            lm = cls(load(name_or_path, cfg), cfg)
            lm._backend_note = note
        for name, path in (adapters or {}).items():
            lm.load_adapter(name, path)
        return lm

    @property
    def model(self) -> Any:
        return self.adapters.model

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def is_chat(self) -> bool:
        try:
            entry_chat = get_entry(self.name).chat
        except KeyError:
            entry_chat = True
        return entry_chat and bool(getattr(self.tokenizer, "chat_template", None))

    # -- adapters -----------------------------------------------------------------------------------------
    def load_adapter(self, name: str, path: str | Path) -> None:
        with self._lock:
            self.adapters.load(name, path)

    def unload_adapter(self, name: str) -> None:
        with self._lock:
            self.adapters.unload(name)

    def merge_adapter(self, name: str) -> None:
        """Fold adapter ``name`` into the base weights (other adapters are unloaded)."""
        with self._lock:
            self.adapters.merge(name)

    # -- prompts ------------------------------------------------------------------------------------------
    def format_prompt(self, prompt: Prompt, *, system: str | None = None, chat: bool | None = None) -> str:
        """Apply the chat template (or a plain transcript for base models) and return the prompt text."""
        if isinstance(prompt, str):
            if not prompt.strip():
                raise InvalidInputError("the prompt is empty; pass some text to generate from")
            messages: list[dict[str, str]] = [{"role": "user", "content": prompt}]
        else:
            messages = [dict(m) for m in prompt]
            if not messages or not any(str(m.get("content", "")).strip() for m in messages):
                raise InvalidInputError("the message list is empty; pass at least one non-empty message")
            for i, m in enumerate(messages):
                if m.get("role") not in ("system", "user", "assistant") or not isinstance(m.get("content"), str):
                    raise InvalidInputError(
                        f"message {i} must be {{'role': 'system'|'user'|'assistant', 'content': str}}, got {m!r}"
                    )
        if system and messages[0]["role"] != "system":
            messages.insert(0, {"role": "system", "content": system})
        use_chat = self.is_chat if chat is None else chat
        if use_chat and getattr(self.tokenizer, "chat_template", None):
            return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        if isinstance(prompt, str) and not system:
            return prompt  # a base model continues plain text
        lines = [f"{m['role'].capitalize()}: {m['content']}" for m in messages]
        return "\n".join(lines) + "\nAssistant:"

    def encode(self, text: str) -> torch.Tensor:
        ids = self.tokenizer(text, add_special_tokens=False, return_tensors="pt")["input_ids"]
        return ids.to(self.device)

    # -- generation ---------------------------------------------------------------------------------------
    def generate(self, prompt: Prompt, config: GenerationConfig | None = None, *, adapter: str | None = None,
                 system: str | None = None, chat: bool | None = None, **overrides: Any) -> GenerationResult:
        stream = self.stream(prompt, config, adapter=adapter, system=system, chat=chat, **overrides)
        for _ in stream:
            pass
        assert stream.result is not None
        return stream.result

    def stream(self, prompt: Prompt, config: GenerationConfig | None = None, *, adapter: str | None = None,
               system: str | None = None, chat: bool | None = None, **overrides: Any) -> TokenStream:
        """Stream text pieces. Validation happens here, before the first piece is asked for."""
        cfg = (config or GenerationConfig()).replace(**overrides) if overrides else (config or GenerationConfig())
        text = self.format_prompt(prompt, system=system, chat=chat)
        input_ids = self.encode(text)
        n_prompt = input_ids.shape[1]
        if n_prompt == 0:
            raise InvalidInputError("the prompt encodes to zero tokens")
        if n_prompt + 1 > self.max_context:
            raise PromptTooLongError(n_prompt, self.max_context)
        cfg = cfg.replace(max_new_tokens=min(cfg.max_new_tokens, self.max_context - n_prompt))
        if adapter is not None:
            self.adapters._check(adapter)
        ts = TokenStream(iter(()))
        ts._pieces = self._pieces(ts, input_ids, cfg, adapter)
        return ts

    def _pieces(self, ts: TokenStream, input_ids: torch.Tensor, cfg: GenerationConfig,
                adapter: str | None) -> Iterator[str]:
        t0 = time.perf_counter()
        with self._lock, self.adapters.use(adapter) as model:
            text, finish, ids, times = yield from stream_pieces(
                decode_tokens(model, input_ids, cfg, self._eos), self.tokenizer, cfg, self._eos)
        ts.result = make_result(t0, text, finish, int(input_ids.shape[1]), ids, times, adapter=adapter,
                                backend=BACKEND, weight_format=self._loaded.weight_format)

    #: prefix reuse across requests: only the llama.cpp backend keeps KV cells between requests
    prefix_cache = False

    def clear_prefix_cache(self) -> None:
        """Forget KV cells kept for prefix reuse (nothing is kept on this backend)."""

    # -- introspection ------------------------------------------------------------------------------------
    def info(self) -> EngineInfo:
        import transformers

        p = next(self.model.parameters())
        return EngineInfo(
            backend=BACKEND, device=str(p.device), dtype=str(p.dtype).removeprefix("torch."),
            weight_format=self._loaded.weight_format, quantization="none", model=self.name,
            source=self._loaded.source, adapters=self.adapters.names, merged_adapters=self.adapters.merged,
            threads=torch.get_num_threads(),
            versions={"torch": torch.__version__, "transformers": transformers.__version__},
            backend_note=getattr(self, "_backend_note", ""),
        )


_SHARED: dict[tuple, LanguageModel] = {}
_SHARED_LOCK = threading.Lock()


def shared_model(name_or_path: str | Path = DEFAULT_MODEL, *, device: str = "cpu",
                 dtype: str = "auto", backend: str = "auto", gguf_format: str | None = None) -> LanguageModel:
    """One loaded copy per (model, device, dtype, backend, GGUF weight type) in this process, shared by every
    pipeline. ``backend="auto"`` runs GGUF models on llama.cpp on the CPU when it is installed."""
    key = (str(name_or_path), device, dtype, backend, gguf_format)
    with _SHARED_LOCK:
        if key not in _SHARED:
            _SHARED[key] = LanguageModel.load(name_or_path, device=device, dtype=dtype, backend=backend,
                                              gguf_format=gguf_format)
        return _SHARED[key]
