"""The llama.cpp backend behind LanguageModel: same outputs, adapters, streaming, errors, concurrency."""

from __future__ import annotations

import threading

import pytest

from puyu_apps import AdapterError, AdapterMismatchError
from puyu_apps.core import GenerationConfig, LanguageModel
from puyu_apps.engine.llamacpp import lora_fused_supported, lora_mask_supported

from .conftest import PROMPTS, make_folder_adapter, needs_llama, same_or_near_tie

pytestmark = needs_llama


def test_greedy_tokens_equal_transformers_on_an_f32_export(fast_lm, ref_lm):
    for p in PROMPTS:
        assert fast_lm.generate(p, max_new_tokens=20).token_ids == ref_lm.generate(p, max_new_tokens=20).token_ids


def test_info_and_results_say_what_ran(fast_lm, tiny_folder):
    info = fast_lm.info()
    assert info.backend == "llama.cpp" and info.device == "cpu"
    assert info.weight_format == "GGUF F32 (run by llama.cpp)" and info.quantization == "F32"
    assert "llama_cpp_python" in info.versions and info.backend_note == "asked for"
    assert str(tiny_folder) in info.source
    res = fast_lm.generate("Once upon a time", max_new_tokens=6)
    assert res.backend == "llama.cpp" and res.weight_format == info.weight_format
    assert res.itl_p50_s is not None and res.itl_p99_s >= res.itl_p50_s and res.repetition_rate is not None


def test_streaming_equals_non_streaming_and_stop_strings(fast_lm, ref_lm):
    prompt = "The quick brown fox"
    full = fast_lm.generate(prompt, max_new_tokens=24)
    stream = fast_lm.stream(prompt, max_new_tokens=24)
    assert "".join(stream) == full.text and stream.result.token_ids == full.token_ids
    # a stop string taken from the middle of the output: text cut before it, finish_reason "stop", same as
    # the transformers path
    stop = full.text[len(full.text) // 2:][:3]
    cut_fast = fast_lm.generate(prompt, max_new_tokens=24, stop=[stop])
    cut_ref = ref_lm.generate(prompt, max_new_tokens=24, stop=[stop])
    assert cut_fast.finish_reason == "stop" and stop not in cut_fast.text
    assert (cut_fast.text, cut_fast.token_ids) == (cut_ref.text, cut_ref.token_ids)
    pieces = list(fast_lm.stream(prompt, max_new_tokens=24, stop=[stop]))
    assert "".join(pieces) == cut_fast.text
    short = fast_lm.generate(prompt, max_new_tokens=3)
    assert short.finish_reason == "length" and short.completion_tokens == 3


def test_sampling_parameters_map(fast_lm):
    cfg = GenerationConfig(max_new_tokens=12, temperature=0.8, top_k=20, top_p=0.9, seed=7)
    a = fast_lm.generate("Once upon a time", cfg).token_ids
    b = fast_lm.generate("Once upon a time", cfg).token_ids
    assert a == b  # the seed makes sampling reproducible
    assert fast_lm.generate("Once upon a time", cfg.replace(seed=8)).token_ids != a
    greedy = fast_lm.generate("Once upon a time", max_new_tokens=12).token_ids
    penalised = fast_lm.generate("Once upon a time", max_new_tokens=12, repetition_penalty=1.5).token_ids
    assert len(penalised) == 12 and penalised != greedy or len(set(greedy)) == len(greedy)


def test_adapters_give_the_adapters_behaviour_and_switch_per_request(tiny_folder, folder_adapters, ref_lm):
    fast = LanguageModel.load(str(tiny_folder), backend="llama.cpp", threads=1,
                              adapters={"a": folder_adapters["a"], "b": folder_adapters["b"]})
    ref_lm.load_adapter("a", folder_adapters["a"])
    ref_lm.load_adapter("b", folder_adapters["b"])
    try:
        assert sorted(fast.info().adapters) == ["a", "b"]
        for p in PROMPTS[:3]:
            base = fast.generate(p, max_new_tokens=12).token_ids
            out_a = fast.generate(p, max_new_tokens=12, adapter="a").token_ids
            out_b = fast.generate(p, max_new_tokens=12, adapter="b").token_ids
            assert out_a != base and out_b != base and out_a != out_b
            assert out_a == ref_lm.generate(p, max_new_tokens=12, adapter="a").token_ids
            assert out_b == ref_lm.generate(p, max_new_tokens=12, adapter="b").token_ids
            assert fast.generate(p, max_new_tokens=12).token_ids == base  # back to the base model
        res = fast.generate(PROMPTS[0], max_new_tokens=4, adapter="a")
        assert res.adapter == "a"
    finally:
        fast.close()


def test_adapters_on_every_projection_rslora_and_rank_patterns_match_peft(tiny_folder, tmp_path, ref_lm):
    """k_proj (permuted with the KV heads), o_proj and the MLP; rsLoRA scaling; per-module rank and alpha."""
    targets = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    full = make_folder_adapter(tiny_folder, tmp_path / "full", seed=6, std=0.15, target_modules=targets)
    rs = make_folder_adapter(tiny_folder, tmp_path / "rs", seed=7, target_modules=targets[:4], use_rslora=True,
                             rank_pattern={"k_proj": 2}, alpha_pattern={"o_proj": 3.0})
    fast = LanguageModel.load(str(tiny_folder), backend="llama.cpp", threads=1, adapters={"full": full, "rs": rs})
    ref_lm.load_adapter("full", full)
    ref_lm.load_adapter("rs", rs)
    try:
        for name in ("full", "rs"):
            for p in PROMPTS[:3]:
                got = fast.generate(p, max_new_tokens=12, adapter=name).token_ids
                assert got == ref_lm.generate(p, max_new_tokens=12, adapter=name).token_ids
                assert got != fast.generate(p, max_new_tokens=12).token_ids
    finally:
        fast.close()


def _concurrently(lm, jobs: list[tuple[str, str | None, int]]) -> list[list[int]]:
    """Greedy token ids of ``(prompt, adapter, max_new_tokens)`` jobs, all submitted at once from threads."""
    got: list = [None] * len(jobs)

    def run(i: int) -> None:
        p, ad, n = jobs[i]
        got[i] = lm.generate(p, max_new_tokens=n, adapter=ad).token_ids

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(jobs))]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=120)
    return got


