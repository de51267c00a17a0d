# The two commands of the README: `make setup` (installs everything, runs nothing else) and `make test`.
PY ?= .venv/bin/python

.PHONY: setup test bench
setup:
	bash scripts/setup.sh

test:
	bash scripts/test.sh

bench:
	$(PY) benchmarks/generate.py

# Train the three vertical LoRA adapters on the embedded model (generated data; about 40 min on 2 cores) and
# print/record base-vs-adapter scores on each held-out set into verticals/<name>/MODEL_CARD.md.
ADAPTER_ARGS ?= --steps 180 --batch-size 8 --lr 1e-3 --r 16 --alpha 32 --targets q_proj,k_proj,v_proj,o_proj
EVAL_ARGS ?= --limit 60
.PHONY: adapters
adapters:
	for v in medical legal service; do \
	  HF_HUB_OFFLINE=1 .venv/bin/puyu finetune --vertical $$v --no-resume $(ADAPTER_ARGS) || exit 1; \
	  HF_HUB_OFFLINE=1 .venv/bin/puyu eval --vertical $$v $(EVAL_ARGS) --write-card verticals/$$v/MODEL_CARD.md || exit 1; \
	done
