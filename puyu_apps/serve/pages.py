"""Static web pages served beside the API (``ServeConfig.pages_dir``, ``puyu serve --pages DIR``) at ``/apps/``.

The example apps in ``examples/web/`` are plain HTML and JavaScript over the public API (``POST /v1/jobs``,
``GET /v1/jobs/{id}``, ``.../result``, ``.../artifacts``): a product team copies the folder and changes it
freely. ``GET /apps/server.json`` tells a page what this server accepts, so it can say so before an upload.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles

from ..errors import PuyuError
from ..pipelines import available, get
from .state import AppState

PREFIX = "/apps"


def mount_pages(app: FastAPI, folder: str | Path) -> None:
    """Serve ``folder`` at ``/apps/`` (``index.html`` for the folder itself)."""
    folder = Path(folder).expanduser().resolve()
    if not folder.is_dir():
        raise ValueError(f"ServeConfig.pages_dir: {str(folder)!r} is not a folder")

    @app.get(f"{PREFIX}/server.json", tags=["ops"], include_in_schema=False)
    async def server_info(request: Request) -> dict[str, Any]:
        state: AppState = request.app.state.puyu
        cfg = state.config
        verticals = {}
        for name in available():
            try:
                cls = get(name)
            except PuyuError:  # a plugin that does not import is simply not offered
                continue
            verticals[name] = {"description": cls.description, "suffixes": list(state.runtime.suffixes(name))}
        return {"max_upload_mb": cfg.max_upload_mb, "max_unzipped_mb": cfg.max_unzipped_mb,
                "keys_required": state.keys_required(), "model": cfg.model, "verticals": verticals}

    @app.get(PREFIX, include_in_schema=False)
    async def folder_root() -> RedirectResponse:
        return RedirectResponse(f"{PREFIX}/")

    app.mount(PREFIX, StaticFiles(directory=folder, html=True), name="apps")
