"""How strong a new password is: the server's own policy, rule by rule, plus zxcvbn's
estimate of how many guesses it takes.

The rules come from the server (``GET /auth/password/policy``), so the meter can never
approve a password the server will refuse, nor refuse one it takes for a rule of its own.
zxcvbn adds what a character-class policy cannot see: ``Password1234!`` meets every rule
and is still among the first guesses of any cracker. Its score (0-4) drives the meter; the
plugin's ``min_score`` setting refuses low scores before the server is asked.
"""

from __future__ import annotations

import re
from typing import Any

# zxcvbn refuses longer input (its matching grows quickly with length): past this the
# estimate is of the start, already far beyond any cracker for passwords that long.
ESTIMATE_MAX = 72
SPECIAL = re.compile(r"[^A-Za-z0-9]")
SCORE_LABELS = ("very weak", "weak", "fair", "strong", "very strong")


def policy_checks(password: str, policy: dict[str, Any]) -> list[dict[str, Any]]:
    """Each rule of the server's ``policy`` with whether ``password`` meets it (the same
    tests as the server's ``password_problem``)."""
    minimum = int(policy.get("min_length", 12))
    checks = [{"rule": "length", "text": f"at least {minimum} characters",
               "ok": len(password) >= minimum}]
    if policy.get("require_upper", True):
        checks.append({"rule": "upper", "text": "an upper-case letter",
                       "ok": any(c.isupper() for c in password)})
    if policy.get("require_lower", True):
        checks.append({"rule": "lower", "text": "a lower-case letter",
                       "ok": any(c.islower() for c in password)})
    if policy.get("require_digit", True):
        checks.append({"rule": "digit", "text": "a digit",
                       "ok": any(c.isdigit() for c in password)})
    if policy.get("require_special", True):
        checks.append({"rule": "special", "text": "a special character",
                       "ok": bool(SPECIAL.search(password))})
    maximum = policy.get("max_length")
    if maximum:
        checks.append({"rule": "max_length", "text": f"at most {maximum} characters",
                       "ok": len(password) <= int(maximum)})
    return checks


def evaluate(password: str, policy: dict[str, Any], user_inputs: list[str],
             min_score: int) -> dict[str, Any]:
    """The meter's answer for ``password``: the policy checklist, zxcvbn's score with its
    feedback, and whether the password may be used here (``acceptable``) and why not.

    ``user_inputs`` (username, names, email) count as known words: a password built from
    them scores low.
    """
    checks = policy_checks(password, policy)
    inputs = [word for word in user_inputs if word]
    # Imported with the first estimate: its frequency lists are ~25 ms of every app start.
    from zxcvbn import zxcvbn

    estimate = zxcvbn(password[:ESTIMATE_MAX], user_inputs=inputs) if password else None
    score = int(estimate["score"]) if estimate else 0
    feedback = estimate["feedback"] if estimate else {"warning": "", "suggestions": []}
    problems = [f"needs {c['text']}" for c in checks if not c["ok"]]
    if password and score < min_score:
        problems.append(f"too easy to guess ({SCORE_LABELS[score]}: score {score} of 4, "
                        f"at least {min_score} needed here)")
    return {
        "score": score,
        "label": SCORE_LABELS[score] if password else "empty",
        "guesses_log10": round(float(estimate["guesses_log10"]), 2) if estimate else 0.0,
        "crack_time": (estimate["crack_times_display"]["offline_slow_hashing_1e4_per_second"]
                       if estimate else None),
        "crack_time_online": (estimate["crack_times_display"][
            "online_throttling_100_per_hour"] if estimate else None),
        "warning": feedback.get("warning") or "",
        "suggestions": list(feedback.get("suggestions") or []),
        "checks": checks,
        "policy_ok": all(c["ok"] for c in checks),
        "min_score": min_score,
        "acceptable": bool(password) and not problems,
        "problems": problems,
    }
