"""The pipeline base class: cheap construction, lazy warm-up, three stages of which only ``_forward`` touches
the model.

Integrators override one stage at a time::

    class MyReview(ContractReviewPipeline):
        def postprocess(self, outputs):
            result = super().postprocess(outputs)
            ...
            return result
"""

from __future__ import annotations

import importlib
import time
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar, Iterator

import torch

from ..core import DEFAULT_MODEL, LanguageModel, shared_model
from ..errors import AdapterError
from ..paths import vertical_dir
from .result import PipelineEvent, PipelineResult


class Pipeline(ABC):
    """Base of every vertical.

    Subclasses set ``name``/``description``/``result_type`` and implement ``preprocess`` / ``_forward`` /
    ``postprocess``. ``__init__`` arguments must be JSON-serialisable (see :meth:`to_dict`).
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    result_type: ClassVar[type[PipelineResult]] = PipelineResult
    #: name of the vertical's adapter folder under ``verticals/<name>/`` (None: no adapter)
    adapter_subdir: ClassVar[str | None] = "adapter"
    #: the vertical's task scorer for ``puyu eval`` (see :data:`puyu_apps.finetune.evaluate.Scorer`):
    #: ``staticmethod((example, generated_text) -> {score: float, "gold:X"/"pred:X": label})``
    eval_scorer: ClassVar[Any] = None

    def __init__(self, *, model: str = DEFAULT_MODEL, adapter: str | None = "default", device: str = "cpu",
                 dtype: str = "auto") -> None:
        self.model_name = model
        self.adapter = adapter
        self.device = device
        self.dtype = dtype
        self._lm: LanguageModel | None = None
        self._adapter_name: str | None = None
        self._warm = False
        self._progress: list[PipelineEvent] | None = None

    # -- serialisation ------------------------------------------------------------------------------------
    def init_parameters(self) -> dict[str, Any]:
        return {"model": self.model_name, "adapter": self.adapter, "device": self.device, "dtype": self.dtype}

    def to_dict(self) -> dict[str, Any]:
        cls = type(self)
        return {"type": f"{cls.__module__}.{cls.__qualname__}", "init_parameters": self.init_parameters()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Pipeline":
        module, _, qual = data["type"].rpartition(".")
        target = getattr(importlib.import_module(module), qual)
        if not (isinstance(target, type) and issubclass(target, Pipeline)):
            raise ValueError(f"{data['type']!r} is not a Pipeline class")
        return target(**data.get("init_parameters", {}))

    # -- fine-tuning ---------------------------------------------------------------------------------------
    @classmethod
    def make_training_data(cls, out_dir: str | Path, n_train: int = 3000, n_eval: int = 200,
                           seed: int = 0) -> tuple[Path, Path]:
        """Write ``train.jsonl`` and a held-out ``eval.jsonl`` (never trained on) for this vertical's adapter,
        in the exact prompt format the pipeline sends. Verticals without generated data raise."""
        raise NotImplementedError(f"vertical {cls.name!r} has no training-data generator; pass --data FILE")

    # -- lifecycle ----------------------------------------------------------------------------------------
    @classmethod
    def from_pretrained(cls, model: str = DEFAULT_MODEL, **kwargs: Any) -> "Pipeline":
        """Construct and warm up (load every model) in one call."""
        pipe = cls(model=model, **kwargs)
        pipe.warm_up()
        return pipe

    def warm_up(self) -> None:
        """Load the models. Idempotent; called lazily by the first ``__call__``."""
        if self._warm:
            return
        self._lm = shared_model(self.model_name, device=self.device, dtype=self.dtype)
        self._adapter_name = self._attach_adapter(self._lm)
        self.load_components()
        self._warm = True

    def use_model(self, lm: LanguageModel) -> "Pipeline":
        """Run on an already-loaded model (a server's, or one loaded with your own settings) instead of the
        shared one for ``model``; the vertical's adapter is attached to it as usual. Returns ``self``."""
        if self._warm and self._lm is lm:
            return self
        self._lm = lm
        self.model_name = lm.name
        self._adapter_name = self._attach_adapter(lm)
        self.load_components()
        self._warm = True
        return self

    def load_components(self) -> None:
        """Hook for verticals to load their own models (segmenter, OCR, ASR...)."""

    def _attach_adapter(self, lm: LanguageModel) -> str | None:
        """Resolve ``self.adapter``: None (base model), "default" (the vertical's shipped adapter if it fits
        this base model), or a path to a peft adapter folder."""
        if self.adapter is None:
            return None
        if self.adapter == "default":
            if not self.adapter_subdir:
                return None
            path = vertical_dir(self.name) / self.adapter_subdir
            if not (path / "adapter_config.json").exists():
                return None
            key = f"{self.name}"
            if key not in lm.adapters.names:
                try:
                    lm.load_adapter(key, path)
                except AdapterError:
                    # the shipped adapter targets the embedded default; other base models run without it
                    if self.model_name == DEFAULT_MODEL:
                        raise
                    return None
            return key
        path = Path(self.adapter)
        key = f"{self.name}:{path.resolve()}"
        if key not in lm.adapters.names:
            lm.load_adapter(key, path)
        return key

    @property
    def lm(self) -> LanguageModel:
        self.warm_up()
        assert self._lm is not None
        return self._lm

    def close(self) -> None:
        """Drop references to models (the shared LLM stays cached for other pipelines)."""
        self._lm = None
        self._warm = False

    def __enter__(self) -> "Pipeline":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the three stages ---------------------------------------------------------------------------------
    @abstractmethod
    def preprocess(self, inputs: Any, **params: Any) -> Any:
        """Turn user input into model-ready data. No model calls here."""

    @abstractmethod
    def _forward(self, prepared: Any) -> Any:
        """The only stage that touches models or devices."""

    @abstractmethod
    def postprocess(self, outputs: Any) -> PipelineResult:
        """Turn model outputs into the typed result."""

    # -- running ------------------------------------------------------------------------------------------
    def progress(self, stage: str, message: str = "", fraction: float | None = None) -> None:
        """Stages report progress here; ``stream()`` forwards it to the caller."""
        if self._progress is not None:
            self._progress.append(PipelineEvent(kind="progress", stage=stage, message=message, fraction=fraction))

    def __call__(self, inputs: Any, **params: Any) -> PipelineResult:
        result: PipelineResult | None = None
        for event in self.stream(inputs, **params):
            if event.kind == "result":
                result = event.result
        assert result is not None
        return result

    def stream(self, inputs: Any, **params: Any) -> Iterator[PipelineEvent]:
        """Run the pipeline, yielding progress events and finally the result event."""
        self._progress = []
        timings: dict[str, float] = {}
        try:
            t = time.perf_counter()
            prepared = self.preprocess(inputs, **params)
            timings["preprocess"] = time.perf_counter() - t
            yield from self._drain()
            self.warm_up()
            t = time.perf_counter()
            with torch.inference_mode():
                outputs = self._forward(prepared)
            timings["forward"] = time.perf_counter() - t
            yield from self._drain()
            t = time.perf_counter()
            result = self.postprocess(outputs)
            timings["postprocess"] = time.perf_counter() - t
            yield from self._drain()
        finally:
            self._progress = None
        result.timings_s = {**timings, **result.timings_s}
        if not result.engine and self._lm is not None:
            info = self._lm.info().model_dump()
            info["active_adapter"] = self._adapter_name
            result.engine = info
        yield PipelineEvent(kind="result", result=result)

    def _drain(self) -> Iterator[PipelineEvent]:
        if self._progress:
            events, self._progress[:] = list(self._progress), []
            yield from events

    # -- CLI hook -----------------------------------------------------------------------------------------
    @classmethod
    def add_cli_commands(cls, subparsers: Any) -> None:
        """Verticals may add ``puyu <vertical> <command>`` sub-commands (e.g. ``make-sample``)."""
