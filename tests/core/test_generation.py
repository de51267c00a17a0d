import pytest
import torch

from puyu_apps import InvalidInputError, PromptTooLongError
from puyu_apps.core import GenerationConfig, LanguageModel


def test_greedy_is_deterministic(tiny_lm):
    a = tiny_lm.generate("Hello there", max_new_tokens=12)
    b = tiny_lm.generate("Hello there", max_new_tokens=12)
    assert a.token_ids == b.token_ids and a.text == b.text and a.completion_tokens > 0


def test_greedy_equals_transformers_generate(tiny_lm):
    text = tiny_lm.format_prompt("Tell me about lungs")
    ids = tiny_lm.encode(text)
    ours = tiny_lm.generate("Tell me about lungs", max_new_tokens=16)
    with torch.inference_mode():
        ref = tiny_lm.model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=16,
                                     do_sample=False, eos_token_id=sorted(tiny_lm._eos), pad_token_id=0)
    ref_ids = ref[0, ids.shape[1]:].tolist()
    n = len(ours.token_ids)
    assert ours.token_ids == ref_ids[:n]


def test_streaming_equals_non_streaming(tiny_lm):
    stream = tiny_lm.stream("Streaming test", max_new_tokens=20)
    pieces = list(stream)
    full = tiny_lm.generate("Streaming test", max_new_tokens=20)
    assert "".join(pieces) == full.text == stream.result.text
    assert stream.result.token_ids == full.token_ids


def test_sampling_with_seed_is_reproducible_and_differs_from_greedy(tiny_lm):
    cfg = GenerationConfig(max_new_tokens=16, temperature=1.5, top_k=50, top_p=0.95, seed=7)
    a = tiny_lm.generate("Sample me", cfg)
    b = tiny_lm.generate("Sample me", cfg)
    c = tiny_lm.generate("Sample me", cfg.replace(seed=8))
    greedy = tiny_lm.generate("Sample me", max_new_tokens=16)
    assert a.token_ids == b.token_ids
    assert a.token_ids != c.token_ids or a.token_ids != greedy.token_ids


def test_stop_string_truncates_and_never_leaks_into_stream(tiny_lm):
    full = tiny_lm.generate("abc", max_new_tokens=24)
    assert len(full.text) > 6
    stop = full.text[3:6]
    stream = tiny_lm.stream("abc", max_new_tokens=24, stop=[stop])
    streamed = "".join(stream)
    assert stream.result.finish_reason == "stop"
    assert streamed == stream.result.text == full.text[: full.text.find(stop)]
    assert stop not in streamed


def test_max_new_tokens_is_respected(tiny_lm):
    out = tiny_lm.generate("count", max_new_tokens=3)
    assert out.completion_tokens <= 3
    if out.finish_reason == "length":
        assert out.completion_tokens == 3


@pytest.mark.parametrize("prompt", ["", "   ", [], [{"role": "user", "content": ""}]])
def test_empty_prompt_is_refused(tiny_lm, prompt):
    with pytest.raises(InvalidInputError):
        tiny_lm.generate(prompt)


def test_malformed_message_is_refused(tiny_lm):
    with pytest.raises(InvalidInputError, match="message 0"):
        tiny_lm.generate([{"role": "robot", "content": "hi"}])


def test_over_long_prompt_is_refused_before_any_work():
    lm = LanguageModel.load("tiny-random-llama", max_context=64)
    with pytest.raises(PromptTooLongError) as err:
        lm.stream("word " * 200)
    assert err.value.limit == 64 and err.value.n_tokens > 64


def test_generation_is_clipped_to_the_context_window():
    lm = LanguageModel.load("tiny-random-llama", max_context=48)
    n_prompt = lm.encode(lm.format_prompt("a b c d e f")).shape[1]
    out = lm.generate("a b c d e f", max_new_tokens=500)
    assert out.prompt_tokens == n_prompt and out.prompt_tokens + out.completion_tokens <= 48


@pytest.mark.parametrize("field,kwargs", [
    ("max_new_tokens", {"max_new_tokens": 0}), ("temperature", {"temperature": -1}),
    ("top_p", {"top_p": 0}), ("top_k", {"top_k": -2}), ("repetition_penalty", {"repetition_penalty": 0}),
])
def test_generation_config_validation_names_the_field(field, kwargs):
    with pytest.raises(ValueError, match=f"GenerationConfig.{field}"):
        GenerationConfig(**kwargs)


@pytest.mark.integration
def test_embedded_model_answers_in_coherent_english(default_lm):
    out = default_lm.generate("What is the capital of France?", max_new_tokens=32)
    assert "Paris" in out.text and out.finish_reason == "eos"
    stream = default_lm.stream("What is the capital of France?", max_new_tokens=32)
    assert "".join(stream) == out.text


def test_closing_a_stream_stops_it_and_frees_the_model(tiny_lm):
    stream = tiny_lm.stream("Tell me a long story", max_new_tokens=50)
    it = iter(stream)
    next(it)
    stream.close()
    assert stream.result is None and list(it) == []
    stream.close()  # twice is fine
    # the model lock was released: a new call from another thread does not block
    import threading

    done = threading.Event()
    threading.Thread(target=lambda: (tiny_lm.generate("hi", max_new_tokens=2), done.set()), daemon=True).start()
    assert done.wait(30)
    with tiny_lm.stream("again", max_new_tokens=50) as s2:
        next(iter(s2))
    assert s2.result is None
