"""The CPU decode engines side by side, in one run, on the same model and prompts (issue 11).

Rows: transformers fp32 and bf16 (HF ``generate``), llama-cpp-python's own ``Llama`` class on the same GGUF file
("llama.cpp direct"), and our fast path (``LanguageModel.load(backend="llama.cpp")``: our scheduler and
detokenisation on llama.cpp's low-level API), at batch 1 and with 8 concurrent requests of mixed lengths; mixed
adapters against one adapter; the peft-vs-llama.cpp agreement of the adapters; and the quality of each weight
format (next-token agreement and perplexity against fp32 transformers on a fixed English and Chinese text).

    .venv/bin/python benchmarks/engine.py [--tokens 128] [--repeats 3] [--threads 2] [--markdown out.md]

Greedy everywhere; EOS is ignored so that every engine generates exactly the requested number of tokens.
Timings are the best of ``--repeats`` rounds, and the engines take turns inside each round, so a busy machine
slows all of them alike. The machine's load average is printed at the start and the end.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from puyu_apps.core import GenerationConfig, LanguageModel  # noqa: E402
from puyu_apps.core.registry import DEFAULT_MODEL, get_entry  # noqa: E402
from report import Report  # noqa: E402  (benchmarks/report.py)

PROMPT = "Write a long, detailed story about a young doctor who moves to a small village by the sea."

# 8 requests of mixed prompt and output lengths
CONCURRENT = [
    ("Explain what a CT scan of the chest shows.", 128),
    ("List five tips for writing a clear contract.", 96),
    ("What is the capital of France?", 32),
    ("Write a short poem about autumn leaves.", 64),
    ("Describe how a customer service agent should answer an angry caller, step by step.", 128),
    ("Summarise the causes of the first world war in a paragraph.", 112),
    ("Give me a recipe for pancakes.", 80),
    ("Why is the sky blue?", 48),
]

AGREEMENT_PROMPTS = [
    "What is a lung nodule?", "Summarise this clause: the supplier shall deliver the goods within 30 days.",
    "How do I reset my password?", "Explain what a CT scan is.", "What does force majeure mean?",
    "My order arrived damaged. What should I do?", "Describe the findings of a normal chest X-ray.",
    "What is a non-disclosure agreement?", "How long does shipping take?", "What is Lung-RADS category 2?",
    "Can I cancel my subscription at any time?", "What are the risks of smoking?",
]

TEXT_EN = (
    "The human lungs are a pair of spongy, air-filled organs located on either side of the chest. The trachea "
    "conducts inhaled air into the lungs through its tubular branches, called bronchi. The bronchi then divide "
    "into smaller and smaller branches, finally becoming microscopic. The bronchioles eventually end in "
    "clusters of microscopic air sacs called alveoli. In the alveoli, oxygen from the air is absorbed into the "
    "blood. Carbon dioxide, a waste product of metabolism, travels from the blood to the alveoli, where it can "
    "be exhaled. Between the alveoli is a thin layer of cells called the interstitium, which contains blood "
    "vessels and cells that help support the alveoli. The lungs are covered by a thin tissue layer called the "
    "pleura. The same kind of thin tissue lines the inside of the chest cavity. A thin layer of fluid acts as a "
    "lubricant allowing the lungs to slip smoothly as they expand and contract with each breath."
)
TEXT_ZH = (
    "肺是人体的呼吸器官，位于胸腔内，左右各一。空气经由气管进入肺部，气管在肺内不断分支，形成支气管树，最终"
    "末端为肺泡。肺泡是气体交换的主要场所，氧气通过肺泡壁进入血液，二氧化碳则从血液进入肺泡并被呼出体外。"
    "肺的表面覆盖着一层薄薄的胸膜，胸膜之间有少量液体，可以减少呼吸时的摩擦。吸烟、空气污染和职业粉尘都会"
    "损害肺的健康，长期吸烟是肺癌最主要的危险因素。定期体检和低剂量螺旋CT筛查有助于早期发现肺部结节。"
)


def loadavg() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "?"


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} logical CPUs, Python {platform.python_version()}, torch {torch.__version__}"


# ---------------------------------------------------------------------------------------------------------------
# engines


class Engine:
    name = ""
    weights = ""

    def run(self, prompt: str, n: int, adapter: str | None = None) -> int:
        raise NotImplementedError

    def run_many(self, jobs: list[tuple[str, int, str | None]]) -> int:
        return sum(self.run(p, n, a) for p, n, a in jobs)


class HFEngine(Engine):
    """transformers ``generate`` (the anchors' baseline)."""

    def __init__(self, dtype: str):
        self.lm = LanguageModel.load(DEFAULT_MODEL, dtype=dtype, backend="transformers")
        self.name = "transformers `generate`"
        self.weights = dtype.replace("float32", "fp32").replace("bfloat16", "bf16")

    def run(self, prompt: str, n: int, adapter: str | None = None) -> int:
        lm = self.lm
        ids = lm.encode(lm.format_prompt(prompt))
        with torch.inference_mode():
            out = lm.model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=n, min_new_tokens=n,
                                    do_sample=False, pad_token_id=0)
        return int(out.shape[1] - ids.shape[1])

    def run_batched(self, jobs: list[tuple[str, int, str | None]]) -> int:
        """All ``jobs`` in one left-padded ``generate`` call, as a transformers user serves concurrent requests:
        every row runs to the longest request's length. Returns the tokens the requests asked for (the rest of
        each row is work thrown away)."""
        lm = self.lm
        tok = lm.tokenizer
        side, tok.padding_side = tok.padding_side, "left"
        try:
            enc = tok([lm.format_prompt(p) for p, _, _ in jobs], return_tensors="pt", padding=True,
                      add_special_tokens=False)
        finally:
            tok.padding_side = side
        n = max(k for _, k, _ in jobs)
        pad = tok.pad_token_id if tok.pad_token_id is not None else 0
        with torch.inference_mode():
            out = lm.model.generate(**enc, max_new_tokens=n, min_new_tokens=n, do_sample=False, pad_token_id=pad)
        assert out.shape[1] - enc["input_ids"].shape[1] == n
        return sum(k for _, k, _ in jobs)


