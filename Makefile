# The two commands of the README: `make setup` (installs everything, runs nothing else) and `make test`.
PY ?= .venv/bin/python

.PHONY: setup test bench
setup:
	bash scripts/setup.sh

test:
	bash scripts/test.sh

bench:
	$(PY) benchmarks/generate.py

# Train the three vertical LoRA adapters on the embedded model (generated data) and record base-vs-adapter
# scores on each held-out set into verticals/<name>/MODEL_CARD.md. The shipped adapters were made with exactly
# these settings: 35 min in all on this 2-core machine, idle (training 20 min, batches grouped by length; the
# evaluation of all 200 held-out rows per vertical 15 min, answers on the llama.cpp backend 8 at a time).
LORA_ARGS ?= --batch-size 8 --lr 1e-3 --r 16 --alpha 32 --targets q_proj,k_proj,v_proj,o_proj
.PHONY: adapters adapter
adapters:
	$(MAKE) adapter V=service STEPS=240 TOKENS=64
	$(MAKE) adapter V=legal STEPS=110 TOKENS=120
	$(MAKE) adapter V=medical STEPS=110 TOKENS=120

adapter:
	HF_HUB_OFFLINE=1 .venv/bin/puyu finetune --vertical $(V) --no-resume --no-eval --steps $(STEPS) $(LORA_ARGS)
	HF_HUB_OFFLINE=1 .venv/bin/puyu eval --vertical $(V) --max-new-tokens $(TOKENS) \
	  --write-card verticals/$(V)/MODEL_CARD.md
