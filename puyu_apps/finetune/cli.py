"""``puyu finetune`` and ``puyu eval``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from ..core import DEFAULT_MODEL
from ..errors import InvalidInputError
from ..paths import cache_dir, vertical_dir

#: the generated training data of a vertical (``puyu finetune --vertical NAME`` without ``--data``)
N_TRAIN, N_EVAL, DATA_SEED = 3000, 200, 0


def vertical_data(vertical: str, n_train: int = N_TRAIN, n_eval: int = N_EVAL,
                  seed: int = DATA_SEED) -> tuple[Path, Path]:
    """The vertical's generated train/held-out split, (re)written into the cache: generation is deterministic
    and takes seconds, and a stale copy would hide a change to the generator."""
    from ..pipelines import get

    cls = get(vertical)
    folder = cache_dir() / "training_data" / f"{vertical}-{n_train}-{n_eval}-{seed}"
    try:
        made = cls.make_training_data(folder, n_train=n_train, n_eval=n_eval, seed=seed)
    except NotImplementedError as exc:
        raise InvalidInputError(str(exc)) from exc
    return Path(made[0]), Path(made[1])


def _manifest_lora(vertical: str) -> dict[str, Any]:
    path = vertical_dir(vertical) / "manifest.json"
    if not path.exists():
        return {}
    return dict(json.loads(path.read_text(encoding="utf-8")).get("lora", {}))


def cmd_finetune(args: argparse.Namespace) -> int:
    from .config import DPConfig, FinetuneConfig
    from .trainer import finetune

    if not args.data:
        if not args.vertical:
            raise InvalidInputError("puyu finetune needs --data FILE, or --vertical NAME to use that vertical's "
                                    "generated training data")
        args.data, generated_eval = vertical_data(args.vertical)
        args.eval = args.eval or generated_eval
    if args.no_eval:
        args.eval = None
    lora = _manifest_lora(args.vertical) if args.vertical else {}
    kw: dict[str, Any] = {k: v for k, v in lora.items() if k in ("r", "alpha", "target_modules", "dropout")}
    for name in ("r", "alpha", "epochs", "batch_size", "grad_accum", "max_length", "seed"):
        if getattr(args, name) is not None:
            kw[name] = getattr(args, name)
    if args.lr is not None:
        kw["learning_rate"] = args.lr
    if args.targets:
        kw["target_modules"] = [t.strip() for t in args.targets.split(",") if t.strip()]
    if args.precision:
        kw["precision"] = args.precision
    if args.steps is not None:
        kw["max_steps"] = args.steps
    if args.dp_noise is not None:
        kw["dp"] = DPConfig(noise_multiplier=args.dp_noise, max_grad_norm=args.dp_clip or 1.0)
    out = Path(args.out) if args.out else vertical_dir(args.vertical or "custom") / "adapter"
    report = finetune(args.model, args.data, out, FinetuneConfig(**kw), eval_path=args.eval,
                      vertical=args.vertical, resume=not args.no_resume)
    print(json.dumps(report.__dict__, indent=2))
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from ..core import LanguageModel
    from ..core.config import LoadConfig
    from ..engine.backend import choose_backend
    from ..pipelines import get
    from .config import FinetuneConfig
    from .data import load_jsonl
    from .evaluate import eval_loss, generation_scores, perplexity
    from .trainer import autocast_dtype

    if not args.data:
        if not args.vertical:
            raise InvalidInputError("puyu eval needs --data FILE, or --vertical NAME to use that vertical's "
                                    "held-out set")
        args.data = vertical_data(args.vertical)[1]
    examples = load_jsonl(args.data)[: args.limit] if args.limit else load_jsonl(args.data)
    adapter_dir = Path(args.adapter) if args.adapter else vertical_dir(args.vertical) / "adapter"
    scorer = getattr(get(args.vertical), "eval_scorer", None) if args.vertical else None
    lm = LanguageModel.load(args.model, backend="transformers")  # the weights the adapter was trained on
    lm.load_adapter("eval", adapter_dir)
    # Task scores come from the backend the verticals run by default (`auto`: llama.cpp on the CPU for the
    # embedded model, requests decoded 8 at a time), or the one named by --backend.
    if choose_backend(args.model, LoadConfig(backend=args.backend))[0] == "transformers":
        gen_lm, concurrency = lm, 1  # one request at a time, on the copy already loaded
    else:
        gen_lm = LanguageModel.load(args.model, backend="llama.cpp")
        gen_lm.load_adapter("eval", adapter_dir)
        concurrency = max(1, args.concurrency)
    info = gen_lm.info()
    cfg = FinetuneConfig(precision=args.precision)
    amp = autocast_dtype(cfg.precision, lm.device)
    engines = (f"loss: transformers {lm.info().dtype}{' with bf16 autocast' if amp is not None else ''}; "
               f"answers: {info.backend}, {info.weight_format}, {concurrency} at a time, greedy")
    rows: dict[str, dict[str, float]] = {}
    for label, adapter in (("base", None), ("adapter", "eval")):
        with lm.adapters.use(adapter) as model:
            loss = eval_loss(model, lm.tokenizer, examples, cfg)
        scores = {"eval_loss": loss, "perplexity": perplexity(loss)}
        if not args.loss_only:
            scores.update(generation_scores(gen_lm, examples, adapter, scorer, max_new_tokens=args.max_new_tokens,
                                            concurrency=concurrency))
        rows[label] = scores
    metrics = list(rows["base"])
    print(f"{'metric':<24}{'base':>12}{'adapter':>12}")
    for m in metrics:
        print(f"{m:<24}{rows['base'][m]:>12.4f}{rows['adapter'][m]:>12.4f}")
    print(engines)
    if args.json:
        print(json.dumps(rows, indent=2))
    if args.write_card:
        from .card import write_eval_section

        card = write_eval_section(Path(args.write_card), rows, data=str(args.data), n=len(examples),
                                  command="puyu " + " ".join(getattr(args, "argv", ["eval"])), engines=engines)
        print(f"wrote {card}")
    return 0


def add_commands(sub: Any) -> None:
    s = sub.add_parser("finetune", help="train a LoRA adapter from instruction/input/output JSONL")
    s.add_argument("--vertical", help="the vertical whose manifest gives LoRA defaults and whose folder gets "
                                      "the adapter")
    s.add_argument("--data", help="training JSONL (default with --vertical: the vertical's generated data)")
    s.add_argument("--eval", help="held-out JSONL (default with --vertical: the generated held-out split)")
    s.add_argument("--model", default=DEFAULT_MODEL)
    s.add_argument("--out", help="adapter folder (default: verticals/<vertical>/adapter)")
    s.add_argument("--steps", type=int)
    s.add_argument("--epochs", type=float)
    s.add_argument("--r", type=int)
    s.add_argument("--alpha", type=int)
    s.add_argument("--lr", type=float)
    s.add_argument("--targets", help="comma-separated module names for LoRA (default: the manifest's, else "
                                     "q_proj,v_proj)")
    s.add_argument("--precision", choices=["auto", "bf16", "fp32"])
    s.add_argument("--batch-size", type=int)
    s.add_argument("--grad-accum", type=int)
    s.add_argument("--max-length", type=int)
    s.add_argument("--seed", type=int)
    s.add_argument("--dp-noise", type=float, help="enable DP-SGD with this noise multiplier (0.5-2)")
    s.add_argument("--dp-clip", type=float, help="per-example gradient clip for DP-SGD (1-5)")
    s.add_argument("--no-resume", action="store_true", help="ignore an existing checkpoint")
    s.add_argument("--no-eval", action="store_true",
                   help="skip the held-out loss after training (when `puyu eval` follows, as in `make adapters`)")
    s.set_defaults(func=cmd_finetune)

    s = sub.add_parser("eval", help="held-out scores of the base model vs an adapter")
    s.add_argument("--vertical")
    s.add_argument("--data", help="held-out JSONL (default with --vertical: the generated held-out split)")
    s.add_argument("--adapter", help="adapter folder (default: verticals/<vertical>/adapter)")
    s.add_argument("--model", default=DEFAULT_MODEL)
    s.add_argument("--limit", type=int)
    s.add_argument("--max-new-tokens", type=int, default=96)
    s.add_argument("--loss-only", action="store_true", help="skip generation-based scores")
    s.add_argument("--backend", default="auto", choices=["auto", "transformers", "llama.cpp"],
                   help="engine for the generated answers (default: what the verticals run, llama.cpp on the CPU "
                        "for GGUF models); the loss always uses the transformers weights the adapter was trained on")
    s.add_argument("--concurrency", type=int, default=8,
                   help="answers generated at once on the llama.cpp backend (decoded in one batch)")
    s.add_argument("--precision", default="auto", choices=["auto", "bf16", "fp32"],
                   help="autocast of the loss (auto: bf16 where the CPU has it natively, as in training)")
    s.add_argument("--json", action="store_true")
    s.add_argument("--write-card", metavar="MODEL_CARD.md",
                   help="also write the table into this model card's 'Adapter evaluation' section")
    s.set_defaults(func=cmd_eval)
