"""Passwords and passphrases from the OS's CSPRNG, and zxcvbn strength estimates.

The passphrase word list is the EFF large list (7,776 words, CC BY 3.0 US, see
``data/WORDLIST-LICENSE.txt``), shipped with the plugin so nothing is fetched.
"""

from __future__ import annotations

import math
import secrets
import string
from functools import cache
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from security_toolkit.errors import Problem

WORDLIST = Path(__file__).with_name("data") / "eff_large_wordlist.txt"
# Characters people misread or mistype when they copy a password by eye.
AMBIGUOUS = set("Il1|O0oB8S5Z2`'\"")
SYMBOLS = "!#$%&()*+,-./:;<=>?@[]^_{}~"
# zxcvbn's matching is quadratic in length; past this it adds nothing to the estimate
# (the guess count is already astronomical) and takes seconds.
ZXCVBN_MAX = 100


@cache
def words() -> tuple[str, ...]:
    """The EFF large word list (read once)."""
    found = tuple(w.strip() for w in WORDLIST.read_text("utf-8").splitlines() if w.strip())
    assert len(found) == 7776, f"{WORDLIST} should hold 7776 words, has {len(found)}"
    return found


class PasswordRules(BaseModel):
    """What a generated password is made of."""

    length: int = Field(20, ge=4, le=256)
    lower: bool = True
    upper: bool = True
    digits: bool = True
    symbols: bool = True
    exclude_ambiguous: bool = True
    exclude: str = Field("", max_length=200, description="further characters never used")


class PassphraseRules(BaseModel):
    """What a generated passphrase is made of."""

    words: int = Field(6, ge=3, le=20)
    separator: str = Field("-", max_length=3)
    capitalize: bool = False
    number: bool = Field(False, description="append a digit to one random word")


def _classes(rules: PasswordRules) -> list[str]:
    chosen = [(rules.lower, string.ascii_lowercase), (rules.upper, string.ascii_uppercase),
              (rules.digits, string.digits), (rules.symbols, SYMBOLS)]
    dropped = set(rules.exclude) | (AMBIGUOUS if rules.exclude_ambiguous else set())
    if not any(on for on, _ in chosen):
        raise Problem("rules", "no characters left: turn on at least one character class")
    names = ("lower-case letters", "upper-case letters", "digits", "symbols")
    emptied = [name for (on, chars), name in zip(chosen, names, strict=True)
               if on and not set(chars) - dropped]
    if emptied:
        # Every chosen class appears, the README promises: a class excluded whole is the
        # user's contradiction to settle, not one to drop without a word.
        raise Problem("exclude", f"it removes every one of the {' and '.join(emptied)}; "
                                 "exclude fewer characters or turn that class off")
    classes = ["".join(c for c in chars if c not in dropped) for on, chars in chosen if on]
    if rules.length < len(classes):
        raise Problem("length", f"{rules.length} characters cannot hold one of each of the "
                                f"{len(classes)} classes chosen")
    return classes


def password(rules: PasswordRules) -> str:
    """A password with at least one character of every chosen class.

    Rejection sampling (draw the whole password uniformly from the pool, retry until each
    class appears) keeps every valid password equally likely, unlike "put one of each,
    then shuffle", which favours the rarer classes.
    """
    classes = _classes(rules)
    pool = "".join(classes)
    while True:
        candidate = "".join(secrets.choice(pool) for _ in range(rules.length))
        if all(any(c in cls for c in candidate) for cls in classes):
            return candidate


def passphrase(rules: PassphraseRules) -> str:
    """``rules.words`` words drawn uniformly from the EFF list."""
    if any(ch.isalpha() for ch in rules.separator):
        raise Problem("separator", "a separator of letters would run into the words")
    chosen = [secrets.choice(words()) for _ in range(rules.words)]
    if rules.capitalize:
        chosen = [w.capitalize() for w in chosen]
    if rules.number:
        at = secrets.randbelow(len(chosen))
        chosen[at] += str(secrets.randbelow(10))
    return rules.separator.join(chosen)


def entropy_bits(rules: PasswordRules | PassphraseRules) -> float:
    """The generator's entropy (what an attacker who knows the rules must search)."""
    if isinstance(rules, PasswordRules):
        pool = sum(len(c) for c in _classes(rules))
        return round(rules.length * math.log2(pool), 1)
    bits = rules.words * math.log2(len(words()))
    if rules.number:
        bits += math.log2(10 * rules.words)
    return round(bits, 1)


def strength(secret: str, user_inputs: list[str] | None = None) -> dict[str, Any]:
    """zxcvbn's verdict: score 0-4, log10 of guesses, crack times, feedback.

    Crack times are given for an online attack (throttled, 100/h) and for offline attacks
    on a slow hash (1e4/s, like this vault's Argon2) and a fast one (1e10/s, a leaked
    unsalted SHA-1 list)."""
    if not secret:
        return {"score": 0, "guesses_log10": 0.0, "crack_times": {},
                "warning": "empty", "suggestions": []}
    inputs = [i for i in (user_inputs or []) if i][:10]
    # Imported with the first estimate: its frequency lists are ~25 ms of every app start.
    from zxcvbn import zxcvbn

    result = zxcvbn(secret[:ZXCVBN_MAX], user_inputs=inputs, max_length=ZXCVBN_MAX)
    times = result["crack_times_display"]
    return {
        "score": int(result["score"]),
        "guesses_log10": round(float(result["guesses_log10"]), 2),
        "crack_times": {
            "online_throttled": times["online_throttling_100_per_hour"],
            "offline_slow_hash": times["offline_slow_hashing_1e4_per_second"],
            "offline_fast_hash": times["offline_fast_hashing_1e10_per_second"],
        },
        "warning": result["feedback"].get("warning") or "",
        "suggestions": list(result["feedback"].get("suggestions") or []),
    }
