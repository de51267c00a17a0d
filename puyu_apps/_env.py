"""Switches read from the environment."""

from __future__ import annotations

import os


def env_on(name: str) -> bool:
    """Whether the switch ``$name`` is on: unset or anything but ``0``, ``false``, ``no`` (after stripping)."""
    return os.environ.get(name, "1").strip() not in ("0", "false", "no")