def _open_llama(gguf: str, threads: int) -> Any:
    """llama-cpp-python's ``Llama`` on ``gguf``, with the fast path's llama.cpp model settings (extra CPU buffer
    types: see docs/engine.md)."""
    import llama_cpp.llama_cpp as lib
    from llama_cpp import Llama

    from puyu_apps.engine.llamacpp import extra_bufts

    defaults = lib.llama_model_default_params

    def params() -> Any:
        p = defaults()
        p.use_extra_bufts = extra_bufts()
        return p

    lib.llama_model_default_params = params
    try:
        return Llama(model_path=gguf, n_ctx=2048, n_batch=256, n_threads=threads, n_threads_batch=threads,
                     verbose=False)
    finally:
        lib.llama_model_default_params = defaults


def _direct_worker(conn: Any, gguf: str, threads: int) -> None:
    """The child process of a :class:`DirectEngine`: generate ``n`` tokens after ``ids`` for each request."""
    llm = _open_llama(gguf, threads)
    conn.send("ready")
    while True:
        try:
            msg = conn.recv()
        except EOFError:  # the benchmark ended
            return
        if msg is None:
            return
        ids, n = msg
        llm.reset()
        k = 0
        for _ in llm.generate(ids, temp=0.0, top_k=1, reset=True):
            k += 1
            if k >= n:
                break
        conn.send(k)


class DirectEngine(Engine):
    """llama-cpp-python's ``Llama`` class on the same GGUF file, its own decode loop (``Llama.generate``), on
    llama.cpp's stock kernels: it runs in a child process started with ``GGML_Q4_1_REPACK=0`` (our patch to
    llama.cpp, ``scripts/patches/``, then stays off there; the switch is read once per process). The child also
    keeps its thread pool apart from this process's engines, as a user's own llama.cpp process would."""

    def __init__(self, gguf: Path, tokenizer_lm: LanguageModel, threads: int, weights: str = "GGUF Q4_1"):
        import multiprocessing as mp

        self.conn, child = mp.Pipe()
        old = os.environ.get("GGML_Q4_1_REPACK")
        os.environ["GGML_Q4_1_REPACK"] = "0"
        try:
            self.proc = mp.get_context("spawn").Process(target=_direct_worker, args=(child, str(gguf), threads),
                                                        daemon=True)
            self.proc.start()
        finally:
            if old is None:
                os.environ.pop("GGML_Q4_1_REPACK")
            else:
                os.environ["GGML_Q4_1_REPACK"] = old
        assert self.conn.recv() == "ready"
        self.tok_lm = tokenizer_lm
        self.name = "llama-cpp-python `Llama` (direct, stock kernels)"
        self.weights = weights

    def run(self, prompt: str, n: int, adapter: str | None = None) -> int:
        lm = self.tok_lm
        self.conn.send((lm._encode(lm.format_prompt(prompt)), n))
        return int(self.conn.recv())