needs_mask = pytest.mark.skipif(not lora_mask_supported(), reason="a llama.cpp build without our masked-LoRA patch")


@pytest.mark.parametrize("mode,lanes,n_threads", [
    pytest.param("masked", 4, 2, marks=needs_mask), pytest.param("masked", 1, 1, marks=needs_mask),
    pytest.param("unfused", 4, 2, marks=needs_mask), ("lanes", 4, 2), ("lanes", 4, 1), ("lanes", 1, 1)])
def test_mixed_adapters_concurrently_equal_one_at_a_time(tiny_folder, folder_adapters, mode, lanes, n_threads,
                                                        monkeypatch):
    """Ten requests over three adapter groups (base, a, b), same outputs whichever way they decode. Masked LoRA:
    one combined adapter, every group in one decode per context and step (10 requests, 8 slots a context: a second
    context opens for the last ones when there is room for one). Lanes: with 4 lanes each group decodes in its own
    context and none switches adapters after its first decode (with 2 threads, two lanes decode at the same time,
    one thread each); with 1 lane they share the context and switch between groups."""
    monkeypatch.setenv("PUYU_APPS_LLAMA_LANES", str(lanes))
    monkeypatch.setenv("PUYU_APPS_MASKED_LORA", "0" if mode == "lanes" else "1")
    monkeypatch.setenv("PUYU_APPS_LORA_FUSED", "0" if mode == "unfused" else "1")
    fast = LanguageModel.load(str(tiny_folder), backend="llama.cpp", threads=n_threads,
                              adapters={"a": folder_adapters["a"], "b": folder_adapters["b"]})
    ref = LanguageModel.load(str(tiny_folder), backend="transformers",
                             adapters={"a": folder_adapters["a"], "b": folder_adapters["b"]})
    try:
        assert fast.info().mixed_adapters.startswith("lanes" if mode == "lanes" else "one batch")
        assert ("fused kernels" in fast.info().mixed_adapters) == (mode == "masked" and lora_fused_supported())
        jobs = [(p, ad, n) for p, ad, n in zip(PROMPTS * 2, [None, "a", "b"] * 4, [5, 9, 14, 20, 7, 11, 3, 16, 8, 12])]
        expected = [fast.generate(p, max_new_tokens=n, adapter=ad).token_ids for p, ad, n in jobs]
        got = _concurrently(fast, jobs)
        assert all(same_or_near_tie(ref, p, g, e, ad) for (p, ad, _), g, e in zip(jobs, got, expected))
        assert sum(g == e for g, e in zip(got, expected)) >= len(jobs) - 2
        stats = fast.scheduler.stats
        assert stats["steps"] > 0
        if mode != "lanes":
            assert stats["masked_decodes"] > 0
            assert all(lane.masked is None or lane.masked.handle.mask_fused == (mode == "masked")
                       for lane in fast.scheduler.lanes)
            assert stats["combined_builds"] == stats["lanes"] <= min(lanes, 2)
            assert stats["decodes"] <= stats["steps"] * stats["lanes"]  # never a decode per group
        elif lanes == 4:
            assert stats["masked_decodes"] == 0
            assert stats["lanes"] == 3 and stats["switches"] <= 2  # each lane set its adapter once
            assert (fast.scheduler._pool is not None) == (n_threads == 2)  # lanes decoded side by side
        else:
            assert stats["lanes"] == 1 and stats["switches"] > 2
    finally:
        fast.close()


