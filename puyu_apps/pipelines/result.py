"""Typed pipeline results and stream events; every result serialises to JSON."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict


class PipelineResult(BaseModel):
    """Base of every vertical's result. Subclasses add typed fields."""

    model_config = ConfigDict(extra="forbid")

    vertical: str
    engine: dict[str, Any] = {}
    timings_s: dict[str, float] = {}
    warnings: list[str] = []

    def to_json(self, **kw: Any) -> str:
        return self.model_dump_json(indent=kw.pop("indent", 2), **kw)

    def to_text(self) -> str:
        """A readable rendering; verticals override it."""
        return self.to_json()


class PipelineEvent(BaseModel):
    """One item of ``Pipeline.stream()``: progress of a stage, a generated text piece, or the final result."""

    kind: Literal["progress", "token", "result"]
    stage: str = ""
    message: str = ""
    fraction: float | None = None
    text: str = ""
    result: PipelineResult | None = None
