"""Typed errors. Every error says what went wrong and what to do about it."""

from __future__ import annotations


class PuyuError(Exception):
    """Base class of every error raised by puyu_apps."""


class InvalidInputError(PuyuError, ValueError):
    """The caller's input cannot be processed (empty prompt, corrupt file, wrong format...)."""


class PromptTooLongError(InvalidInputError):
    """The prompt does not fit in the model's context window."""

    def __init__(self, n_tokens: int, limit: int):
        self.n_tokens, self.limit = n_tokens, limit
        super().__init__(
            f"the prompt has {n_tokens} tokens but the model accepts at most {limit} (including the tokens to "
            f"generate); shorten the prompt or lower max_new_tokens"
        )


class ModelLoadError(PuyuError):
    """A model could not be found or loaded."""


class UnknownModelError(ModelLoadError, KeyError):
    def __init__(self, name: str, available: list[str]):
        self.name, self.available = name, available
        super().__init__(
            f"unknown model {name!r}: not a registered model name nor an existing folder or .gguf file. "
            f"Registered models: {', '.join(available)}"
        )

    def __str__(self) -> str:  # KeyError would repr() the message
        return self.args[0]


class AdapterError(PuyuError):
    """A LoRA adapter is malformed, missing, or does not fit the loaded base model."""


class AdapterMismatchError(AdapterError):
    """The adapter was trained for another base model."""


class DeviceUnavailableError(PuyuError):
    """The requested device is not available; nothing falls back silently."""


class MissingDependencyError(PuyuError, ImportError):
    """An optional dependency is not installed; the message gives the install command."""


class UnknownVerticalError(PuyuError, KeyError):
    def __init__(self, name: str, available: list[str]):
        self.name, self.available = name, available
        super().__init__(
            f"unknown vertical {name!r}; available verticals: {', '.join(sorted(available)) or '(none)'}. "
            f"Third-party verticals register through the entry-point group 'puyu_apps.verticals'"
        )

    def __str__(self) -> str:
        return self.args[0]


class PluginLoadError(PuyuError):
    """A vertical plugin was found but could not be imported."""
