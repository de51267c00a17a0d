"""Request and response bodies (they make the OpenAPI schema)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class ChatMessage(BaseModel):
    role: Literal["system", "user", "assistant"]
    content: str = Field(max_length=100_000)


class StreamOptions(BaseModel):
    include_usage: bool = False


class ChatCompletionRequest(BaseModel):
    """The OpenAI chat-completions request (the fields this server uses; others are ignored)."""

    model_config = ConfigDict(extra="ignore")

    model: str = Field("default", max_length=200, description="served base model, 'default', or a vertical name")
    messages: list[ChatMessage] = Field(min_length=1, max_length=200)
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    temperature: float = Field(0.0, ge=0.0, le=2.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    stop: str | list[str] | None = None
    seed: int | None = Field(None, ge=0, le=2**32 - 1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    user: str | None = Field(None, max_length=200)


class ChatChoice(BaseModel):
    index: int = 0
    message: ChatMessage
    finish_reason: str


class Usage(BaseModel):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0


class ChatCompletion(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[ChatChoice]
    usage: Usage
    #: puyu extensions
    cached: bool = False
    degraded: bool = False
    safety: dict[str, Any] = {}


class VerticalResponse(BaseModel):
    vertical: str
    result: dict[str, Any] | None = None
    blocked: bool = False
    reason: str = ""
    message: str = ""
    cached: bool = False
    degraded: bool = False


class JobInfo(BaseModel):
    id: str
    vertical: str
    status: Literal["queued", "running", "done", "failed"]
    created: float
    updated: float
    attempts: int
    progress: dict[str, Any] | None = None
    error: str | None = None


class JobResult(JobInfo):
    result: dict[str, Any] | None = None


class ErrorBody(BaseModel):
    error: dict[str, Any]
