"""Security in layers for a server that only the local user may use.

Modelled on Anki's media server and Jupyter server:
1. the Host header must be ``127.0.0.1:<port>``, ``localhost:<port>`` or this install's own
   name ``plexichat-<id>.localhost:<port>`` (DNS rebinding),
2. every request carries a credential: the app token as ``Authorization: Bearer <token>``
   (programs, and the desktop window's interceptor), or a *browser session* cookie. Only
   the login page and its assets are exempt, and the PlexiChat v1 API under ``/api/v1``,
   which checks its own Bearer tokens instead,
3. a state-changing request (or a WebSocket) with a foreign ``Origin`` is refused; one that
   relies on the cookie and has no ``Origin`` is refused unless ``Sec-Fetch-Site`` says
   same-origin (or is absent and no ``Referer`` from elsewhere was sent),
4. every response carries a Content-Security-Policy and related headers.
Wrong Host is 403, missing or wrong credential 401, foreign Origin 403: never a 500.

Browser sessions. Cookies are not port-scoped: a cookie for ``127.0.0.1`` goes to every
server on 127.0.0.1, whatever its port, so the app token must never be one. ``/login``
exchanges the token for a random session value that only this server process knows,
expires, can be revoked (``POST /logout``, :meth:`BrowserSessions.revoke_all`), and is
set host-only for the install's own ``.localhost`` name: browsers resolve every
``*.localhost`` name to loopback, and a cookie of ``plexichat-<id>.localhost`` is never
sent to ``127.0.0.1:<other port>``. A login that arrives on another host name is moved to
the install host with a one-time code, so no cookie is ever set for ``127.0.0.1``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import posixpath
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import quote, urlsplit

from plexichat_desktop.core.waiting import cancel_and_wait

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
PUBLIC_PATHS = {"/login", "/logout", "/favicon.ico"}
# The v1 API authenticates every request with its own tokens (from /api/v1/auth/login);
# the app token would be the wrong credential there. Host, Origin and headers still apply.
OWN_AUTH_PREFIX = "/api/v1"

APP_TOKEN_HEADER = "x-plexichat-app-token"
DEFAULT_SESSION_LIFETIME_S = 24 * 3600.0
LOGIN_CODE_LIFETIME_S = 300.0
MAX_SESSIONS = 1000
MAX_CODES = 100


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()


class BrowserSessions:
    """Browser sessions and one-time login codes of one server process (in memory only:
    a restart signs every browser out). Only digests are kept."""

    def __init__(self, lifetime: float = DEFAULT_SESSION_LIFETIME_S,
                 code_lifetime: float = LOGIN_CODE_LIFETIME_S):
        self.lifetime = lifetime
        self.code_lifetime = code_lifetime
        self._sessions: dict[str, float] = {}
        self._codes: dict[str, float] = {}
        # What is open under a session (a page's event stream): told when it ends.
        self._watchers: dict[str, set[asyncio.Event]] = {}

    @staticmethod
    def _prune(table: dict[str, float], at: float, cap: int) -> None:
        for key in [k for k, expires in table.items() if expires <= at]:
            del table[key]
        while len(table) >= cap:  # the oldest go first (dicts keep insertion order)
            del table[next(iter(table))]

    def create(self) -> str:
        """A new session value (random, 256 bits); it expires after :attr:`lifetime`."""
        current = time.monotonic()
        self._prune(self._sessions, current, MAX_SESSIONS)
        value = secrets.token_urlsafe(32)
        self._sessions[_digest(value)] = current + self.lifetime
        return value

    def valid(self, value: str | None) -> bool:
        if not value:
            return False
        expires = self._sessions.get(_digest(value))
        if expires is None:
            return False
        if expires <= time.monotonic():
            self._sessions.pop(_digest(value), None)
            return False
        return True

    def revoke(self, value: str | None) -> bool:
        """End one session; True when it existed."""
        key = _digest(value or "")
        for ended in self._watchers.get(key, ()):
            ended.set()
        return bool(value) and self._sessions.pop(key, None) is not None

    def revoke_all(self) -> int:
        """End every browser session of this server; the number ended."""
        current = time.monotonic()
        ended = sum(1 for expires in self._sessions.values() if expires > current)
        self._sessions.clear()
        self._codes.clear()
        for events in self._watchers.values():
            for event in events:
                event.set()
        return ended

    def expires_in(self, value: str) -> float:
        """Seconds until the session ``value`` expires (0 when it is not valid)."""
        expires = self._sessions.get(_digest(value))
        return 0.0 if expires is None else max(0.0, expires - time.monotonic())

    @contextlib.contextmanager
    def watch(self, value: str) -> Any:
        """An event set when the session ``value`` is revoked, while the block runs."""
        key = _digest(value)
        ended = asyncio.Event()
        self._watchers.setdefault(key, set()).add(ended)
        try:
            yield ended
        finally:
            watchers = self._watchers.get(key)
            if watchers is not None:
                watchers.discard(ended)
                if not watchers:
                    del self._watchers[key]

    @property
    def active(self) -> int:
        current = time.monotonic()
        return sum(1 for expires in self._sessions.values() if expires > current)

    def new_code(self) -> str:
        """A one-time login code (valid :attr:`code_lifetime` seconds, used once)."""
        current = time.monotonic()
        self._prune(self._codes, current, MAX_CODES)
        code = secrets.token_urlsafe(24)
        self._codes[_digest(code)] = current + self.code_lifetime
        return code

    def redeem(self, code: str | None) -> bool:
        """Use up ``code``; True when it was valid."""
        if not code:
            return False
        expires = self._codes.pop(_digest(code), None)
        return expires is not None and expires > time.monotonic()


def install_host(token: str) -> str:
    """This install's own host name under ``.localhost``, derived from its token (stable
    across restarts, unguessable for anyone who cannot read the token file)."""
    label = hashlib.sha256(b"plexichat-install-host\0" + token.encode()).hexdigest()[:20]
    return f"plexichat-{label}.localhost"


def uses_own_auth(path: str) -> bool:
    """Whether ``path`` belongs to the v1 API, which checks its own tokens."""
    return path == OWN_AUTH_PREFIX or path.startswith(OWN_AUTH_PREFIX + "/")


def cookie_name(port: int) -> str:
    """The browser session cookie; two servers of one install would share a cookie jar."""
    return f"plexichat_session_{port}"


def legacy_cookie_name(port: int) -> str:
    """The cookie older versions set to the app token itself; /login deletes it."""
    return f"plexichat_token_{port}"


def _cookie(headers: Mapping[str, str], name: str) -> str | None:
    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(headers.get("cookie", ""))
    except Exception:  # a malformed cookie header is no credential, not an error
        return None
    morsel = jar.get(name)
    return morsel.value if morsel else None


def normalised_path(path: str) -> str:
    """``path`` with ``.`` and ``..`` segments resolved, as the static file server will
    resolve them: decisions about a path are made on what will actually be served."""
    if not path.startswith("/"):
        path = "/" + path
    out = posixpath.normpath(path)
    if path.endswith("/") and out != "/":
        out += "/"
    return "/" + out.lstrip("/") if out.startswith("//") else out


class ServerIdentity:
    """The bound port, the token and the browser sessions; the port is only known once the
    socket is bound."""

    def __init__(self, token: str, session_lifetime: float = DEFAULT_SESSION_LIFETIME_S):
        self.token = token
        self.port = 0
        self.install_host = install_host(token)
        self.sessions = BrowserSessions(session_lifetime)

    @property
    def allowed_hosts(self) -> set[str]:
        return {f"127.0.0.1:{self.port}", f"localhost:{self.port}",
                f"{self.install_host}:{self.port}"}

    @property
    def allowed_origins(self) -> set[str]:
        return {f"http://{host}" for host in self.allowed_hosts}

    @property
    def browser_base(self) -> str:
        """The base URL browsers use (the host their session cookie belongs to)."""
        return f"http://{self.install_host}:{self.port}/"

    def token_ok(self, candidate: str | None) -> bool:
        return bool(candidate) and secrets.compare_digest(
            candidate.encode(), self.token.encode())  # type: ignore[union-attr]

    def session_of(self, headers: Mapping[str, str]) -> str | None:
        """The valid browser session value a request carries, else None. Only on the
        install host: the cookie is never set anywhere else."""
        if headers.get("host", "") != f"{self.install_host}:{self.port}":
            return None
        value = _cookie(headers, cookie_name(self.port))
        return value if self.sessions.valid(value) else None

    def is_owner(self, headers: Mapping[str, str]) -> bool:
        """Whether a request comes from the install's owner: the app token in
        ``X-PlexiChat-App-Token`` (or as Bearer), or a valid browser session."""
        explicit = headers.get(APP_TOKEN_HEADER, "").strip()
        if explicit:
            return self.token_ok(explicit)
        return self.session_of(headers) is not None

    def login_link(self, next_path: str = "/") -> str:
        """A link that signs a browser in once (a one-time code, never the token)."""
        code = self.sessions.new_code()
        target = safe_next(next_path)
        return f"{self.browser_base}login?code={quote(code)}&next={quote(target)}"


def safe_next(target: str | None) -> str:
    """A local path to go to after login; anything else (``//host``, ``http:``...) is /."""
    if (not target or not target.startswith("/") or target.startswith("//")
            or "\\" in target):
        return "/"
    return target


def _headers(scope: Scope) -> dict[str, str]:
    out: dict[str, str] = {}
    for raw_key, raw_value in scope.get("headers", []):
        key = raw_key.decode("latin-1").lower()
        value = raw_value.decode("latin-1")
        if key in out:
            value = out[key] + ("; " if key == "cookie" else ", ") + value
        out[key] = value
    return out


def bearer_of(headers: Mapping[str, str]) -> str | None:
    scheme, _, value = headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return None


def _origin_of(url: str) -> str | None:
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if not parts.scheme or not parts.netloc:
        return None
    return f"{parts.scheme}://{parts.netloc}"


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
        identity = self.identity
        headers = _headers(scope)
        path = normalised_path(scope.get("path", "") or "/")
        host = headers.get("host", "")
        if host not in identity.allowed_hosts:
            await self._deny(scope, send, 403,
                             f"Host header {host!r} is not allowed; use "
                             f"http://127.0.0.1:{identity.port}/")
            return
        # Decided on the normalised path: /_app/public/../index.js is /_app/index.js.
        public = (path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES)
                  or uses_own_auth(path))
        by_token = identity.token_ok(bearer_of(headers))
        by_cookie = not by_token and identity.session_of(headers) is not None
        if not public and not (by_token or by_cookie):
            await self._deny(scope, send, 401,
                             "missing or wrong token: send 'Authorization: Bearer <token>' "
                             "(see 'plexichat-desktop token') or sign in at /login",
                             html=_wants_html(scope, headers))
            return
        state_changing = scope["type"] == "websocket" or scope.get("method") not in SAFE_METHODS
        if state_changing:
            refusal = self._csrf_refusal(headers, by_cookie)
            if refusal:
                await self._deny(scope, send, 403, refusal)
                return
        if path != scope.get("path"):
            # The app routes exactly the path that was judged, not a spelling of it.
            scope = dict(scope, path=path, raw_path=quote(path).encode("ascii"))

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                existing = {k.lower() for k, _ in message.get("headers", [])}
                message["headers"] = list(message.get("headers", [])) + [
                    (k, v) for k, v in SECURITY_HEADERS if k not in existing]
            await send(message)

        session = identity.session_of(headers) if by_cookie else None
        if session is not None and scope["type"] == "http":
            await self._until_signed_out(scope, receive, send_with_headers, session)
            return
        await self.app(scope, receive, send_with_headers)

    async def _until_signed_out(self, scope: Scope, receive: Receive, send: Send,
                                session: str) -> None:
        """Run a browser's request while its session lasts: an event stream is ended
        when the session is revoked ("Sign out all browsers", /logout) or expires, as if
        the browser had gone (an open page went on getting events after sign-out).
        Anything else runs to its end (a download cut there would look complete: an
        export streams without a length); the next request gets the 401."""
        sessions = self.identity.sessions
        state = {"endless": False, "open": False}

        async def tracking_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                state["endless"] = any(
                    bytes(k).lower() == b"content-type"
                    and bytes(v).lower().startswith(b"text/event-stream")
                    for k, v in message.get("headers", []))
            elif message["type"] == "http.response.body":
                state["open"] = bool(message.get("more_body", False))
            await send(message)

        with sessions.watch(session) as ended:
            work = asyncio.ensure_future(self.app(scope, receive, tracking_send))
            try:
                # Until the session ends (revoked, or its expiry passes)...
                ender = asyncio.ensure_future(ended.wait())
                try:
                    await asyncio.wait({work, ender}, return_when=asyncio.FIRST_COMPLETED,
                                       timeout=max(sessions.expires_in(session), 0.001))
                finally:
                    ender.cancel()
                # ...then until the answer ends, or is an open stream to end here (one
                # that starts later is ended then).
                while not work.done():
                    if state["endless"] and state["open"]:
                        await cancel_and_wait(work)
                        # Closed, not broken: the browser sees an ended stream and asks
                        # again (401 then).
                        with contextlib.suppress(OSError):
                            await send({"type": "http.response.body", "body": b"",
                                        "more_body": False})
                        return
                    await asyncio.wait({work}, timeout=0.25)
                work.result()  # the app's own exception, as without this wrapper
            finally:
                if not work.done():  # this request was cancelled (a server stopping)
                    await cancel_and_wait(work)

    def _csrf_refusal(self, headers: Mapping[str, str], by_cookie: bool) -> str | None:
        """Why a state-changing request must be refused, or None."""
        origin = headers.get("origin")
        allowed = self.identity.allowed_origins
        if origin is not None:
            return None if origin in allowed else f"Origin {origin!r} may not change state here"
        if not by_cookie:
            return None  # a program with the token in a header: no ambient credential
        # The cookie is sent by the browser on its own; without Origin, trust only what the
        # browser says about where the request came from.
        site = headers.get("sec-fetch-site")
        if site is not None:
            return None if site == "same-origin" else (
                f"a request from {site} (Sec-Fetch-Site) may not change state here")
        referer = headers.get("referer")
        if referer is not None and _origin_of(referer) not in allowed:
            return "a request referred from another site may not change state here"
        return None

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
