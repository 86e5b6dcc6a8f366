"""Smart replies for a messaging conversation: three short answers to the last message
the other person sent, each labelled with where it came from.

* ``ai``: a language model (any non-deterministic model of the v1 AI API) is asked for
  three replies, one per line, and its lines are cleaned (numbering, quotes, bullets);
* ``rules``: fixed patterns (a question, thanks, a greeting, an apology, a plan or time)
  when no language model is configured, or the model failed or answered unusably. The
  built-in provider is a set of rules that cannot write replies, so it is never asked.

Nothing is sent by itself: a suggestion only fills the composer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MAX_REPLY = 160


@dataclass
class Suggestions:
    replies: list[str]
    source: str  # "ai" or "rules"
    model: str | None = None
    reason: str | None = None  # why rules were used, when they were

    def to_dict(self) -> dict[str, object]:
        label = f"Smart reply · AI ({self.model})" if self.source == "ai" else \
            "Smart reply · rules"
        return {"replies": self.replies, "source": self.source, "model": self.model,
                "label": label, "reason": self.reason}


_RULES: list[tuple[re.Pattern[str], list[str]]] = [
    (re.compile(r"\b(thanks|thank you|thx|cheers|appreciate)\b", re.I),
     ["You're welcome!", "Any time.", "Glad I could help."]),
    (re.compile(r"\b(sorry|apologi[sz]e|my bad)\b", re.I),
     ["No problem at all.", "Don't worry about it.", "All good, thanks for saying."]),
    (re.compile(r"\b(when|what time|which day|tomorrow|today|tonight|meet|meeting|call)\b",
                re.I),
     ["That time works for me.", "Can we do a bit later?", "Let me check my calendar."]),
    (re.compile(r"^\W*(hi|hello|hey|good (morning|afternoon|evening))\b", re.I),
     ["Hi! How are you?", "Hello! What's up?", "Hey, good to hear from you."]),
    (re.compile(r"\b(can you|could you|would you|will you|please)\b", re.I),
     ["Sure, I'll do it.", "I can't right now, sorry.", "Yes — by when do you need it?"]),
    (re.compile(r"\?\s*$"),
     ["Yes.", "No, not really.", "Let me check and get back to you."]),
    (re.compile(r"\b(great|awesome|nice|congrat\w*|well done)\b", re.I),
     ["Thanks!", "Glad you like it.", "Thank you, it was a team effort."]),
]
_DEFAULT = ["Sounds good.", "Thanks for letting me know.", "OK, noted."]


def rule_replies(message: str) -> list[str]:
    """Three replies from the first rule whose pattern matches ``message``."""
    text = message.strip()
    for pattern, replies in _RULES:
        if pattern.search(text):
            return list(replies)
    return list(_DEFAULT)


def ai_prompt(history: list[tuple[str, str]], me: str) -> list[dict[str, str]]:
    """The chat messages that ask a model for three replies; ``history`` is
    ``(author, text)`` oldest first, ``me`` the user's name."""
    lines = "\n".join(f"{author}: {text}" for author, text in history[-12:])
    return [
        {"role": "system", "content": (
            f"You suggest replies for {me} in a chat. Write exactly three short, "
            f"different replies {me} could send next, one per line, no numbering, no "
            "quotes, no explanations. Match the conversation's language and tone.")},
        {"role": "user", "content": f"Conversation:\n{lines}\n\nThree replies for {me}:"},
    ]


def parse_ai_replies(text: str) -> list[str]:
    """The usable replies of a model's answer (at most three, deduplicated)."""
    out: list[str] = []
    for line in text.splitlines():
        line = re.sub(r"^\s*(?:[-*•]|\d+[.)]|reply\s*\d*:)\s*", "", line, flags=re.I).strip()
        line = line.strip("\"' \u201c\u201d\u2018\u2019").strip()  # straight and curly quotes
        if not line or len(line) > MAX_REPLY or line.lower() in (r.lower() for r in out):
            continue
        out.append(line)
        if len(out) == 3:
            break
    return out
