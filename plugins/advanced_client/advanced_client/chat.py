"""What a chat request is made of, and what a chat looks like exported.

Kept apart from the routes so that the rules (which history fits, how the context goes in,
how an export reads) are plain functions with tests of their own.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from advanced_client.retrieval import ContextPiece, context_prompt, estimate_tokens

TEXT_EXTENSIONS = {".txt", ".md", ".markdown", ".rst", ".csv", ".tsv", ".json", ".yaml",
                   ".yml", ".toml", ".ini", ".py", ".js", ".ts", ".html", ".css", ".sql",
                   ".sh", ".log", ".xml", ".c", ".h", ".cpp", ".go", ".rs", ".java"}


def build_messages(system_prompt: str, history: Sequence[dict[str, Any]],
                   pieces: Sequence[ContextPiece], history_budget: int
                   ) -> tuple[list[dict[str, str]], int]:
    """The messages sent to the model: the preset's system prompt, the context (as a
    second system message, so the model can tell instructions from material), then the
    newest history that fits ``history_budget`` estimated tokens (the last message, the
    question, always). Returns them and how many history messages were left out."""
    messages: list[dict[str, str]] = []
    if system_prompt.strip():
        messages.append({"role": "system", "content": system_prompt.strip()})
    context = context_prompt(pieces)
    if context:
        messages.append({"role": "system", "content": context})
    usable = [m for m in history if m["role"] in ("user", "assistant") and m["content"]
              and m.get("status", "done") in ("done", "cut", "stopped")]
    kept: list[dict[str, str]] = []
    left = history_budget
    for message in reversed(usable):
        cost = estimate_tokens(message["content"])
        if kept and cost > left:
            break
        kept.append({"role": message["role"], "content": message["content"]})
        left -= cost
    kept.reverse()
    return messages + kept, len(usable) - len(kept)


def _when(stamp: float | None) -> str:
    if stamp is None:
        return ""
    return datetime.fromtimestamp(stamp, UTC).strftime("%Y-%m-%d %H:%M UTC")


def export_markdown(chat: dict[str, Any], messages: Sequence[dict[str, Any]]) -> str:
    """The chat as a Markdown document: title, settings, then each message under its
    author, with the sources an answer used."""
    lines = [f"# {chat['title']}", ""]
    meta = [f"Model: {chat.get('model') or 'server default'}"]
    if chat.get("preset"):
        meta.append(f"preset: {chat['preset']}")
    meta.append(f"exported {_when(datetime.now(UTC).timestamp())} from PlexiChat Desktop")
    lines += ["_" + " · ".join(meta) + "_", ""]
    if chat.get("system_prompt"):
        lines += ["> **System:** " + chat["system_prompt"].replace("\n", "\n> "), ""]
    for message in messages:
        who = "You" if message["role"] == "user" else \
            f"Assistant ({message.get('model') or 'model'})"
        status = "" if message.get("status", "done") == "done" else f" — {message['status']}"
        lines += [f"### {who} · {_when(message.get('created_at'))}{status}", "",
                  message["content"] or f"_({message.get('error') or 'no text'})_", ""]
        sources = message.get("context") or []
        if sources:
            lines.append("Sources: " + "; ".join(
                f"[{i}] {s.get('kind')}: {s.get('title')}" for i, s in enumerate(sources, 1)))
            lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def export_json(chat: dict[str, Any], messages: Sequence[dict[str, Any]]) -> str:
    keep = ("id", "role", "content", "model", "status", "error", "prompt_tokens",
            "completion_tokens", "usage_estimated", "latency_ms", "first_token_ms",
            "context", "created_at")
    return json.dumps({"chat": chat, "messages": [{k: m.get(k) for k in keep}
                                                   for m in messages]},
                      indent=2, ensure_ascii=False)


def export_filename(title: str, extension: str) -> str:
    """The download name of an export: the title as it is (any script; the headers are
    made by ``attachment_headers``), "chat" for an empty one."""
    return f"{title.strip()[:80].rstrip('. ') or 'chat'}.{extension}"


def title_from(text: str) -> str:
    """A chat's title from its first question: the first line, at most 60 characters."""
    first = " ".join(text.strip().splitlines()[0].split()) if text.strip() else ""
    return (first[:57] + "…") if len(first) > 60 else (first or "New chat")


def extract_text(name: str, content_type: str | None, data: bytes) -> str:
    """The text of an uploaded or downloaded file: UTF-8 text formats and PDF; anything
    else raises ``ValueError`` naming what is accepted."""
    lower = name.lower()
    suffix = lower[lower.rfind("."):] if "." in lower else ""
    if suffix == ".pdf" or content_type == "application/pdf":
        import io

        from pypdf import PdfReader
        from pypdf.errors import PdfReadError

        try:
            reader = PdfReader(io.BytesIO(data))
            return "\n".join((page.extract_text() or "") for page in reader.pages).strip()
        except (PdfReadError, ValueError, KeyError) as exc:
            raise ValueError(f"file: the PDF cannot be read ({exc})") from None
    if suffix in TEXT_EXTENSIONS or (content_type or "").startswith("text/") or \
            content_type in ("application/json", "application/xml"):
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            return data.decode("latin-1")
    raise ValueError(f"file: {name!r} is not a text file or a PDF (accepted: PDF and "
                     f"{', '.join(sorted(TEXT_EXTENSIONS))})")
