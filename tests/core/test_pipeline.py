import json

import pytest

from puyu_apps.pipelines import Pipeline
from puyu_apps.pipelines.chat import ChatPipeline, ChatResult


class ShoutingChat(ChatPipeline):
    """An integrator overrides exactly one stage."""

    def postprocess(self, outputs):
        result = super().postprocess(outputs)
        result.answer = result.answer.upper()
        return result


def test_chat_pipeline_result_is_typed_and_serialises(tiny_lm):
    with ChatPipeline(model="tiny-random-llama", max_new_tokens=6) as pipe:
        result = pipe("hello")
    assert isinstance(result, ChatResult) and result.vertical == "chat"
    data = json.loads(result.to_json())
    assert data["engine"]["backend"] == "transformers-eager" and data["engine"]["model"] == "tiny-random-llama"
    assert data["completion_tokens"] <= 6 and set(data["timings_s"]) >= {"ttft", "total"}
    assert ChatResult.model_validate_json(result.to_json()) == result


def test_overriding_one_stage(tiny_lm):
    plain = ChatPipeline(model="tiny-random-llama", max_new_tokens=6)("hello")
    loud = ShoutingChat(model="tiny-random-llama", max_new_tokens=6)("hello")
    assert loud.answer == plain.answer.upper()


def test_stream_yields_tokens_then_the_result():
    pipe = ChatPipeline(model="tiny-random-llama", max_new_tokens=8)
    events = list(pipe.stream("hello"))
    assert events[-1].kind == "result"
    tokens = "".join(e.text for e in events if e.kind == "token")
    assert tokens == events[-1].result.answer


def test_to_dict_from_dict_roundtrip():
    pipe = ChatPipeline(model="tiny-random-llama", system="Be brief.", max_new_tokens=5)
    data = pipe.to_dict()
    assert json.loads(json.dumps(data)) == data  # JSON-serialisable
    again = Pipeline.from_dict(data)
    assert isinstance(again, ChatPipeline) and again.to_dict() == data


def test_construction_is_cheap_and_loads_nothing():
    pipe = ChatPipeline(model="no-such-model-at-all")
    assert pipe._lm is None  # nothing loaded until the first call
    with pytest.raises(Exception, match="no-such-model-at-all"):
        pipe("hi")


def test_base_class_progress_events_reach_stream():
    from puyu_apps.pipelines import PipelineResult

    class Stepper(Pipeline):
        name = "stepper"
        adapter_subdir = None

        def warm_up(self):
            self._warm = True

        def preprocess(self, inputs, **params):
            self.progress("preprocess", "reading", 0.5)
            return inputs

        def _forward(self, prepared):
            for i in range(3):
                self.progress("forward", f"step {i}", (i + 1) / 3)
            return prepared

        def postprocess(self, outputs):
            return PipelineResult(vertical=self.name)

    events = list(Stepper().stream("x"))
    kinds = [(e.kind, e.stage) for e in events]
    assert kinds == [("progress", "preprocess")] + [("progress", "forward")] * 3 + [("result", "")]
    assert set(events[-1].result.timings_s) == {"preprocess", "forward", "postprocess"}


def test_use_model_runs_a_pipeline_on_a_given_model(tiny_lm):
    from puyu_apps.pipelines.chat import ChatPipeline

    pipe = ChatPipeline(model="some-other-name", adapter=None).use_model(tiny_lm)
    assert pipe.lm is tiny_lm and pipe.model_name == tiny_lm.name
    out = pipe("hello", max_new_tokens=3)
    assert out.engine["model"] == tiny_lm.name