@needs_mask
def test_masked_lora_takes_in_an_adapter_loaded_later_and_drops_an_unloaded_one(tiny_folder, folder_adapters,
                                                                                 ref_lm):
    """The combined adapter is built when a step mixes adapter groups, rebuilt when a request names an adapter it
    lacks (that adapter's output is peft's), and freed when an adapter it holds is unloaded."""
    fast = LanguageModel.load(str(tiny_folder), backend="llama.cpp", threads=1, adapters={"a": folder_adapters["a"]})
    ref_lm.load_adapter("a", folder_adapters["a"])
    ref_lm.load_adapter("b", folder_adapters["b"])
    try:
        sched = fast.scheduler
        assert sched.masked_lora
        fast.generate(PROMPTS[0], max_new_tokens=4, adapter="a")
        assert sched.lanes[0].masked is None  # one group: its own adapter, nothing combined

        def check(jobs):
            jobs = [(p, ad, 16) for p, ad in jobs]
            for (p, ad, _), got in zip(jobs, _concurrently(fast, jobs)):
                assert same_or_near_tie(ref_lm, p, got, ref_lm.generate(p, max_new_tokens=16, adapter=ad).token_ids,
                                        ad)

        check([(PROMPTS[i], [None, "a"][i % 2]) for i in range(4)])
        first = sched.lanes[0].masked
        assert first is not None and first.rank == 8 and sched.stats["combined_builds"] == 1
        fast.load_adapter("b", folder_adapters["b"])
        check([(PROMPTS[i], [None, "a", "b"][i % 3]) for i in range(5)])
        second = sched.lanes[0].masked
        assert second is not first and second.rank == 8 + 4 and sched.stats["combined_builds"] == 2
        assert first.handle not in fast.llama.loras  # the old combined adapter was freed
        fast.unload_adapter("b")
        fast.generate(PROMPTS[0], max_new_tokens=2)  # the engine thread frees the adapter between steps
        assert sched.lanes[0].masked is None and second.handle not in fast.llama.loras
        check([(PROMPTS[i], [None, "a"][i % 2]) for i in range(4)])
        assert sched.lanes[0].masked.rank == 8
    finally:
        fast.close()


