"""The torch static engine (backend "torch-static") against transformers ``generate``, in one run, on the same
model and prompts.

Rows: transformers ``generate`` (one request after another, and the 8 requests in one left-padded batch) and the
static engine, at batch 1 and with 8 concurrent requests of mixed prompt and output lengths; fp32 and bf16 weights;
int8 weight-only (fp32 and bf16 activations); 8 concurrent requests over base + 3 adapters against 8 on one adapter.
On CUDA also 32 concurrent requests (against transformers' padded batch of the same 32), the achieved memory
bandwidth of the decode steps (bytes of weights and K/V read per step / step time) as a fraction of the GPU's peak,
and the engine on the torch ops instead of its Triton kernels (both compiled into CUDA graphs).

    .venv/bin/python benchmarks/engine_static.py [--new-tokens 64] [--rounds 3] [--markdown out.md]

Models: on the CPU the embedded model's transformers weights (``LanguageModel.load(backend="transformers")``:
the GGUF pack dequantized to float32); on CUDA a random model shaped like InternLM3 in bf16, ``--size 1b`` (the
default: 16 layers, hidden 2048, 16 heads of 128, 2 KV heads, intermediate 5632; 1.33B parameters of which a
decode step reads 1.02B, 2.0 GB, the untied 151k-token embedding not) or ``0.5b`` (24 layers, hidden 1024, 8
heads, 2 KV heads, intermediate 2816); ``--model`` overrides both. Greedy everywhere; EOS is ignored so that
every engine generates exactly the requested number of tokens; timings are the best of ``--rounds``.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from puyu_apps.core import GenerationConfig, LanguageModel  # noqa: E402
from puyu_apps.core.config import LoadConfig  # noqa: E402
from puyu_apps.core.registry import DEFAULT_MODEL  # noqa: E402

from engine import CONCURRENT as _CONCURRENT  # noqa: E402  (benchmarks/engine.py: the same prompts)
from engine import PROMPT  # noqa: E402
from report import Report, peak_bandwidth  # noqa: E402

# 8 requests of mixed prompt lengths; output lengths are these fractions of --new-tokens (engine.py's of 128)
CONCURRENT = [(p, n / 128) for p, n in _CONCURRENT]

Job = tuple[str, int, "str | None"]


def machine() -> str:
    if torch.cuda.is_available():
        return f"{torch.cuda.get_device_name()}, torch {torch.__version__}"
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} logical CPUs, torch {torch.__version__}"


#: random InternLM3-shaped models for CUDA: (layers, hidden, heads of 128, KV heads, intermediate). At batch 1 a
#: decode step reads every weight once; the larger one's matrices (10-46 MB) are big enough for a GEMV to approach
#: the bandwidth peak, the smaller one's (2-12 MB) are dominated by per-kernel latency
SIZES = {"0.5b": (24, 1024, 8, 2, 2816), "1b": (16, 2048, 16, 2, 5632)}


def random_internlm3(folder: Path, size: str = "1b") -> Path:
    """A random InternLM3-shaped model (bf16, :data:`SIZES`) with the Qwen3 tokenizer, saved as a transformers
    folder."""
    from transformers import AutoConfig, AutoModelForCausalLM

    from puyu_apps.core.loading import load

    if (folder / "config.json").exists():
        return folder
    tok = load("tiny-random-llama").tokenizer
    layers, hidden, heads, kv_heads, inter = SIZES[size]
    config = AutoConfig.for_model(
        "internlm3", vocab_size=len(tok), hidden_size=hidden, intermediate_size=inter, num_hidden_layers=layers,
        num_attention_heads=heads, num_key_value_heads=kv_heads, head_dim=128, max_position_embeddings=4096,
        rms_norm_eps=1e-6, tie_word_embeddings=False, eos_token_id=tok.eos_token_id, bos_token_id=None,
        pad_token_id=tok.pad_token_id, qkv_bias=False, bias=False)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    with torch.no_grad():
        for _, p in model.named_parameters():
            if p.dim() == 2:
                p.normal_(0, 0.02)
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def make_adapters(model_path: str, root: Path) -> dict[str, Path]:
    """The verticals' shipped adapters for the embedded model; random r=16 q/v adapters otherwise."""
    from peft import LoraConfig, get_peft_model

    from puyu_apps.core.adapters import write_adapter_meta
    from puyu_apps.core.loading import load
    from puyu_apps.paths import vertical_dir

    names = ["medical", "legal", "service"]
    if model_path == DEFAULT_MODEL and all((vertical_dir(n) / "adapter" / "adapter_config.json").exists()
                                           for n in names):
        return {n: vertical_dir(n) / "adapter" for n in names}
    base = load(model_path, LoadConfig(dtype="float32")).model
    out = {}
    for i, name in enumerate(names):
        torch.manual_seed(100 + i)
        peft_model = get_peft_model(base, LoraConfig(r=16, lora_alpha=32, target_modules=["q_proj", "v_proj"],
                                                     init_lora_weights=False))
        with torch.no_grad():
            for n, p in peft_model.named_parameters():
                if "lora_B" in n:
                    p.normal_(0, 0.01)
        peft_model.save_pretrained(root / name)
        write_adapter_meta(root / name, base, model_path)
        base = peft_model.unload()
        out[name] = root / name
    return out


