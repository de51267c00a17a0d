"""Typed, JSON-serialisable outputs of the model wrapper."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class EngineInfo(BaseModel):
    """What actually runs: never a guess, never a silent fallback."""

    backend: str = Field(description="decode implementation, e.g. 'transformers-eager'")
    device: str
    dtype: str
    weight_format: str
    quantization: str = "none"
    model: str
    source: str
    adapters: list[str] = []
    merged_adapters: list[str] = []
    threads: int
    versions: dict[str, str] = {}
    backend_note: str = Field(default="", description="why this backend runs (backend='auto' says what it chose)")
    mixed_adapters: str = Field(default="", description="how requests on different adapters share decodes "
                                                        "(llama.cpp backend: 'one batch (masked LoRA)' or 'lanes')")


class GenerationResult(BaseModel):
    text: str
    finish_reason: Literal["stop", "eos", "length"]
    prompt_tokens: int
    completion_tokens: int
    token_ids: list[int] = []
    adapter: str | None = None
    ttft_s: float = Field(description="time to first token, seconds")
    total_s: float
    tokens_per_s: float = Field(description="decode throughput after the first token")
    backend: str
    weight_format: str | None = Field(default=None, description="weights that ran, e.g. 'GGUF Q4_1 (run by llama.cpp)'")
    itl_p50_s: float | None = Field(default=None, description="inter-token latency, median, seconds")
    itl_p99_s: float | None = Field(default=None, description="inter-token latency, 99th percentile, seconds")
    repetition_rate: float | None = Field(default=None, description="share of repeated 4-grams in the output")
    cached_tokens: int = Field(default=0, description="prompt tokens whose KV cache was reused from an earlier "
                                                      "request (shared system prompt, earlier turns), not re-read")
