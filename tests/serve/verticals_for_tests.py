"""A vertical registered by the serve tests: it lists/reads what it is given, can sleep (long jobs), can call the
shared LLM, and echoes text (so PII masking of results can be checked)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from puyu_apps.pipelines import Pipeline, PipelineResult

NAME = "echo_files"


class EchoResult(PipelineResult):
    kind: str
    files: list[str] = []
    n_bytes: int = 0
    text: str = ""
    generated: str = ""


class EchoPipeline(Pipeline):
    name = NAME
    description = "test vertical: echoes its input"
    result_type = EchoResult
    adapter_subdir = None
    accepted_suffixes = (".txt", ".zip", ".pdf", ".json")

    def preprocess(self, inputs: Any, **params: Any) -> dict[str, Any]:
        unknown = set(params) - {"sleep", "generate"}
        if unknown:
            raise ValueError(f"params: unknown {sorted(unknown)}; this vertical takes 'sleep' and 'generate'")
        sleep = params.get("sleep", 0)
        if not isinstance(sleep, (int, float)) or not 0 <= sleep <= 30:
            raise ValueError("params.sleep must be a number of seconds in [0, 30]")
        p = Path(inputs) if isinstance(inputs, str) and len(inputs) < 4096 and "\n" not in inputs else None
        if p is not None and p.is_dir():
            files = sorted(str(f.relative_to(p)) for f in p.rglob("*") if f.is_file())
            data = {"kind": "folder", "files": files, "n_bytes": sum(f.stat().st_size for f in p.rglob("*")
                                                                      if f.is_file())}
        elif p is not None and p.is_file():
            raw = p.read_bytes()
            data = {"kind": "file", "files": [p.name], "n_bytes": len(raw),
                    "text": raw[:200].decode("utf-8", "replace") if p.suffix == ".txt" else ""}
        else:
            data = {"kind": "text", "text": str(inputs)}
        return {**data, "sleep": float(sleep), "generate": bool(params.get("generate", False))}

    def _forward(self, prepared: dict[str, Any]) -> dict[str, Any]:
        steps = max(1, int(prepared["sleep"] / 0.1))
        for i in range(steps):
            if prepared["sleep"]:
                time.sleep(prepared["sleep"] / steps)
                self.progress("sleeping", f"step {i + 1}/{steps}", (i + 1) / steps)
        if prepared["generate"]:
            prepared["generated"] = self.lm.generate(prepared.get("text") or "hello", max_new_tokens=4).text
        return prepared

    def postprocess(self, outputs: dict[str, Any]) -> EchoResult:
        return EchoResult(vertical=self.name, kind=outputs["kind"], files=outputs.get("files", []),
                          n_bytes=outputs.get("n_bytes", 0), text=outputs.get("text", ""),
                          generated=outputs.get("generated", ""))


def serve_main(port: int, data_dir: str) -> None:
    """Entry of the server subprocess used by the restart test."""
    from puyu_apps.pipelines import register
    from puyu_apps.serve import ServeConfig, run

    register(NAME, EchoPipeline, replace=True)
    run(ServeConfig(model="tiny-random-llama", port=port, data_dir=data_dir, max_tokens_limit=64,
                    default_max_tokens=16))
