"""puyu_apps: industry applications on InternLM-family LLMs.

    import puyu_apps
    with puyu_apps.pipeline("chat") as chat:
        print(chat("What is a CT scan?").answer)

Importing this package loads no model and imports no optional library (MONAI, OCR, ASR...).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._version import __version__
from .errors import (
    AdapterError, AdapterMismatchError, DeviceUnavailableError, InvalidInputError, MissingDependencyError,
    ModelLoadError, PluginLoadError, PromptTooLongError, PuyuError, UnknownModelError, UnknownVerticalError,
)

if TYPE_CHECKING:
    from .pipelines.base import Pipeline

__all__ = [
    "AdapterError", "AdapterMismatchError", "DeviceUnavailableError", "InvalidInputError", "MissingDependencyError",
    "ModelLoadError", "PluginLoadError", "PromptTooLongError", "PuyuError", "UnknownModelError",
    "UnknownVerticalError", "__version__", "available_verticals", "pipeline",
]


def pipeline(vertical: str, **kwargs: Any) -> "Pipeline":
    """The single public entry point: ``pipeline("medical", ...)`` returns a ready-to-call pipeline.

    Construction is cheap; models load on first call (or call ``warm_up()``). Unknown names raise
    :class:`UnknownVerticalError` listing the available verticals.
    """
    from .pipelines.plugins import get

    return get(vertical)(**kwargs)


def available_verticals() -> list[str]:
    from .pipelines.plugins import available

    return list(available())
