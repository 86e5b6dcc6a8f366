"""Checking a PlexiChat webhook request: signature and timestamp window, with the reason.

The v1 server signs ``"<X-PlexiChat-Timestamp>.<raw body>"`` with HMAC-SHA256 under the
webhook's secret and sends ``X-PlexiChat-Signature: sha256=<hex>``; during a secret
rotation's grace period the header holds two entries separated by a space (new secret
first). A request passes when its timestamp is inside the window and one entry matches one
of the secrets the receiver knows. Everything here is pure: the inspector, the tests and the
page's explanations all use the same verdict.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

SIGNATURE_HEADER = "X-PlexiChat-Signature"
TIMESTAMP_HEADER = "X-PlexiChat-Timestamp"
ENTRY = re.compile(r"^sha256=([0-9a-f]{64})$")
STAMP = re.compile(r"[0-9]{1,15}")


@dataclass
class Check:
    """One step of a verdict: its name, whether it passed, what was found."""

    name: str
    ok: bool
    detail: str


@dataclass
class Verdict:
    """Whether a request is authentic and fresh; ``reason`` says why not (or what matched)."""

    ok: bool
    reason: str
    checks: list[Check] = field(default_factory=list)
    matched: str | None = None  # "current" or "previous": which secret signed it
    age_seconds: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def expected_signature(secret: str, timestamp: str, body: bytes) -> str:
    """``sha256=<hex>`` of ``body`` sent at ``timestamp`` under ``secret``."""
    mac = hmac.new(secret.encode("utf-8"), timestamp.encode("ascii", "replace") + b"." + body,
                   hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def header_value(headers: Mapping[str, str], name: str) -> str | None:
    """The value of the header ``name``, whatever its case; None when absent."""
    wanted = name.lower()
    for key, value in headers.items():
        if key.lower() == wanted:
            return value
    return None


def signed_content(headers: Mapping[str, str], body: bytes) -> str | None:
    """What a valid signature proves: the timestamp and the body (a digest of it). The
    replay memory keys on this, not on the signature header's text, which can be written
    many ways that verify alike (a trailing comma, the entry twice, another entry beside
    it): each way passed as a new delivery and was forwarded again."""
    stamp = header_value(headers, TIMESTAMP_HEADER)
    if stamp is None:
        return None
    return f"{stamp.strip()}:{hashlib.sha256(body).hexdigest()}"


def verify(headers: Mapping[str, str], body: bytes, secrets: Sequence[str], *, now: float,
           tolerance: float = 300.0, signature_header: str = SIGNATURE_HEADER,
           timestamp_header: str = TIMESTAMP_HEADER) -> Verdict:
    """Check one request. ``secrets``: the current secret first, then older ones still in
    their grace; ``tolerance``: seconds a timestamp may be off (old: a replay; ahead: a
    clock that is wrong)."""
    checks: list[Check] = []
    stamp = header_value(headers, timestamp_header)
    age: float | None = None
    if stamp is None:
        checks.append(Check("timestamp", False, f"no {timestamp_header} header"))
    elif not STAMP.fullmatch(stamp.strip()):
        # ASCII digits only, and few of them: str.isdigit() takes "²" (int() refuses it)
        # and a 400-digit stamp overflowed the float arithmetic below: the inspector's
        # connection died with no answer and no capture.
        checks.append(Check("timestamp", False, f"{timestamp_header} is not UNIX seconds: "
                                                f"{stamp[:40]!r}"))
    else:
        age = now - int(stamp)
        if age > tolerance:
            checks.append(Check("timestamp", False, f"sent {age:.0f} s ago, outside the "
                                                    f"{tolerance:.0f} s window (a replay?)"))
        elif age < -tolerance:
            checks.append(Check("timestamp", False, f"{-age:.0f} s in the future, outside the "
                                                    f"{tolerance:.0f} s window (clock skew?)"))
        else:
            checks.append(Check("timestamp", True, f"{age:.0f} s old, inside the "
                                                   f"{tolerance:.0f} s window"))
    header = header_value(headers, signature_header)
    matched: str | None = None
    if header is None:
        checks.append(Check("signature", False, f"no {signature_header} header"))
    else:
        entries = header.replace(",", " ").split()
        malformed = [e for e in entries if not ENTRY.match(e)]
        if not entries or malformed:
            shown = (malformed or [header])[0][:40]
            checks.append(Check("signature", False, f"malformed entry {shown!r}; expected "
                                                    "sha256=<64 hex digits>"))
        elif not secrets:
            checks.append(Check("signature", False, "no secret to check against; set the "
                                                    "inbox's secret"))
        elif stamp is None:
            checks.append(Check("signature", False, "cannot be checked without the timestamp "
                                                    "it signs"))
        else:
            for index, secret in enumerate(secrets):
                expected = expected_signature(secret, stamp, body)
                if any(hmac.compare_digest(expected, entry) for entry in entries):
                    matched = "current" if index == 0 else "previous"
                    break
            if matched is None:
                checks.append(Check("signature", False, (
                    "does not match: the body or timestamp was changed on the way, or it was "
                    "signed with another secret")))
            else:
                checks.append(Check("signature", True, f"matches the {matched} secret"
                                    + (f" ({len(entries)} signatures sent: a rotation's "
                                       "grace)" if len(entries) > 1 else "")))
    failed = [c for c in checks if not c.ok]
    reason = "; ".join(f"{c.name}: {c.detail}" for c in (failed or reversed(checks)))
    return Verdict(not failed, reason, checks, matched, age)
