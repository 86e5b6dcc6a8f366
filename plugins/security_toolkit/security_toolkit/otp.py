"""TOTP (RFC 6238) from ``otpauth://`` URIs, and the URI as a QR code in SVG.

The code itself is the RFC's few lines (HOTP, RFC 4226, over the time step) written here:
pyotp refuses secrets under 112 bits, and the 80-bit secrets many sites still hand out
must keep working.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import io
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

import segno

from security_toolkit.errors import Problem

DIGESTS = {"SHA1": "sha1", "SHA256": "sha256", "SHA512": "sha512"}


@dataclass(frozen=True)
class Totp:
    """A parsed TOTP secret and its parameters (the secret is base32, upper case)."""

    secret: str
    issuer: str
    account: str
    digits: int = 6
    period: int = 30
    algorithm: str = "SHA1"

    def code(self, at: float | None = None) -> str:
        """The code for the time step holding ``at`` (now by default)."""
        key = base64.b32decode(self.secret + "=" * (-len(self.secret) % 8))
        counter = int(time.time() if at is None else at) // self.period
        mac = hmac.new(key, counter.to_bytes(8, "big"), DIGESTS[self.algorithm]).digest()
        offset = mac[-1] & 0x0F  # RFC 4226 dynamic truncation
        value = int.from_bytes(mac[offset:offset + 4], "big") & 0x7FFFFFFF
        return str(value % 10 ** self.digits).zfill(self.digits)

    def remaining(self, at: float | None = None) -> int:
        """Seconds until the code changes."""
        now = time.time() if at is None else at
        return self.period - int(now) % self.period

    def uri(self) -> str:
        label = quote(f"{self.issuer}:{self.account}" if self.issuer else self.account)
        query = f"secret={self.secret}&digits={self.digits}&period={self.period}"
        query += f"&algorithm={self.algorithm}"
        if self.issuer:
            query += f"&issuer={quote(self.issuer)}"
        return f"otpauth://totp/{label}?{query}"

    def public(self, at: float | None = None) -> dict[str, Any]:
        """What a list may show: the current code but never the secret."""
        return {"issuer": self.issuer, "account": self.account, "digits": self.digits,
                "period": self.period, "algorithm": self.algorithm,
                "code": self.code(at), "remaining": self.remaining(at)}


def _secret(text: str, field: str) -> str:
    cleaned = text.replace(" ", "").replace("-", "").upper()
    if not cleaned:
        raise Problem(field, "the secret is empty")
    try:
        raw = base64.b32decode(cleaned + "=" * (-len(cleaned) % 8))
    except (binascii.Error, ValueError):
        raise Problem(field, "the secret is not base32 (letters A-Z and digits 2-7)") from None
    if len(raw) < 10:
        raise Problem(field, f"the secret is {len(raw)} bytes; at least 10 (80 bits) are "
                             "needed")
    return cleaned.rstrip("=")


def parse(uri: str, field: str = "uri") -> Totp:
    """An ``otpauth://totp/...`` URI, or a bare base32 secret, as :class:`Totp`.

    Every refusal names ``field`` and says what is wrong (HOTP, missing secret, bad
    base32, unsupported algorithm, digits or period out of range)."""
    text = uri.strip()
    if not text.lower().startswith("otpauth://"):
        return Totp(_secret(text, field), "", "")
    parts = urlsplit(text)
    if parts.netloc.lower() != "totp":
        raise Problem(field, f"only time-based codes (otpauth://totp/) are supported, not "
                             f"'{parts.netloc}'")
    query = {k.lower(): v[-1] for k, v in parse_qs(parts.query).items()}
    if "secret" not in query:
        raise Problem(field, "the URI has no secret= parameter")
    label = unquote(parts.path.lstrip("/"))
    issuer_in_label, _, account = label.rpartition(":")
    issuer = query.get("issuer", issuer_in_label).strip()
    algorithm = query.get("algorithm", "SHA1").upper()
    if algorithm not in DIGESTS:
        raise Problem(field, f"algorithm {algorithm} is not one of SHA1, SHA256, SHA512")
    try:
        digits = int(query.get("digits", "6"))
        period = int(query.get("period", "30"))
    except ValueError:
        raise Problem(field, "digits and period must be whole numbers") from None
    if digits not in (6, 7, 8):
        raise Problem(field, f"digits={digits}: 6, 7 or 8 are supported")
    if not 5 <= period <= 300:
        raise Problem(field, f"period={period}: between 5 and 300 seconds")
    return Totp(_secret(query["secret"], field), issuer, account.strip(), digits, period,
                algorithm)


def qr_svg(uri: str) -> str:
    """The URI as a QR code (SVG text, no external references), for phone authenticators."""
    qr = segno.make(uri, error="m", micro=False)
    out = io.BytesIO()
    qr.save(out, kind="svg", scale=5, border=2, xmldecl=False, svgns=True,
            title="TOTP QR code", dark="#000", light="#fff")
    return out.getvalue().decode()
