# The two commands of the README: `make setup` (installs everything, runs nothing else) and `make test`.
PY ?= .venv/bin/python

.PHONY: setup test bench
setup:
	bash scripts/setup.sh

test:
	bash scripts/test.sh

bench:
	$(PY) benchmarks/generate.py
