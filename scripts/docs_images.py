"""Re-make the pictures in docs/images/ from a real run: the example apps' browser tests on the embedded default
model, screenshots shrunk to palette PNGs.

    .venv/bin/python scripts/docs_images.py        # about 2-10 min on a 2-core CPU
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
SHOTS = {"index": "apps-index", "medical": "app-medical", "legal": "app-legal", "service": "app-service",
         "error-corrupt-pdf": "app-error-corrupt-pdf", "error-too-big": "app-error-too-big"}
WIDTH = 1000


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "PUYU_E2E_MODEL": "smollm2-135m-instruct", "PYTEST_ARTIFACTS": tmp,
               "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
        subprocess.run([sys.executable, "-m", "pytest", "-q", "tests/examples/test_example_apps.py"], cwd=ROOT,
                       env=env, check=True)
        for shot, name in SHOTS.items():
            im = Image.open(Path(tmp) / "examples" / f"{shot}.png").convert("RGB")
            if im.width > WIDTH:
                im = im.resize((WIDTH, round(im.height * WIDTH / im.width)), Image.LANCZOS)
            out = ROOT / "docs" / "images" / f"{name}.png"
            im.quantize(256, method=Image.Quantize.FASTOCTREE).save(out, optimize=True)
            print(f"{out.relative_to(ROOT)}: {out.stat().st_size // 1024} KB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
