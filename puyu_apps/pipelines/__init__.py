"""Pipelines: the base class, typed results, and the vertical plugin registry."""

from .base import Pipeline
from .plugins import available, get, register, unregister
from .result import PipelineEvent, PipelineResult

__all__ = ["Pipeline", "PipelineEvent", "PipelineResult", "available", "get", "register", "unregister"]
