"""The torch static engine (backend "torch-static") on tiny random models, on the CPU in fp32: same tokens as
transformers, continuous batching, multi-LoRA in one batch, prefix reuse, int8, errors, backend choice."""

from __future__ import annotations

import threading
import time

import pytest
import torch

from puyu_apps import AdapterError
from puyu_apps.core import GenerationConfig, LanguageModel
from puyu_apps.core.config import LoadConfig
from puyu_apps.engine import backend as backend_mod
from puyu_apps.engine.lora_gguf import UnsupportedAdapterError
from puyu_apps.engine.scheduler import EngineBusyError
from puyu_apps.engine.static.errors import UnsupportedModelError

from .conftest import PROMPTS, make_folder_adapter

TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


@pytest.fixture(scope="module")
def static_lm(tiny_folder):
    lm = LanguageModel.load(str(tiny_folder), backend="torch-static")
    yield lm
    lm.close()


@pytest.fixture(scope="module")
def ref(tiny_folder):
    return LanguageModel.load(str(tiny_folder), backend="transformers")


@pytest.fixture(scope="module")
def three_adapters(tiny_folder, tmp_path_factory):
    """Different ranks and target modules; the third with rsLoRA and per-module rank/alpha."""
    root = tmp_path_factory.mktemp("static_adapters")
    return {
        "a": make_folder_adapter(tiny_folder, root / "a", seed=11, r=8),
        "b": make_folder_adapter(tiny_folder, root / "b", seed=12, r=4, target_modules=["k_proj", "o_proj",
                                                                                         "down_proj"]),
        "c": make_folder_adapter(tiny_folder, root / "c", seed=13, r=6, std=0.15, target_modules=TARGETS,
                                 use_rslora=True, rank_pattern={"k_proj": 2}, alpha_pattern={"o_proj": 3.0}),
    }


def _hf_generate(ref_lm, prompt, n: int) -> list[int]:
    """transformers' own ``generate`` (greedy), cut at EOS like our results."""
    ids = ref_lm.encode(ref_lm.format_prompt(prompt))
    out = ref_lm.model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=n, do_sample=False)
    new = out[0, ids.shape[1]:].tolist()
    for i, t in enumerate(new):
        if t in ref_lm._eos:
            return new[:i]
    return new


def _concurrently(fn, n: int, stagger_s: float = 0.0) -> list:
    got: list = [None] * n
    errors: list = []

    def run(i: int) -> None:
        time.sleep(stagger_s * i)
        try:
            got[i] = fn(i)
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    return got


def test_greedy_equals_transformers_generate_at_batch_1(static_lm, ref):
    for p in PROMPTS:
        assert static_lm.generate(p, max_new_tokens=20).token_ids == _hf_generate(ref, p, 20)


def test_concurrent_mixed_requests_equal_transformers(static_lm, ref):
    """5 requests, mixed prompt lengths and token budgets, admitted at different times while others decode."""
    static_lm.clear_prefix_cache()
    jobs = list(zip(PROMPTS, [5, 17, 9, 24, 12]))
    want = [_hf_generate(ref, p, n) for p, n in jobs]
    before = dict(static_lm.scheduler.stats)
    got = _concurrently(lambda i: static_lm.generate(jobs[i][0], max_new_tokens=jobs[i][1]).token_ids, 5, 0.005)
    assert got == want
    stats = static_lm.scheduler.stats
    assert stats["max_batch"] >= 2 and stats["decoded"] - before["decoded"] > stats["decode_steps"] - before[
        "decode_steps"]  # some steps decoded several requests
    assert static_lm.scheduler.busy() == 0


