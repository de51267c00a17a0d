"""The fast CPU decode path: llama.cpp (llama-cpp-python, built from source by ``make setup``) behind the
:class:`~puyu_apps.core.LanguageModel` interface.

    from puyu_apps.core import LanguageModel
    lm = LanguageModel.load()                     # backend="auto": llama.cpp on the CPU when installed
    lm.info().backend                             # "llama.cpp"
    lm.load_adapter("medical", "verticals/medical/adapter")   # peft folder, converted to a GGUF LoRA once
    lm.generate("...", adapter="medical")

- :mod:`.backend`    which backend runs a model (``auto`` rules), opening a model on llama.cpp
- :mod:`.model`      ``LlamaCppLanguageModel`` (generate / stream / adapters / info)
- :mod:`.scheduler`  continuous batching: one llama_decode per step for every active request (per adapter group)
- :mod:`.llamacpp`   the thin layer over llama-cpp-python's low-level C API
- :mod:`.lora_gguf`  peft LoRA folder -> GGUF LoRA adapter (our converter, ``gguf`` package)
- :mod:`.gguf_model` reading GGUF headers, exporting transformers Llama models to GGUF
- :mod:`.metrics`    inter-token latency percentiles, repetition rate

Importing this package imports neither torch nor llama_cpp.
"""

from __future__ import annotations

from .llamacpp import available

__all__ = ["available"]
