"""Typed configuration of loading and generation. Validation names the bad field."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

_DTYPES = ("float32", "bfloat16", "float16", "auto")
_BACKENDS = ("auto", "transformers", "llama.cpp", "torch-static")
_GGUF_FORMATS = ("f32", "f16", "q8_0", "q5_0", "q4_0", "q4_1")


@dataclass
class LoadConfig:
    """How to load a model.

    ``device``: ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"auto"`` (CUDA when present, else CPU). A device that is
    asked for by name and is missing raises :class:`~puyu_apps.errors.DeviceUnavailableError`: nothing falls back.
    ``dtype``: ``"float32"``, ``"bfloat16"``, ``"float16"`` or ``"auto"`` (bfloat16 on CUDA, float32 on CPU).
    ``max_context``: cap on prompt + generated tokens (default: the model's own window).
    ``backend``: ``"auto"`` (llama.cpp for GGUF models on the CPU when llama-cpp-python is installed, else
    transformers; on a CUDA device, the torch static engine for Llama-layout models; see
    :mod:`puyu_apps.engine.backend`), ``"transformers"``, ``"llama.cpp"`` or ``"torch-static"`` (our batched
    decode path over a static KV cache, :mod:`puyu_apps.engine.static`).
    ``gguf_format``: llama.cpp backend only: run the weights re-exported to this GGUF type (``"q8_0"``,
    ``"q4_0"``, ``"f16"``, ``"f32"``, ``"q5_0"``, ``"q4_1"``; written once into the cache) instead of the file
    as shipped. ``None``: the model's own GGUF file (or F32 for a transformers source).
    """

    device: str = "cpu"
    dtype: str = "auto"
    trust_remote_code: bool = False
    max_context: int | None = None
    threads: int | None = None
    backend: str = "auto"
    gguf_format: str | None = None

    def __post_init__(self) -> None:
        if self.gguf_format is not None and self.gguf_format not in _GGUF_FORMATS:
            raise ValueError(f"LoadConfig.gguf_format must be one of {_GGUF_FORMATS} or None, "
                             f"got {self.gguf_format!r}")
        if self.backend not in _BACKENDS:
            raise ValueError(f"LoadConfig.backend must be one of {_BACKENDS}, got {self.backend!r}")
        if self.dtype not in _DTYPES:
            raise ValueError(f"LoadConfig.dtype must be one of {_DTYPES}, got {self.dtype!r}")
        if not (self.device in ("cpu", "cuda", "auto") or self.device.startswith("cuda:")):
            raise ValueError(f"LoadConfig.device must be 'cpu', 'cuda', 'cuda:N' or 'auto', got {self.device!r}")
        if self.max_context is not None and self.max_context < 8:
            raise ValueError(f"LoadConfig.max_context must be >= 8, got {self.max_context}")
        if self.threads is not None and self.threads < 1:
            raise ValueError(f"LoadConfig.threads must be >= 1, got {self.threads}")


@dataclass
class GenerationConfig:
    """Decoding parameters. ``temperature == 0`` (or ``do_sample=False``) means greedy decoding."""

    max_new_tokens: int = 256
    temperature: float = 0.0
    top_k: int = 0
    top_p: float = 1.0
    repetition_penalty: float = 1.0
    stop: list[str] = field(default_factory=list)
    seed: int | None = None
    do_sample: bool | None = None  # derived from temperature when None

    def __post_init__(self) -> None:
        if isinstance(self.stop, str):
            self.stop = [self.stop]
        self.stop = [s for s in self.stop if s]
        if self.max_new_tokens < 1:
            raise ValueError(f"GenerationConfig.max_new_tokens must be >= 1, got {self.max_new_tokens}")
        if self.temperature < 0:
            raise ValueError(f"GenerationConfig.temperature must be >= 0, got {self.temperature}")
        if self.top_k < 0:
            raise ValueError(f"GenerationConfig.top_k must be >= 0, got {self.top_k}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"GenerationConfig.top_p must be in (0, 1], got {self.top_p}")
        if self.repetition_penalty <= 0:
            raise ValueError(f"GenerationConfig.repetition_penalty must be > 0, got {self.repetition_penalty}")
        if self.do_sample is None:
            self.do_sample = self.temperature > 0
        if self.do_sample and self.temperature == 0:
            self.temperature = 1.0

    def replace(self, **changes: Any) -> "GenerationConfig":
        data = asdict(self)
        if "temperature" in changes and "do_sample" not in changes:
            data["do_sample"] = None
        data.update(changes)
        return GenerationConfig(**data)
