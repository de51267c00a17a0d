"""The llama.cpp engine beside torch in one process: batch-1 decode speed before and after torch ran a parallel
operation in another thread (as every pipeline does: MONAI, image features, Whisper front-ends, training).

llama.cpp built with OpenMP shares libgomp's bookkeeping with torch: once torch's OpenMP team exists, libgomp
counts more threads than cores and stops spinning at barriers, and every llama.cpp decode slows down.
``make setup`` builds llama.cpp with its own thread pool (``GGML_OPENMP=OFF``); this script shows what that
buys on the build that is installed. Same process, same prompt; best of ``--rounds``.

    .venv/bin/python benchmarks/engine_threads.py [--tokens 128] [--rounds 3]
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from puyu_apps.core import GenerationConfig, LanguageModel  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tokens", type=int, default=128)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()

    import llama_cpp.llama_cpp as lib

    info = lib.llama_print_system_info().decode()
    openmp = "OPENMP = 1" in info
    lm = LanguageModel.load(backend="llama.cpp")
    lm._eos = set()  # exactly --tokens new tokens
    lm.scheduler.eos = frozenset()
    lm.prefix_cache = False
    cfg = GenerationConfig(max_new_tokens=args.tokens)

    def speed() -> float:
        best = 0.0
        for _ in range(args.rounds):
            t = time.perf_counter()
            n = lm.generate("Write a long story about a lighthouse keeper.", cfg).completion_tokens
            best = max(best, n / (time.perf_counter() - t))
        return best

    alone = speed()

    def torch_work() -> None:
        import torch

        x = torch.randn(512, 512)
        for _ in range(20):
            x = torch.tanh(x @ x)

    t = threading.Thread(target=torch_work)  # a pipeline stage in a worker thread; its OpenMP team stays alive
    t.start()
    t.join()
    torch_work()  # and in the main thread, as a script would
    after = speed()
    print(f"llama.cpp build: {'OpenMP' if openmp else 'own thread pool (GGML_OPENMP=OFF)'}; "
          f"threads {lm.threads}; {args.tokens} new tokens, best of {args.rounds}")
    print(f"  batch 1, nothing else in the process:   {alone:7.1f} tok/s")
    print(f"  batch 1, after torch ran in 2 threads:  {after:7.1f} tok/s  ({after / alone:.2f}x)")


if __name__ == "__main__":
    main()
