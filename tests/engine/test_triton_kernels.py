"""The static engine's Triton kernels against its torch ops (the reference), op by op on many shapes and as a whole
engine. Without a GPU they run in Triton's interpreter (``TRITON_INTERPRET=1``, set in tests/engine/conftest.py
before Triton is imported); on a CUDA machine the same tests run the compiled kernels."""

from __future__ import annotations

import dataclasses
import sys

import pytest
import torch

from puyu_apps import MissingDependencyError
from puyu_apps.engine.static import ops as ops_mod
from puyu_apps.engine.static.errors import KernelCheckError
from puyu_apps.errors import DeviceUnavailableError

from .conftest import PROMPTS, make_folder_adapter, needs_triton

pytestmark = needs_triton

DEV = torch.device("cuda" if torch.cuda.is_available() else "cpu")
REF = ops_mod.TORCH_OPS
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


@pytest.fixture(scope="module")
def tri():
    return ops_mod.select_kernels("triton", DEV)


def _close(got: torch.Tensor, want: torch.Tensor, dtype: torch.dtype, what: str) -> None:
    """fp32: equal to rounding; bf16: within two units in the last place (the interpreter's casts truncate)."""
    assert got.shape == want.shape and got.dtype == want.dtype, what
    g, w = got.float(), want.float()
    if dtype == torch.float32:
        torch.testing.assert_close(g, w, rtol=1e-5, atol=1e-5, msg=what)
    else:
        torch.testing.assert_close(g, w, rtol=2 ** -6, atol=1e-2, msg=what)  # 2 ulp: 2 * 2 ** -7


def _rand(*shape: int, dtype: torch.dtype, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=gen).to(device=DEV, dtype=dtype)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("rows,hidden", [(1, 64), (5, 96), (3, 1000)])
def test_rms_norm_and_residual_add(tri, dtype, rows, hidden):
    x, r = _rand(rows, hidden, dtype=dtype, seed=1), _rand(rows, hidden, dtype=dtype, seed=2)
    w = _rand(hidden, dtype=dtype, seed=3)
    _close(tri.rms_norm(x, w, 1e-6), REF.rms_norm(x, w, 1e-6), dtype, "rms_norm")
    h, y = tri.add_rms_norm(x, r, w, 1e-5)
    h_ref, y_ref = REF.add_rms_norm(x, r, w, 1e-5)
    _close(h, h_ref, dtype, "residual")
    _close(y, y_ref, dtype, "norm")
    # a row view with a stride (the prefill's last row, a slice of a wider buffer) is read as such
    wide = _rand(rows, hidden + 7, dtype=dtype, seed=4)[:, :hidden]
    _close(tri.rms_norm(wide, w, 1e-6), REF.rms_norm(wide, w, 1e-6), dtype, "strided rms_norm")


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("rows,inter", [(1, 48), (4, 1500)])
def test_swiglu(tri, dtype, rows, inter):
    gu = _rand(rows, 2 * inter, dtype=dtype, seed=5) * 3
    _close(tri.swiglu(gu), REF.swiglu(gu), dtype, "swiglu")


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("heads,kv,hd", [(4, 4, 16), (8, 2, 32), (6, 2, 40)])
def test_rope_store_writes_the_cache_and_returns_q(tri, dtype, heads, kv, hd):
    slots, length, b = 5, 40, 4
    qkv = _rand(b, (heads + 2 * kv) * hd, dtype=dtype, seed=6)
    ang = torch.arange(length, dtype=torch.float32)[:, None] * torch.rand(hd // 2, generator=torch.Generator()
                                                                          .manual_seed(7))[None, :]
    ang = torch.cat([ang, ang], dim=-1)
    cos, sin = ang.cos().to(DEV, dtype), ang.sin().to(DEV, dtype)
    positions = torch.tensor([0, 17, length - 1, 3], device=DEV)
    caches = [_rand(slots, kv, length, hd, dtype=dtype, seed=s) for s in (8, 9)]
    k_ref, v_ref = caches[0].clone(), caches[1].clone()
    k_got, v_got = caches[0].clone(), caches[1].clone()
    q_ref = REF.rope_store(qkv, REF.step(cos, sin, positions, 8), k_ref, v_ref, heads, kv, hd)
    q_got = tri.rope_store(qkv, tri.step(cos, sin, positions, 8), k_got, v_got, heads, kv, hd)
    _close(q_got, q_ref, dtype, "q")
    _close(k_got, k_ref, dtype, "k cache")  # the whole cache: rows not written are untouched
    assert torch.equal(v_got, v_ref)  # V is copied, not computed
    assert not torch.equal(k_got, caches[0])


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("rank,n_in,n_out", [(4, 64, 96), (24, 200, 300), (48, 96, 1000)])
def test_multi_lora_bgmv(tri, dtype, rank, n_in, n_out):
    """Rows on different adapters and on none (index 0) in one call, as a decode step of mixed requests."""
    from puyu_apps.engine.static.lora import LoraStack

    stack = LoraStack(a=_rand(4, rank, n_in, dtype=dtype, seed=13) * 0.2,
                      b=_rand(4, n_out, rank, dtype=dtype, seed=14) * 0.2)
    stack.a[0], stack.b[0] = 0, 0
    x, y = _rand(6, n_in, dtype=dtype, seed=15), _rand(6, n_out, dtype=dtype, seed=16)
    idx = torch.tensor([2, 0, 1, 3, 2, 0], device=DEV)
    got, want = tri.lora_add(y, x, stack, idx), REF.lora_add(y, x, stack, idx)
    if dtype == torch.float32:
        _close(got, want, dtype, "lora_add")
    else:  # both against the fp32 product: the kernel sums in fp32 and rounds once, torch rounds A x to bf16 first
        f = {k: v.float() for k, v in (("a", stack.a), ("b", stack.b), ("x", x), ("y", y))}
        exact = f["y"] + torch.bmm(f["b"][idx], torch.bmm(f["a"][idx], f["x"].unsqueeze(-1))).squeeze(-1)
        err, err_torch = (got.float() - exact).abs().max(), (want.float() - exact).abs().max()
        assert err <= max(2 * err_torch, 2 ** -7 * exact.abs().max()), (err, err_torch)
    assert torch.equal(got[idx == 0], y[idx == 0])  # base rows: the projection's output exactly
    assert not torch.allclose(got[idx != 0], y[idx != 0])


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("heads,kv,hd", [(4, 4, 16), (8, 2, 64), (6, 2, 40), (16, 1, 32), (40, 2, 16)])
@pytest.mark.parametrize("splits", [1, 3, None])
def test_decode_attention_over_each_rows_length(tri, dtype, heads, kv, hd, splits):
    from puyu_apps.engine.static import triton_ops

    slots, max_len, window = 4, 400, 256
    kc = _rand(slots, kv, max_len, hd, dtype=dtype, seed=10)
    vc = _rand(slots, kv, max_len, hd, dtype=dtype, seed=11)
    q = _rand(slots, heads, hd, dtype=dtype, seed=12)
    # lengths 1, 70, the whole window, and a row with nothing to decode (position past the window)
    positions = torch.tensor([0, 69, window - 1, max_len - 1], device=DEV)
    k, v = kc[:, :, :window], vc[:, :, :window]
    scale = hd ** -0.5
    table = torch.zeros(max_len, hd, dtype=dtype, device=DEV)  # rotary tables: not read by the attention
    want = REF.decode_attention(q, k, v, REF.step(table, table, positions, window), scale)
    got = triton_ops.decode_attention(q, k, v, tri.step(table, table, positions, window), scale, splits=splits)
    _close(got, want, dtype, f"attention, splits={splits}")


