"""Core model wrapper: loading, generation, streaming, adapters."""

from .config import GenerationConfig, LoadConfig
from .model import LanguageModel, TokenStream, shared_model
from .registry import DEFAULT_MODEL, ModelEntry, get_entry, list_models, register_model
from .types import EngineInfo, GenerationResult

__all__ = [
    "DEFAULT_MODEL", "EngineInfo", "GenerationConfig", "GenerationResult", "LanguageModel", "LoadConfig",
    "ModelEntry", "TokenStream", "get_entry", "list_models", "register_model", "shared_model",
]
