"""The HTTP service: OpenAI-compatible chat, one endpoint per vertical, jobs, metrics, keys, backpressure.

    from puyu_apps.serve import ServeConfig, create_app, run
    run(ServeConfig(port=8000))

Importing this package imports no web framework; ``create_app`` does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .config import ABTest, ServeConfig

if TYPE_CHECKING:
    from fastapi import FastAPI

__all__ = ["ABTest", "RemoteLanguageModel", "ServeConfig", "ServerThread", "create_app", "run"]


def create_app(config: ServeConfig | None = None, **kwargs: Any) -> "FastAPI":
    """The FastAPI app (``fastapi`` comes with the ``serve`` extra)."""
    from .._optional import require

    require("fastapi", "serve")
    from .app import create_app as factory

    return factory(config, **kwargs)


def run(config: ServeConfig | None = None) -> None:
    """Serve until interrupted (uvicorn)."""
    from .._optional import require

    config = config or ServeConfig()
    uvicorn = require("uvicorn", "serve")
    uvicorn.run(create_app(config), host=config.host, port=config.port, log_level="info")


def __getattr__(name: str) -> Any:
    if name == "RemoteLanguageModel":
        from .remote import RemoteLanguageModel

        return RemoteLanguageModel
    if name == "ServerThread":
        from .server import ServerThread

        return ServerThread
    raise AttributeError(name)
