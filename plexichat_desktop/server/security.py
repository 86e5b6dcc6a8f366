"""Security in layers for a server that only the local user may use.

Modelled on Anki's media server and Jupyter server:
1. the Host header must be ``127.0.0.1:<port>`` or ``localhost:<port>`` (DNS rebinding),
2. every request carries the secret token, as ``Authorization: Bearer <token>`` or as the
   cookie set by ``/login?token=...``; only the login page and its assets are exempt, and
   the PlexiChat v1 API under ``/api/v1``, which checks its own Bearer tokens instead,
3. a state-changing request (or a WebSocket) with a foreign ``Origin`` is refused,
4. every response carries a Content-Security-Policy and related headers.
Wrong Host is 403, missing or wrong token 401, foreign Origin 403: never a 500.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from http.cookies import SimpleCookie
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
       "img-src 'self' data:; font-src 'self' data:; connect-src 'self'; object-src 'none'; "
       "base-uri 'self'; form-action 'self'; frame-ancestors 'self'")
SECURITY_HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-resource-policy", b"same-origin"),
    (b"cross-origin-opener-policy", b"same-origin"),
]
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}
PUBLIC_PREFIXES = ("/_app/public/",)
PUBLIC_PATHS = {"/login", "/favicon.ico"}
# The v1 API authenticates every request with its own tokens (from /api/v1/auth/login);
# the app token would be the wrong credential there. Host, Origin and headers still apply.
OWN_AUTH_PREFIX = "/api/v1"


APP_TOKEN_HEADER = "x-plexichat-app-token"


def app_token_of(headers: Mapping[str, str], port: int) -> str | None:
    """The app token a request carries besides its own credentials: the
    ``X-PlexiChat-App-Token`` header, or the cookie the app sets for its web views."""
    explicit = headers.get(APP_TOKEN_HEADER, "").strip()
    if explicit:
        return explicit
    cookie = SimpleCookie()
    try:
        cookie.load(headers.get("cookie", ""))
    except Exception:  # a malformed cookie header is no token, not an error
        return None
    morsel = cookie.get(cookie_name(port))
    return morsel.value if morsel else None


def uses_own_auth(path: str) -> bool:
    """Whether ``path`` belongs to the v1 API, which checks its own tokens."""
    return path == OWN_AUTH_PREFIX or path.startswith(OWN_AUTH_PREFIX + "/")


def cookie_name(port: int) -> str:
    """Cookies are not port-scoped, so two instances on one host need distinct names."""
    return f"plexichat_token_{port}"


class ServerIdentity:
    """The bound port and the token; the port is only known once the socket is bound."""

    def __init__(self, token: str):
        self.token = token
        self.port = 0

    @property
    def allowed_hosts(self) -> set[str]:
        return {f"127.0.0.1:{self.port}", f"localhost:{self.port}"}

    @property
    def allowed_origins(self) -> set[str]:
        return {f"http://{host}" for host in self.allowed_hosts}

    def token_ok(self, candidate: str | None) -> bool:
        return bool(candidate) and secrets.compare_digest(
            candidate.encode(), self.token.encode())  # type: ignore[union-attr]


def _headers(scope: Scope) -> dict[str, str]:
    out: dict[str, str] = {}
    for raw_key, raw_value in scope.get("headers", []):
        key = raw_key.decode("latin-1").lower()
        value = raw_value.decode("latin-1")
        if key in out:
            value = out[key] + ("; " if key == "cookie" else ", ") + value
        out[key] = value
    return out


def request_token(headers: dict[str, str], port: int) -> str | None:
    auth = headers.get("authorization", "")
    scheme, _, value = auth.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    if "cookie" in headers:
        jar: SimpleCookie = SimpleCookie()
        try:
            jar.load(headers["cookie"])
        except Exception:
            return None
        morsel = jar.get(cookie_name(port))
        if morsel is not None:
            return morsel.value
    return None


class SecurityMiddleware:
    """Pure ASGI middleware (works for streaming responses and WebSockets alike)."""

    def __init__(self, app: ASGIApp, identity: ServerIdentity,
                 unauthorized_page: Callable[[str, str], bytes]):
        self.app = app
        self.identity = identity
        self.unauthorized_page = unauthorized_page

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = _headers(scope)
        path = scope.get("path", "")
        host = headers.get("host", "")
        if host not in self.identity.allowed_hosts:
            await self._deny(scope, send, 403,
                             f"Host header {host!r} is not allowed; use "
                             f"http://127.0.0.1:{self.identity.port}/")
            return
        public = (path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES)
                  or uses_own_auth(path))
        if not public and not self.identity.token_ok(
                request_token(headers, self.identity.port)):
            await self._deny(scope, send, 401,
                             "missing or wrong token: send 'Authorization: Bearer <token>' "
                             "(see 'plexichat-desktop token') or open /login?token=<token>",
                             html=_wants_html(scope, headers))
            return
        origin = headers.get("origin")
        state_changing = scope["type"] == "websocket" or scope.get("method") not in SAFE_METHODS
        if state_changing and origin is not None and origin not in self.identity.allowed_origins:
            await self._deny(scope, send, 403, f"Origin {origin!r} may not change state here")
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                existing = {k.lower() for k, _ in message.get("headers", [])}
                message["headers"] = list(message.get("headers", [])) + [
                    (k, v) for k, v in SECURITY_HEADERS if k not in existing]
            await send(message)

        await self.app(scope, receive, send_with_headers)

    async def _deny(self, scope: Scope, send: Send, status: int, detail: str,
                    html: bool = False) -> None:
        if scope["type"] == "websocket":
            # Closing before accept makes uvicorn answer the handshake with 403.
            await send({"type": "websocket.close", "code": 1008, "reason": detail[:120]})
            return
        if html:
            body = self.unauthorized_page(detail, scope.get("path", "/"))
            ctype = b"text/html; charset=utf-8"
        else:
            body, ctype = json.dumps({"detail": detail}).encode(), b"application/json"
        headers = [(b"content-type", ctype), (b"content-length", str(len(body)).encode()),
                   (b"cache-control", b"no-store"), *SECURITY_HEADERS]
        if status == 401:
            headers.append((b"www-authenticate", b'Bearer realm="plexichat-desktop"'))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body if scope.get("method") != "HEAD"
                    else b""})


def _wants_html(scope: Scope, headers: dict[str, str]) -> bool:
    return scope.get("method") == "GET" and "text/html" in headers.get("accept", "")