@pytest.mark.skipif(not lora_fused_supported(), reason="a llama.cpp build without the fused masked-LoRA kernels")
def test_fused_masked_lora_gives_the_logits_of_the_unfused_one_on_every_mix_of_rows(tiny_folder, folder_adapters,
                                                                                    tmp_path):
    """The fused kernels (each token multiplies only its own rank rows) against the unfused masked adapter (every
    row, then the mask) on an F32 model, where only the order of float sums differs: sequences on the base model,
    on a (rank 8), on b (rank 4) and on both, a prefill of several tokens each and then single-token steps, on 2
    threads (the rows and outputs split between them)."""
    import numpy as np

    from puyu_apps.engine import lora_gguf
    from puyu_apps.engine.llamacpp import Context

    fast = LanguageModel.load(str(tiny_folder), backend="llama.cpp", threads=2,
                              adapters={"a": folder_adapters["a"], "b": folder_adapters["b"]})
    try:
        model = fast.llama
        plain = [fast.adapters.handles[n] for n in ("a", "b")]
        offsets = lora_gguf.combine([h.path for h in plain], tmp_path / "combined.gguf")
        assert offsets == [0, 8, 12]
        fused, unfused = model.load_lora(tmp_path / "combined.gguf"), model.load_lora(tmp_path / "combined.gguf")
        model.enable_mask(fused, offsets[-1], fused=True)
        model.enable_mask(unfused, offsets[-1], fused=False)
        assert fused.mask_fused and not unfused.mask_fused
        rows = [None, np.zeros(12, np.float32), np.zeros(12, np.float32), np.ones(12, np.float32)]
        rows[1][:8] = 1.0
        rows[2][8:] = 1.0
        prompts = [fast._encode(p)[:6] for p in PROMPTS[:4]]
        ctx = Context(model, n_ctx=256, n_seq=4, n_batch=64, n_threads=2)

        def run(handles, masked: bool) -> np.ndarray:
            out = []
            for s in range(4):
                ctx.clear(s)
                if masked:
                    model.set_seq_mask(handles[0], s, rows[s])
            ctx.set_adapters(handles)
            toks = [t for p in prompts for t in p]
            pos = [i for p in prompts for i in range(len(p))]
            seqs = [s for s, p in enumerate(prompts) for _ in p]
            assert ctx.decode(toks, pos, seqs, [True] * len(toks)) == 0
            out.append(np.stack([ctx.logits(i).copy() for i in range(len(toks))]))
            for k in range(3):
                assert ctx.decode([7 + k] * 4, [len(p) + k for p in prompts], [0, 1, 2, 3], [True] * 4) == 0
                out.append(np.stack([ctx.logits(i).copy() for i in range(4)]))
            return np.concatenate(out)

        got, want, base = run((fused,), True), run((unfused,), True), run((), False)
        seq_of = np.array([s for s, p in enumerate(prompts) for _ in p] + [0, 1, 2, 3] * 3)
        assert len(seq_of) == len(got)
        # the KV cache is F16: a value that lands on the other side of a rounding step moves a logit by ~1e-3
        np.testing.assert_allclose(got, want, rtol=0, atol=5e-3)
        np.testing.assert_array_equal(got[seq_of == 0], base[seq_of == 0])  # no row: the base model, exactly
        for s in (1, 2, 3):  # the adapters move these logits by far more (a kernel that added nothing would fail)
            assert np.abs(want[seq_of == s] - base[seq_of == s]).max() > 1.0
        ctx.close()
        model.free_lora(fused)
        model.free_lora(unfused)
    finally:
        fast.close()


