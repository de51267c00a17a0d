"""The adapter's model card: data, hyper-parameters, scores, privacy budget."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .config import FinetuneConfig


def write_model_card(out: Path, base_model: str, vertical: str | None, cfg: FinetuneConfig, report: Any,
                     train_path: Any, eval_path: Any) -> Path:
    lines = [
        f"# LoRA adapter{f' for the {vertical} vertical' if vertical else ''}",
        "",
        f"- Base model: `{base_model}`",
        f"- Training data: `{Path(str(train_path)).name}` ({report.train_examples} examples); "
        f"held-out evaluation: `{Path(str(eval_path)).name if eval_path else 'none'}`",
        f"- LoRA: r={cfg.r}, alpha={cfg.alpha}, dropout={cfg.dropout}, targets={', '.join(cfg.target_modules)}",
        f"- Optimiser: AdamW lr={cfg.learning_rate}, cosine schedule, warm-up {cfg.warmup_ratio:.0%}, "
        f"batch {cfg.batch_size} x accumulation {cfg.grad_accum}, {report.steps} steps, seed {cfg.seed}",
        f"- Final training loss: {report.final_loss:.4f}; wall time {report.seconds:.0f} s on CPU",
    ]
    if cfg.dp is not None:
        lines.append(f"- Differential privacy (DP-SGD on the LoRA parameters): noise multiplier "
                     f"{cfg.dp.noise_multiplier}, clip {cfg.dp.max_grad_norm}, delta {cfg.dp.delta}: "
                     f"epsilon spent = {report.dp_epsilon:.3f}")
    if report.eval:
        lines += ["", "## Held-out evaluation", "", "| metric | value |", "|---|---|"]
        lines += [f"| {k} | {v:.4f} |" if isinstance(v, float) else f"| {k} | {v} |" for k, v in report.eval.items()]
    path = out / "README.md"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


EVAL_BEGIN, EVAL_END = "<!-- puyu eval: begin -->", "<!-- puyu eval: end -->"


def write_eval_section(card: Path, rows: dict[str, dict[str, float]], *, data: str, n: int, command: str,
                       engines: str = "") -> Path:
    """Put the base-vs-adapter table into ``card`` between markers (replacing an earlier one; the rest of the
    card is kept)."""
    lines = [EVAL_BEGIN, "## Adapter evaluation (held-out, never trained on)", "",
             f"{n} held-out examples from `{Path(data).name}`; produced by `{command}`."
             + (f" Engines: {engines}." if engines else ""), "",
             "| metric | base model | with adapter |", "|---|---|---|"]
    for m in rows["base"]:
        lines.append(f"| {m} | {rows['base'][m]:.4f} | {rows['adapter'][m]:.4f} |")
    block = "\n".join(lines + [EVAL_END])
    text = card.read_text(encoding="utf-8") if card.exists() else ""
    if EVAL_BEGIN in text and EVAL_END in text:
        head, rest = text.split(EVAL_BEGIN, 1)
        text = head + block + rest.split(EVAL_END, 1)[1]
    else:
        text = text.rstrip() + ("\n\n" if text else "") + block + "\n"
    card.write_text(text, encoding="utf-8")
    return card