class FastEngine(Engine):
    """Our fast path: LanguageModel on llama.cpp (scheduler, streaming detokenisation, stop strings)."""

    def __init__(self, threads: int, adapters: dict[str, Path] | None = None, gguf_format: str | None = None,
                 n_seq: int | None = None):
        self.lm = LanguageModel.load(DEFAULT_MODEL, backend="llama.cpp", threads=threads, adapters=adapters,
                                     gguf_format=gguf_format)
        if n_seq:
            self.lm.n_seq = n_seq  # sequences decoded together (before the scheduler is made below)
        self.lm._eos = set()  # generate exactly the requested number of tokens
        self.lm.scheduler.eos = frozenset()
        self.lm.scheduler.idle_exit_s = 0.0  # the engine thread (and its OpenMP team) ends between cases
        self.lm.prefix_cache = False  # every round reads its prompt again (the prefix cache has its own table)
        self.name = "puyu fast path (llama.cpp backend)"
        self.weights = "GGUF " + self.lm.base.weight_format.split()[0]

    def run(self, prompt: str, n: int, adapter: str | None = None) -> int:
        return self.lm.generate(prompt, GenerationConfig(max_new_tokens=n), adapter=adapter).completion_tokens

    def run_concurrent(self, jobs: list[tuple[str, int, str | None]]) -> int:
        return sum(in_threads(lambda i: self.run(*jobs[i]), len(jobs)))


def in_threads(fn: Callable[[int], Any], n: int) -> list[Any]:
    """``[fn(0), ..., fn(n - 1)]``, each call in its own thread, all started before any is awaited."""
    results: list[Any] = [None] * n

    def one(i: int) -> None:
        results[i] = fn(i)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def timed(fn: Callable[[], int]) -> tuple[float, int]:
    t = time.perf_counter()
    n = fn()
    return time.perf_counter() - t, n


def rounds(cases: dict[str, Callable[[], int]], repeats: int) -> dict[str, tuple[float, int]]:
    """Best (seconds, tokens) of each case; the cases take turns inside each round."""
    best: dict[str, tuple[float, int]] = {}
    for _ in range(repeats):
        for key, fn in cases.items():
            dt, n = timed(fn)
            if key not in best or dt < best[key][0]:
                best[key] = (dt, n)
    return best


# ---------------------------------------------------------------------------------------------------------------
# adapters and agreement


def make_adapters(root: Path, names: list[str]) -> dict[str, Path]:
    """Use the verticals' shipped adapters when present; otherwise make r=16 q_proj/v_proj LoRA adapters as
    ``puyu finetune`` lays them out (peft folder + fingerprint), with random B so that they change the output."""
    from peft import LoraConfig, get_peft_model

    from puyu_apps.core.adapters import write_adapter_meta
    from puyu_apps.core.loading import load
    from puyu_apps.paths import vertical_dir

    out: dict[str, Path] = {}
    base = None
    for i, name in enumerate(names):
        shipped = vertical_dir(name) / "adapter"
        if (shipped / "adapter_config.json").exists():
            out[name] = shipped
            continue
        if base is None:
            base = load(DEFAULT_MODEL).model
        torch.manual_seed(100 + i)
        peft_model = get_peft_model(base, LoraConfig(r=16, lora_alpha=32, target_modules=["q_proj", "v_proj"],
                                                     init_lora_weights=False))
        with torch.no_grad():
            for n, p in peft_model.named_parameters():
                if "lora_B" in n:
                    p.normal_(0, 0.01)
        folder = root / name
        peft_model.save_pretrained(folder)
        write_adapter_meta(folder, base, DEFAULT_MODEL)
        base = peft_model.unload()
        out[name] = folder
    return out