# ---------------------------------------------------------------------------------------------------------------
# engines


class HF:
    """transformers ``generate``."""

    def __init__(self, model: str, device: str, dtype: str):
        self.lm = one_team(lambda: LanguageModel.load(model, device=device, dtype=dtype, backend="transformers"))

    def one(self, prompt: str, n: int) -> int:
        lm = self.lm
        ids = lm.encode(lm.format_prompt(prompt))
        with torch.inference_mode():
            out = lm.model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=n, min_new_tokens=n,
                                    do_sample=False, pad_token_id=0)
        return int(out.shape[1] - ids.shape[1])

    def sequential(self, jobs: list[Job]) -> int:
        return sum(self.one(p, n) for p, n, _ in jobs)

    def padded(self, jobs: list[Job]) -> int:
        """All jobs in one left-padded ``generate`` call: every row runs to the longest request's length.
        Returns the tokens the requests asked for (the rest is work thrown away)."""
        lm = self.lm
        tok = lm.tokenizer
        side, tok.padding_side = tok.padding_side, "left"
        try:
            enc = tok([lm.format_prompt(p) for p, _, _ in jobs], return_tensors="pt", padding=True,
                      add_special_tokens=False).to(lm.device)
        finally:
            tok.padding_side = side
        n = max(k for _, k, _ in jobs)
        with torch.inference_mode():
            lm.model.generate(**enc, max_new_tokens=n, min_new_tokens=n, do_sample=False,
                              pad_token_id=tok.pad_token_id or 0)
        return sum(k for _, k, _ in jobs)


