"""A thin, typed layer over llama-cpp-python's low-level API (``llama_cpp.llama_cpp``): one model, its LoRA
adapters, and contexts holding several sequences. The decode loop and the scheduler are ours
(:mod:`puyu_apps.engine.scheduler`); llama-cpp-python's high-level ``Llama`` class is not used.
"""

from __future__ import annotations

import collections
import ctypes
import functools
import importlib.util
import logging
import os
import threading
from pathlib import Path
from typing import Any

import numpy as np

from .._env import env_on
from ..errors import AdapterError, MissingDependencyError, ModelLoadError

log = logging.getLogger("puyu_apps.engine.llama_cpp")

INSTALL_HINT = ("install the fast CPU backend with `pip install 'puyu_apps[fast]'` (builds llama-cpp-python==0.3.36 "
                "from source, ~5 min on 2 cores; `make setup` does it)")


def available() -> bool:
    """True when llama-cpp-python can be imported (checked without importing it)."""
    try:
        return importlib.util.find_spec("llama_cpp") is not None
    except (ImportError, ValueError):
        return False


def _lib() -> Any:
    try:
        import llama_cpp.llama_cpp as lib
    except ImportError as exc:
        raise MissingDependencyError(f"the llama.cpp backend needs llama-cpp-python: {INSTALL_HINT}") from exc
    except (OSError, RuntimeError) as exc:  # the shared library failed to load
        raise MissingDependencyError(
            f"llama-cpp-python is installed but its library does not load ({exc}); reinstall it: {INSTALL_HINT}"
        ) from exc
    return lib


def version() -> str:
    import llama_cpp

    return str(getattr(llama_cpp, "__version__", "?"))


_INIT = threading.Lock()
_initialized = False
_errors: collections.deque[str] = collections.deque(maxlen=20)
_log_cb: Any = None  # keep the ctypes callback alive


def _init() -> Any:
    """Initialise the backend once, with llama.cpp's log routed to Python logging (errors kept for messages)."""
    global _initialized, _log_cb
    lib = _lib()
    with _INIT:
        if _initialized:
            return lib
        # ggml_log_level: 0 none, 1 debug, 2 info, 3 warn, 4 error, 5 continuation
        levels = {1: logging.DEBUG, 2: logging.DEBUG, 3: logging.INFO, 4: logging.ERROR, 5: logging.DEBUG}

        @lib.llama_log_callback
        def _cb(level: int, text: bytes, user_data: Any) -> None:
            msg = text.decode("utf-8", "replace").rstrip()
            if not msg:
                return
            if level == 4:
                _errors.append(msg)
            log.log(levels.get(level, logging.DEBUG), "%s", msg)

        _log_cb = _cb
        # our repacked Q4_1 kernels (scripts/patches/) are opt-in in the library, for any other program that loads
        # it; this engine turns them on unless the environment says otherwise (GGML_Q4_1_REPACK=0: stock kernels).
        # llama.cpp reads the switch when it loads the first Q4_1 weights, after this point.
        os.environ.setdefault("GGML_Q4_1_REPACK", "1")
        lib.llama_backend_init()
        lib.llama_log_set(_cb, ctypes.c_void_p(0))
        _initialized = True
    return lib


def extra_bufts() -> bool:
    """Whether llama.cpp may repack weights into its extra CPU buffer types (interleaved Q4_0/Q4_K/IQ4 layouts
    that its AVX-512 kernels read faster; AMX tiles). On, unless the library was built with AMX: the AMX kernels
    crash (``ldtilecfg``, SIGSEGV) on VMs that report AMX but do not enable it, and ``make setup`` builds without
    it. ``$PUYU_APPS_LLAMA_EXTRA_BUFTS=0`` / ``1`` decides instead."""

    env = os.environ.get("PUYU_APPS_LLAMA_EXTRA_BUFTS", "").strip().lower()
    if env:
        return env in ("1", "true", "yes")
    return b"AMX" not in _lib().llama_print_system_info()


def uses_openmp() -> bool:
    """Whether the installed llama.cpp runs its threads on OpenMP. ``make setup`` builds it with ggml's own thread
    pool: an OpenMP build shares libgomp with torch, and once torch's OpenMP team exists in the process (any
    pipeline stage in torch) every llama.cpp decode slows down ~2.7x (``benchmarks/engine_threads.py``)."""
    return b"OPENMP = 1" in _lib().llama_print_system_info()


