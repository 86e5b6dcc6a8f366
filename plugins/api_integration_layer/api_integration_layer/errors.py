"""The exceptions of the client. Every one names the call (``METHOD /path``) it came from."""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """Base of every error the client raises."""


class ApiHTTPError(ApiError):
    """The server answered with an error status (4xx, 5xx).

    ``detail`` is the server's ``{"detail": ...}`` (a string, or FastAPI's list of
    validation errors for 422), ``status`` the HTTP status.
    """

    def __init__(self, method: str, path: str, status: int, detail: Any,
                 headers: dict[str, str] | None = None):
        self.method = method
        self.path = path
        self.status = status
        self.detail = detail
        self.headers = headers or {}
        super().__init__(f"{method} {path}: {status} {_detail_text(detail)}")


class NotAuthenticated(ApiHTTPError):
    """401: no session, or the session ended and could not be refreshed; log in again."""


class InvalidCredentials(ApiHTTPError):
    """401 for what the caller *typed* on a call made with a valid session: a wrong current
    password, 2FA code, recovery code or reset token (the server's challenge says
    ``error="invalid_grant"``). The session is kept: only the input was wrong."""


class MfaRequired(ApiError):
    """The password was right and the account has 2FA: the login needs a second step.

    Answer it with ``await client.auth.login_2fa(exc.mfa_token, code="123456")`` (or
    ``recovery_code=...``) within ``expires_in`` seconds, or pass ``on_mfa=`` to
    ``auth.login`` to be asked for the code instead of getting this exception.
    """

    def __init__(self, mfa_token: str, user_id: str, username: str, expires_in: float,
                 methods: list[str]):
        self.mfa_token = mfa_token
        self.user_id = user_id
        self.username = username
        self.expires_in = expires_in
        self.methods = list(methods)
        super().__init__(f"2FA is on for '{username}': complete the login with a code "
                         f"(auth.login_2fa) within {expires_in:g} s")


class RateLimited(ApiHTTPError):
    """429 whose ``Retry-After`` is longer than the client is willing to wait
    (``max_retry_after``); ``retry_after`` is in seconds."""

    def __init__(self, method: str, path: str, detail: Any, retry_after: float,
                 headers: dict[str, str] | None = None):
        self.retry_after = retry_after
        super().__init__(method, path, 429, detail, headers)


class ApiUnavailable(ApiError):
    """The server could not be reached or kept failing (connect errors, dropped
    connections, timeouts, 502/503/504) after the retries the request was allowed.

    ``maybe_done`` is true when a request that changes something was sent and not
    answered within ``timeout`` seconds: the server may have carried it out (or still be
    at it), so look at the state before asking the user to try again.
    """

    def __init__(self, method: str, path: str, reason: str, attempts: int, *,
                 maybe_done: bool = False, timeout: float | None = None):
        self.method = method
        self.path = path
        self.reason = reason
        self.attempts = attempts
        self.maybe_done = maybe_done
        self.timeout = timeout
        super().__init__(f"{method} {path}: server unavailable after {attempts} attempt(s): "
                         f"{reason}")


class InvalidResponse(ApiError):
    """A success answer that is not the JSON the endpoint promises (a misbehaving or
    incompatible server); the message says what did not fit."""


class ChecksumMismatch(ApiError):
    """A download's SHA-256 differs from the one the server announced."""


class ApiPermissionError(ApiError, PermissionError):
    """A plugin called something outside the API scopes its manifest declares."""

    def __init__(self, plugin_id: str, scope: str, call: str, declared: list[str]):
        self.plugin_id = plugin_id
        self.scope = scope
        self.call = call
        self.declared = list(declared)
        super().__init__(
            f"plugin '{plugin_id}' may not call {call}: it needs the API scope '{scope}', "
            f"and its plugin.toml declares api_scopes = {self.declared!r}; add \"{scope}\" "
            "under [permissions] api_scopes if the plugin should do this")


class UnknownScopeError(ApiError, ValueError):
    """A manifest declares API scopes that do not exist."""


def _detail_text(detail: Any) -> str:
    if isinstance(detail, list):
        parts = []
        for item in detail[:5]:
            if isinstance(item, dict):
                loc = ".".join(str(x) for x in item.get("loc", []) if x != "body")
                parts.append(f"{loc}: {item.get('msg', '')}" if loc else str(item.get("msg")))
            else:
                parts.append(str(item))
        return "; ".join(parts)
    return str(detail)
