"""Local moderation rules: patterns, not understanding.

``POST /ai/moderate`` runs these checks on text and says which matched and where. They are
honest about their reach: they find things that have a *shape* (an email address, a phone
number, a card number that passes the Luhn check, an IBAN whose checksum is right, a
secret key in a well-known format, a word of the administrator's blocklist), and nothing
else. They do **not** detect hate, harassment, threats, self-harm, sexual content,
violence, spam or misinformation: that needs a classifier model, and a blocklist that
pretended otherwise would give a false sense of safety. :data:`NOT_CHECKED` says so in
every answer.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

MODEL = "plexi-local-rules-1"
MAX_MATCHES = 50


def luhn_ok(digits: str) -> bool:
    """The Luhn checksum of payment card numbers."""
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char)
        if index % 2:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def iban_ok(text: str) -> bool:
    """The ISO 13616 mod-97 checksum of an IBAN."""
    compact = text.replace(" ", "").upper()
    moved = compact[4:] + compact[:4]
    try:
        return int("".join(str(int(c, 36)) for c in moved)) % 97 == 1
    except ValueError:
        return False


@dataclass(frozen=True)
class Rule:
    category: str
    name: str
    pattern: re.Pattern[str]
    description: str
    valid: Callable[[str], bool] = lambda _text: True


RULES = (
    # Bounded like RFC 5321's parts (64-character local part, 63-character labels): an
    # unbounded local part made every '.' of "a.a.a.a..." scan to the end (quadratic).
    Rule("pii", "email", re.compile(r"\b[\w.+-]{1,64}@[\w-]{1,63}(?:\.[\w-]{1,63}){1,10}\b"),
         "an email address"),
    Rule("pii", "phone", re.compile(
        r"(?<![\w+])(?:\+\d{1,3}[ .-]?)?(?:\(\d{2,4}\)[ .-]?)?\d{2,4}(?:[ .-]\d{2,4}){2,4}"
        r"(?![\w])"),
         "a phone number (7 to 15 digits in groups, optionally with +country code)",
         lambda text: 7 <= sum(c.isdigit() for c in text) <= 15),
    Rule("pii", "payment_card", re.compile(r"\b(?:\d[ -]?){12,18}\d\b"),
         "a payment card number (13-19 digits passing the Luhn check)",
         lambda text: luhn_ok(re.sub(r"\D", "", text))),
    Rule("pii", "iban", re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?\b"),
         "an IBAN whose mod-97 checksum is right", iban_ok),
    Rule("secret", "api_key", re.compile(
        r"\b(?:sk-(?:proj-)?[A-Za-z0-9_-]{20,}|gh[pousr]_[A-Za-z0-9]{36,}|"
        r"AKIA[0-9A-Z]{16}|xox[abpr]-[A-Za-z0-9-]{10,}|AIza[0-9A-Za-z_-]{35}|"
        r"px[adr]_[A-Za-z0-9_-]{20,})"),
         "a secret key in a well-known format (OpenAI, GitHub, AWS, Slack, Google, "
         "PlexiChat tokens)"),
    Rule("secret", "private_key", re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
         "a PEM private key"),
)

NOT_CHECKED = ("hate", "harassment", "threats", "self-harm", "sexual content", "violence",
               "spam", "misinformation", "meaning or context of any kind (these rules match "
               "shapes of text, they do not understand it)")


def checks(blocklist: Iterable[str]) -> list[dict[str, str]]:
    """What is checked, for the answer (so a caller knows the reach of a 'not flagged')."""
    out = [{"category": r.category, "rule": r.name, "finds": r.description} for r in RULES]
    words = [w for w in blocklist if w.strip()]
    out.append({"category": "blocklist", "rule": "blocklist",
                "finds": f"{len(words)} word(s) or phrase(s) of [api] "
                         "ai_moderation_blocklist, whole words, any case"
                         if words else "nothing: [api] ai_moderation_blocklist is empty"})
    return out


def _blocklist_pattern(blocklist: Iterable[str]) -> re.Pattern[str] | None:
    words = sorted({w.strip() for w in blocklist if w.strip()}, key=len, reverse=True)
    if not words:
        return None
    return re.compile(r"(?<!\w)(?:" + "|".join(re.escape(w) for w in words) + r")(?!\w)",
                      re.IGNORECASE)


def moderate(text: str, blocklist: Iterable[str] = ()) -> dict[str, object]:
    """The result for one text: ``flagged``, ``categories`` (category -> bool) and
    ``matches`` (category, rule, start, end; at most :data:`MAX_MATCHES`). The matched
    text itself is not repeated: it may be the very secret or number being flagged."""
    matches: list[dict[str, object]] = []
    # The spans taken so far, disjoint and sorted: an overlap is found by bisection (a
    # scan of every earlier match was quadratic in a text of thousands of addresses).
    taken: list[tuple[int, int]] = []
    for rule in RULES:
        for found in rule.pattern.finditer(text):
            start, end = found.span()
            at = bisect.bisect_left(taken, (start, end))
            overlaps = ((at > 0 and taken[at - 1][1] > start)
                        or (at < len(taken) and taken[at][0] < end))
            if overlaps or not rule.valid(found.group()):
                continue  # a card number is not also a phone number
            taken.insert(at, (start, end))
            matches.append({"category": rule.category, "rule": rule.name, "start": start,
                            "end": end})
    blocked = _blocklist_pattern(blocklist)
    if blocked is not None:
        for found in blocked.finditer(text):
            matches.append({"category": "blocklist", "rule": "blocklist",
                            "start": found.start(), "end": found.end()})
    matches.sort(key=lambda m: (m["start"], m["rule"]))
    categories = {name: any(m["category"] == name for m in matches)
                  for name in ("pii", "secret", "blocklist")}
    return {"flagged": any(categories.values()), "categories": categories,
            "category_counts": {name: sum(m["category"] == name for m in matches)
                                for name in categories},
            "matches": matches[:MAX_MATCHES]}