_PATCH_MARK = b"puyu_apps:q4_1_repack:"


def _cpu_library() -> Path | None:
    """llama.cpp's CPU backend library as llama-cpp-python loads it (its ``lib`` folder, or
    ``$LLAMA_CPP_LIB_PATH``)."""
    spec = importlib.util.find_spec("llama_cpp")
    if spec is None or spec.origin is None:
        return None
    folder = Path(os.environ.get("LLAMA_CPP_LIB_PATH") or Path(spec.origin).parent / "lib")
    found = sorted(folder.glob("libggml-cpu*.so*")) + sorted(folder.glob("ggml-cpu*.dll"))
    return found[0] if found else None


@functools.lru_cache(maxsize=1)
def _q4_1_patch_id() -> str:
    lib = _cpu_library()
    if lib is None:
        return ""
    data = lib.read_bytes()
    i = data.find(_PATCH_MARK)
    if i < 0:
        return ""
    return data[i:data.index(b"\0", i)].decode("ascii", "replace")


@functools.lru_cache(maxsize=1)
def _mask_api() -> tuple[str, Any, Any, Any] | None:
    """(id, enable, set_seq, fused) of our masked-LoRA patch in the installed libllama (``fused`` None before
    version 2 of the patch), or None for a build without it."""
    cdll = getattr(_lib(), "_lib", None)
    try:
        f_id, enable, set_seq = cdll.puyu_lora_mask_id, cdll.puyu_lora_mask_enable, cdll.puyu_lora_mask_set_seq
    except AttributeError:
        return None
    f_id.argtypes, f_id.restype = [], ctypes.c_char_p
    enable.argtypes, enable.restype = [ctypes.c_void_p, ctypes.c_int32], ctypes.c_int32
    set_seq.argtypes = [ctypes.c_void_p, ctypes.c_int32, ctypes.POINTER(ctypes.c_float)]
    set_seq.restype = ctypes.c_int32
    fused = getattr(cdll, "puyu_lora_mask_fused", None)
    if fused is not None:
        fused.argtypes, fused.restype = [ctypes.c_void_p, ctypes.c_int32], ctypes.c_int32
    return f_id().decode("ascii", "replace"), enable, set_seq, fused


def patch_id() -> str:
    """The ids of our llama.cpp patches compiled into the installed library (``scripts/patches/``: repacked Q4_1
    weights in libggml-cpu, masked LoRA in libllama), comma-separated, or ``""`` for a stock build."""
    mask = _mask_api()
    return ",".join(x for x in (_q4_1_patch_id(), mask[0] if mask else "") if x)


def lora_mask_supported() -> bool:
    """Whether the installed llama.cpp carries our masked-LoRA patch: one combined adapter whose rank rows are
    switched on per sequence, so requests on different adapters decode in one batch."""
    return _mask_api() is not None


def lora_fused_supported() -> bool:
    """Whether the masked LoRA of the installed llama.cpp has the fused kernels (version 2 of the patch): each
    token multiplies only the rank rows of its own adapters, not those of every combined adapter."""
    api = _mask_api()
    return api is not None and api[3] is not None


def q4_1_kernels() -> str:
    """Which kernels llama.cpp runs Q4_1 weights on in this process: ``"repacked"`` (our patch: 8 rows
    interleaved, one pass over the weights for up to 4 sequences) or ``"stock"`` (one dot product at a time: no
    patch, ``$GGML_Q4_1_REPACK`` not ``1`` (this engine sets it to ``1`` unless it is set; ``0`` turns the patch
    off), no AVX2, or the extra buffer types off)."""
    if not _q4_1_patch_id() or os.environ.get("GGML_Q4_1_REPACK", "").strip() != "1" or not extra_bufts():
        return "stock"
    return "repacked" if b"AVX2 = 1" in _lib().llama_print_system_info() else "stock"


def _last_errors() -> str:
    msgs = list(_errors)
    _errors.clear()
    return "; ".join(msgs[-3:])


class LoraHandle:
    """A LoRA adapter loaded into a llama.cpp model (freed with the model, or by :meth:`LlamaModel.free_lora`)."""

    def __init__(self, ptr: Any, path: Path):
        self.ptr = ptr
        self.path = path
        #: rank rows of a combined adapter in masked mode (:meth:`LlamaModel.enable_mask`); 0 for a plain one
        self.mask_rank = 0
        #: whether a masked adapter runs the fused kernels (only the rows each token uses; patch version 2)
        self.mask_fused = False