def test_info_streaming_stop_strings_and_max_tokens(static_lm, ref, tiny_folder):
    info = static_lm.info()
    assert info.backend == "torch-static" and info.device == "cpu" and info.dtype == "float32"
    assert info.backend_note == "asked for; decode step: eager, torch ops" and str(tiny_folder) in info.source
    prompt = "The quick brown fox"
    full = static_lm.generate(prompt, max_new_tokens=24)
    assert full.backend == "torch-static" and full.weight_format == "float32" and full.itl_p50_s is not None
    stream = static_lm.stream(prompt, max_new_tokens=24)
    assert "".join(stream) == full.text and stream.result.token_ids == full.token_ids
    stop = full.text[len(full.text) // 2:][:3]
    cut = static_lm.generate(prompt, max_new_tokens=24, stop=[stop])
    cut_ref = ref.generate(prompt, max_new_tokens=24, stop=[stop])
    assert cut.finish_reason == "stop" and stop not in cut.text
    assert (cut.text, cut.token_ids) == (cut_ref.text, cut_ref.token_ids)
    assert "".join(static_lm.stream(prompt, max_new_tokens=24, stop=[stop])) == cut.text
    short = static_lm.generate(prompt, max_new_tokens=3)
    assert short.finish_reason == "length" and short.completion_tokens == 3


def test_sampling_is_seeded_and_repetition_penalty_applies(static_lm, ref):
    cfg = GenerationConfig(max_new_tokens=10, temperature=0.8, top_k=20, top_p=0.9, seed=7)
    a = static_lm.generate("Once upon a time", cfg).token_ids
    assert static_lm.generate("Once upon a time", cfg).token_ids == a
    assert static_lm.generate("Once upon a time", cfg.replace(seed=8)).token_ids != a
    pen = static_lm.generate("Once upon a time", max_new_tokens=10, repetition_penalty=1.5).token_ids
    assert pen == ref.generate("Once upon a time", max_new_tokens=10, repetition_penalty=1.5).token_ids


def test_three_adapters_in_one_batch_give_each_peft_output(tiny_folder, three_adapters):
    ref = LanguageModel.load(str(tiny_folder), backend="transformers", adapters=three_adapters)
    lm = LanguageModel.load(str(tiny_folder), backend="torch-static", adapters=three_adapters)
    try:
        assert sorted(lm.info().adapters) == ["a", "b", "c"]
        jobs = [(p, ad) for p in PROMPTS[:3] for ad in (None, "a", "b", "c")]
        want = [ref.generate(p, max_new_tokens=10, adapter=ad).token_ids for p, ad in jobs]
        got = _concurrently(lambda i: lm.generate(jobs[i][0], max_new_tokens=10, adapter=jobs[i][1]), len(jobs))
        assert [g.token_ids for g in got] == want
        assert [g.adapter for g in got] == [ad for _, ad in jobs]
        assert lm.scheduler.stats["mixed_adapter_steps"] > 0  # different adapters decoded in the same step
        for i, (_, ad) in enumerate(jobs):
            if ad is not None:
                assert want[i] != want[i - i % 4]  # each adapter changes the base model's output
    finally:
        lm.close()


def test_unload_merge_and_the_transformers_copy(tiny_folder, three_adapters):
    lm = LanguageModel.load(str(tiny_folder), backend="torch-static", adapters=three_adapters)
    ref = LanguageModel.load(str(tiny_folder), backend="transformers", adapters={"a": three_adapters["a"]})
    try:
        with_a = lm.generate(PROMPTS[1], max_new_tokens=10, adapter="a").token_ids
        assert with_a == ref.generate(PROMPTS[1], max_new_tokens=10, adapter="a").token_ids
        lm.unload_adapter("b")
        assert lm.info().adapters == ["a", "c"]
        with pytest.raises(AdapterError, match="no adapter named 'b'"):
            lm.generate("x", adapter="b")
        with lm.adapters.use("a") as model:  # torch-side code gets the transformers copy with the same adapters
            assert model.config.model_type == "llama"
        lm.merge_adapter("a")
        assert lm.info().adapters == [] and lm.info().merged_adapters == ["a"]
        assert lm.generate(PROMPTS[1], max_new_tokens=10).token_ids == with_a
    finally:
        lm.close()


def test_unloading_an_adapter_in_use_lets_its_requests_finish(tiny_folder, three_adapters, monkeypatch):
    lm = LanguageModel.load(str(tiny_folder), backend="torch-static", adapters={"b": three_adapters["b"]})
    ref = LanguageModel.load(str(tiny_folder), backend="transformers", adapters={"b": three_adapters["b"]})
    try:
        want = ref.generate(PROMPTS[3], max_new_tokens=64, adapter="b")
        assert want.completion_tokens > 8
        # hold the engine at its first decode step, so that the request is surely still running when the adapter
        # is unloaded (on the tiny model the whole request can otherwise finish before the unload)
        gate = threading.Event()
        decode = lm.runner.decode

        def gated(*args, **kwargs):
            assert gate.wait(60), "the test never opened the gate"
            return decode(*args, **kwargs)

        monkeypatch.setattr(lm.runner, "decode", gated)
        stream = lm.stream(PROMPTS[3], max_new_tokens=64, adapter="b")
        texts: list[str] = []
        consumer = threading.Thread(target=lambda: texts.append("".join(stream)))
        consumer.start()
        deadline = time.monotonic() + 30
        while not lm.scheduler._active and time.monotonic() < deadline:
            time.sleep(0.01)
        assert lm.scheduler._active, "the request was never admitted"
        lm.unload_adapter("b")  # its bank row stays until the request is done
        assert lm.info().adapters == [] and lm.adapters.tensors
        gate.set()
        consumer.join(60)
        assert texts == [want.text] and stream.result.token_ids == want.token_ids
        deadline = time.monotonic() + 10
        while lm.adapters.tensors and time.monotonic() < deadline:
            time.sleep(0.01)
        assert not lm.adapters.tensors and lm.runner.bank is None  # freed once no request used it
    finally:
        lm.close()


def test_adapters_the_engine_cannot_apply_are_refused(tiny_folder, tmp_path, static_lm):
    dora = make_folder_adapter(tiny_folder, tmp_path / "dora", seed=3, use_dora=True)
    with pytest.raises(UnsupportedAdapterError, match="DoRA.*backend='transformers'"):
        static_lm.load_adapter("dora", dora)
    with pytest.raises(UnsupportedAdapterError, match="not usable on the torch-static backend.*DoRA"):
        static_lm.generate("hello", adapter="dora")
    saved = make_folder_adapter(tiny_folder, tmp_path / "mts", seed=4, modules_to_save=["lm_head"])
    with pytest.raises(UnsupportedAdapterError, match="saves whole modules"):
        static_lm.load_adapter("mts", saved)
    emb = make_folder_adapter(tiny_folder, tmp_path / "emb", seed=5, target_modules=["embed_tokens", "q_proj"])
    with pytest.raises(UnsupportedAdapterError, match="embedding"):
        static_lm.load_adapter("emb", emb)
    assert static_lm.info().adapters == []


def test_queue_full_closed_stream_and_prompt_limits(static_lm, tiny_folder):
    from puyu_apps.engine.static.scheduler import StaticRequest
    from puyu_apps.errors import InvalidInputError, PromptTooLongError

    sched = static_lm.scheduler
    sched.max_queue = 0
    try:
        with pytest.raises(EngineBusyError, match="queue is full"):
            sched.submit(StaticRequest([1, 2, 3], GenerationConfig(max_new_tokens=2)))
    finally:
        sched.max_queue = 256
    stream = static_lm.stream("Tell me a long story", max_new_tokens=200)
    it = iter(stream)
    next(it)
    stream.close()
    assert stream.result is None
    assert static_lm.generate("Once upon a time", max_new_tokens=4).completion_tokens == 4
    assert sched.busy() == 0
    small = LanguageModel.load(str(tiny_folder), backend="torch-static", max_context=32)
    try:
        with pytest.raises(PromptTooLongError):
            small.generate("word " * 100)
        with pytest.raises(InvalidInputError):
            small.generate("   ")
        res = small.generate("Once upon a time", max_new_tokens=100)
        assert res.prompt_tokens + res.completion_tokens <= 32
    finally:
        small.close()


def test_prefix_reuse_same_tokens_and_cached_counts(static_lm, ref):
    static_lm.clear_prefix_cache()
    system = "You are a careful assistant for a hospital. Answer briefly and cite the report. " * 2
    history = [{"role": "system", "content": system}, {"role": "user", "content": "Describe the nodule"}]
    first = static_lm.generate(history, max_new_tokens=12)
    assert first.cached_tokens == 0
    history += [{"role": "assistant", "content": first.text}, {"role": "user", "content": "And its size?"}]
    second = static_lm.generate(history, max_new_tokens=12)
    assert second.cached_tokens >= first.prompt_tokens
    assert second.token_ids == ref.generate(history, max_new_tokens=12).token_ids
    again = static_lm.generate(history, max_new_tokens=12)
    assert again.cached_tokens == again.prompt_tokens - 1 and again.token_ids == second.token_ids
    static_lm.clear_prefix_cache()
    assert static_lm.generate(history, max_new_tokens=4).cached_tokens == 0


def test_prefix_rows_are_copied_from_a_running_request_and_kept_per_adapter(tiny_folder, three_adapters):
    lm = LanguageModel.load(str(tiny_folder), backend="torch-static", adapters={"a": three_adapters["a"]})
    ref = LanguageModel.load(str(tiny_folder), backend="transformers", adapters={"a": three_adapters["a"]})
    try:
        system = {"role": "system", "content": "Review each clause of the contract for risk, in one line. " * 3}
        long_job = [system, {"role": "user", "content": "Clause 1: the supplier delivers in 30 days"}]
        short_job = [system, {"role": "user", "content": "Clause 2: payment within 60 days"}]
        stream = lm.stream(long_job, max_new_tokens=60)
        it = iter(stream)
        next(it)  # the long request is decoding: its rows hold the system prompt
        res = lm.generate(short_job, max_new_tokens=8)
        rest = "".join(it)
        assert res.cached_tokens > 10 and lm.scheduler.stats["copies"] >= 1
        assert res.token_ids == ref.generate(short_job, max_new_tokens=8).token_ids
        assert stream.result is not None and stream.result.text.endswith(rest)
        with_a = lm.generate(short_job, max_new_tokens=8, adapter="a")
        assert with_a.cached_tokens == 0  # the base model's rows are not the adapter's
        assert with_a.token_ids == ref.generate(short_job, max_new_tokens=8, adapter="a").token_ids
    finally:
        lm.close()


def test_int8_agrees_with_fp32_on_teacher_forced_next_tokens(tiny_folder, ref):
    from puyu_apps.core.loading import load
    from puyu_apps.engine.static.scheduler import StaticRunner
    from puyu_apps.engine.static.weights import from_transformers

    text = ("The human lungs are a pair of spongy, air-filled organs located on either side of the chest. The "
            "trachea conducts inhaled air into the lungs through its tubular branches, called bronchi.")
    ids = ref.encode(text)[0].tolist()
    with torch.no_grad():
        want = ref.model(input_ids=torch.tensor([ids])).logits[0].argmax(-1).tolist()
    model = load(str(tiny_folder)).model
    results = {}
    for how in ("dequant", "int8pack"):
        runner = StaticRunner(from_transformers(model, max_len=129, weights="int8", int8_matmul=how), 1, 129)
        got = [int(runner.prefill(ids[:1], 0, 0, 0).argmax())]
        for pos in range(1, len(ids)):
            got.append(int(runner.decode([ids[pos]], [pos], [0])[0].argmax()))
        results[how] = sum(a == b for a, b in zip(got, want)) / len(want)
    assert results["dequant"] >= 0.9 and results["int8pack"] >= 0.9, results
    print("int8 teacher-forced agreement", results)
    lm = LanguageModel.load(str(tiny_folder), backend="torch-static")
    int8 = __import__("puyu_apps.engine.static.model", fromlist=["open_static"]).open_static(
        str(tiny_folder), LoadConfig(backend="torch-static"), weights="int8")
    try:
        assert int8.info().quantization.startswith("int8") and int8.weight_format.startswith("int8")
        assert int8.weights.nbytes() < lm.weights.nbytes() / 3
        assert int8.generate(PROMPTS[0], max_new_tokens=8).completion_tokens == 8
    finally:
        lm.close()
        int8.close()


@pytest.mark.parametrize("model_type,extra", [("internlm3", {}), ("qwen2", {})])
def test_other_llama_layout_models(tmp_path, model_type, extra):
    """A scaled tiny InternLM3 (transformers maps it to the Llama code) and Qwen2 (q/k/v biases)."""
    from transformers import AutoConfig, AutoModelForCausalLM

    from puyu_apps.core.loading import load
    from puyu_apps.core.registry import _tiny

    base = load("tiny-random-llama")
    conf = dict(_tiny(model_type, **extra))
    conf.pop("model_type")
    config = AutoConfig.for_model(model_type, vocab_size=len(base.tokenizer), eos_token_id=base.tokenizer.eos_token_id,
                                  bos_token_id=None, pad_token_id=base.tokenizer.pad_token_id, **conf)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 2 or name.endswith("bias"):
                p.copy_(torch.randn(p.shape, generator=gen) * 0.2)
    if model_type == "qwen2":
        assert model.model.layers[0].self_attn.q_proj.bias is not None
    model.save_pretrained(tmp_path / "m")
    base.tokenizer.save_pretrained(tmp_path / "m")
    ref_lm = LanguageModel.load(str(tmp_path / "m"), backend="transformers")
    lm = LanguageModel.load(str(tmp_path / "m"), backend="torch-static")
    try:
        for p in PROMPTS[:3]:
            assert lm.generate(p, max_new_tokens=12).token_ids == ref_lm.generate(p, max_new_tokens=12).token_ids
    finally:
        lm.close()


def test_rotary_scaling_types_match_transformers_and_others_are_refused():
    from transformers import LlamaConfig
    from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding

    from puyu_apps.engine.static.weights import arch_from_config, rope_tables

    cases = [None, {"rope_type": "linear", "factor": 4.0},
             {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
              "original_max_position_embeddings": 256},
             {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 256}]
    for scaling in cases:
        config = LlamaConfig(hidden_size=64, num_attention_heads=4, num_key_value_heads=2, head_dim=16,
                             max_position_embeddings=1024, rope_theta=50000.0, rope_scaling=scaling)
        arch = arch_from_config(config)
        cos, sin = rope_tables(config, arch, 300, torch.device("cpu"), torch.float32)
        want_cos, want_sin = LlamaRotaryEmbedding(config)(torch.zeros(1), torch.arange(300)[None])
        assert torch.equal(cos, want_cos[0]) and torch.equal(sin, want_sin[0]), scaling
        assert arch.rope_theta == 50000.0
    dynamic = LlamaConfig(rope_scaling={"rope_type": "dynamic", "factor": 2.0})
    with pytest.raises(UnsupportedModelError, match="dynamic.*backend='transformers'"):
        arch_from_config(dynamic)
    from transformers import AutoConfig

    with pytest.raises(UnsupportedModelError, match="model_type 'gpt2'"):
        arch_from_config(AutoConfig.for_model("gpt2"))


def test_backend_choice(monkeypatch, tiny_folder):
    monkeypatch.delenv("PUYU_APPS_BACKEND", raising=False)
    choose = backend_mod.choose_backend
    assert choose(str(tiny_folder), LoadConfig(backend="torch-static")) == ("torch-static", "asked for")
    with pytest.raises(ValueError, match="llama.cpp weight type"):
        choose(str(tiny_folder), LoadConfig(backend="torch-static", gguf_format="q8_0"))
    assert choose(str(tiny_folder), LoadConfig())[0] == "transformers"  # the CPU keeps its choice
    monkeypatch.setattr(backend_mod, "_cpu", lambda device: False)  # as on a CUDA machine
    assert choose(str(tiny_folder), LoadConfig(device="auto")) == ("torch-static",
                                                                   "auto: CUDA device, Llama-layout model (llama)")
    assert choose("tiny-random-internlm3", LoadConfig(device="auto"))[0] == "torch-static"
    other = choose("tiny-random-qwen3", LoadConfig(device="auto"))
    assert other[0] == "transformers" and "not Llama-layout" in other[1]
    monkeypatch.setenv("PUYU_APPS_BACKEND", "torch-static")
    assert choose("tiny-random-qwen3", LoadConfig())[0] == "torch-static"


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("kernels", ["auto", "torch"])
def test_cuda_bf16_compiled_decode_follows_transformers(tiny_folder, kernels, monkeypatch):  # pragma: no cover
    """auto on CUDA: the static engine, bf16, compiled with CUDA graphs, on the Triton kernels (auto) or the
    torch ops; bf16 rounding differs from transformers' (fused projections, other attention and norm kernels),
    so most (not all) greedy outputs must be equal."""
    monkeypatch.setenv("PUYU_APPS_STATIC_KERNELS", kernels)
    lm = LanguageModel.load(str(tiny_folder), device="cuda")
    try:
        info = lm.info()
        assert info.backend == "torch-static" and info.dtype == "bfloat16"
        ops = "Triton kernels" if kernels == "auto" else "torch ops"
        assert "torch.compile (mode=reduce-overhead, CUDA graphs), " + ops in info.backend_note
        ref_lm = LanguageModel.load(str(tiny_folder), backend="transformers", device="cuda", dtype="bfloat16")
        want = [ref_lm.generate(p, max_new_tokens=12).token_ids for p in PROMPTS]
        got = _concurrently(lambda i: lm.generate(PROMPTS[i], max_new_tokens=12).token_ids, len(PROMPTS))
        assert sum(g == w for g, w in zip(got, want)) >= 3
    finally:
        lm.close()