def teacher_forced_logits_llama(fast: LanguageModel, ids: list[int], adapter: str | None) -> np.ndarray:
    """llama.cpp logits at every position of ``ids`` ([len, vocab]) with ``adapter`` active."""
    from puyu_apps.engine.llamacpp import Context

    ctx = Context(fast.llama, n_ctx=max(64, len(ids) + 8), n_seq=1, n_batch=max(64, len(ids)),
                  n_threads=fast.threads)
    try:
        ctx.set_adapters(fast.adapters.handles_for(adapter))
        rc = ctx.decode(ids, list(range(len(ids))), [0] * len(ids), [True] * len(ids))
        assert rc == 0, rc
        return np.stack([ctx.logits(i).copy() for i in range(len(ids))])
    finally:
        ctx.close()


def teacher_forced_logits_hf(lm: LanguageModel, ids: list[int], adapter: str | None) -> np.ndarray:
    with torch.inference_mode(), lm.adapters.use(adapter) as model:
        return model(input_ids=torch.tensor([ids])).logits[0].float().numpy()


def log_softmax(x: np.ndarray) -> np.ndarray:
    x = x - x.max(-1, keepdims=True)
    return x - np.log(np.exp(x).sum(-1, keepdims=True))


def compare(ref: np.ndarray, other: np.ndarray, ids: list[int]) -> dict[str, float]:
    """Next-token agreement (argmax) and perplexity of the text ``ids`` under both logits."""
    agree = float((ref[:-1].argmax(-1) == other[:-1].argmax(-1)).mean())
    tgt = np.array(ids[1:])
    ppl_ref = math.exp(-log_softmax(ref[:-1])[np.arange(len(tgt)), tgt].mean())
    ppl_other = math.exp(-log_softmax(other[:-1])[np.arange(len(tgt)), tgt].mean())
    return {"agree": agree, "ppl_ref": ppl_ref, "ppl": ppl_other}


SYSTEM = ("You are the contract-review assistant of a law firm. For each clause you are given, name its risk "
          "category (payment, liability, termination, confidentiality, penalty, intellectual property, dispute, "
          "data protection, or none), rate the risk as low, medium or high, and explain in one sentence that "
          "quotes the clause's own numbers, dates and parties. Never invent facts that are not in the clause. "
          "Answer in the language of the clause. ") * 2
CLAUSES = ["The Supplier shall deliver the goods within 30 days of the order.",
           "Either party may terminate this agreement with 7 days written notice.",
           "The Buyer shall pay a penalty of 5% of the contract value for each week of delay.",
           "All disputes shall be settled by arbitration in Singapore.",
           "The Supplier's total liability shall not exceed 10,000 USD.",
           "The Recipient shall keep the Information confidential for five years.",
           "Payment is due within 60 days of the invoice date.",
           "All intellectual property created under this agreement belongs to the Client."]
TURNS = ["Hello, my order arrived damaged.", "It is order 48213, the screen is cracked.",
         "Can I get a refund instead of a replacement?", "How long will the refund take?",
         "Thank you. Can you also update my delivery address?", "It is 12 Harbour Road, Qingdao."]


def prefix_rows(lm: LanguageModel, out: Callable[[str], None], repeats: int) -> None:
    """Prefix reuse on and off: 8 requests sharing a system prompt, and a six-turn conversation."""
    out()
    out("### Prefix reuse (KV cells of earlier requests): on vs off, same requests")
    out()
    out("| workload | prefix cache | prompt tokens read | prompt tokens reused | wall s | mean TTFT ms | "
        "speed-up |")
    out("|---|---|---|---|---|---|---|")

    def clauses() -> tuple[int, int, list[float]]:
        results: list[Any] = [None] * len(CLAUSES)

        def one(i: int) -> None:
            results[i] = lm.generate([{"role": "system", "content": SYSTEM}, {"role": "user", "content": CLAUSES[i]}],
                                     max_new_tokens=24)

        for i in range(len(CLAUSES)):  # one after another: what a pipeline reviewing a contract does
            one(i)
        return (sum(r.prompt_tokens - r.cached_tokens for r in results), sum(r.cached_tokens for r in results),
                [r.ttft_s for r in results])

    def dialogue() -> tuple[int, int, list[float]]:
        history: list[dict[str, str]] = [{"role": "system", "content": SYSTEM[:300]}]
        read = reused = 0
        ttfts = []
        for turn in TURNS:
            history.append({"role": "user", "content": turn})
            r = lm.generate(history, max_new_tokens=32)
            history.append({"role": "assistant", "content": r.text})
            read += r.prompt_tokens - r.cached_tokens
            reused += r.cached_tokens
            ttfts.append(r.ttft_s)
        return read, reused, ttfts

    from puyu_apps.engine.scheduler import Scheduler

    lm.scheduler.idle_exit_s = Scheduler.idle_exit_s  # as the engine runs in a pipeline (no other engine decodes now)
    for name, fn in (("8 clause reviews, one shared system prompt", clauses), ("a 6-turn conversation", dialogue)):
        rows = {}
        for on in (False, True):
            best = None
            for _ in range(repeats):
                lm.clear_prefix_cache()  # every round starts cold
                lm.prefix_cache = on
                t = time.perf_counter()
                read, reused, ttfts = fn()
                dt = time.perf_counter() - t
                if best is None or dt < best[0]:
                    best = (dt, read, reused, statistics.mean(ttfts))
            rows[on] = best
        for on in (False, True):
            dt, read, reused, ttft = rows[on]
            out(f"| {name} | {'on' if on else 'off'} | {read} | {reused} | {dt:.2f} | {ttft * 1000:.0f} | "
                f"{rows[False][0] / dt:.2f}x |")
    lm.prefix_cache = False