class LlamaModel:
    """A GGUF model loaded by llama.cpp (memory-mapped)."""

    def __init__(self, path: str | Path):
        self.lib = lib = _init()
        self.path = Path(path)
        if not self.path.is_file():
            raise ModelLoadError(f"GGUF file {self.path} not found")
        params = lib.llama_model_default_params()
        params.n_gpu_layers = 0
        params.use_mmap = True
        params.use_extra_bufts = extra_bufts()
        ptr = lib.llama_model_load_from_file(str(self.path).encode(), params)
        if not ptr:
            raise ModelLoadError(f"llama.cpp could not load {self.path}: {_last_errors() or 'unknown error'}")
        self.ptr = ptr
        self.vocab = lib.llama_model_get_vocab(ptr)
        self.n_vocab = int(lib.llama_vocab_n_tokens(self.vocab))
        self.n_ctx_train = int(lib.llama_model_n_ctx_train(ptr))
        self._loras: list[LoraHandle] = []

    def load_lora(self, path: str | Path) -> LoraHandle:
        ptr = self.lib.llama_adapter_lora_init(self.ptr, str(path).encode())
        if not ptr:
            raise AdapterError(f"llama.cpp refused the LoRA file {path}: {_last_errors() or 'unknown error'}")
        h = LoraHandle(ptr, Path(path))
        self._loras.append(h)
        return h

    @property
    def loras(self) -> list[LoraHandle]:
        """The adapters loaded into this model (plain and combined)."""
        return list(self._loras)

    def enable_mask(self, handle: LoraHandle, rank: int, fused: bool | None = None) -> None:
        """Put a combined adapter (every weight of rank ``rank``) in masked mode, before any context uses it:
        its rows then apply to a token as its sequence's row mask says (:meth:`set_seq_mask`).

        ``fused`` (default: on where the build has it, unless ``$PUYU_APPS_LORA_FUSED`` is ``0``): each token
        multiplies only the rank rows its mask switches on, in two custom ops per adapted weight, rather than every
        row of every combined adapter followed by the mask product; ``handle.mask_fused`` says which ran."""
        api = _mask_api()
        if api is None:
            raise AdapterError("this llama.cpp build has no masked LoRA (scripts/patches/lora_mask.py); "
                               "run `make setup` to rebuild it")
        rc = api[1](handle.ptr, rank)
        if rc != 0:
            raise AdapterError(f"llama.cpp refused masked mode for {handle.path} (code {rc}: "
                               f"{'a weight of another rank' if rc == -2 else 'bad arguments'})")
        handle.mask_rank = rank
        if fused is None:
            fused = env_on("PUYU_APPS_LORA_FUSED")
        handle.mask_fused = bool(fused and api[3] is not None and api[3](handle.ptr, 1) == 0)

    def set_seq_mask(self, handle: LoraHandle, seq: int, row: np.ndarray | None) -> None:
        """The row mask of sequence ``seq`` for a masked adapter (``mask_rank`` float32 values); ``None``: all 0."""
        api = _mask_api()
        assert api is not None and handle.mask_rank > 0
        if row is None:
            ptr = None
        else:
            assert row.dtype == np.float32 and row.shape == (handle.mask_rank,) and row.flags.c_contiguous
            ptr = row.ctypes.data_as(ctypes.POINTER(ctypes.c_float))
        if api[2](handle.ptr, seq, ptr) != 0:
            raise AdapterError(f"llama.cpp could not set the LoRA mask of sequence {seq}")

    def free_lora(self, handle: LoraHandle) -> None:
        if handle in self._loras:
            self._loras.remove(handle)
            self.lib.llama_adapter_lora_free(handle.ptr)

    def close(self) -> None:
        if getattr(self, "ptr", None):
            for h in list(self._loras):
                self.free_lora(h)
            self.lib.llama_model_free(self.ptr)
            self.ptr = None

    def __del__(self) -> None:  # pragma: no cover - interpreter shutdown order varies
        try:
            self.close()
        except Exception:
            pass