def test_combined_lora_file_stacks_the_adapters_with_their_scales_folded(tiny_folder, folder_adapters, tmp_path):
    """lora_gguf.combine: A stacked, B side by side, alpha/r folded into B, zeros where an adapter lacks a weight."""
    import gguf
    import numpy as np

    from puyu_apps.engine import lora_gguf
    from puyu_apps.engine.gguf_model import read_base

    lm = LanguageModel.load(str(tiny_folder), backend="llama.cpp", threads=1)
    try:
        base = read_base(lm.gguf_path)
    finally:
        lm.close()
    only_o = make_folder_adapter(tiny_folder, tmp_path / "o", seed=9, r=2, target_modules=["o_proj"])
    files = [lora_gguf.convert(n, folder_adapters[n], base, tmp_path / f"{n}.gguf") for n in ("a", "b")]
    files.append(lora_gguf.convert("o", only_o, base, tmp_path / "o.gguf"))
    offsets = lora_gguf.combine(files, tmp_path / "combined.gguf")
    assert offsets == [0, 8, 12, 14]

    def tensors(path):
        r = gguf.GGUFReader(path)
        alpha = float(r.fields["adapter.lora.alpha"].contents())
        return alpha, {t.name: np.asarray(t.data, dtype=np.float32).reshape(list(reversed(t.shape)))
                       for t in r.tensors}

    alpha_c, comb = tensors(tmp_path / "combined.gguf")
    assert alpha_c == 0.0
    name = "blk.0.attn_q.weight"
    for f, start, stop in zip(files, offsets, offsets[1:]):
        alpha, src = tensors(f)
        if name + ".lora_a" not in src:  # the o_proj-only adapter: zeros on its rows
            assert not comb[name + ".lora_a"][start:stop].any() and not comb[name + ".lora_b"][:, start:stop].any()
            continue
        r = src[name + ".lora_a"].shape[0]
        np.testing.assert_array_equal(comb[name + ".lora_a"][start:stop], src[name + ".lora_a"])
        np.testing.assert_allclose(comb[name + ".lora_b"][:, start:stop], src[name + ".lora_b"] * alpha / r,
                                   rtol=1e-6)
    assert comb["blk.0.attn_output.weight.lora_a"].shape[0] == 14  # every weight has the whole rank


def test_unloading_an_adapter_drops_its_lane_and_cached_prefixes(tiny_folder, folder_adapters):
    fast = LanguageModel.load(str(tiny_folder), backend="llama.cpp", threads=1, adapters={"a": folder_adapters["a"]})
    try:
        fast.generate(PROMPTS[0], max_new_tokens=6, adapter="a")
        sched = fast.scheduler
        key = (id(fast.adapters.handles["a"]),)
        assert any(key in lane.groups for lane in sched.lanes)
        assert any(s.group == key and s.tokens for lane in sched.lanes for s in lane.slots)
        fast.unload_adapter("a")
        fast.generate(PROMPTS[0], max_new_tokens=2)  # the engine thread frees the adapter between steps
        # a new adapter could be allocated at the same address: nothing computed with the old one may match it
        assert not any(key in lane.groups for lane in sched.lanes)
        assert not any(s.group == key for lane in sched.lanes for s in lane.slots)
        assert all(lane.masked is None or not lane.masked.holds({key[0]}) for lane in sched.lanes)
    finally:
        fast.close()


def test_requests_for_adapters_the_fast_path_cannot_use_fail_clearly(tiny_folder, tmp_path, fast_lm):
    from puyu_apps.engine.lora_gguf import UnsupportedAdapterError

    dora = make_folder_adapter(tiny_folder, tmp_path / "dora", seed=3, use_dora=True)
    with pytest.raises(UnsupportedAdapterError, match="DoRA.*backend='transformers'"):
        fast_lm.load_adapter("dora", dora)
    # a request naming it never falls back to the base model
    with pytest.raises(UnsupportedAdapterError, match="not usable on the llama.cpp backend.*DoRA"):
        fast_lm.generate("hello", adapter="dora")
    with pytest.raises(UnsupportedAdapterError):
        list(fast_lm.stream("hello", adapter="dora"))
    saved = make_folder_adapter(tiny_folder, tmp_path / "mts", seed=4, modules_to_save=["lm_head"])
    with pytest.raises(UnsupportedAdapterError, match="saves whole modules"):
        fast_lm.load_adapter("mts", saved)
    emb = make_folder_adapter(tiny_folder, tmp_path / "emb", seed=5, target_modules=["embed_tokens", "q_proj"])
    with pytest.raises(UnsupportedAdapterError, match="embedding"):
        fast_lm.load_adapter("emb", emb)
    with pytest.raises(AdapterError, match="no adapter named 'nope'"):
        fast_lm.generate("hello", adapter="nope")
    assert fast_lm.info().adapters == []


