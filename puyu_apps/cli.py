"""The ``puyu`` command line: list, run, chat, info, prepare, and per-vertical sub-commands."""

from __future__ import annotations

import argparse
import inspect
import json
import sys
from pathlib import Path
from typing import Any, Sequence

from .errors import InvalidInputError, PuyuError


def _console() -> Any:
    from rich.console import Console

    return Console(stderr=True)


def cmd_list(args: argparse.Namespace) -> int:
    from .core import list_models
    from .paths import vertical_dir
    from .pipelines import available

    verticals = [{"name": v.name, "target": v.target, "origin": v.origin} for v in available().values()]
    models = [{"name": m.name, "kind": m.kind, "available": m.available(), "description": m.description,
               "source": m.source, "license": m.license, "install": m.install} for m in list_models()]
    adapters = []
    for v in verticals:
        path = vertical_dir(v["name"]) / "adapter"
        if (path / "adapter_config.json").exists():
            adapters.append({"vertical": v["name"], "path": str(path)})
    data = {"verticals": verticals, "models": models, "adapters": adapters}
    if args.json:
        print(json.dumps(data, indent=2, ensure_ascii=False))
        return 0
    from rich.console import Console
    from rich.table import Table

    con = Console()
    for title, rows, cols in (("Verticals", verticals, ("name", "target", "origin")),
                              ("Models", models, ("name", "kind", "available", "description")),
                              ("Adapters", adapters, ("vertical", "path"))):
        table = Table(title=title)
        for c in cols:
            table.add_column(c)
        for r in rows:
            table.add_row(*(str(r[c]) for c in cols))
        con.print(table)
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from . import pipeline

    kwargs: dict[str, Any] = {}
    if args.model:
        kwargs["model"] = args.model
    if args.adapter:
        kwargs["adapter"] = None if args.adapter == "none" else args.adapter
    try:
        params = json.loads(args.params) if args.params else {}
    except ValueError as exc:
        raise InvalidInputError(f"--params is not a JSON object ({exc}); e.g. --params '{{\"language\": \"zh\"}}'")
    if not isinstance(params, dict):
        raise InvalidInputError(f"--params must be a JSON object, got {type(params).__name__}")
    if args.history:
        params.setdefault("history", args.history)
    if args.asr:
        from .pipelines.plugins import get

        if "asr" not in inspect.signature(get(args.vertical).__init__).parameters:
            raise InvalidInputError(f"--asr applies to verticals that take audio (service), not {args.vertical!r}")
        kwargs["asr"] = args.asr
    pipe = pipeline(args.vertical, **kwargs)
    inputs: Any = args.inputs[0] if len(args.inputs) == 1 else list(args.inputs)
    con = _console()
    result = None
    with pipe, con.status(f"running {args.vertical}...") as status:
        for event in pipe.stream(inputs, **params):
            if event.kind == "progress":
                frac = f" {event.fraction:.0%}" if event.fraction is not None else ""
                status.update(f"{event.stage}{frac} {event.message}")
            elif event.kind == "result":
                result = event.result
    assert result is not None
    if args.out:
        _write_out(result, Path(args.out))
        con.print(f"wrote {args.out}")
    print(result.to_json() if args.json else result.to_text())
    return 0


def _write_out(result: Any, out: Path) -> None:
    if out.suffix in (".html", ".htm") and hasattr(result, "to_html"):
        out.write_text(result.to_html(), encoding="utf-8")
    elif out.suffix == ".pdf" and hasattr(result, "to_pdf"):
        result.to_pdf(out)
    elif hasattr(result, "save") and out.suffix not in (".json", ".txt"):
        result.save(out)
    elif out.suffix == ".txt":
        out.write_text(result.to_text(), encoding="utf-8")
    else:
        out.write_text(result.to_json(), encoding="utf-8")


def cmd_chat(args: argparse.Namespace) -> int:
    from .core import GenerationConfig, LanguageModel

    con = _console()
    with con.status(f"loading {args.model}..."):
        lm = LanguageModel.load(args.model, device=args.device, backend=args.backend)
        if args.adapter:
            lm.load_adapter("user", args.adapter)
    info = lm.info()
    con.print(f"[dim]{info.model} on {info.backend} / {info.device} / {info.weight_format}. "
              f"Empty line or /exit to quit.[/dim]")
    cfg = GenerationConfig(max_new_tokens=args.max_new_tokens, temperature=args.temperature)
    history: list[dict[str, str]] = []
    if args.system:
        history.append({"role": "system", "content": args.system})
    prompts = [args.prompt] if args.prompt else None
    while True:
        if prompts is not None:
            if not prompts:
                break
            line = prompts.pop()
        else:
            try:
                line = input("you> " if sys.stdin.isatty() else "")
            except EOFError:
                break
        if not line.strip() or line.strip() in ("/exit", "/quit"):
            break
        history.append({"role": "user", "content": line})
        try:
            stream = lm.stream(history, cfg, adapter="user" if args.adapter else None)
            print("assistant> " if sys.stdin.isatty() else "", end="", flush=True)
            for piece in stream:
                print(piece, end="", flush=True)
            print(flush=True)
        except PuyuError as exc:
            _print_error(con, exc)
            history.pop()
            continue
        assert stream.result is not None
        history.append({"role": "assistant", "content": stream.result.text})
        con.print(f"[dim]{stream.result.completion_tokens} tokens, {stream.result.tokens_per_s:.1f} tok/s, "
                  f"TTFT {stream.result.ttft_s * 1000:.0f} ms[/dim]")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    import platform

    import torch

    from ._version import __version__

    data: dict[str, Any] = {
        "puyu_apps": __version__, "python": platform.python_version(), "torch": torch.__version__,
        "cuda_available": torch.cuda.is_available(), "threads": torch.get_num_threads(),
    }
    try:
        import transformers

        data["transformers"] = transformers.__version__
    except ImportError:
        pass
    if args.model:
        from .core import LanguageModel

        data["engine"] = LanguageModel.load(args.model, device=args.device, backend=args.backend).info().model_dump()
    else:
        data["engine"] = {"backend": "transformers-eager", "device": args.device,
                          "note": "pass --model NAME to load it and report exactly what runs"}
    print(json.dumps(data, indent=2))
    return 0


