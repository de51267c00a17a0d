"""The example web apps: ``puyu serve`` with the pages of ``examples/web`` at ``/apps/`` and sample inputs at
``/samples/``.

    python -m examples.medical_app        # chest CT report      -> http://127.0.0.1:8000/apps/medical.html
    python -m examples.legal_app          # contract review      -> http://127.0.0.1:8000/apps/legal.html
    python -m examples.service_app        # customer service     -> http://127.0.0.1:8000/apps/service.html
    python -m examples.webapp             # all three, index at  -> http://127.0.0.1:8000/apps/

Options: --port, --host, --model (default: the embedded model), --data-dir, --max-upload-mb, --no-warm-up.
The same pages without the samples: ``puyu serve --pages examples/web``.
"""

from __future__ import annotations

import argparse
import threading
import zipfile
from pathlib import Path
from typing import Any

WEB = Path(__file__).resolve().parent / "web"
VERTICALS = ("medical", "legal", "service")
TITLES = {"medical": "chest CT report", "legal": "contract review", "service": "customer service call"}


def samples_dir() -> Path:
    from puyu_apps.paths import cache_dir

    return cache_dir() / "examples" / "samples"


def make_samples(vertical: str, root: Path | None = None, *, small: bool = False) -> list[Path]:
    """Write the sample inputs of ``vertical`` (once) with the vertical's own ``make-sample`` code.

    ``small``: a 128x128x40 series instead of the CLI's 256x256x60 (what the tests use)."""
    root = (root or samples_dir()) / vertical
    if vertical == "medical":
        out = root / "series.zip"
        if not out.exists():
            from puyu_apps.medical.phantom import make_sample

            folder = root / "series"
            shape, spacing = ((40, 128, 128), (1.6, 1.6, 2.5)) if small else ((60, 256, 256), (1.4, 1.4, 2.5))
            paths, _ = make_sample(folder, shape=shape, spacing=spacing)
            _zip(paths, out)
        return [out]
    if vertical == "legal":
        out = root / "contract_en_digital.pdf"
        if not out.exists():
            from puyu_apps.legal.samples import make_samples as make_contracts

            make_contracts(root)
        return sorted(root.glob("*.pdf"))
    if vertical == "service":
        out = root / "refund.wav"
        if not out.exists():
            from puyu_apps.service.cli import make_samples as make_calls

            make_calls(root)
        return sorted(root.glob("*.wav"))
    raise ValueError(f"vertical: one of {', '.join(VERTICALS)}, got {vertical!r}")


def _zip(paths: list[Path], out: Path) -> None:
    tmp = out.with_name(out.name + ".partial")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
        for p in paths:
            zf.write(p, p.name)
    tmp.replace(out)


def build_app(config: Any, samples: Path | None = None) -> Any:
    """``create_app(config)`` with the example pages at /apps/ and, when given, ``samples`` at /samples/."""
    from fastapi.staticfiles import StaticFiles

    from puyu_apps.serve import create_app

    if not config.pages_dir:
        config.pages_dir = str(WEB)
    app = create_app(config)
    if samples is not None:
        samples.mkdir(parents=True, exist_ok=True)
        app.mount("/samples", StaticFiles(directory=samples), name="samples")
    return app


def main(vertical: str | None = None, argv: list[str] | None = None) -> int:
    from puyu_apps.core import DEFAULT_MODEL
    from puyu_apps.serve import ServeConfig

    what = TITLES.get(vertical or "", "medical, legal and service")
    p = argparse.ArgumentParser(prog=f"python -m examples.{vertical + '_app' if vertical else 'webapp'}",
                                description=f"The puyu_apps example web app ({what}) on the project's own server.")
    p.add_argument("--host", default="127.0.0.1", help="interface to listen on (default: loopback only)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--model", default=DEFAULT_MODEL, help="base model name or folder (default: the embedded one)")
    p.add_argument("--data-dir", default="", help="folder of the job store, uploads and rendered results")
    p.add_argument("--max-upload-mb", type=float, default=50.0)
    p.add_argument("--no-warm-up", action="store_true", help="load the models on the first upload instead")
    args = p.parse_args(argv)

    import uvicorn

    names = [vertical] if vertical else list(VERTICALS)
    for name in names:
        print(f"preparing the {name} sample input(s) ...", flush=True)
        make_samples(name)
    config = ServeConfig(model=args.model, host=args.host, port=args.port, data_dir=args.data_dir,
                         max_upload_mb=args.max_upload_mb)
    app = build_app(config, samples_dir())
    if not args.no_warm_up:
        threading.Thread(target=_warm_up, args=(app, names), daemon=True).start()
    page = f"{names[0]}.html" if vertical else ""
    print(f"\n  puyu_apps example app: {what}\n  open   http://{args.host}:{args.port}/apps/{page}\n"
          f"  sample {samples_dir() / names[0]} (or the page's 'Try the sample' button)\n"
          f"  API    http://{args.host}:{args.port}/docs\n  stop   Ctrl+C\n", flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0


def _warm_up(app: Any, names: list[str]) -> None:
    """Load the models now, so the first upload does not wait for them (its job shows progress either way)."""
    runtime = app.state.puyu.runtime
    for name in names:
        try:
            pipe, lock = runtime.pipeline(name)
            with lock:
                pipe.warm_up()
        except Exception as exc:  # the page will show the same error on upload
            print(f"warning: the {name} vertical could not load: {type(exc).__name__}: {exc}", flush=True)


if __name__ == "__main__":
    raise SystemExit(main())
