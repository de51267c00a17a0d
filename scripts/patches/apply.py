"""Apply puyu_apps' patches to a llama.cpp source tree (the one vendored in the llama-cpp-python sdist): the
repacked Q4_1 kernels (``q4_1_repack.cpp``) and the masked LoRA (``lora_mask.py``).

    python scripts/patches/apply.py <llama.cpp source dir>
    python scripts/patches/apply.py --id     # the ids the patched library carries (engine/llamacpp.py reads them)

Idempotent: a tree that already carries a patch is left alone. Exits non-zero when an anchor line is missing
(another llama.cpp version): the caller then builds the stock source. See README.md here.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import lora_mask  # noqa: E402

HERE = Path(__file__).resolve().parent
MARK = "puyu_apps patch"
ANCHOR = "static const ggml::cpu::tensor_traits * ggml_repack_get_optimal_repack_type(const struct ggml_tensor * cur) {"
DISPATCH = """    if (cur->type == GGML_TYPE_Q4_1) {  // puyu_apps patch: repacked Q4_1 (see the block above)
        static const ggml::cpu::repack::tensor_traits<block_q4_1, 8, 8, GGML_TYPE_Q8_0> q4_1_8x8_q8_0;
        if (ggml_cpu_has_avx2() && cur->ne[1] % 8 == 0 && cur->ne[0] % QK4_1 == 0 && puyu_q4_1_repack_enabled()) {
            return &q4_1_8x8_q8_0;
        }
        return nullptr;
    }
"""


def patch_repack(src: Path) -> str:
    path = src / "ggml" / "src" / "ggml-cpu" / "repack.cpp"
    text = path.read_text()
    if MARK in text:
        return f"{path}: already patched"
    if text.count(ANCHOR) != 1:
        raise SystemExit(f"{path}: the anchor line was not found once; not patched (another llama.cpp version?)")
    block = "#include <vector>\n#include <cstdlib>\n" + (HERE / "q4_1_repack.cpp").read_text()
    text = text.replace(ANCHOR, block + ANCHOR + "\n" + DISPATCH.rstrip("\n"), 1)
    path.write_text(text)
    return f"{path}: Q4_1 repack added"


def patch_id() -> str:
    """The ids compiled into a patched library (each bumped with every change of its patch): the Q4_1 id in
    libggml-cpu, then the masked-LoRA id in libllama, comma-separated (``puyu_apps.engine.llamacpp.patch_id``)."""
    m = re.search(r'puyu_q4_1_repack_id\[\] = "([^"]+)"', (HERE / "q4_1_repack.cpp").read_text())
    assert m is not None
    return f"{m.group(1)},{lora_mask.LORA_MASK_ID}"


def main() -> None:
    if sys.argv[1:] == ["--id"]:
        print(patch_id())
        return
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    src = Path(sys.argv[1])
    print(patch_repack(src))
    print(lora_mask.apply(src))


if __name__ == "__main__":
    main()