def cmd_prepare(args: argparse.Namespace) -> int:
    from .core.loading import load

    for name in [n.strip() for n in args.models.split(",") if n.strip()]:
        loaded = load(name)
        print(f"prepared {name}: {loaded.weight_format} ({loaded.load_seconds:.1f} s)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="puyu", description="puyu_apps: industry applications on InternLM-family LLMs")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("list", help="verticals, models and adapters")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_list)

    s = sub.add_parser("run", help="run a vertical on inputs")
    s.add_argument("vertical")
    s.add_argument("inputs", nargs="+")
    s.add_argument("--json", action="store_true", help="print the typed result as JSON")
    s.add_argument("--out", help="also write the result (.json, .txt, .html, .pdf, .wav: as the vertical allows)")
    s.add_argument("--model", help="base model name or path (default: the embedded model)")
    s.add_argument("--adapter", help="adapter folder, or 'none' for the base model")
    s.add_argument("--params", help="JSON object of extra call parameters, e.g. '{\"language\": \"zh\"}'")
    s.add_argument("--history", help="clinical history / context text, for verticals that take one (medical)")
    s.add_argument("--asr", help="speech recognition engine, for verticals that take audio (service): "
                                 "faster-whisper (default) | openai-whisper")
    s.set_defaults(func=cmd_run)

    s = sub.add_parser("chat", help="interactive streaming chat")
    s.add_argument("--model", default="smollm2-135m-instruct")
    s.add_argument("--adapter", help="a LoRA adapter folder")
    s.add_argument("--device", default="cpu")
    s.add_argument("--system")
    s.add_argument("--prompt", help="ask one question and exit")
    s.add_argument("--max-new-tokens", type=int, default=256)
    s.add_argument("--backend", default="auto", choices=["auto", "transformers", "llama.cpp"],
                   help="auto: llama.cpp on the CPU for GGUF models when llama-cpp-python is installed")
    s.add_argument("--temperature", type=float, default=0.0)
    s.set_defaults(func=cmd_chat)

    s = sub.add_parser("info", help="engine, device, versions")
    s.add_argument("--model", help="load this model and report what actually runs")
    s.add_argument("--device", default="cpu")
    s.add_argument("--backend", default="auto", choices=["auto", "transformers", "llama.cpp"])
    s.set_defaults(func=cmd_info)

    s = sub.add_parser("prepare", help="convert model packs into the cache (run by the set-up command)")
    s.add_argument("--models", default="smollm2-135m-instruct")
    s.set_defaults(func=cmd_prepare)

    from .finetune.cli import add_commands as add_finetune_commands

    add_finetune_commands(sub)
    from .serve.cli import add_serve_command

    add_serve_command(sub)
    return p


def _vertical_parser(name: str) -> argparse.ArgumentParser | None:
    """``puyu <vertical> <command>``: sub-commands contributed by a vertical's pipeline class."""
    from .pipelines import available, get

    if name not in available():
        return None
    cls = get(name)
    p = argparse.ArgumentParser(prog=f"puyu {name}", description=cls.description)
    sub = p.add_subparsers(dest="command", required=True)
    cls.add_cli_commands(sub)
    if not sub.choices:
        return None
    return p


def _print_error(con: Any, exc: BaseException, with_type: bool = False) -> None:
    """One unwrapped line (paths stay copyable); the message is text, never rich markup."""
    from rich.markup import escape

    head = f"{type(exc).__name__}: " if with_type else ""
    con.print(f"[red]error:[/red] {escape(head + str(exc))}", soft_wrap=True)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    top = {"list", "run", "chat", "info", "prepare", "finetune", "eval", "serve", "-h", "--help"}
    try:
        parser = None
        if argv and argv[0] not in top:
            parser = _vertical_parser(argv[0])
            if parser is not None:
                argv = argv[1:]
        parser = parser or build_parser()
        args = parser.parse_args(argv)
        args.argv = list(argv)
        return int(args.func(args) or 0)
    except PuyuError as exc:
        _print_error(_console(), exc, with_type=True)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
