"""An example third-party vertical: find the closest FAQ entry, let the LLM phrase the answer.

It subclasses the built-in chat pipeline and overrides two stages; ``pyproject.toml`` registers it under the
entry-point group ``puyu_apps.verticals`` as ``faq``.
"""

from __future__ import annotations

import json
import re
from importlib.resources import files
from typing import Any

from puyu_apps.pipelines.chat import ChatPipeline, ChatResult


class FAQResult(ChatResult):
    matched_question: str
    score: float


def _words(text: str) -> set[str]:
    return set(re.findall(r"\w+", text.lower()))


class FAQPipeline(ChatPipeline):
    name = "faq"
    description = "Answers customer questions from a FAQ file (example plugin)"
    result_type = FAQResult

    def preprocess(self, inputs: Any, **params: Any) -> dict[str, Any]:
        prepared = super().preprocess(inputs, **params)
        faq = json.loads(files("puyu_faq").joinpath("faq.json").read_text(encoding="utf-8"))
        question = _words(str(prepared["prompt"]))
        best = max(faq, key=lambda e: len(question & _words(e["q"])) / (len(_words(e["q"])) or 1))
        score = len(question & _words(best["q"])) / (len(_words(best["q"])) or 1)
        prepared["prompt"] = (f"Answer the customer using this FAQ entry.\nQ: {best['q']}\nA: {best['a']}\n\n"
                              f"Customer: {prepared['prompt']}")
        prepared["match"] = (best["q"], score)
        return prepared

    def _forward(self, prepared: dict[str, Any]) -> Any:
        return super()._forward(prepared), prepared["match"]

    def postprocess(self, outputs: Any) -> FAQResult:
        generation, (question, score) = outputs
        base = super().postprocess(generation)
        return FAQResult(**base.model_dump(), matched_question=question, score=score)

    def stream(self, inputs: Any, **params: Any):  # type: ignore[override]
        # use the staged run (preprocess/_forward/postprocess) rather than the chat token stream
        from puyu_apps.pipelines.base import Pipeline

        return Pipeline.stream(self, inputs, **params)
