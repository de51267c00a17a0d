"""Run the service in a background thread on a free loopback port (tests, notebooks, benchmarks)."""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

from .config import ServeConfig


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class ServerThread:
    """``with ServerThread(config) as srv: httpx.get(srv.url + "/healthz")``"""

    def __init__(self, config: ServeConfig | None = None, app: Any = None):
        import uvicorn

        from . import create_app

        self.config = config or ServeConfig()
        if self.config.port == 8000:
            self.config.port = free_port(self.config.host)
        self.app = app or create_app(self.config)
        self.server = uvicorn.Server(uvicorn.Config(self.app, host=self.config.host, port=self.config.port,
                                                    log_level="warning", lifespan="on"))
        self.thread = threading.Thread(target=self.server.run, name="puyu-serve", daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.config.host}:{self.config.port}"

    def start(self, timeout: float = 30.0) -> "ServerThread":
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the server did not start on {self.url}")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)

    def __enter__(self) -> "ServerThread":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