# ---------------------------------------------------------------------------------------------------------------


def concurrent32(args: argparse.Namespace, out: Callable[[str], None], fp32: HFEngine, bf16: HFEngine) -> None:
    """32 concurrent requests (the 8 mixed-length ones, four times): transformers in one padded batch against the
    fast path decoding 32 sequences together."""
    jobs = [(p, k, None) for p, k in CONCURRENT] * 4
    total = sum(k for _, k, _ in jobs)
    fast32 = {w: FastEngine(args.threads, gguf_format=f, n_seq=32) for w, f in (("Q4_1", None), ("Q8_0", "q8_0"))}
    for e in fast32.values():
        e.run_concurrent(jobs[:4])  # warm-up
    cases: dict[str, Callable[[], int]] = {f"fast-{w}": (lambda e=e: e.run_concurrent(jobs)) for w, e in fast32.items()}
    if not args.skip_hf_concurrent:
        cases["fp32-batch"] = lambda: fp32.run_batched(jobs)
        cases["bf16-batch"] = lambda: bf16.run_batched(jobs)
    agg = {k: v[1] / v[0] for k, v in rounds(cases, max(1, args.repeats - 1)).items()}
    out()
    out(f"### 32 concurrent requests ({total} new tokens in all): aggregate tok/s")
    out()
    out("| engine | weights | how | tok/s | vs transformers fp32 batch |")
    out("|---|---|---|---|---|")
    ref = agg.get("fp32-batch")
    rows = [("fp32-batch", "transformers `generate`", "fp32", "32 in one left-padded batch"),
            ("bf16-batch", "transformers `generate`", "bf16", "32 in one left-padded batch"),
            ("fast-Q4_1", "puyu fast path (llama.cpp backend)", "GGUF Q4_1", "32 sequences decoded together"),
            ("fast-Q8_0", "puyu fast path (llama.cpp backend)", "GGUF Q8_0", "32 sequences decoded together")]
    for key, name, weights, how in rows:
        if key in agg:
            out(f"| {name} | {weights} | {how} | {agg[key]:.1f} | {f'{agg[key] / ref:.2f}x' if ref else '-'} |")
    for e in fast32.values():
        e.lm.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tokens", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1))
    ap.add_argument("--skip-hf-concurrent", action="store_true", help="skip transformers in the 8-request rows")
    ap.add_argument("--markdown", help="also write the tables to this file")
    ap.add_argument("--quick", action="store_true",
                    help="batch 1 and 8 concurrent only (the issue-11 targets; ~1/3 of the full run)")
    args = ap.parse_args()
    # our repacked Q4_1 kernels (scripts/patches/), read once per process: on for the fast path (the engine's default)
    os.environ.setdefault("GGML_Q4_1_REPACK", "1")
    torch.set_num_threads(args.threads)
    out = Report()
    lines = out.lines
    t_start = time.perf_counter()
    load_start = loadavg()
    out(f"machine: {machine()}; threads: {args.threads}; load average at start: {load_start}")
    gguf = get_entry(DEFAULT_MODEL).locate()
    fp32, bf16 = HFEngine("float32"), HFEngine("bfloat16")
    tmp = Path(tempfile.mkdtemp(prefix="puyu-bench-"))
    adapter_names = ["medical", "legal", "service"]
    adapters = make_adapters(tmp, adapter_names)
    fast = FastEngine(args.threads, adapters)
    fast_q8, fast_q4 = FastEngine(args.threads, gguf_format="q8_0"), FastEngine(args.threads, gguf_format="q4_0")
    direct = DirectEngine(gguf, fast.lm, args.threads)
    direct_q8 = DirectEngine(fast_q8.lm.gguf_path, fast.lm, args.threads, "GGUF Q8_0")
    direct_q4 = DirectEngine(fast_q4.lm.gguf_path, fast.lm, args.threads, "GGUF Q4_0")
    info = fast.lm.info()
    out(f"model: {DEFAULT_MODEL}; GGUF {gguf.name} ({info.weight_format}); llama-cpp-python "
        f"{info.versions['llama_cpp_python']}; greedy, EOS ignored, best of {args.repeats}")
    out("Q8_0 and Q4_0: the same weights re-exported by `gguf_format=` (from the Q4_1 file dequantized)")
    from puyu_apps.engine.llamacpp import patch_id, q4_1_kernels

    out(f"llama.cpp patch: {patch_id() or 'none (stock build)'}; Q4_1 kernels of the fast path: {q4_1_kernels()}; "
        "llama.cpp direct: stock kernels (a child process with GGML_Q4_1_REPACK=0); mixed adapters: "
        f"{info.mixed_adapters}")
    out("adapters: " + ", ".join(f"{k} ({'shipped' if 'verticals' in str(v) else 'synthetic r=16 q/v'})"
                                   for k, v in adapters.items()))

    # -- batch 1 -------------------------------------------------------------------------------------------
    n = args.tokens
    engines: list[Engine] = [fp32, bf16, direct, fast, direct_q8, fast_q8, direct_q4, fast_q4]
    for e in engines:  # warm-up
        e.run(PROMPT, 8)
    res = rounds({e.name + e.weights: (lambda e=e: e.run(PROMPT, n)) for e in engines}, args.repeats)
    res_ad = rounds({"fast+adapter": lambda: fast.run(PROMPT, n, "medical")}, args.repeats)
    out()
    out(f"### Batch 1: one request, {n} new tokens (tok/s include the prompt's prefill)")
    out()
    out("| engine | weights | tok/s | vs transformers fp32 | vs llama.cpp direct, same weights | "
        "vs llama.cpp direct, shipped Q4_1 |")
    out("|---|---|---|---|---|---|")
    tps = {k: v[1] / v[0] for k, v in res.items()}
    base_fp32 = tps[fp32.name + fp32.weights]
    base_direct = tps[direct.name + direct.weights]
    same = {e.weights: tps[e.name + e.weights] for e in (direct, direct_q8, direct_q4)}
    for e in engines:
        v = tps[e.name + e.weights]
        peer = same.get(e.weights)
        out(f"| {e.name} | {e.weights} | {v:.1f} | {v / base_fp32:.2f}x | "
            f"{f'{v / peer:.2f}x' if peer else '-'} | {v / base_direct:.2f}x |")
    v = res_ad["fast+adapter"][1] / res_ad["fast+adapter"][0]
    out(f"| {fast.name}, with a LoRA adapter | GGUF Q4_1 + LoRA f32 | {v:.1f} | {v / base_fp32:.2f}x | - | "
        f"{v / base_direct:.2f}x |")

    # -- 8 concurrent ---------------------------------------------------------------------------------------
    jobs = [(p, k, None) for p, k in CONCURRENT]
    mixed = [(p, k, [None, "medical", "legal", "service"][i % 4]) for i, (p, k) in enumerate(CONCURRENT)]
    single = [(p, k, "medical") for p, k in CONCURRENT]
    total = sum(k for _, k in CONCURRENT)
    cases: dict[str, Callable[[], int]] = {
        "direct-seq": lambda: direct.run_many(jobs),
        "fast-seq": lambda: fast.run_many(jobs),
        "fast-conc": lambda: fast.run_concurrent(jobs),
        "fast-conc-single": lambda: fast.run_concurrent(single),
        "fast-conc-mixed": lambda: fast.run_concurrent(mixed),
        "direct-seq-q8": lambda: direct_q8.run_many(jobs),
        "fast-conc-q8": lambda: fast_q8.run_concurrent(jobs),
        "direct-seq-q4": lambda: direct_q4.run_many(jobs),
        "fast-conc-q4": lambda: fast_q4.run_concurrent(jobs),
    }
    if not args.skip_hf_concurrent:
        cases["fp32-seq"] = lambda: fp32.run_many(jobs)
        cases["fp32-batch"] = lambda: fp32.run_batched(jobs)
        cases["bf16-batch"] = lambda: bf16.run_batched(jobs)
    res8 = rounds(cases, args.repeats)
    agg = {k: v[1] / v[0] for k, v in res8.items()}
    out()
    out(f"### 8 concurrent requests (mixed lengths, {total} new tokens in all): aggregate tok/s")
    out()
    out("| engine | weights | how | tok/s | vs llama.cpp direct Q4_1, one after another | "
        "vs llama.cpp direct, same weights, one after another |")
    out("|---|---|---|---|---|---|")
    rows = [("fp32-seq", "transformers `generate`", "fp32", "one after another", None),
            ("fp32-batch", "transformers `generate`", "fp32", "8 in one left-padded batch (to the longest)", None),
            ("bf16-batch", "transformers `generate`", "bf16", "8 in one left-padded batch (to the longest)", None),
            ("direct-seq", direct.name, "GGUF Q4_1", "one after another", "direct-seq"),
            ("fast-seq", fast.name, "GGUF Q4_1", "one after another", "direct-seq"),
            ("fast-conc", fast.name, "GGUF Q4_1", "8 at once, batched decode", "direct-seq"),
            ("fast-conc-single", fast.name, "GGUF Q4_1", "8 at once, all with one adapter", None),
            ("fast-conc-mixed", fast.name, "GGUF Q4_1", "8 at once, mixed adapters (base, medical, legal, service)",
             None),
            ("direct-seq-q8", direct.name, "GGUF Q8_0", "one after another", "direct-seq-q8"),
            ("fast-conc-q8", fast.name, "GGUF Q8_0", "8 at once, batched decode", "direct-seq-q8"),
            ("direct-seq-q4", direct.name, "GGUF Q4_0", "one after another", "direct-seq-q4"),
            ("fast-conc-q4", fast.name, "GGUF Q4_0", "8 at once, batched decode", "direct-seq-q4")]
    for key, name, weights, how, peer in rows:
        if key in agg:
            same_w = f"{agg[key] / agg[peer]:.2f}x" if peer else "-"
            out(f"| {name} | {weights} | {how} | {agg[key]:.1f} | {agg[key] / agg['direct-seq']:.2f}x | {same_w} |")
    out()
    out(f"mixed adapters vs one adapter (8 at once): {agg['fast-conc-mixed'] / agg['fast-conc-single']:.2f}x")
    if "fp32-batch" in agg:
        hf_best = max(agg["fp32-batch"], agg["bf16-batch"])
        out("fast path 8 at once vs the better transformers padded batch "
            f"({hf_best:.1f} tok/s): Q4_1 {agg['fast-conc'] / hf_best:.2f}x, Q8_0 {agg['fast-conc-q8'] / hf_best:.2f}x,"
            f" Q4_0 {agg['fast-conc-q4'] / hf_best:.2f}x")
    if not args.quick:
        concurrent32(args, out, fp32, bf16)
    # latency
    lat = fast.lm.generate(jobs[0][0], GenerationConfig(max_new_tokens=jobs[0][1]))
    out(f"batch-1 metrics of the fast path: TTFT {lat.ttft_s * 1000:.0f} ms, inter-token P50 "
        f"{lat.itl_p50_s * 1000:.1f} ms / P99 {lat.itl_p99_s * 1000:.1f} ms, repetition rate "
        f"{lat.repetition_rate:.1%}")

    if args.quick:
        finish(args, out, lines, load_start, t_start)
        return

    # -- prefix reuse ----------------------------------------------------------------------------------------
    prefix_rows(fast.lm, out, args.repeats)

    # -- adapter agreement: peft (transformers fp32) vs our GGUF LoRA on llama.cpp --------------------------------
    fp32_lm = fp32.lm
    for name, path in adapters.items():
        fp32_lm.load_adapter(name, path)
    fast.lm._eos = fp32_lm._eos
    fast.lm.scheduler.eos = frozenset(fp32_lm._eos)
    out()
    out("### LoRA adapters: peft on transformers fp32 vs the converted GGUF LoRA on llama.cpp (Q4_1 base)")
    out()
    out("| adapter | greedy 32-token outputs identical | mean agreeing prefix | next-token agreement "
        "(teacher-forced on peft's output) | same, base model without adapter vs peft+adapter |")
    out("|---|---|---|---|---|")
    for name in [None, *adapters]:
        same = prefix = 0.0
        tf_agree: list[float] = []
        tf_base: list[float] = []
        for p in AGREEMENT_PROMPTS:
            ref = fp32_lm.generate(p, max_new_tokens=32, adapter=name).token_ids
            got = fast.lm.generate(p, max_new_tokens=32, adapter=name).token_ids
            same += ref == got
            k = next((i for i, (a, b) in enumerate(zip(ref, got)) if a != b), min(len(ref), len(got)))
            prefix += k / max(1, len(ref))
            ids = fast.lm._encode(fast.lm.format_prompt(p)) + ref
            n_prompt = len(ids) - len(ref)
            hf_logits = teacher_forced_logits_hf(fp32_lm, ids, name)[n_prompt - 1:-1]
            ll_logits = teacher_forced_logits_llama(fast.lm, ids, name)[n_prompt - 1:-1]
            tf_agree.append(float((hf_logits.argmax(-1) == ll_logits.argmax(-1)).mean()))
            if name is not None:
                base_logits = teacher_forced_logits_llama(fast.lm, ids, None)[n_prompt - 1:-1]
                tf_base.append(float((hf_logits.argmax(-1) == base_logits.argmax(-1)).mean()))
        m = len(AGREEMENT_PROMPTS)
        base_col = f"{statistics.mean(tf_base):.1%}" if tf_base else "-"
        out(f"| {name or '(base model)'} | {same / m:.0%} ({int(same)}/{m}) | {prefix / m:.0%} | "
            f"{statistics.mean(tf_agree):.1%} | {base_col} |")

    # -- quality of each weight format vs fp32 transformers ---------------------------------------------------------
    out()
    out("### Weight formats: quality against transformers fp32 (the Q4_1 file dequantized) and speed")
    out()
    out("| weights | engine | next-token agreement EN | ppl EN (fp32: {en}) | next-token agreement ZH | "
        "ppl ZH (fp32: {zh}) | batch-1 tok/s | 8 at once tok/s |")
    out("|---|---|---|---|---|---|---|---|")
    texts = {"en": fast.lm._encode(TEXT_EN), "zh": fast.lm._encode(TEXT_ZH)}
    ref_logits = {k: teacher_forced_logits_hf(fp32_lm, ids, None) for k, ids in texts.items()}
    quality_rows = []

    def quality(label: str, engine: str, logits_fn: Callable[[list[int]], np.ndarray], speed: float,
                speed8: float | None) -> None:
        q = {k: compare(ref_logits[k], logits_fn(ids), ids) for k, ids in texts.items()}
        quality_rows.append((label, engine, q, speed, speed8))

    quality("bf16", "transformers", lambda ids: teacher_forced_logits_hf(bf16.lm, ids, None),
            tps[bf16.name + bf16.weights], None)
    for label, e, key in (("Q4_1 (the shipped file)", fast, "fast-conc"), ("Q8_0 (re-exported)", fast_q8,
                          "fast-conc-q8"), ("Q4_0 (re-exported)", fast_q4, "fast-conc-q4")):
        quality(label, "llama.cpp (fast path)", lambda ids, lm=e.lm: teacher_forced_logits_llama(lm, ids, None),
                tps[e.name + e.weights], agg.get(key))
    en_ref = next(iter(quality_rows))[2]["en"]["ppl_ref"]
    zh_ref = next(iter(quality_rows))[2]["zh"]["ppl_ref"]
    lines[-2] = lines[-2].format(en=f"{en_ref:.2f}", zh=f"{zh_ref:.2f}")
    print("\033[F\033[F", end="")
    for label, engine, q, speed, speed8 in quality_rows:
        out(f"| {label} | {engine} | {q['en']['agree']:.1%} | {q['en']['ppl']:.2f} | {q['zh']['agree']:.1%} | "
            f"{q['zh']['ppl']:.2f} | {speed:.1f} | {f'{speed8:.1f}' if speed8 else '-'} |")
    finish(args, out, lines, load_start, t_start)


def finish(args: argparse.Namespace, out: Callable[[str], None], lines: list[str], load_start: str,
           t_start: float) -> None:
    out("")
    out(f"load average at the end: {loadavg()} (start: {load_start}); run took {time.perf_counter() - t_start:.0f} s")
    if args.markdown:
        Path(args.markdown).write_text("\n".join(lines) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
