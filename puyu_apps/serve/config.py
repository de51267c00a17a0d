"""Typed configuration of the HTTP service. Validation names the bad field."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..core import DEFAULT_MODEL
from ..paths import cache_dir


@dataclass
class ABTest:
    """Traffic split between two adapters of one vertical: ``weight_b`` of the requests go to arm ``b``."""

    vertical: str
    adapter_a: str | None  # a peft adapter folder; None = the base model
    adapter_b: str | None
    weight_b: float = 0.5

    def __post_init__(self) -> None:
        if not 0.0 <= self.weight_b <= 1.0:
            raise ValueError(f"ABTest.weight_b must be in [0, 1], got {self.weight_b}")


@dataclass
class ServeConfig:
    """Everything ``create_app`` needs. Defaults suit one laptop CPU."""

    model: str = DEFAULT_MODEL
    #: other models a request may name in ``model`` (each loads on first use)
    extra_models: tuple[str, ...] = ()
    device: str = "cpu"
    dtype: str = "auto"
    #: llama.cpp backend: run the weights re-exported to this GGUF type ("q8_0" batches concurrent requests
    #: 1.6x better than the shipped Q4_1 at the same quality; see docs/engine.md). None: the file as shipped
    gguf_format: str | None = None
    host: str = "127.0.0.1"
    port: int = 8000
    #: SQLite file for jobs and API keys (default: <cache>/serve/serve.sqlite3)
    data_dir: str = ""
    #: requests that run on the model at the same time / that may wait behind them before 503
    workers: int = 1
    max_queue: int = 8
    #: queued jobs beyond which a job submission gets 503
    max_pending_jobs: int = 64
    job_workers: int = 1
    cache_size: int = 256
    cache_ttl_s: float = 600.0
    max_upload_mb: float = 50.0
    max_unzipped_mb: float = 500.0
    max_zip_members: int = 5000
    max_tokens_limit: int = 1024
    default_max_tokens: int = 256
    #: None: API keys are required exactly when the key table holds at least one active key
    require_api_key: bool | None = None
    #: requests per minute for clients without a key (0: unlimited); keys carry their own limit
    anonymous_rate_per_min: float = 0.0
    ab_tests: list[ABTest] = field(default_factory=list)
    #: an OpenAI-compatible server (LMDeploy api_server, vLLM) to run generation on instead of the local model
    backend_url: str | None = None
    backend_api_key: str | None = None
    mask_logs: bool = True
    #: a folder of static web pages to serve at /apps/ (the example apps: examples/web); "" serves none
    pages_dir: str = ""
    #: constructor arguments per vertical, e.g. {"service": {"db_url": "postgresql://..."},
    #: "legal": {"max_explanations": 4}} (JSON-serialisable, as every pipeline's __init__ takes)
    vertical_options: dict[str, dict[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("workers", "job_workers", "max_zip_members", "max_tokens_limit", "default_max_tokens"):
            if getattr(self, name) < 1:
                raise ValueError(f"ServeConfig.{name} must be >= 1, got {getattr(self, name)}")
        for name in ("max_queue", "max_pending_jobs", "cache_size", "anonymous_rate_per_min"):
            if getattr(self, name) < 0:
                raise ValueError(f"ServeConfig.{name} must be >= 0, got {getattr(self, name)}")
        for name in ("max_upload_mb", "max_unzipped_mb", "cache_ttl_s"):
            if getattr(self, name) <= 0:
                raise ValueError(f"ServeConfig.{name} must be > 0, got {getattr(self, name)}")
        if not 0 < self.port < 65536:
            raise ValueError(f"ServeConfig.port must be in 1..65535, got {self.port}")
        if self.default_max_tokens > self.max_tokens_limit:
            raise ValueError("ServeConfig.default_max_tokens must be <= max_tokens_limit")
        self.extra_models = tuple(self.extra_models)
        for vertical, options in self.vertical_options.items():
            if not isinstance(options, dict) or any(k in options for k in ("model", "device", "dtype")):
                raise ValueError(f"ServeConfig.vertical_options[{vertical!r}] must be a dict of constructor "
                                 f"arguments other than model/device/dtype (set those on ServeConfig)")

    @property
    def data_path(self) -> Path:
        return Path(self.data_dir) if self.data_dir else cache_dir() / "serve"

    @property
    def db_file(self) -> Path:
        return self.data_path / "serve.sqlite3"
