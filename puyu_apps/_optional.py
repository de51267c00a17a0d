"""Optional dependencies stay optional: import on use, fail with the exact install hint."""

from __future__ import annotations

import importlib
from types import ModuleType

from .errors import MissingDependencyError


def require(module: str, extra: str, package: str | None = None) -> ModuleType:
    """Import ``module`` or raise :class:`MissingDependencyError` naming the extra that provides it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:  # pragma: no cover - exercised through monkeypatched imports in tests
        pkg = package or module.split(".")[0]
        raise MissingDependencyError(
            f"{pkg} is needed for this feature but could not be imported ({exc}); "
            f"install it with: pip install 'puyu_apps[{extra}]'"
        ) from exc
