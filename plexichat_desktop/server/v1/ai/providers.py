"""What every AI provider is: the request it gets, the pieces it answers with, its errors.

A provider turns a chat (OpenAI message format) into text, either whole
(:meth:`Provider.complete`) or as an async iterator of :class:`Delta` pieces
(:meth:`Provider.stream`). The routes only ever see these types, so the built-in
rules, an OpenAI-compatible server and an in-process GGUF model look the same to them.

Errors are :class:`ProviderError` with the HTTP status the API answers (502 a bad or
refusing upstream, 503 an unreachable or disabled one, 504 a timeout) and a message that
names the provider; a secret never goes into one (see :func:`redact`).
"""

from __future__ import annotations

import math
import re
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Protocol

FinishReason = str  # "stop" | "length" (OpenAI's values; upstreams may send others)


@dataclass(frozen=True)
class ChatMessage:
    """One message of the conversation (OpenAI roles: system, user, assistant, tool)."""

    role: str
    content: str


@dataclass(frozen=True)
class ChatParams:
    """One chat request as a provider gets it; ``model`` is the provider's own model name
    (without the ``<provider>/`` prefix of the API's model ids)."""

    model: str
    messages: Sequence[ChatMessage]
    max_tokens: int
    temperature: float | None = None
    top_p: float | None = None
    stop: tuple[str, ...] = ()


@dataclass
class Usage:
    """Token counts of one request; ``estimated`` when the provider reported none and
    they were guessed from the text (about 4 characters per token)."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    estimated: bool = False

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def to_dict(self) -> dict[str, int]:
        return {"prompt_tokens": self.prompt_tokens,
                "completion_tokens": self.completion_tokens,
                "total_tokens": self.total_tokens}


@dataclass
class Delta:
    """A piece of a streamed answer: text, and on the last piece the finish reason and,
    when the provider reports it, the usage."""

    content: str = ""
    finish_reason: FinishReason | None = None
    usage: Usage | None = None


@dataclass
class Completion:
    """A whole answer."""

    content: str
    finish_reason: FinishReason
    usage: Usage = field(default_factory=Usage)


class ProviderError(Exception):
    """A provider could not answer. ``status`` is what the API answers (502, 503, 504, or
    404 for a model the provider does not have); ``retry_after`` is passed on with 503s
    an upstream asked to retry later."""

    def __init__(self, provider: str, status: int, message: str,
                 retry_after: int | None = None):
        super().__init__(f"AI provider '{provider}' {message}")
        self.provider = provider
        self.status = status
        self.retry_after = retry_after

    @property
    def detail(self) -> str:
        return str(self)


@dataclass(frozen=True)
class ModelInfo:
    """A model as a provider lists it."""

    name: str
    description: str = ""
    owned_by: str = ""


class Provider(Protocol):
    """What the routes need of a provider."""

    name: str
    kind: str

    async def complete(self, params: ChatParams) -> Completion:
        """The whole answer to ``params``."""
        ...

    def stream(self, params: ChatParams) -> AsyncIterator[Delta]:
        """The answer to ``params`` piece by piece; the last piece has ``finish_reason``."""
        ...

    async def list_models(self, timeout: float) -> list[ModelInfo]:
        """The models the provider serves now (raises :class:`ProviderError`)."""
        ...


def estimate_tokens(text: str) -> int:
    """A rough token count for providers that report none: about 4 characters per token
    for English text with BPE tokenizers (OpenAI's own rule of thumb)."""
    return math.ceil(len(text) / 4) if text else 0


def estimate_prompt(messages: Sequence[ChatMessage]) -> int:
    # ~3 tokens of framing per message in the chat templates of OpenAI and Llama models.
    return sum(estimate_tokens(m.content) + 3 for m in messages)


def redact(text: str, *secrets: str | None) -> str:
    """``text`` with every secret in it replaced: an upstream that echoes the API key in
    its error message must not make the key appear in our answer or log."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "[redacted]")
    # Bearer tokens of any kind, in case an upstream echoes a header back.
    return re.sub(r"(?i)(bearer\s+)[^\s\"',;]+", r"\1[redacted]", text)


def cut_at_stop(text: str, stop: Sequence[str]) -> tuple[str, bool]:
    """``text`` up to the first stop sequence; True when one was found."""
    cut = min((i for i in (text.find(s) for s in stop if s) if i >= 0), default=-1)
    return (text, False) if cut < 0 else (text[:cut], True)
