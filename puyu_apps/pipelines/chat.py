"""The built-in ``chat`` vertical: a prompt or a message list in, the model's answer out."""

from __future__ import annotations

from typing import Any

from ..core import GenerationConfig
from .base import Pipeline
from .result import PipelineEvent, PipelineResult


class ChatResult(PipelineResult):
    answer: str
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int
    tokens_per_s: float

    def to_text(self) -> str:
        return self.answer


class ChatPipeline(Pipeline):
    name = "chat"
    description = "General assistant chat with the base model (no vertical adapter)"
    result_type = ChatResult
    adapter_subdir = None

    def __init__(self, *, system: str | None = None, max_new_tokens: int = 256, temperature: float = 0.0,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.system = system
        self.max_new_tokens = max_new_tokens
        self.temperature = temperature

    def init_parameters(self) -> dict[str, Any]:
        return {**super().init_parameters(), "system": self.system, "max_new_tokens": self.max_new_tokens,
                "temperature": self.temperature}

    def preprocess(self, inputs: Any, **params: Any) -> dict[str, Any]:
        if isinstance(inputs, (list, tuple)) and inputs and all(isinstance(x, str) for x in inputs):
            inputs = " ".join(inputs)  # several CLI words form one prompt
        gen = GenerationConfig(max_new_tokens=params.get("max_new_tokens", self.max_new_tokens),
                               temperature=params.get("temperature", self.temperature))
        return {"prompt": inputs, "config": gen}

    def _forward(self, prepared: dict[str, Any]) -> Any:
        return self.lm.generate(prepared["prompt"], prepared["config"], adapter=self._adapter_name,
                                system=self.system)

    def postprocess(self, outputs: Any) -> ChatResult:
        return ChatResult(vertical=self.name, answer=outputs.text, finish_reason=outputs.finish_reason,
                          prompt_tokens=outputs.prompt_tokens, completion_tokens=outputs.completion_tokens,
                          tokens_per_s=outputs.tokens_per_s)

    def stream(self, inputs: Any, **params: Any):  # type: ignore[override]
        """Token-level streaming: ``token`` events, then the result."""
        prepared = self.preprocess(inputs, **params)
        self.warm_up()
        ts = self.lm.stream(prepared["prompt"], prepared["config"], adapter=self._adapter_name, system=self.system)
        for piece in ts:
            yield PipelineEvent(kind="token", text=piece)
        assert ts.result is not None
        result = self.postprocess(ts.result)
        info = self.lm.info().model_dump()
        info["active_adapter"] = self._adapter_name
        result.engine = info
        result.timings_s = {"ttft": ts.result.ttft_s, "total": ts.result.total_s}
        yield PipelineEvent(kind="result", result=result)
