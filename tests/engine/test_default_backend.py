"""The embedded model runs on the fast path by default on the CPU (issue 11), and says so everywhere."""

from __future__ import annotations

import json
import os

import pytest

from puyu_apps.core import LanguageModel, shared_model
from puyu_apps.engine import llamacpp

from .conftest import needs_llama

pytestmark = needs_llama


@pytest.fixture(scope="module")
def fast_default():
    return shared_model()  # what the pipelines use


def test_the_embedded_model_loads_on_llama_cpp_by_default(fast_default, monkeypatch):
    info = fast_default.info()
    assert info.backend == "llama.cpp" and info.backend_note.startswith("auto")
    kernels = llamacpp.q4_1_kernels()
    if ("q4_1_repack" in llamacpp.patch_id() and os.environ.get("GGML_Q4_1_REPACK") == "1"
            and b"AVX2 = 1" in llamacpp._lib().llama_print_system_info()):
        assert kernels == "repacked"  # the engine turns our kernels on unless the environment says 0
    # requests on different adapters share decodes through our masked-LoRA patch where the library has it
    masked = llamacpp.lora_mask_supported() and os.environ.get("PUYU_APPS_MASKED_LORA", "1") != "0"
    assert info.mixed_adapters.startswith("one batch (masked LoRA" if masked else "lanes")
    # with version 2 of the patch each token multiplies only its own adapter's rows (unless turned off)
    fused = masked and llamacpp.lora_fused_supported() and os.environ.get("PUYU_APPS_LORA_FUSED", "1") != "0"
    assert ("fused kernels" in info.mixed_adapters) == fused
    assert info.weight_format == f"GGUF Q4_1 (token embedding Q8_0) (run by llama.cpp, {kernels} Q4_1 kernels)"
    res = fast_default.generate("Name the capital of France.", max_new_tokens=32)
    assert res.backend == "llama.cpp" and "Paris" in res.text and res.finish_reason == "eos"
    assert "".join(fast_default.stream("Name the capital of France.", max_new_tokens=32)) == res.text
    # the environment or an explicit argument still choose transformers
    monkeypatch.setenv("PUYU_APPS_BACKEND", "transformers")
    assert LanguageModel.load().info().backend.startswith("transformers")


def test_pipelines_and_cli_say_which_backend_ran(fast_default, capsys):
    from puyu_apps import pipeline
    from puyu_apps.cli import main

    result = pipeline("chat")("Name one planet of the solar system.", max_new_tokens=12)
    assert result.engine["backend"] == "llama.cpp"
    assert main(["info", "--model", "smollm2-135m-instruct"]) == 0
    engine = json.loads(capsys.readouterr().out)["engine"]
    assert engine["backend"] == "llama.cpp" and "GGUF Q4_1" in engine["weight_format"]


def test_another_gguf_weight_type_runs_with_the_same_tokenizer(tmp_path):
    lm = LanguageModel.load("smollm2-135m-instruct", gguf_format="q8_0", threads=1)
    try:
        assert lm.info().weight_format == "GGUF Q8_0 (run by llama.cpp)"
        assert "Paris" in lm.generate("Name the capital of France.", max_new_tokens=12).text
    finally:
        lm.close()


def test_the_shipped_adapters_convert_and_change_the_output(fast_default):
    from puyu_apps.paths import vertical_dir

    lm = LanguageModel.load(threads=1, adapters={v: vertical_dir(v) / "adapter" for v in ("service",)})
    try:
        messages = [{"role": "user", "content": "Where is my parcel? I ordered it a week ago."}]
        base = lm.generate(messages, max_new_tokens=16)
        tuned = lm.generate(messages, max_new_tokens=16, adapter="service")
        assert tuned.text != base.text and tuned.adapter == "service" and tuned.backend == "llama.cpp"
    finally:
        lm.close()


def test_service_turns_reuse_the_kv_cache_of_earlier_turns(fast_default, tmp_path):
    from puyu_apps.service import CustomerServicePipeline

    pipe = CustomerServicePipeline(db_url=f"sqlite:///{tmp_path / 't.db'}", tts="espeak-ng", max_new_tokens=24)
    try:
        sid = pipe.session().id
        first = pipe("Hello, my order arrived damaged.", session_id=sid)
        second = pipe("Can I get a refund instead?", session_id=sid)
        assert first.engine["backend"] == "llama.cpp"
        # the second turn's prompt starts with the first turn's: those tokens are not read again
        assert second.llm_reusable_tokens > 0
        assert second.llm_cached_tokens > 0 and abs(second.llm_cached_tokens - second.llm_reusable_tokens) <= 2
    finally:
        pipe.close()


def test_llama_cpp_runs_its_own_thread_pool_beside_torch(monkeypatch):
    """The set-up contract: llama.cpp is built without OpenMP. An OpenMP build shares libgomp with torch, and once
    torch's team exists (every pipeline runs torch) each decode was ~2.7x slower (benchmarks/engine_threads.py).
    Without OpenMP, tesseract's OMP_THREAD_LIMIT does not bind the engine's threads either."""
    import os

    from puyu_apps.engine.llamacpp import _lib, uses_openmp
    from puyu_apps.engine.model import _default_threads

    assert not uses_openmp(), (
        f"llama.cpp was built with OpenMP ({_lib().llama_print_system_info()!r}); run `make setup` to rebuild it")
    monkeypatch.setenv("OMP_THREAD_LIMIT", "1")
    assert _default_threads() == (os.cpu_count() or 1)
