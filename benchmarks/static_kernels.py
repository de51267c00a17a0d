"""The static engine's Triton kernels against the torch ops they replace, op by op, on CUDA, in one run.

For each op (residual add + RMSNorm, rotary + KV-cache write, SwiGLU, decode attention, multi-LoRA add) and
shape, three timings: the torch ops eager, the torch ops under ``torch.compile`` (what the engine ran before the
kernels) and the Triton kernel; each timed inside a CUDA graph (``triton.testing.do_bench_cudagraph``: launch
costs gone, as in the engine's recorded decode step), with the bytes the op must move and the achieved bandwidth
as a share of the GPU's peak. Ratios are Triton vs compiled torch. Outputs are checked against the torch ops first.

    python benchmarks/static_kernels.py [--markdown out.md]

Shapes: InternLM3-shaped, the ~1B model of engine_static.py (hidden 2048, 16 heads of 128, 2 KV heads,
intermediate 5632) and InternLM3-8B (hidden 4096, 32 heads of 128, 2 KV heads, intermediate 10240), at 1 and 32
rows, attention over 512 and 2048 cached positions; bf16. Needs a CUDA device (on the CPU the kernels only run in
Triton's interpreter, which the tests use; its timings mean nothing).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Callable

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from puyu_apps.engine.static import ops as ops_mod  # noqa: E402
from puyu_apps.engine.static.lora import LoraStack  # noqa: E402
from report import Report, peak_bandwidth  # noqa: E402

#: (name, hidden, heads, kv heads, head dim, intermediate)
SHAPES = [("InternLM3-1B-shaped", 2048, 16, 2, 128, 5632), ("InternLM3-8B", 4096, 32, 2, 128, 10240)]


def bench(fn: Callable[[], Any]) -> float:
    """Seconds per call, timed inside a CUDA graph."""
    import triton.testing

    fn()
    torch.cuda.synchronize()
    timer = getattr(triton.testing, "do_bench_cudagraph", None)
    ms = timer(fn, rep=50) if timer else triton.testing.do_bench(fn, rep=50)
    return float(ms) / 1e3


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--markdown", help="also write the table to this file")
    args = ap.parse_args()
    if not torch.cuda.is_available():
        print("static_kernels.py needs a CUDA device (the kernels run only in Triton's interpreter here)")
        return
    dev = torch.device("cuda")
    name = torch.cuda.get_device_name()
    peak = peak_bandwidth(name)
    tri = ops_mod.select_kernels("triton", dev)
    ref = ops_mod.TORCH_OPS
    out = Report()
    import triton

    out(f"# Triton kernels vs torch ops ({name}, torch {torch.__version__}, triton {triton.__version__})")
    out()
    out("| model shape | op | rows | torch eager us | torch.compile us | Triton us | Triton GB/s | of peak | "
        "Triton vs compiled |")
    out("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    dt = torch.bfloat16
    g = torch.Generator(device=dev).manual_seed(0)

    def rnd(*shape: int) -> torch.Tensor:
        return torch.randn(shape, generator=g, device=dev).to(dt)

    comp = ops_mod.Ops("compiled", ref.rms_norm, torch.compile(ref.add_rms_norm), ref.step,
                       torch.compile(ref.rope_store), torch.compile(ref.swiglu), torch.compile(ref.decode_attention),
                       torch.compile(ref.lora_add))
    for shape, hidden, heads, kv, hd, inter in SHAPES:
        for rows in (1, 32):
            x, r, w = rnd(rows, hidden), rnd(rows, hidden), rnd(hidden)
            gu, qkv = rnd(rows, 2 * inter), rnd(rows, (heads + 2 * kv) * hd)
            q = rnd(rows, heads, hd)
            cos, sin = rnd(4096, hd), rnd(4096, hd)
            kc, vc = rnd(rows, kv, 4096, hd), rnd(rows, kv, 4096, hd)
            pos = torch.full((rows,), 1000, device=dev)
            # (op, bytes it must move, ops -> the call)
            cases: list[tuple[str, int, Callable[[ops_mod.Ops], Callable[[], Any]]]] = [
                ("residual + RMSNorm", (4 * rows * hidden + hidden) * 2,
                 lambda o: lambda: o.add_rms_norm(x, r, w, 1e-6)[1]),
                ("SwiGLU", 3 * rows * inter * 2, lambda o: lambda: o.swiglu(gu)),
                ("rotary + KV write", (2 * rows * (heads + 2 * kv) + 2 * rows) * hd * 2,
                 lambda o: lambda: o.rope_store(qkv, o.step(cos, sin, pos, 1024), kc, vc, heads, kv, hd)),
            ]
            n_qkv = (heads + 2 * kv) * hd
            stack = LoraStack(a=rnd(5, 48, hidden) * 0.05, b=rnd(5, n_qkv, 48) * 0.05)  # 4 adapters r=16 on q/k/v
            stack.a[0], stack.b[0] = 0, 0  # index 0: no adapter (as in the engine's bank)
            idx = torch.arange(rows, device=dev) % 5  # rows on every adapter and on none
            used = min(rows, 5)
            cases.append(("multi-LoRA add (BGMV), 4 adapters r16 on q/k/v",
                          (2 * rows * n_qkv + rows * hidden + used * 48 * (hidden + n_qkv)) * 2,
                          lambda o, y=qkv, idx=idx: lambda: o.lora_add(y, x, stack, idx)))
            for ctx in (512, 2048):
                last = torch.full((rows,), ctx - 1, device=dev)
                cases.append((f"decode attention, {ctx} positions", 2 * rows * kv * ctx * hd * 2,
                              lambda o, last=last, ctx=ctx: lambda: o.decode_attention(
                                  q, kc[:, :, :ctx], vc[:, :, :ctx], o.step(cos, sin, last, ctx), hd ** -0.5)))
            for op, nbytes, make in cases:
                want, got = make(ref)().float(), make(tri)().float()
                err = (want - got).abs().max().item()
                assert err <= 0.05 * max(1.0, want.abs().max().item()), f"{op}: Triton differs by {err}"
                t_eager, t_comp, t_tri = bench(make(ref)), bench(make(comp)), bench(make(tri))
                bw = nbytes / t_tri
                share = f"{bw / peak:.0%}" if peak else ""
                out(f"| {shape} | {op} | {rows} | {t_eager * 1e6:.1f} | {t_comp * 1e6:.1f} | {t_tri * 1e6:.1f} | "
                    f"{bw / 1e9:.0f} | {share} | {t_comp / t_tri:.2f}x |")
    out.write(args.markdown)


if __name__ == "__main__":
    main()
