"""``puyu service make-sample`` and ``puyu service talk``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


def add_commands(subparsers: Any) -> None:
    s = subparsers.add_parser("make-sample", help="synthesise sample calls (wav) with espeak-ng / flite")
    s.add_argument("--out", default="service_samples", help="folder for the wav files (default: service_samples)")
    s.add_argument("--engine", default="espeak-ng", choices=["espeak-ng", "flite"])
    s.set_defaults(func=cmd_make_sample)
    t = subparsers.add_parser("talk", help="a conversation over audio files or text lines (no microphone)")
    t.add_argument("inputs", nargs="*", help="audio files or text turns; none: read text turns from stdin")
    t.add_argument("--session", help="session id (default: a new one)")
    t.add_argument("--model", help="language model name (default: the embedded model)")
    t.add_argument("--tts", default="espeak-ng", help="espeak-ng | flite | none")
    t.add_argument("--asr", default="faster-whisper", help="faster-whisper | openai-whisper")
    t.add_argument("--db-url", help="SQLAlchemy URL of the ticket store (default: SQLite in the cache)")
    t.add_argument("--out-dir", help="write each spoken reply here as reply_<n>.wav")
    t.add_argument("--json", action="store_true", help="print each turn as JSON")
    t.set_defaults(func=cmd_talk)


def make_samples(out: str | Path, engine: str = "espeak-ng") -> list[dict[str, Any]]:
    """Speak the manifest's sample calls into ``out``; returns [{"id", "language", "text", "path"}]."""
    from ..paths import vertical_dir
    from .tts import make_tts

    tts = make_tts(engine)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    manifest = json.loads((vertical_dir("service") / "manifest.json").read_text(encoding="utf-8"))
    made = []
    for sample in manifest["samples"]:
        if engine == "flite" and sample["language"] != "en":
            continue
        path = tts.save(sample["text"], out / f"{sample['id']}.wav", sample["language"])
        made.append({**sample, "path": str(path)})
    (out / "samples.json").write_text(json.dumps(made, ensure_ascii=False, indent=2), encoding="utf-8")
    return made


def cmd_make_sample(args: argparse.Namespace) -> int:
    for s in make_samples(args.out, args.engine):
        print(f"{s['path']}\t{s['text']}")
    return 0


def cmd_talk(args: argparse.Namespace) -> int:
    from . import CustomerServicePipeline
    from ..errors import InvalidInputError

    kwargs: dict[str, Any] = {"tts": None if args.tts == "none" else args.tts, "db_url": args.db_url,
                              "asr": args.asr}
    if args.model:
        kwargs["model"] = args.model
    pipe = CustomerServicePipeline(**kwargs)
    session = pipe.session(args.session).id
    turns = args.inputs or (line.strip() for line in sys.stdin if line.strip())
    with pipe:
        for n, item in enumerate(turns, 1):
            try:
                res = pipe(item, session_id=session)
            except InvalidInputError as exc:  # one bad turn does not end the conversation
                print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
                continue
            print(res.to_json() if args.json else res.to_text() + "\n", flush=True)
            if args.out_dir and res.reply_audio is not None:
                Path(args.out_dir).mkdir(parents=True, exist_ok=True)
                res.save(Path(args.out_dir) / f"reply_{n}.wav")
    return 0