class Context:
    """A llama.cpp context: a KV cache shared by up to ``n_seq`` sequences and a reusable token batch."""

    def __init__(self, model: LlamaModel, *, n_ctx: int, n_seq: int, n_batch: int, n_threads: int,
                 flash_attn: int = -1, kv_unified: bool = True):
        lib = self.lib = model.lib
        self.model = model
        p = lib.llama_context_default_params()
        p.n_ctx = n_ctx
        p.n_batch = n_batch
        p.n_ubatch = n_batch
        p.n_seq_max = n_seq
        p.n_threads = n_threads
        p.n_threads_batch = n_threads
        p.flash_attn_type = flash_attn
        p.kv_unified = kv_unified
        p.no_perf = True
        ptr = lib.llama_init_from_model(model.ptr, p)
        if not ptr:
            raise ModelLoadError(f"llama.cpp could not create a context (n_ctx={n_ctx}, n_seq={n_seq}): "
                                 f"{_last_errors() or 'out of memory?'}")
        self.ptr = ptr
        self.n_ctx = int(lib.llama_n_ctx(ptr))
        self.n_seq = n_seq
        self.n_batch = n_batch
        self.n_threads = n_threads
        self.mem = lib.llama_get_memory(ptr)
        self.batch = lib.llama_batch_init(n_batch, 0, 1)
        self.n_vocab = model.n_vocab
        self._adapters: tuple[int, ...] = ()
        self._logits_ptr_type = ctypes.POINTER(ctypes.c_float * model.n_vocab)

    # -- adapters -----------------------------------------------------------------------------------------
    def set_adapters(self, handles: tuple[LoraHandle, ...]) -> None:
        """Make exactly ``handles`` (scale 1) active for the following decodes; a no-op when unchanged."""
        key = tuple(id(h) for h in handles)
        if key == self._adapters:
            return
        n = len(handles)
        arr = (self.lib.llama_adapter_lora_p_ctypes * max(n, 1))(*[h.ptr for h in handles])
        scales = (ctypes.c_float * max(n, 1))(*([1.0] * n))
        rc = self.lib.llama_set_adapters_lora(self.ptr, arr if n else None, n, scales if n else None)
        if rc != 0:
            raise AdapterError(f"llama.cpp could not activate the adapters (code {rc}): {_last_errors()}")
        self._adapters = key

    def set_threads(self, n: int) -> None:
        """Threads for the following decodes (a no-op when unchanged)."""
        if n != self.n_threads:
            self.lib.llama_set_n_threads(self.ptr, n, n)
            self.n_threads = n

    # -- sequences ----------------------------------------------------------------------------------------
    def clear(self, seq: int) -> None:
        self.lib.llama_memory_seq_rm(self.mem, seq, -1, -1)

    def remove(self, seq: int, start: int) -> None:
        """Drop the cells of ``seq`` from position ``start`` on (keeping its first ``start`` tokens)."""
        if not self.lib.llama_memory_seq_rm(self.mem, seq, start, -1):
            raise RuntimeError(f"llama.cpp could not shorten sequence {seq} to {start} tokens")

    def copy(self, src: int, dst: int, n: int) -> None:
        """Make ``dst`` share the cells of the first ``n`` positions of ``src`` (no data is copied)."""
        self.lib.llama_memory_seq_cp(self.mem, src, dst, 0, n)

    def decode(self, tokens: list[int], positions: list[int], seqs: list[int], outputs: list[bool]) -> int:
        """Run one batch (at most ``n_batch`` tokens). Returns llama_decode's status (0 = ok)."""
        b = self.batch
        n = len(tokens)
        tok, pos, nseq, sid, lg = b.token, b.pos, b.n_seq_id, b.seq_id, b.logits
        for i in range(n):
            tok[i] = tokens[i]
            pos[i] = positions[i]
            nseq[i] = 1
            sid[i][0] = seqs[i]
            lg[i] = outputs[i]
        b.n_tokens = n
        return int(self.lib.llama_decode(self.ptr, b))

    def logits(self, i: int) -> np.ndarray:
        """Logits of batch position ``i`` (one that asked for output): a view valid until the next decode."""
        ptr = self.lib.llama_get_logits_ith(self.ptr, i)
        if not ptr:
            raise RuntimeError(f"llama.cpp has no logits for batch position {i}")
        return np.ctypeslib.as_array(ctypes.cast(ptr, self._logits_ptr_type).contents)

    def close(self) -> None:
        if getattr(self, "ptr", None):
            self.lib.llama_batch_free(self.batch)
            self.lib.llama_free(self.ptr)
            self.ptr = None

    def __del__(self) -> None:  # pragma: no cover
        try:
            self.close()
        except Exception:
            pass
