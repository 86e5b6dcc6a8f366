"""Keeping secrets out of what is shown, written and logged.

A secret is recognised by its name (a header, query parameter or capture a word of whose
name is one of :data:`SECRET_WORDS`: ``X-Auth-Token``, ``api_key``, ``access_token``...) or
by its value (every value the secret store holds for the collection, the tokens an auth
helper added, the values captured under a secret name). Masked, a secret shows at most its
last 4 characters, and none at all when it is shorter than :data:`SHOW_TAIL_FROM`: a short
secret's tail is most of it.
"""

from __future__ import annotations

import itertools
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


# The words of a name: "X-Auth-Token", "x_auth_token" and "xAuthToken" are x, auth, token.
_NAME_WORD = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|\d+")
# Names written as one word that carry credentials all the same.
_JOINED = frozenset({"apikey", "accesskey", "authtoken", "accesstoken", "sessionid",
                     "authorization", "authentication", "credentials", "passphrase", "pwd"})
# A body field is a credential by narrower words: "key", "session" or "sig" name ordinary
# data in a JSON body or a form ({"key": "colour"}, "session": 3) more often than not.
_FIELD_WORDS = frozenset({"password", "passwd", "pwd", "passphrase", "secret", "apikey",
                          "credential", "credentials", "accesskey", "authtoken",
                          "accesstoken"})
_FIELD_PAIRS = frozenset({("api", "key"), ("private", "key"), ("access", "key"),
                          ("secret", "key")})


def name_words(name: str) -> list[str]:
    """The lower-case words of a name, split at separators and case changes."""
    return [word.lower() for word in _NAME_WORD.findall(name)]


def is_secret_name(name: str) -> bool:
    """Whether a header, query parameter or capture named ``name`` holds a credential:
    a word of it is one of :data:`SECRET_WORDS` (whole words: "author", "design" and
    "keywords" are not "auth", "sig" and "key")."""
    if name.lower() in SECRET_HEADERS:
        return True
    return any(word in SECRET_WORDS or word in _JOINED for word in name_words(name))


def is_secret_field(name: str) -> bool:
    """Whether a form field or JSON body key named ``name`` holds a credential:
    password, client_secret, api_key, refresh_token, privateKey... ("token" only as the
    last word: token_type and token_count are not)."""
    words = name_words(name)
    if not words:
        return False
    return (any(word in _FIELD_WORDS for word in words) or words[-1] == "token"
            or any(pair in _FIELD_PAIRS for pair in itertools.pairwise(words)))


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
