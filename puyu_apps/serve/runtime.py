"""What the routes run on: model resolution (base model, vertical adapter, A/B arm), pipelines, safety filters.

``model`` in a request is the served base model's name (or ``"default"``), another allowed model, or the name of
a registered vertical (its adapter on the base model; a vertical under an A/B test picks an arm per request).
"""

from __future__ import annotations

import hashlib
import logging
import random
import threading
from dataclasses import dataclass
from typing import Any, Callable

from ..errors import InvalidInputError, UnknownVerticalError
from ..pipelines import available, get
from ..safety import ContentFilter
from .config import ServeConfig

log = logging.getLogger("puyu_apps.serve")


class UnknownServedModelError(UnknownVerticalError):
    pass


@dataclass
class Target:
    lm: Any  # LanguageModel or RemoteLanguageModel
    adapter: str | None  # adapter name inside lm (None: base model)
    vertical: str  # metrics label: the vertical, or "base"
    adapter_label: str  # metrics label: "base", the vertical, or "<vertical>:a" / "<vertical>:b"
    filter: ContentFilter


class Runtime:
    def __init__(self, config: ServeConfig):
        self.config = config
        self._lock = threading.RLock()
        self._pipes: dict[str, tuple[Any, threading.Lock]] = {}
        self._filters: dict[str, ContentFilter] = {}
        self._adapters: dict[str, str | None] = {}
        self._remote: Any = None
        self._ab = {t.vertical: t for t in config.ab_tests}
        self._rng = random.Random()
        for vertical, options in config.vertical_options.items():  # fail at start-up, not on the first request
            try:
                get(vertical)(model=config.model, **options)  # construction is cheap: nothing loads
            except (TypeError, ValueError) as exc:
                raise ValueError(f"ServeConfig.vertical_options[{vertical!r}]: {exc}") from exc

    # -- models -------------------------------------------------------------------------------------------
    def lm(self, name: str | None = None) -> Any:
        cfg = self.config
        if cfg.backend_url:
            with self._lock:
                if self._remote is None:
                    from .remote import RemoteLanguageModel

                    self._remote = RemoteLanguageModel(cfg.backend_url, cfg.model, api_key=cfg.backend_api_key)
                return self._remote
        from ..core import shared_model

        return shared_model(name or cfg.model, device=cfg.device, dtype=cfg.dtype, gguf_format=cfg.gguf_format)

    def served_models(self) -> list[str]:
        return [self.config.model, *self.config.extra_models, *available()]

    def filter_for(self, vertical: str) -> ContentFilter:
        with self._lock:
            if vertical not in self._filters:
                self._filters[vertical] = ContentFilter.for_vertical(vertical if vertical != "base" else "")
                self._filters[vertical].vertical = vertical
            return self._filters[vertical]

    def resolve(self, model: str, user: str | None = None) -> Target:
        cfg = self.config
        if model in ("", "default", cfg.model) or model in cfg.extra_models:
            name = cfg.model if model in ("", "default") else model
            return Target(self.lm(name), None, "base", "base", self.filter_for("base"))
        if model not in available():
            raise UnknownServedModelError(model, self.served_models())
        lm = self.lm()
        if model in self._ab:
            arm, adapter = self._ab_arm(model, lm, user)
            return Target(lm, adapter, model, f"{model}:{arm}", self.filter_for(model))
        adapter = self._vertical_adapter(model, lm)
        return Target(lm, adapter, model, model if adapter else "base", self.filter_for(model))

    def _vertical_adapter(self, vertical: str, lm: Any) -> str | None:
        if self.config.backend_url:
            return vertical if vertical in lm.adapters.names else None
        with self._lock:
            if vertical not in self._adapters:
                pipe = get(vertical)(model=self.config.model, device=self.config.device, dtype=self.config.dtype)
                self._adapters[vertical] = pipe._attach_adapter(lm)
            return self._adapters[vertical]

    def _ab_arm(self, vertical: str, lm: Any, user: str | None) -> tuple[str, str | None]:
        test = self._ab[vertical]
        if user:  # sticky: one user always sees the same arm
            draw = int(hashlib.sha256(f"{vertical}:{user}".encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
        else:
            draw = self._rng.random()
        arm = "b" if draw < test.weight_b else "a"
        path = test.adapter_b if arm == "b" else test.adapter_a
        if path is None:
            return arm, None
        key = f"ab:{vertical}:{arm}"
        with self._lock:
            if key not in lm.adapters.names:
                lm.load_adapter(key, path)
        return arm, key

    # -- pipelines ----------------------------------------------------------------------------------------
    def pipeline(self, vertical: str) -> tuple[Any, threading.Lock]:
        cls = get(vertical)  # raises UnknownVerticalError listing what is available
        with self._lock:
            if vertical not in self._pipes or type(self._pipes[vertical][0]) is not cls:
                options = dict(self.config.vertical_options.get(vertical, {}))  # e.g. {"db_url": ...}
                if self.config.backend_url:  # a remote engine: no local adapters
                    options.pop("adapter", None)
                    pipe = cls(model=self.config.model, adapter=None, device=self.config.device,
                               dtype=self.config.dtype, **options).use_model(self.lm())
                else:
                    pipe = cls(model=self.config.model, device=self.config.device, dtype=self.config.dtype,
                               **options)
                self._pipes[vertical] = (pipe, threading.Lock())
            return self._pipes[vertical]

    def run_pipeline(self, vertical: str, inputs: Any, params: dict[str, Any],
                     on_progress: Callable[[dict[str, Any]], None] | None = None) -> Any:
        pipe, lock = self.pipeline(vertical)
        with lock:  # a pipeline instance keeps per-call state; one call at a time
            result = None
            try:
                for event in pipe.stream(inputs, **params):
                    if event.kind == "progress" and on_progress is not None:
                        on_progress({"stage": event.stage, "message": event.message, "fraction": event.fraction})
                    elif event.kind == "result":
                        result = event.result
            except InvalidInputError:
                raise
            except (ValueError, TypeError) as exc:
                # typed-config errors (ValueError naming the field) and unexpected keyword arguments come from
                # the caller's params; anything else stays a server error
                if isinstance(exc, TypeError) and "argument" not in str(exc):
                    raise
                log.warning("vertical %s rejected its input: %s", vertical, exc)
                raise InvalidInputError(f"vertical {vertical!r} rejected the input or params: {exc}") from exc
        if result is None:
            raise RuntimeError(f"vertical {vertical!r} finished without a result")
        return result

    def suffixes(self, vertical: str) -> tuple[str, ...]:
        from .uploads import DEFAULT_SUFFIXES

        return tuple(getattr(get(vertical), "accepted_suffixes", None) or DEFAULT_SUFFIXES)


def mask_strings(value: Any, fn: Callable[[str], str]) -> Any:
    """Apply ``fn`` to every string inside a JSON-like value."""
    if isinstance(value, str):
        return fn(value)
    if isinstance(value, list):
        return [mask_strings(v, fn) for v in value]
    if isinstance(value, dict):
        return {k: mask_strings(v, fn) for k, v in value.items()}
    return value