def _static(folder, kernels: str, compile: bool = False, **kw):
    from puyu_apps.core.config import LoadConfig
    from puyu_apps.engine.static.model import open_static

    # fp32 on CUDA too: token-for-token equality (the bf16 path is tested in test_static_engine.py's CUDA test)
    cfg = LoadConfig(device=str(DEV), dtype="float32", backend="torch-static")
    return open_static(str(folder), cfg, kernels=kernels, compile=compile, **kw)


def _together(lm, prompts: list[str], adapters: list[str | None], n: int) -> list[list[int]]:
    """Token ids of requests that overlap in the engine: each stream is submitted (its first piece read) before
    the earlier ones are drained, so they decode in shared steps at different lengths."""
    streams = [lm.stream(p, max_new_tokens=n, adapter=a) for p, a in zip(prompts, adapters)]
    firsts = [next(iter(s), "") for s in streams]
    for s, first in zip(streams, firsts):
        first + "".join(s)
    return [s.result.token_ids for s in streams]


@pytest.fixture(scope="module")
def adapters(tiny_folder, tmp_path_factory):
    root = tmp_path_factory.mktemp("triton_adapters")
    return {"a": make_folder_adapter(tiny_folder, root / "a", seed=21, r=8),
            "c": make_folder_adapter(tiny_folder, root / "c", seed=23, r=4, target_modules=TARGETS)}


def test_triton_engine_decodes_the_tokens_of_the_torch_ops(tiny_folder, adapters):
    """The whole engine on the kernels (fp32): prefill, rows of different lengths and adapters in one decode step,
    prefix reuse; greedy tokens equal to the torch ops'."""
    out = {}
    for kernels in ("torch", "triton"):
        lm = _static(tiny_folder, kernels, slots=4)
        try:
            assert lm.ops.name == kernels
            got = {"base": _together(lm, PROMPTS[:3], [None] * 3, 6)}
            again = lm.generate(PROMPTS[0], max_new_tokens=6)  # its prompt's K/V is still in a slot
            got["again"], got["cached"] = again.token_ids, again.cached_tokens
            for name, path in adapters.items():
                lm.adapters.load(name, path)
            got["adapters"] = _together(lm, PROMPTS[1:5], ["a", None, "c", "a"], 5)
            out[kernels] = got
            note = lm.info().backend_note
            stats = lm.scheduler.stats
            assert stats["max_batch"] >= 3 and stats["mixed_adapter_steps"] > 0, stats
        finally:
            lm.close()
    assert "Triton kernels" in note and "split-K decode attention" in note
    assert out["triton"]["cached"] > 0 and len({tuple(t) for t in out["triton"]["adapters"]}) > 1
    assert out["triton"] == out["torch"]