def test_adapter_for_another_base_is_refused(fast_lm, adapter_dirs, tmp_path):
    with pytest.raises(AdapterMismatchError, match="fingerprint"):
        fast_lm.load_adapter("tiny", adapter_dirs["a"])  # made for the unscaled tiny model
    import shutil

    shutil.copytree(adapter_dirs["qwen"], tmp_path / "q")
    (tmp_path / "q" / "puyu_adapter.json").unlink()  # no fingerprint: only the shapes can tell
    embedded = LanguageModel.load("smollm2-135m-instruct", backend="llama.cpp", threads=1)
    try:
        with pytest.raises(AdapterMismatchError, match="does not fit"):
            embedded.load_adapter("q", tmp_path / "q")
        assert embedded.info().adapters == []
    finally:
        embedded.close()


def test_unload_merge_and_the_transformers_copy(tiny_folder, folder_adapters, ref_lm):
    fast = LanguageModel.load(str(tiny_folder), backend="llama.cpp", threads=1)
    try:
        fast.load_adapter("a", folder_adapters["a"])
        fast.load_adapter("b", folder_adapters["b"])
        with_a = fast.generate(PROMPTS[1], max_new_tokens=10, adapter="a").token_ids
        fast.unload_adapter("b")
        assert fast.info().adapters == ["a"]
        with pytest.raises(AdapterError, match="no adapter named 'b'"):
            fast.generate("x", adapter="b")
        # code that needs torch modules gets the transformers copy, with the same adapters
        with fast.adapters.use("a") as model:
            assert model.config.model_type == "llama"
        fast.merge_adapter("a")
        assert fast.info().adapters == [] and fast.info().merged_adapters == ["a"]
        assert fast.generate(PROMPTS[1], max_new_tokens=10).token_ids == with_a
    finally:
        fast.close()


def test_closing_a_stream_frees_its_slot(fast_lm):
    stream = fast_lm.stream("Tell me a long story", max_new_tokens=200)
    it = iter(stream)
    next(it)
    stream.close()
    assert stream.result is None
    assert fast_lm.generate("Once upon a time", max_new_tokens=4).completion_tokens == 4
    assert fast_lm.scheduler.busy() == 0


def test_prompt_too_long_and_empty_prompt(tiny_folder):
    from puyu_apps.errors import InvalidInputError, PromptTooLongError

    lm = LanguageModel.load(str(tiny_folder), backend="llama.cpp", max_context=32, threads=1)
    try:
        with pytest.raises(PromptTooLongError):
            lm.generate("word " * 100)
        with pytest.raises(InvalidInputError):
            lm.generate("   ")
        res = lm.generate("Once upon a time", max_new_tokens=100)
        assert res.prompt_tokens + res.completion_tokens <= 32
    finally:
        lm.close()


def test_queue_full_is_a_clear_error(fast_lm):
    from puyu_apps.engine.scheduler import EngineBusyError, Request

    sched = fast_lm.scheduler
    sched.max_queue = 0
    try:
        with pytest.raises(EngineBusyError, match="queue is full"):
            sched.submit(Request([1, 2, 3], GenerationConfig(max_new_tokens=2), ()))
    finally:
        sched.max_queue = 256


def _no_cache_twin(tiny_folder, **kw):
    lm = LanguageModel.load(str(tiny_folder), backend="llama.cpp", threads=1, **kw)
    lm.prefix_cache = False
    return lm


