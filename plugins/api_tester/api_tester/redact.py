"""Keeping secrets out of what is shown, written and logged.

A secret is recognised by its name (a header, query parameter or capture: see
:func:`is_secret_name`: ``X-Auth-Token``, ``api_key``, ``access_token``, ``JSESSIONID``...) or
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
MASK = "…"
SHOW_TAIL_FROM = 16
# A value shorter than this is not searched for in text: it would match everywhere.
MIN_SEARCHED = 6
_QUERY_PAIR = re.compile(r"([?&;])([^=&#;\s]+)=([^&#;\s]*)")
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9_-]{0,30}) (\S.*)$")


# The words of a name: "X-Auth-Token", "x_auth_token" and "xAuthToken" are x, auth, token.
_NAME_WORD = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|\d+")
# Found anywhere in a name, separators dropped: apitoken, JSESSIONID, CSRFtoken, api_keys,
# clientsecret, x-amz-security-token... (nothing innocent holds these).
_STEMS = ("token", "secret", "password", "passwd", "passphrase", "credential", "session",
          "sessid", "cookie", "signature", "csrf", "xsrf", "apikey", "authkey", "appkey",
          "privatekey", "passkey", "accesskey", "bearer", "jwt")
# Short ones only as a word of their own ("author", "design", "keywords" and "monkey" hold
# "auth", "sig" and "key"), or starting one (authcode, oauth2).
_WORDS = frozenset({"key", "keys", "sig", "pwd", "sid", "auth"})
# A body field's words after a credential word that make it data about one: token_type,
# token_expires, session_count, key_length.
_ABOUT = frozenset({"type", "types", "count", "length", "len", "expires", "expiry", "ttl",
                    "url", "uri", "endpoint", "hint", "format", "policy", "name", "enabled",
                    "required", "index", "version", "algorithm"})


def name_words(name: str) -> list[str]:
    """The lower-case words of a name, split at separators and case changes."""
    return [word.lower() for word in _NAME_WORD.findall(name)]


def is_secret_name(name: str) -> bool:
    """Whether a header, query parameter or capture named ``name`` holds a credential: it
    holds one of the credential stems (token, secret, password, session, cookie, apikey,
    csrf...) or has auth, key, sig, pwd or sid as a word of its own."""
    lowered = name.lower()
    if lowered in SECRET_HEADERS:
        return True
    joined = re.sub(r"[^a-z0-9]", "", lowered)
    if any(stem in joined for stem in _STEMS):
        return True
    return any(word in _WORDS or (word.startswith(("auth", "oauth"))
                                  and not word.startswith("author"))
               for word in name_words(name))


def is_secret_field(name: str) -> bool:
    """Whether a form field or JSON body key named ``name`` holds a credential: as
    :func:`is_secret_name`, but a bare "key", "keys", "sig" or "session" is data in a body
    ({"key": "colour"}, "session": 3), and so is a name ending in a word about the
    credential (token_type, token_expires, key_length)."""
    words = name_words(name)
    if not words or words in (["key"], ["keys"], ["sig"], ["session"]):
        return False
    return is_secret_name(name) and words[-1] not in _ABOUT


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
