"""Vertical plugins, found through the entry-point group ``puyu_apps.verticals``.

Built-in verticals register through the very same path (see ``pyproject.toml``). Nothing is scanned at import
time: entry points are listed on first use and a plugin is imported only when it is asked for.
``PUYU_APPS_PLUGINS=name1,name2`` restricts which entry-point plugins are visible (empty: none).
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from typing import TYPE_CHECKING

from ..errors import PluginLoadError, UnknownVerticalError

if TYPE_CHECKING:
    from .base import Pipeline

GROUP = "puyu_apps.verticals"
ENV_FILTER = "PUYU_APPS_PLUGINS"


@dataclass(frozen=True)
class VerticalInfo:
    name: str
    target: str  # "module:Class"
    origin: str  # "entry point (dist==version)" or "runtime"


_lock = threading.Lock()
_runtime: dict[str, type["Pipeline"]] = {}
_loaded: dict[str, type["Pipeline"]] = {}


def _entry_points() -> dict[str, EntryPoint]:
    eps = {ep.name: ep for ep in entry_points(group=GROUP)}
    allowed = os.environ.get(ENV_FILTER)
    if allowed is not None:
        keep = {n.strip() for n in allowed.split(",") if n.strip()}
        eps = {n: ep for n, ep in eps.items() if n in keep}
    return eps


def register(name: str, cls: type["Pipeline"], *, replace: bool = False) -> None:
    """Register a vertical at run time (tests, notebooks). Packages use the entry-point group instead."""
    from .base import Pipeline

    if not (isinstance(cls, type) and issubclass(cls, Pipeline)):
        raise TypeError(f"vertical {name!r} must be a Pipeline subclass, got {cls!r}")
    with _lock:
        if not replace and (name in _runtime or name in _entry_points()):
            raise ValueError(f"a vertical named {name!r} is already registered; pass replace=True to override it")
        _runtime[name] = cls
        _loaded.pop(name, None)


def unregister(name: str) -> None:
    with _lock:
        _runtime.pop(name, None)
        _loaded.pop(name, None)


def available() -> dict[str, VerticalInfo]:
    """Every visible vertical, without importing any of them."""
    out = {}
    for name, ep in _entry_points().items():
        dist = f"{ep.dist.name}=={ep.dist.version}" if ep.dist else "unknown distribution"
        out[name] = VerticalInfo(name, ep.value, f"entry point ({dist})")
    for name, cls in _runtime.items():
        out[name] = VerticalInfo(name, f"{cls.__module__}:{cls.__qualname__}", "runtime")
    return dict(sorted(out.items()))


def get(name: str) -> type["Pipeline"]:
    """The pipeline class of vertical ``name``; imports its plugin on first use."""
    from .base import Pipeline

    with _lock:
        if name in _runtime:
            return _runtime[name]
        if name in _loaded:
            return _loaded[name]
    eps = _entry_points()
    if name not in eps:
        raise UnknownVerticalError(name, list(available()))
    ep = eps[name]
    try:
        cls = ep.load()
    except Exception as exc:  # a broken plugin must not take the host down
        raise PluginLoadError(
            f"vertical {name!r} ({ep.value}) could not be imported: {type(exc).__name__}: {exc}. If it is a "
            f"built-in vertical, install its extra: pip install 'puyu_apps[{name}]'"
        ) from exc
    if not (isinstance(cls, type) and issubclass(cls, Pipeline)):
        raise PluginLoadError(f"entry point {name!r} ({ep.value}) is not a puyu_apps Pipeline subclass")
    with _lock:
        _loaded[name] = cls
    return cls
