"""Keeping secrets out of what is shown, written and logged.

A secret is recognised by its name (a header, query parameter or capture whose name
holds one of :data:`SECRET_WORDS`: ``X-Auth-Token``, ``api_key``, ``access_token``...) or
by its value (every value the secret store holds for the collection, the tokens an auth
helper added, the values captured under a secret name). Masked, a secret shows at most its
last 4 characters, and none at all when it is shorter than :data:`SHOW_TAIL_FROM`: a short
secret's tail is most of it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

SECRET_HEADERS = frozenset({"authorization", "cookie", "proxy-authorization", "x-api-key",
                            "set-cookie"})
# Names that carry credentials by their look (X-Auth-Token, Api-Key, X-Session...).
SECRET_WORDS = ("auth", "token", "key", "secret", "session", "cookie", "password",
                "passwd", "credential", "signature", "sig")
MASK = "…"
SHOW_TAIL_FROM = 16
# A value shorter than this is not searched for in text: it would match everywhere.
MIN_SEARCHED = 6
_QUERY_PAIR = re.compile(r"([?&;])([^=&#;\s]+)=([^&#;\s]*)")
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9_-]{0,30}) (\S.*)$")


def is_secret_name(name: str) -> bool:
    lowered = name.lower()
    return lowered in SECRET_HEADERS or any(word in lowered for word in SECRET_WORDS)


def mask(value: str) -> str:
    """``…wxyz`` (the last 4 characters) for a long secret, ``…`` for a short one."""
    if len(value) >= SHOW_TAIL_FROM:
        return MASK + value[-4:]
    return MASK


def mask_header(name: str, value: str) -> str:
    """A header value as shown: a secret one masked, its scheme kept (``Bearer …wxyz``)."""
    if not is_secret_name(name):
        return value
    scheme = _SCHEME.match(value)
    if scheme and scheme.group(1).lower() in ("bearer", "basic", "token", "digest",
                                              "apikey", "negotiate"):
        return f"{scheme.group(1)} {mask(scheme.group(2))}"
    return mask(value)


class Redactor:
    """Masks known secret values anywhere in text, and query parameters with a secret
    name in URLs. Values are added as they become known (a token captured by one step
    is in the next step's URL)."""

    def __init__(self, secrets: Iterable[str] = ()):
        self._values: set[str] = set()
        self.add(secrets)

    def add(self, secrets: Iterable[str]) -> None:
        for value in secrets:
            if isinstance(value, str) and len(value) >= MIN_SEARCHED:
                self._values.add(value)
                # The same secret as it appears in a URL or a Basic header.
                from urllib.parse import quote_plus

                if quote_plus(value) != value:
                    self._values.add(quote_plus(value))

    def text(self, text: str) -> str:
        for value in sorted(self._values, key=len, reverse=True):
            if value in text:
                text = text.replace(value, mask(value))

        def pair(match: re.Match[str]) -> str:
            sep, name, value = match.groups()
            if value and is_secret_name(name) and not value.startswith(MASK):
                return f"{sep}{name}={mask(value)}"
            return match.group(0)

        return _QUERY_PAIR.sub(pair, text)

    def value(self, data: Any) -> Any:
        """``data`` (JSON-like) with every string redacted."""
        if isinstance(data, str):
            return self.text(data)
        if isinstance(data, dict):
            return {key: self.value(item) for key, item in data.items()}
        if isinstance(data, list | tuple):
            return [self.value(item) for item in data]
        return data
