"""The built-in provider: deterministic rules, always present, not a language model.

It exists so that chat, streaming, usage and the client can be used and tested with no
model installed and no network. What it answers is a pure function of the conversation:
the same messages always give the same text, token for token (``temperature`` and
``top_p`` change nothing, and the answers say what it is).

Models:

* ``plexi-echo`` answers the last user message verbatim (the tests' reference: the output
  is known in advance);
* ``plexi-rules`` recognises greetings, requests for help and for a summary, and
  questions; a summary counts the conversation's messages and lists its most frequent
  words; anything else is acknowledged with its word count and keywords.

Tokens are its own: words and punctuation marks with the whitespace before them (the
regex :data:`TOKEN`), so ``prompt_tokens`` and ``completion_tokens`` are exact for this
provider, not estimates. Streaming sends one token per chunk.
"""

from __future__ import annotations

import asyncio
import collections
import re
from collections.abc import AsyncIterator, Callable, Sequence

from plexichat_desktop.server.v1.ai.providers import (
    ChatMessage,
    ChatParams,
    Completion,
    Delta,
    ModelInfo,
    ProviderError,
    Usage,
    cut_at_stop,
)

NAME = "builtin"
TOKEN = re.compile(r"\s*[\w']+|\s*[^\w\s]|\s+$")
GREETING = re.compile(r"^\W*(hi|hello|hey|hallo|good (morning|afternoon|evening))\b", re.I)
QUOTE_CHARS = 200
_STOPWORDS_TEXT = """
a about above after again all also am an and any are as at be because been before being
below between both but by can could did do does doing down during each few for from
further had has have having he her here hers him his how i if in into is it its itself
just me more most my no nor not now of off on once only or other our ours out over own
same she should so some such than that the their theirs them then there these they this
those through to too under until up very was we were what when where which while who whom
why will with would you your yours please tell give make let know like want need thanks
"""
STOPWORDS = frozenset(_STOPWORDS_TEXT.split())

MODELS = {
    "plexi-echo": "Repeats the last user message verbatim. Deterministic; not a language "
                  "model.",
    "plexi-rules": "Fixed rules: greetings, help, a summary of the conversation (message "
                   "counts and frequent words), questions acknowledged with their "
                   "keywords. Deterministic; not a language model.",
}


def tokenize(text: str) -> list[str]:
    """The built-in provider's tokens of ``text``; ``"".join(tokens) == text`` up to
    trailing whitespace."""
    return TOKEN.findall(text)


def keywords(texts: Sequence[str], top: int = 5) -> list[str]:
    """The most frequent words of 4+ letters that are not stopwords, ties in order of
    first appearance (deterministic)."""
    counts: collections.Counter[str] = collections.Counter()
    first: dict[str, int] = {}
    for text in texts:
        for word in re.findall(r"[^\W\d_]{4,}", text.lower()):
            if word not in STOPWORDS:
                counts[word] += 1
                first.setdefault(word, len(first))
    return sorted(counts, key=lambda w: (-counts[w], first[w]))[:top]


def _quote(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= QUOTE_CHARS else text[:QUOTE_CHARS - 1] + "…"


def _summary(messages: Sequence[ChatMessage]) -> str:
    roles = collections.Counter(m.role for m in messages)
    user_texts = [m.content for m in messages if m.role == "user"]
    words = keywords([m.content for m in messages if m.role != "system"])
    parts = [f"This conversation has {len(messages)} message"
             f"{'s' if len(messages) != 1 else ''}: {roles['user']} from the user, "
             f"{roles['assistant']} from the assistant"
             + (f" and {roles['system']} system" if roles["system"] else "") + "."]
    if words:
        parts.append(f"Frequent words: {', '.join(words)}.")
    if user_texts:
        parts.append(f"It began with: “{_quote(user_texts[0])}”.")
    parts.append("(A count of words, not an understanding: I am a rule-based responder.)")
    return " ".join(parts)


def rules_reply(messages: Sequence[ChatMessage]) -> str:
    """The ``plexi-rules`` answer to ``messages`` (see the module docstring)."""
    users = [m.content for m in messages if m.role == "user"]
    if not users or not users[-1].strip():
        return "There is no user message to answer."
    text = users[-1]
    lower = text.lower()
    words = keywords([text])
    tail = f" Keywords: {', '.join(words)}." if words else ""
    if GREETING.search(text):
        return ("Hello! I am PlexiChat's built-in responder: I follow fixed rules and I am "
                "not a language model. For real answers an administrator can add an "
                "OpenAI-compatible provider (Ollama, llama.cpp server, LM Studio, OpenAI).")
    if "summar" in lower or "tl;dr" in lower:
        return _summary(messages)
    if re.search(r"\bhelp\b|what can you do", lower):
        return ("I can echo your message (model builtin/plexi-echo), summarise this "
                "conversation (ask for a summary), and acknowledge questions with their "
                "keywords. I cannot answer questions: I am a set of rules, not a language "
                "model.")
    if text.rstrip().endswith("?"):
        return (f"You asked: “{_quote(text)}”. I cannot answer questions: I am a "
                f"deterministic rule-based responder, not a language model.{tail}")
    count = len(text.split())
    return f"You said: “{_quote(text)}” ({count} word{'s' if count != 1 else ''}).{tail}"


def echo_reply(messages: Sequence[ChatMessage]) -> str:
    users = [m.content for m in messages if m.role == "user"]
    return users[-1] if users else ""


REPLIES: dict[str, Callable[[Sequence[ChatMessage]], str]] = {
    "plexi-echo": echo_reply, "plexi-rules": rules_reply}


class BuiltinProvider:
    """See the module docstring. ``token_delay``: seconds between streamed tokens (0 by
    default; a demo may slow it down to show streaming)."""

    name = NAME
    kind = "builtin"

    def __init__(self, token_delay: Callable[[], float] = lambda: 0.0):
        self.token_delay = token_delay

    def _answer(self, params: ChatParams) -> tuple[list[str], str, Usage]:
        reply = REPLIES.get(params.model)
        if reply is None:
            raise ProviderError(self.name, 404, f"has no model '{params.model}' (it has "
                                                f"{', '.join(MODELS)})")
        text, _found = cut_at_stop(reply(params.messages), params.stop)
        tokens = tokenize(text)
        finish = "stop"
        if len(tokens) > params.max_tokens:
            tokens, finish = tokens[:params.max_tokens], "length"
        prompt = sum(len(tokenize(m.content)) for m in params.messages)
        return tokens, finish, Usage(prompt, len(tokens))

    async def complete(self, params: ChatParams) -> Completion:
        tokens, finish, usage = self._answer(params)
        return Completion("".join(tokens), finish, usage)

    async def stream(self, params: ChatParams) -> AsyncIterator[Delta]:
        tokens, finish, usage = self._answer(params)
        delay = self.token_delay()
        for token in tokens:
            yield Delta(token)
            # Even with no delay, give the loop a turn: a disconnect is noticed mid-answer.
            await asyncio.sleep(delay)
        yield Delta("", finish, usage)

    async def list_models(self, timeout: float) -> list[ModelInfo]:
        return [ModelInfo(name, description, "plexichat") for name, description in
                MODELS.items()]