def test_the_kernels_inside_a_compiled_decode_step(tiny_folder):
    """The kernels are torch custom ops: ``torch.compile(fullgraph=True)`` records each as one call (on the CPU
    inductor's graph calls them, in place on the cache views; on CUDA the step becomes CUDA graphs) and the
    compiled step decodes the tokens of the eager one."""
    out = {}
    for compiled in (False, True):
        lm = _static(tiny_folder, "triton", compile=compiled, slots=4)
        try:
            assert lm.runner.compiled is compiled and "Triton kernels" in lm.decode_path
            out[compiled] = _together(lm, PROMPTS[:3], [None] * 3, 5)
        finally:
            lm.close()
    assert out[True] == out[False] and len({tuple(t) for t in out[True]}) == 3


def test_every_kernel_compiles_to_machine_code_for_hopper_and_ampere():
    """Triton's compiler and ptxas (shipped in its wheel) build each kernel for H100/H200 (sm_90) and A100
    (sm_80) here, without a GPU: what the interpreter cannot show (types, layouts, register allocation) fails here
    rather than on a lent GPU. In a child process: this one defined the kernels for the interpreter."""
    import json
    import os
    import subprocess

    code = ("import json; from puyu_apps.engine.static import triton_ops as t; builds = ((90, 'bf16'), "
            "(90, 'fp32'), (80, 'bf16')); print(json.dumps({f'{a}-{d}': t.compile_for(a, d) for a, d in builds}))")
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    env["TRITON_DEFAULT_FP_FUSION"] = "1"
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    sizes = json.loads(done.stdout.strip().splitlines()[-1])
    assert set(sizes) == {"90-bf16", "90-fp32", "80-bf16"}
    for build in sizes.values():
        assert len(build) == 8 and all(n > 1000 for n in build.values()), build


def test_kernels_that_fail_their_start_up_check_are_refused_or_left_for_the_torch_ops(tri, monkeypatch):
    assert ops_mod.self_check(tri, DEV, torch.float32) is None and ops_mod.self_check(tri, DEV, torch.bfloat16) is None
    broken = dataclasses.replace(tri, swiglu=lambda gu: REF.swiglu(gu) * 1.01)
    assert "swiglu differs from the torch op" in ops_mod.self_check(broken, DEV, torch.float32)

    def no_ptx(*args, **kwargs):
        raise RuntimeError("PTX was compiled with an unsupported toolchain")

    failing = dataclasses.replace(tri, decode_attention=no_ptx)
    assert ops_mod.self_check(failing, DEV, torch.bfloat16) == "RuntimeError: PTX was compiled with an unsupported " \
                                                                "toolchain"
    monkeypatch.setattr(ops_mod, "triton_ops", lambda device=None: failing)
    with pytest.raises(KernelCheckError, match="unsupported toolchain; use kernels='torch'"):
        ops_mod.select_kernels("triton", DEV)
    monkeypatch.setattr(ops_mod, "_on_gpu", lambda device: True)  # auto as on a GPU: falls back, says why
    chosen = ops_mod.select_kernels("auto", DEV)
    assert chosen.name == "torch" and "failed their start-up check: RuntimeError" in chosen.describe


def test_kernel_choice_and_its_errors(monkeypatch):
    cpu = torch.device("cpu")
    assert ops_mod.select_kernels("torch", cpu) is REF
    assert ops_mod.select_kernels("auto", cpu) is REF  # no CUDA: the torch ops
    monkeypatch.setenv("PUYU_APPS_STATIC_KERNELS", "torch")
    assert ops_mod.select_kernels(None, cpu) is REF
    monkeypatch.setenv("PUYU_APPS_STATIC_KERNELS", "cuda-magic")
    with pytest.raises(ValueError, match="PUYU_APPS_STATIC_KERNELS"):
        ops_mod.select_kernels(None, cpu)
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    with pytest.raises(DeviceUnavailableError, match="kernels='torch'"):
        ops_mod.select_kernels("triton", cpu)
    monkeypatch.setitem(sys.modules, "triton", None)  # Triton not installed
    with pytest.raises(MissingDependencyError, match=r"puyu_apps\[gpu\]"):
        ops_mod.select_kernels("triton", cpu)
    assert ops_mod.select_kernels("auto", cpu) is REF
