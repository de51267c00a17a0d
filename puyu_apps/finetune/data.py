"""Instruction / input / output JSONL: validated line by line, with the line number in every error."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ..errors import InvalidInputError

REQUIRED = ("instruction", "output")
ALLOWED = {"instruction", "input", "output", "system", "id", "lang", "meta"}


class DataFormatError(InvalidInputError):
    """A training or evaluation file is empty, malformed, or in the wrong schema."""


@dataclass(frozen=True)
class Example:
    instruction: str
    input: str
    output: str
    lang: str = "en"
    meta: dict | None = None
    system: str | None = None

    def prompt_messages(self, system: str | None = None) -> list[dict[str, str]]:
        """The chat the model sees: the example's own system prompt (the one its pipeline sends) wins over
        the run-wide ``system``."""
        user = self.instruction if not self.input else f"{self.instruction}\n\n{self.input}"
        system = self.system or system
        msgs = [{"role": "system", "content": system}] if system else []
        return msgs + [{"role": "user", "content": user}]


def load_jsonl(path: str | Path) -> list[Example]:
    path = Path(path)
    if not path.exists():
        raise DataFormatError(f"data file {path} does not exist")
    examples: list[Example] = []
    with path.open("r", encoding="utf-8") as fh:
        for no, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataFormatError(f"{path}:{no}: not valid JSON ({exc.msg} at column {exc.colno})") from exc
            if not isinstance(row, dict):
                raise DataFormatError(f"{path}:{no}: each line must be a JSON object, got {type(row).__name__}")
            missing = [k for k in REQUIRED if not isinstance(row.get(k), str) or not row[k].strip()]
            if missing:
                raise DataFormatError(
                    f"{path}:{no}: missing or empty field(s) {missing}; each line needs "
                    f"{{\"instruction\": str, \"input\": str (optional), \"output\": str}}, got keys {sorted(row)}"
                )
            unknown = set(row) - ALLOWED
            if unknown:
                raise DataFormatError(f"{path}:{no}: unknown field(s) {sorted(unknown)}; allowed: {sorted(ALLOWED)}")
            for key in ("input", "system"):
                if key in row and not isinstance(row[key], str):
                    raise DataFormatError(f"{path}:{no}: field {key!r} must be a string")
            if "meta" in row and not isinstance(row["meta"], dict):
                raise DataFormatError(f"{path}:{no}: field 'meta' must be an object")
            examples.append(Example(row["instruction"], row.get("input", ""), row["output"],
                                    row.get("lang", "en"), row.get("meta"), row.get("system") or None))
    if not examples:
        raise DataFormatError(f"{path} holds no examples: the file is empty")
    return examples


def write_jsonl(path: str | Path, rows: list[dict]) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with Path(path).open("w", encoding="utf-8") as fh:
        for r in rows:
            fh.write(json.dumps(r, ensure_ascii=False) + "\n")
