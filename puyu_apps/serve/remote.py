"""Scale-out: a language model behind an OpenAI-compatible server (LMDeploy ``api_server``, vLLM, or another
``puyu serve``), with the same ``generate`` / ``stream`` / ``info`` interface as :class:`LanguageModel`.

    lm = RemoteLanguageModel("http://gpu-node:23333/v1", model="internlm2_5-7b-chat",
                             adapter_models={"medical": "medical-lora"})
    lm.generate("What is a CT scan?").text

Adapters are served by the engine (vLLM ``--lora-modules medical-lora=/path``, LMDeploy ``--adapters``);
``adapter_models`` maps an adapter name used by the pipelines to the model name the server exposes.
"""

from __future__ import annotations

import json
import time
from typing import Any, Iterator

from ..core.config import GenerationConfig
from ..core.model import Prompt, TokenStream
from ..core.types import EngineInfo, GenerationResult
from ..errors import AdapterError, InvalidInputError, ModelLoadError

BACKEND = "openai-remote"


class _RemoteAdapters:
    def __init__(self, mapping: dict[str, str]):
        self.mapping = mapping

    @property
    def names(self) -> list[str]:
        return list(self.mapping)

    merged: list[str] = []


class RemoteLanguageModel:
    def __init__(self, base_url: str, model: str, *, api_key: str | None = None, timeout_s: float = 120.0,
                 adapter_models: dict[str, str] | None = None):
        import httpx

        if not base_url.startswith(("http://", "https://")):
            raise ValueError(f"base_url must start with http:// or https://, got {base_url!r}")
        self.base_url = base_url.rstrip("/")
        if not self.base_url.endswith("/v1"):
            self.base_url += "/v1"
        self.name = model
        self.adapters = _RemoteAdapters(dict(adapter_models or {}))
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.Client(timeout=timeout_s, headers=headers)

    # -- the LanguageModel interface ----------------------------------------------------------------------
    def load_adapter(self, name: str, path: Any) -> None:
        raise AdapterError(f"adapter {name!r}: a remote engine serves its own adapters; start the server with the "
                           f"adapter (vLLM --lora-modules, LMDeploy --adapters) and pass adapter_models={{...}}")

    def _messages(self, prompt: Prompt, system: str | None) -> list[dict[str, str]]:
        if isinstance(prompt, str):
            if not prompt.strip():
                raise InvalidInputError("the prompt is empty; pass some text to generate from")
            messages = [{"role": "user", "content": prompt}]
        else:
            messages = [dict(m) for m in prompt]
            if not messages:
                raise InvalidInputError("the message list is empty; pass at least one non-empty message")
        if system and messages[0].get("role") != "system":
            messages.insert(0, {"role": "system", "content": system})
        return messages

    def _body(self, prompt: Prompt, cfg: GenerationConfig, adapter: str | None, system: str | None,
              stream: bool) -> dict[str, Any]:
        model = self.name
        if adapter is not None:
            if adapter not in self.adapters.mapping:
                raise AdapterError(f"adapter {adapter!r} is not served by {self.base_url}; known: "
                                   f"{self.adapters.names or '(none)'}")
            model = self.adapters.mapping[adapter]
        body: dict[str, Any] = {"model": model, "messages": self._messages(prompt, system), "stream": stream,
                                "max_tokens": cfg.max_new_tokens, "temperature": cfg.temperature if cfg.do_sample
                                else 0.0, "top_p": cfg.top_p}
        if cfg.stop:
            body["stop"] = cfg.stop
        if cfg.seed is not None:
            body["seed"] = cfg.seed
        if stream:
            body["stream_options"] = {"include_usage": True}
        return body

    def _post(self, body: dict[str, Any]):
        import httpx

        try:
            return self._client.send(self._client.build_request("POST", f"{self.base_url}/chat/completions",
                                                                json=body), stream=True)
        except httpx.HTTPError as exc:
            raise ModelLoadError(f"cannot reach the engine at {self.base_url}: {exc}; check that the server runs "
                                 f"and the URL is right") from exc

    @staticmethod
    def _check(resp: Any) -> None:
        if resp.status_code >= 400:
            resp.read()
            detail = resp.text[:300]
            resp.close()
            if resp.status_code in (400, 413, 422):
                raise InvalidInputError(f"the engine refused the request ({resp.status_code}): {detail}")
            raise ModelLoadError(f"the engine answered {resp.status_code}: {detail}")

    def generate(self, prompt: Prompt, config: GenerationConfig | None = None, *, adapter: str | None = None,
                 system: str | None = None, chat: bool | None = None, **overrides: Any) -> GenerationResult:
        ts = self.stream(prompt, config, adapter=adapter, system=system, **overrides)
        for _ in ts:
            pass
        assert ts.result is not None
        return ts.result

    def stream(self, prompt: Prompt, config: GenerationConfig | None = None, *, adapter: str | None = None,
               system: str | None = None, chat: bool | None = None, **overrides: Any) -> TokenStream:
        cfg = config or GenerationConfig()
        if overrides:
            cfg = cfg.replace(**overrides)
        body = self._body(prompt, cfg, adapter, system, stream=True)
        ts = TokenStream(iter(()))
        ts._pieces = self._pieces(ts, body, cfg, adapter)
        return ts

    def _pieces(self, ts: TokenStream, body: dict[str, Any], cfg: GenerationConfig,
                adapter: str | None) -> Iterator[str]:
        t0 = time.perf_counter()
        ttft, text, n_chunks, finish, usage = 0.0, [], 0, "length", None
        resp = self._post(body)
        self._check(resp)
        try:
            for line in resp.iter_lines():
                if not line.startswith("data:"):
                    continue
                data = line[5:].strip()
                if data == "[DONE]":
                    break
                chunk = json.loads(data)
                usage = chunk.get("usage") or usage
                for choice in chunk.get("choices", []):
                    piece = (choice.get("delta") or {}).get("content") or ""
                    if piece:
                        if not text:
                            ttft = time.perf_counter() - t0
                        text.append(piece)
                        n_chunks += 1
                        yield piece
                    if choice.get("finish_reason"):
                        finish = choice["finish_reason"]
        finally:
            resp.close()
        total = time.perf_counter() - t0
        n = int(usage["completion_tokens"]) if usage and usage.get("completion_tokens") is not None else n_chunks
        mapped = "length" if finish == "length" else ("stop" if cfg.stop else "eos")
        ts.result = GenerationResult(
            text="".join(text), finish_reason=mapped, prompt_tokens=int((usage or {}).get("prompt_tokens") or 0),
            completion_tokens=n, adapter=adapter, ttft_s=ttft, total_s=total,
            tokens_per_s=(n - 1) / (total - ttft) if n > 1 and total > ttft else 0.0, backend=BACKEND)

    def info(self) -> EngineInfo:
        return EngineInfo(backend=BACKEND, device="remote", dtype="unknown", weight_format="remote",
                          model=self.name, source=self.base_url, adapters=self.adapters.names, threads=0)

    def close(self) -> None:
        self._client.close()
