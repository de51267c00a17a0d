"""Our llama.cpp patch (scripts/patches/): Q4_1 weights repacked 8 rows at a time, for batched CPU decode (issue 11).

The patched kernels are checked against llama.cpp's stock Q4_1 kernels on the embedded model (the shipped Q4_1
file). The switch (``GGML_Q4_1_REPACK``: ``1`` ours, the engine's default; ``0`` stock) is read once per
process, so each side runs in a process of its own.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from puyu_apps.core.registry import DEFAULT_MODEL, get_entry
from puyu_apps.engine import llamacpp

from .conftest import needs_llama

pytestmark = needs_llama

ROOT = Path(__file__).resolve().parents[2]

# teacher-forced logits of one token sequence, decoded three ways: all at once (groups of 4 rows on the gemm
# kernel, the last 3 rows on the multi-row gemv), one token per decode (gemv), and in chunks of 6 (4 + 2)
SCRIPT = r"""
import json, sys
import numpy as np
from puyu_apps.engine.llamacpp import Context, LlamaModel, q4_1_kernels
model = LlamaModel(sys.argv[1])
toks = json.loads(sys.argv[2])
runs = []
for chunk in (len(toks), 1, 6):
    ctx = Context(model, n_ctx=256, n_seq=1, n_batch=64, n_threads=2)
    rows = []
    for i in range(0, len(toks), chunk):
        part = toks[i:i + chunk]
        assert ctx.decode(part, list(range(i, i + len(part))), [0] * len(part), [True] * len(part)) == 0
        rows += [ctx.logits(k).copy() for k in range(len(part))]
    ctx.close()
    runs.append(np.stack(rows))
np.save(sys.argv[3], np.stack(runs))
print(q4_1_kernels())
"""


def test_the_installed_llama_cpp_carries_the_current_patch():
    want = subprocess.run([sys.executable, str(ROOT / "scripts" / "patches" / "apply.py"), "--id"],
                          capture_output=True, text=True, check=True).stdout.strip()
    assert llamacpp.patch_id() == want, (
        f"llama-cpp-python was not built with the current patch ({llamacpp.patch_id() or 'a stock build'}, want "
        f"{want}): run `make setup` (it rebuilds llama-cpp-python from its source with scripts/patches/ applied)")


def _logits(tmp_path: Path, name: str, toks: list[int], env: dict[str, str]) -> tuple[np.ndarray, str]:
    out = tmp_path / f"{name}.npy"
    gguf = get_entry(DEFAULT_MODEL).locate()
    proc = subprocess.run([sys.executable, "-c", SCRIPT, str(gguf), json.dumps(toks), str(out)],
                          capture_output=True, text=True, env={**os.environ, **env}, cwd=ROOT, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return np.load(out), proc.stdout.strip().splitlines()[-1]


@pytest.mark.skipif(not llamacpp.patch_id(), reason="a stock llama.cpp build (no scripts/patches/)")
def test_repacked_q4_1_kernels_agree_with_the_stock_ones(tmp_path):
    from puyu_apps.core import shared_model

    lm = shared_model()
    toks = lm._encode(lm.format_prompt("Describe the findings of a normal chest X-ray in two sentences."))[:40]
    stock, k_stock = _logits(tmp_path, "stock", toks, {"GGML_Q4_1_REPACK": "0"})
    ours, k_ours = _logits(tmp_path, "ours", toks, {"GGML_Q4_1_REPACK": "1"})
    assert k_stock == "stock" and k_ours == "repacked"
    # the same arithmetic whatever the batch shape: gemm, the multi-row gemv and the one-row gemv agree exactly
    assert np.array_equal(ours[0], ours[1]) and np.array_equal(ours[0], ours[2])
    # against the stock kernels: only rounding differs (they keep the activation sums in fp16, we in fp32)
    ref, got = stock[0], ours[0]
    agree = float((ref.argmax(-1) == got.argmax(-1)).mean())
    assert agree >= 0.9, agree
    rel = float(np.abs(ref - got).max() / np.abs(ref).max())
    assert rel < 0.1, rel
    # and a different model would be far off: the check can tell
    assert float(np.abs(ref[1:] - ref[:-1]).max() / np.abs(ref).max()) > 5 * rel
