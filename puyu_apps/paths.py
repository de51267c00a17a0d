"""Where puyu_apps keeps its cache and finds the verticals' assets."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """Cache for converted model packs: ``$PUYU_APPS_CACHE`` or ``~/.cache/puyu_apps``."""
    root = os.environ.get("PUYU_APPS_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "puyu_apps"
    )
    return Path(root)


def assets_dir() -> Path:
    """Folder holding one sub-folder per vertical (manifest, prompts, adapter, small weights).

    ``$PUYU_APPS_ASSETS`` wins; otherwise the ``verticals/`` folder of the source tree.
    """
    env = os.environ.get("PUYU_APPS_ASSETS")
    if env:
        return Path(env)
    return Path(__file__).resolve().parent.parent / "verticals"


def vertical_dir(name: str) -> Path:
    return assets_dir() / name