class Static:
    """The torch static engine."""

    def __init__(self, model: str, device: str, dtype: str, weights: str = "auto", slots: int = 8,
                 adapters: dict[str, Path] | None = None, max_context: int = 1024, kernels: str = "auto"):
        from puyu_apps.engine.static.model import open_static

        cfg = LoadConfig(device=device, dtype=dtype, backend="torch-static", max_context=max_context)
        self.lm = open_static(model, cfg, "benchmark", weights=weights, slots=slots, kernels=kernels)
        for name, path in (adapters or {}).items():
            self.lm.load_adapter(name, path)
        self.lm._eos = set()  # generate exactly the requested number of tokens
        self.lm.scheduler.eos = frozenset()
        self.lm.prefix_cache = False  # every round reads its prompts again
        self.lm.scheduler.idle_exit_s = 0.0 if device == "cpu" else None  # see one_team

    def one(self, prompt: str, n: int, adapter: str | None = None) -> int:
        return self.lm.generate(prompt, GenerationConfig(max_new_tokens=n), adapter=adapter).completion_tokens

    def sequential(self, jobs: list[Job]) -> int:
        return sum(self.one(p, n, a) for p, n, a in jobs)

    def concurrent(self, jobs: list[Job]) -> int:
        counts = [0] * len(jobs)

        def run(i: int) -> None:
            p, n, a = jobs[i]
            counts[i] = self.one(p, n, a)

        threads = [threading.Thread(target=run, args=(i,)) for i in range(len(jobs))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return sum(counts)

    def close(self) -> None:
        self.lm.close()


def one_team(fn: Callable[[], Any]) -> Any:
    """Run ``fn`` in a thread of its own that ends with it. torch's OpenMP (libgomp) keeps a team of worker
    threads for every thread that ran a parallel region until that thread ends; with two teams alive on a 2-core
    CPU every barrier stops spinning and the static engine's decode steps ran 1.5x slower (28.6 -> 43.0 ms per
    step of a 30-layer model). So transformers runs here from threads that end after each case, the models are
    loaded in such threads, and the static engine's thread ends whenever it is idle (``idle_exit_s = 0``): each
    case runs as it would in a process of its own."""
    from puyu_apps.engine.static.model import in_own_thread

    return in_own_thread(fn)


def best(fn: Callable[[], int], rounds: int) -> tuple[float, int]:
    out: tuple[float, int] | None = None
    for _ in range(rounds):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        t = time.perf_counter()
        n = one_team(fn)
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        dt = time.perf_counter() - t
        if out is None or dt < out[0]:
            out = (dt, n)
    assert out is not None
    return out


def bandwidth(engine: Static, jobs: list[Job], rounds: int) -> tuple[float, float]:
    """``(bytes read per second by the decode steps, seconds per step)`` for ``jobs`` run concurrently: weights
    once per step plus each active row's K/V up to its position (averaged over the run)."""
    lm = engine.lm
    w = lm.weights
    a = w.arch
    sched = lm.scheduler
    s0 = dict(sched.stats)
    dt, _ = best(lambda: engine.concurrent(jobs), 1)
    steps = sched.stats["decode_steps"] - s0["decode_steps"]
    rows = sched.stats["decoded"] - s0["decoded"]
    avg_pos = sum(len(lm._encode(lm.format_prompt(p))) + n / 2 for p, n, _ in jobs) / len(jobs)
    kv_row = 2 * a.n_layers * a.n_kv_heads * a.head_dim * w.embed.element_size() * avg_pos
    total = steps * w.nbytes() + rows * kv_row
    return total / dt, dt / max(steps, 1)


# ---------------------------------------------------------------------------------------------------------------


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--new-tokens", type=int, default=64, help="tokens per request (the longest of the 8)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--model", default=None, help="registered name or folder (default: see the module docstring)")
    ap.add_argument("--markdown", help="also write the table to this file")
    ap.add_argument("--size", choices=sorted(SIZES), default="1b", help="the random model on CUDA")
    ap.add_argument("--quick", action="store_true", help="no int8 and no adapter rows (each engine on CUDA is "
                                                         "compiled anew: about a minute)")
    args = ap.parse_args()
    cuda = torch.cuda.is_available()
    device = "cuda" if cuda else "cpu"
    tmp = Path(tempfile.mkdtemp(prefix="engine_static_"))
    model = args.model or (str(random_internlm3(tmp / f"internlm3-{args.size}", args.size)) if cuda
                           else DEFAULT_MODEL)
    n = args.new_tokens
    one: list[Job] = [(PROMPT, n, None)]
    eight: list[Job] = [(p, max(1, int(n * f)), None) for p, f in CONCURRENT]
    out = Report()
    out(f"# torch static engine vs transformers `generate` ({machine()})")
    out()
    out(f"model: {model}; {n} new tokens per request (8 concurrent: {[k for _, k, _ in eight]}); best of "
        f"{args.rounds}; greedy, EOS ignored")
    out()
    rows: list[tuple[str, str, str, float, int, str]] = []  # case, engine, weights, seconds, tokens, ratio
    base_tps: dict[str, float] = {}

    def add(case: str, engine: str, weights: str, res: tuple[float, int], ref: str | None = None,
            ref_label: str = "") -> float:
        dt, k = res
        tps = k / dt
        ratio = f"{tps / base_tps[ref]:.2f}x {ref_label}" if ref and ref in base_tps else ""
        rows.append((case, engine, weights, dt, k, ratio))
        print(f"  {case:34s} {engine:28s} {weights:22s} {k:5d} tok {dt:7.2f} s {tps:8.1f} tok/s {ratio}", flush=True)
        return tps

    dtypes = ["bfloat16"] if cuda else ["float32", "bfloat16"]
    for dtype in dtypes:
        short = {"float32": "fp32", "bfloat16": "bf16"}[dtype]
        hf = HF(model, device, dtype)
        one_team(lambda: hf.one(PROMPT, 4) + hf.padded(eight[:2]))
        base_tps[f"hf1-{short}"] = add("batch 1", "transformers generate", short, best(lambda: hf.sequential(one),
                                                                                       args.rounds))
        base_tps[f"hf8-{short}"] = add("8 requests", "transformers, one after another", short,
                                       best(lambda: hf.sequential(eight), args.rounds))
        base_tps[f"hf8p-{short}"] = add("8 requests", "transformers, padded batch", short,
                                        best(lambda: hf.padded(eight), args.rounds), f"hf8-{short}",
                                        "vs one after another")
        if cuda:
            base_tps[f"hf32p-{short}"] = add("32 requests", "transformers, padded batch", short,
                                             best(lambda: hf.padded(eight * 4), args.rounds), f"hf8-{short}",
                                             "vs 8 one after another")
        del hf
        # on CUDA the Triton kernels (auto) and the torch ops they replace, both compiled into CUDA graphs
        variants = [("auto", short, "auto")] + ([("auto", f"{short}, torch ops", "torch")] if cuda else [])
        variants += [] if args.quick else [("int8", f"int8 ({short} activations)", "auto")]
        for weights, label, kernels in variants:
            st = one_team(lambda: Static(model, device, dtype, weights=weights, slots=32 if cuda else 8,
                                         kernels=kernels))
            # warm-up (and, on CUDA, compilation and graph capture) of the batch buckets used
            one_team(lambda: st.one(PROMPT, 4) + st.concurrent(eight[:2]))
            b1 = add("batch 1", f"torch-static ({st.lm.decode_path})", label, best(lambda: st.sequential(one),
                                                                                    args.rounds), f"hf1-{short}",
                     f"vs transformers {short}")
            if kernels == "auto" and weights == "auto":
                base_tps["static1"] = b1
            elif weights == "auto" and "static1" in base_tps:
                r = rows[-1]
                rows[-1] = (*r[:5], f"{r[5]}; Triton kernels {base_tps['static1'] / b1:.2f}x these")
            add("8 concurrent", "torch-static", label, best(lambda: st.concurrent(eight), args.rounds),
                f"hf8-{short}", f"vs transformers {short} one after another")
            if f"hf8p-{short}" in base_tps:
                r = rows[-1]
                ratio = (r[4] / r[3]) / base_tps[f"hf8p-{short}"]
                rows[-1] = (*r[:5], f"{r[5]}; {ratio:.2f}x vs padded batch")
            if cuda:
                thirty_two = [(p, k, None) for p, k, _ in eight * 4]
                add("32 concurrent", "torch-static", label, best(lambda: st.concurrent(thirty_two), args.rounds),
                    f"hf8-{short}", f"vs transformers {short} 8 one after another")
                r = rows[-1]
                rows[-1] = (*r[:5], f"{r[5]}; {(r[4] / r[3]) / base_tps[f'hf32p-{short}']:.2f}x vs transformers "
                                    f"padded batch of 32")
                bw1, step1 = bandwidth(st, one, args.rounds)
                bw32, step32 = bandwidth(st, thirty_two, args.rounds)
                peak = peak_bandwidth(torch.cuda.get_device_name())
                for tag, bw, step in (("batch 1", bw1, step1), ("32 concurrent", bw32, step32)):
                    frac = f", {bw / peak:.0%} of the {peak / 1e12:.2f} TB/s peak" if peak else ""
                    out(f"memory bandwidth, {label}, {tag}: {bw / 1e9:.0f} GB/s ({step * 1e3:.2f} ms per step){frac}")
            st.close()
            del st
    if not args.quick:
        adapter_rows(args, model, device, dtypes[0], eight, tmp, add, base_tps)
    table(out, rows)
    out.write(args.markdown)


def adapter_rows(args: argparse.Namespace, model: str, device: str, dtype: str, eight: list[Job], tmp: Path,
                 add: Callable[..., float], base_tps: dict[str, float]) -> None:
    """Base + 3 adapters mixed in one batch against 8 requests on one adapter."""
    short = {"float32": "fp32", "bfloat16": "bf16"}[dtype]
    adapters = one_team(lambda: make_adapters(model, tmp / "adapters"))
    st = one_team(lambda: Static(model, device, dtype, adapters=adapters))
    names = list(adapters)
    mixed = [(p, k, [None, *names][i % 4]) for i, (p, k, _) in enumerate(eight)]
    single = [(p, k, names[0]) for p, k, _ in eight]
    one_team(lambda: st.concurrent(mixed[:4]))
    one_tps = add("8 concurrent, one adapter", "torch-static", short, best(lambda: st.concurrent(single),
                                                                           args.rounds))
    base_tps["one-adapter"] = one_tps
    add("8 concurrent, base + 3 adapters", "torch-static", short, best(lambda: st.concurrent(mixed), args.rounds),
        "one-adapter", "vs one adapter")
    st.close()


def table(out: Callable[[str], None], rows: list[tuple[str, str, str, float, int, str]]) -> None:
    out()
    out("| case | engine | weights | tokens | seconds | tok/s | ratio |")
    out("|---|---|---|---:|---:|---:|---|")
    for case, engine, weights, dt, k, ratio in rows:
        out(f"| {case} | {engine} | {weights} | {k} | {dt:.2f} | {k / dt:.1f} | {ratio} |")


if __name__ == "__main__":
    main()