def test_prefix_cache_reuses_earlier_turns_and_changes_no_token(fast_lm, tiny_folder, ref_lm):
    plain = _no_cache_twin(tiny_folder)
    try:
        system = "You are a careful assistant for a hospital. Answer briefly and cite the report. " * 2
        history = [{"role": "system", "content": system}, {"role": "user", "content": "Describe the nodule"}]
        first = fast_lm.generate(history, max_new_tokens=12)
        assert first.cached_tokens == 0
        history += [{"role": "assistant", "content": first.text}, {"role": "user", "content": "And its size?"}]
        second = fast_lm.generate(history, max_new_tokens=12)
        # every token of the first turn's prompt was reused, none was read again
        assert second.cached_tokens >= first.prompt_tokens
        assert same_or_near_tie(ref_lm, history, second.token_ids, plain.generate(history, max_new_tokens=12).token_ids)
        assert same_or_near_tie(ref_lm, history, second.token_ids, ref_lm.generate(history, max_new_tokens=12).token_ids)
        again = fast_lm.generate(history, max_new_tokens=12)
        assert again.cached_tokens == again.prompt_tokens - 1 and again.token_ids == second.token_ids
        assert plain.generate(history, max_new_tokens=12).cached_tokens == 0
    finally:
        plain.close()


def test_clearing_the_prefix_cache_while_the_engine_thread_waits_takes_effect(fast_lm):
    prompt = "You are a careful assistant for a hospital. Answer briefly and cite the report. " * 2
    fast_lm.generate(prompt, max_new_tokens=4)
    assert fast_lm.generate(prompt, max_new_tokens=4).cached_tokens > 0
    sched = fast_lm.scheduler
    assert sched._thread is not None and sched._thread.is_alive()  # idle, waiting for work
    fast_lm.clear_prefix_cache()
    assert fast_lm.generate(prompt, max_new_tokens=4).cached_tokens == 0  # the next request starts cold


def test_prefix_cache_is_per_adapter(tiny_folder, folder_adapters):
    lm = LanguageModel.load(str(tiny_folder), backend="llama.cpp", threads=1, adapters={"a": folder_adapters["a"]})
    ref = LanguageModel.load(str(tiny_folder), backend="transformers", adapters={"a": folder_adapters["a"]})
    plain = _no_cache_twin(tiny_folder, adapters={"a": folder_adapters["a"]})
    try:
        prompt = "Describe the nodule in the upper lobe of the left lung, please"
        base = lm.generate(prompt, max_new_tokens=10)
        with_a = lm.generate(prompt, max_new_tokens=10, adapter="a")
        assert with_a.cached_tokens == 0  # the base model's cells are not the adapter's
        assert same_or_near_tie(ref, prompt, with_a.token_ids,
                                plain.generate(prompt, max_new_tokens=10, adapter="a").token_ids, "a")
        assert with_a.token_ids != base.token_ids
        assert lm.generate(prompt, max_new_tokens=10, adapter="a").cached_tokens > 0
    finally:
        lm.close()
        plain.close()


def test_prefix_cache_shares_a_system_prompt_between_concurrent_requests_and_evicts(tiny_folder, ref_lm):
    system = {"role": "system", "content": "Review each clause of the contract for risk and answer in one line. " * 3}
    jobs = [[system, {"role": "user", "content": f"Clause {i}: {p}"}] for i, p in enumerate(PROMPTS * 3)]
    plain = _no_cache_twin(tiny_folder)
    expected = [plain.generate(j, max_new_tokens=6 + i % 5).token_ids for i, j in enumerate(jobs)]
    plain.close()
    # a KV cache of 256 cells: it cannot keep every finished request, so cached prefixes are evicted on the way
    lm = LanguageModel.load(str(tiny_folder), backend="llama.cpp", threads=1, max_context=256)
    try:
        got: list = [None] * len(jobs)

        def run(i: int) -> None:
            got[i] = lm.generate(jobs[i], max_new_tokens=6 + i % 5)

        threads = [threading.Thread(target=run, args=(i,)) for i in range(len(jobs))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        assert all(same_or_near_tie(ref_lm, j, r.token_ids, e) for j, r, e in zip(jobs, got, expected))
        assert sum(r.token_ids == e for r, e in zip(got, expected)) >= len(jobs) - 3
        assert sum(r.cached_tokens > 0 for r in got) >= len(jobs) // 2
        assert lm.scheduler.stats["reused"] > 0
    finally:
        lm.close()
