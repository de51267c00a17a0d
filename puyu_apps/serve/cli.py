"""``puyu serve``: start the HTTP service, or manage API keys.

The lead wires it into ``puyu_apps/cli.py`` with one line: ``add_serve_command(subparsers)``.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from ..core import DEFAULT_MODEL


def add_serve_command(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser("serve", help="start the HTTP service (OpenAI-compatible chat, verticals, jobs)",
                              description="Serve the model and every registered vertical over HTTP.")
    p.add_argument("--host", default="127.0.0.1", help="interface to listen on (default: loopback only)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--model", default=DEFAULT_MODEL, help="base model name or folder")
    p.add_argument("--device", default="cpu")
    p.add_argument("--gguf-format", default=None, choices=["f32", "f16", "q8_0", "q5_0", "q4_0", "q4_1"],
                   help="llama.cpp backend: run the weights re-exported to this GGUF type (q8_0: better batching "
                        "of concurrent requests at the shipped file's quality; see docs/engine.md)")
    p.add_argument("--data-dir", default="", help="folder of the SQLite job/key store and uploads")
    p.add_argument("--workers", type=int, default=1, help="requests running on the model at once")
    p.add_argument("--max-queue", type=int, default=8, help="requests allowed to wait; beyond: 503 at once")
    p.add_argument("--max-upload-mb", type=float, default=50.0)
    p.add_argument("--require-key", choices=["auto", "yes", "no"], default="auto",
                   help="auto: keys are required once one exists")
    p.add_argument("--backend-url", default=None,
                   help="an OpenAI-compatible engine (LMDeploy api_server, vLLM) to generate on instead")
    p.add_argument("--ab", action="append", default=[], metavar="VERTICAL=ADAPTER_A,ADAPTER_B[,WEIGHT_B]",
                   help="A/B test two adapter folders of a vertical ('none' = base model)")
    p.add_argument("--pages", default="", metavar="DIR",
                   help="serve the static web pages in DIR at /apps/ (the example apps: examples/web)")
    p.add_argument("--vertical-options", default="", metavar="JSON",
                   help='constructor arguments per vertical, e.g. \'{"service": {"db_url": "sqlite:///t.db"}}\'')
    p.add_argument("--create-key", metavar="NAME", help="create an API key, print it once, and exit")
    p.add_argument("--rate", type=float, default=60.0, help="requests per minute of the key made by --create-key")
    p.add_argument("--list-keys", action="store_true", help="list active keys (ids and names) and exit")
    p.add_argument("--revoke-key", metavar="ID", help="revoke a key by id and exit")
    p.set_defaults(func=cmd_serve)
    return p


def _config(args: argparse.Namespace) -> Any:
    from ..errors import InvalidInputError
    from .config import ABTest, ServeConfig

    tests = []
    for spec in args.ab:
        vertical, _, rest = spec.partition("=")
        parts = rest.split(",")
        if not vertical or len(parts) not in (2, 3):
            raise ValueError(f"--ab {spec!r}: expected VERTICAL=ADAPTER_A,ADAPTER_B[,WEIGHT_B]")
        a, b = (None if x == "none" else x for x in parts[:2])
        tests.append(ABTest(vertical, a, b, float(parts[2]) if len(parts) == 3 else 0.5))
    require = {"auto": None, "yes": True, "no": False}[args.require_key]
    try:
        options = json.loads(args.vertical_options) if args.vertical_options else {}
    except json.JSONDecodeError as exc:
        raise InvalidInputError(f"--vertical-options: not valid JSON ({exc.msg}); e.g. '{{\"legal\": "
                         f"{{\"max_explanations\": 4}}}}'") from exc
    if not isinstance(options, dict):
        raise InvalidInputError("--vertical-options: a JSON object of {vertical: {argument: value}}")
    return ServeConfig(model=args.model, device=args.device, gguf_format=args.gguf_format, host=args.host,
                       port=args.port, data_dir=args.data_dir, workers=args.workers, max_queue=args.max_queue, max_upload_mb=args.max_upload_mb,
                       require_api_key=require, backend_url=args.backend_url, ab_tests=tests,
                       pages_dir=args.pages, vertical_options=options)


def cmd_serve(args: argparse.Namespace) -> int:
    config = _config(args)
    if args.create_key or args.list_keys or args.revoke_key:
        from .keys import KeyStore

        store = KeyStore(config.db_file)
        if args.create_key:
            print(store.create(args.create_key, args.rate))
            print("(shown once; only its hash is stored)")
        elif args.revoke_key:
            print("revoked" if store.revoke(args.revoke_key) else f"no active key {args.revoke_key!r}")
        else:
            print(json.dumps([k.__dict__ for k in store.list()], indent=2, ensure_ascii=False))
        return 0
    from ..errors import InvalidInputError
    from . import run

    try:
        run(config)
    except ValueError as exc:  # a setting found wrong at start-up (vertical_options, pages_dir)
        raise InvalidInputError(str(exc)) from exc
    return 0
