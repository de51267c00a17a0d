"""Fixtures of the llama.cpp backend tests: a tiny Llama folder whose greedy output is not degenerate, adapters."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

from puyu_apps.engine import available

needs_llama = pytest.mark.skipif(not available(), reason="llama-cpp-python is not installed (the 'fast' extra)")
needs_triton = pytest.mark.skipif(importlib.util.find_spec("triton") is None,
                                  reason="Triton is not installed (the 'gpu' extra; the 'dev' extra pins it)")


def _interpret_triton_without_cuda() -> None:
    """No GPU: the Triton kernels run in Triton's interpreter, which reads TRITON_INTERPRET when a kernel is
    defined (our kernels module is imported only by the tests that use it, after this)."""
    import torch

    if not torch.cuda.is_available():
        os.environ.setdefault("TRITON_INTERPRET", "1")


_interpret_triton_without_cuda()

PROMPTS = ["Describe the nodule", "The quick brown fox", "你好，请介绍一下你自己", "Once upon a time", "def f(x):"]


def make_tiny_folder(out: Path, std: float = 0.2, seed: int = 0) -> Path:
    """The tiny random Llama with its matrices drawn at ``std`` (the default init makes every prompt decode to
    the same token), saved as a transformers folder with the Qwen3 tokenizer."""
    import torch

    from puyu_apps.core.loading import load

    loaded = load("tiny-random-llama")
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for _, p in loaded.model.named_parameters():
            if p.dim() == 2:
                p.copy_(torch.randn(p.shape, generator=gen) * std)
    loaded.model.save_pretrained(out)
    loaded.tokenizer.save_pretrained(out)
    return out


def make_folder_adapter(folder: Path, out: Path, seed: int, r: int = 8, std: float = 0.3, **lora_kw) -> Path:
    """A peft LoRA adapter (random non-zero B) for the model in ``folder``, with puyu metadata."""
    import torch
    from peft import LoraConfig, get_peft_model

    from puyu_apps.core.adapters import write_adapter_meta
    from puyu_apps.core.loading import load

    base = load(str(folder)).model
    torch.manual_seed(seed)
    kw = dict(r=r, lora_alpha=2 * r, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    kw.update(lora_kw)
    peft_model = get_peft_model(base, LoraConfig(**kw))
    with torch.no_grad():
        for n, p in peft_model.named_parameters():
            if "lora_B" in n:
                p.normal_(0, std)
    peft_model.save_pretrained(out)
    write_adapter_meta(out, base, str(folder))
    return out


@pytest.fixture(scope="session")
def tiny_folder(tmp_path_factory):
    return make_tiny_folder(tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture(scope="session")
def folder_adapters(tiny_folder, tmp_path_factory):
    root = tmp_path_factory.mktemp("fast_adapters")
    return {
        "a": make_folder_adapter(tiny_folder, root / "a", seed=1),
        "b": make_folder_adapter(tiny_folder, root / "b", seed=2, r=4),
    }


@pytest.fixture()
def ref_lm(tiny_folder):
    from puyu_apps.core import LanguageModel

    return LanguageModel.load(str(tiny_folder), backend="transformers")


@pytest.fixture()
def fast_lm(tiny_folder):
    from puyu_apps.core import LanguageModel

    lm = LanguageModel.load(str(tiny_folder), backend="llama.cpp", threads=1)
    yield lm
    lm.close()



def same_or_near_tie(ref_lm, prompt, got: list[int], want: list[int], adapter: str | None = None,
                     tol: float = 0.01) -> bool:
    """True when two greedy outputs are equal, or first differ where the reference model (transformers, fp32)
    has its two best next tokens within ``tol`` logits of each other and the two outputs took exactly those two.

    llama.cpp sums attention over the KV cells in cell order, and batches of other sizes tile the matrix products
    differently, so concurrent requests and reused prefixes change float rounding in the last bits; the tiny random
    test model has near-ties (gaps under 1e-3) that such rounding flips. Anything else is a real difference."""
    import torch

    if got == want:
        return True
    i = next((k for k, (a, b) in enumerate(zip(got, want)) if a != b), None)
    if i is None:  # one is a prefix of the other: a length difference is never rounding
        return False
    ids = ref_lm.encode(ref_lm.format_prompt(prompt))[0].tolist() + want[:i]
    with torch.no_grad(), ref_lm.adapters.use(adapter) as model:
        row = model(input_ids=torch.tensor([ids])).logits[0, -1].float()
    top = torch.topk(row, 2)
    return set(top.indices.tolist()) == {got[i], want[i]} and float(top.values[0] - top.values[1]) < tol
