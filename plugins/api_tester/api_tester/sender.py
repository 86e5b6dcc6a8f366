"""Turn a :class:`RequestSpec` into one guarded HTTP exchange and a view of its answer.

Every URL goes through the host's network guard (:func:`check_target_async`): loopback
and the hosts the user allowed, connected at the address the guard pinned, so a DNS
answer that changes after the check cannot move the request elsewhere. A redirect is
followed only when the settings say so, and each hop is checked the same way.
"""

from __future__ import annotations

import asyncio
import base64
import codecs
import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from http.cookiejar import CookieJar, DefaultCookiePolicy
from typing import Any
from urllib.parse import urlencode, urljoin, urlsplit

import httpx

from api_tester.models import Auth, RequestSpec
from api_tester.redact import is_secret_name, mask_header
from api_tester.variables import UndefinedVariable, substitute
from plexichat_desktop.plugins.guards import Target, TargetRefused, check_target_async
from plexichat_desktop.plugins.tls import shared_tls_context

MAX_REDIRECTS = 10
_TEXT_TYPES = ("json", "xml", "javascript", "x-www-form-urlencoded", "yaml", "csv", "html",
               "graphql")


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    return parts.scheme, (parts.hostname or "").lower(), port


def _without_credentials(resolved: Resolved) -> Resolved:
    """What follows a redirect to another origin: no credentials, and no Host of the
    request's own (it named the first host: curl drops it too)."""
    headers = [(name, value) for name, value in resolved.headers
               if not is_secret_name(name) and name.lower() != "host"]
    return Resolved(resolved.method, resolved.url, resolved.params, headers,
                    resolved.content, resolved.data, resolved.files, Auth())


class RequestProblem(ValueError):
    """A request that cannot be sent as written (bad URL, refused target, bad JSON body,
    an undefined variable); ``field`` names the input, ``status`` is the HTTP answer."""

    def __init__(self, field: str, message: str, status: int = 422):
        self.field = field
        self.status = status
        super().__init__(message if message.startswith(field) else f"{field}: {message}")


@dataclass
class Resolved:
    """A request with its variables filled in, ready to be sent."""

    method: str
    url: str
    params: list[tuple[str, str]]
    headers: list[tuple[str, str]]
    content: bytes | None = None
    data: dict[str, Any] | None = None
    files: list[tuple[str, tuple[str | None, bytes, str | None]]] | None = None
    auth: Auth = field(default_factory=Auth)


def check_url(url: str, fieldname: str = "url") -> None:
    """Refuse what is never a request to send: other schemes, credentials in the URL."""
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    if not scheme or "://" not in url:
        raise RequestProblem(fieldname, f"{url[:200]!r} is not an absolute http(s) URL "
                             "(write http://127.0.0.1:8000/...)")
    if scheme not in ("http", "https"):
        raise RequestProblem(fieldname, f"scheme {scheme!r} is not allowed; only http and "
                             "https are sent", 400)
    if parts.username is not None or parts.password is not None:
        raise RequestProblem(fieldname, "credentials in the URL ('user:pass@host') are "
                             "refused: use the Basic auth helper, which keeps them out of "
                             "the URL and the collection file", 400)


async def guard(url: str, allow: Sequence[str], fieldname: str = "url") -> Target:
    check_url(url, fieldname)
    try:
        return await check_target_async(url, list(allow), field=fieldname)
    except TargetRefused as exc:
        raise RequestProblem(fieldname, str(exc), 403) from None


def resolve(spec: RequestSpec, variables: Mapping[str, str]) -> Resolved:
    """Fill in ``{{variables}}`` everywhere and build the body; errors name the field."""
    try:
        url = substitute(spec.url, variables, "url").strip()
        params = [(substitute(p.name, variables, f"params[{i}].name"),
                   substitute(p.value, variables, f"params[{i}].value"))
                  for i, p in enumerate(spec.params) if p.enabled]
        headers = [(substitute(h.name, variables, f"headers[{i}].name").strip(),
                    substitute(h.value, variables, f"headers[{i}].value"))
                   for i, h in enumerate(spec.headers) if h.enabled]
        auth = Auth(**{k: substitute(v, variables, f"auth.{k}") if isinstance(v, str) else v
                       for k, v in spec.auth.model_dump().items()})
        resolved = Resolved(spec.method, url, params, headers, auth=auth)
        _body(spec, variables, resolved)
    except UndefinedVariable as exc:
        raise RequestProblem(exc.field, str(exc)) from None
    for i, (name, _) in enumerate(headers):
        if not name or any(c in name for c in ":\r\n "):
            raise RequestProblem(f"headers[{i}].name", f"{name!r} is not a header name")
    return resolved


def _has_header(headers: list[tuple[str, str]], name: str) -> bool:
    return any(k.lower() == name.lower() for k, _ in headers)


def _body(spec: RequestSpec, variables: Mapping[str, str], out: Resolved) -> None:
    body = spec.body
    if body.mode == "json":
        text = substitute(body.text, variables, "body.text")
        try:
            json.loads(text)
        except json.JSONDecodeError as exc:
            raise RequestProblem("body.text", f"not valid JSON: {exc.msg} at line "
                                 f"{exc.lineno} column {exc.colno}") from None
        out.content = text.encode()
        if not _has_header(out.headers, "content-type"):
            out.headers.append(("Content-Type", "application/json"))
    elif body.mode == "raw":
        out.content = substitute(body.text, variables, "body.text").encode()
        if not _has_header(out.headers, "content-type"):
            out.headers.append(("Content-Type", body.content_type or "text/plain; charset=utf-8"))
    elif body.mode == "form":
        out.data = {}
        for i, f in enumerate(body.fields):
            if f.enabled:
                name = substitute(f.name, variables, f"body.fields[{i}].name")
                value = substitute(f.value, variables, f"body.fields[{i}].value")
                out.data.setdefault(name, []).append(value)
    elif body.mode == "multipart":
        # Plain fields go as parts without a file name, so the body is multipart even
        # when no file part exists.
        out.files = []
        for i, f in enumerate(body.fields):
            if not f.enabled:
                continue
            name = substitute(f.name, variables, f"body.fields[{i}].name")
            value = substitute(f.value, variables, f"body.fields[{i}].value")
            out.files.append((name, (f.filename, value.encode(), f.content_type)))


def apply_auth(resolved: Resolved, bearer_for_login: str | None = None) -> None:
    """Headers (or query parameters) of the auth helper; the v1 login's token is passed in."""
    auth = resolved.auth
    if auth.type == "bearer":
        resolved.headers.append(("Authorization", f"Bearer {auth.token}"))
    elif auth.type == "basic":
        raw = f"{auth.username}:{auth.password}".encode()
        resolved.headers.append(("Authorization", "Basic " + base64.b64encode(raw).decode()))
    elif auth.type == "apikey":
        if not auth.key:
            raise RequestProblem("auth.key", "an API key needs the header or parameter name")
        if auth.where == "query":
            resolved.params.append((auth.key, auth.value))
        else:
            resolved.headers.append((auth.key, auth.value))
    elif auth.type in ("plexichat", "app") and bearer_for_login:
        resolved.headers.append(("Authorization", f"Bearer {bearer_for_login}"))


def build(client: httpx.AsyncClient, resolved: Resolved, target: Target) -> httpx.Request:
    """The httpx request to the pinned address, with the Host header the URL named, or
    the one the request gives (a virtual host: it was replaced without a word; the
    address connected to is the checked one either way)."""
    headers: list[tuple[bytes, bytes]] = []
    host = target.host_header
    for i, (name, value) in enumerate(resolved.headers):
        if name.lower() == "host":
            if value.strip():
                host = value.strip()
            continue
        try:
            encoded = name.encode("ascii")
        except UnicodeEncodeError:
            raise RequestProblem(f"headers[{i}].name", f"{name!r} is not ASCII") from None
        # Values as UTF-8 bytes: httpx would refuse anything beyond ASCII. Without the
        # spaces around them, which HTTP does not keep ("X-Pad:  v" failed the send).
        headers.append((encoded, value.strip(" \t").encode("utf-8")))
    try:
        headers.append((b"Host", host.encode("idna")))
    except UnicodeError:
        raise RequestProblem("headers", f"Host {host!r} is not a host name") from None
    extensions: dict[str, Any] = {}
    if target.scheme == "https" and target.host != target.address:
        extensions["sni_hostname"] = target.host
    try:
        return client.build_request(
            resolved.method, with_params(target.url, resolved.params), headers=headers,
            content=resolved.content, data=resolved.data, files=resolved.files or None,
            extensions=extensions)
    except (httpx.InvalidURL, ValueError, TypeError) as exc:
        raise RequestProblem("url", f"cannot build the request: {exc}") from None


def with_params(url: str, params: list[tuple[str, str]]) -> str:
    """``url`` with ``params`` appended after the query it already has (kept as typed)."""
    if not params:
        return url
    base, _, fragment = url.partition("#")
    joiner = "&" if "?" in base else "?"
    return base + joiner + urlencode(params) + (f"#{fragment}" if fragment else "")


def masked(name: str, value: str) -> str:
    """A request header as the page shows it: secrets show at most their last 4
    characters (see :mod:`api_tester.redact`)."""
    return mask_header(name, value)


@dataclass
class Exchange:
    """One request and its answer as the page and the assertions see them."""

    method: str
    url: str
    request_headers: list[tuple[str, str]]
    request_size: int
    status: int
    reason: str
    http_version: str
    headers: list[tuple[str, str]]
    body: bytes
    body_truncated: bool
    ttfb_ms: float
    total_ms: float
    redirects: list[str] = field(default_factory=list)

    @property
    def content_type(self) -> str:
        return self.header("content-type") or ""

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key.lower() == name.lower():
                return value
        return None

    def json(self) -> Any:
        return json.loads(self.body)

    def text(self) -> str:
        return self.body.decode(charset_of(self.content_type), "replace")

    def view(self, preview_bytes: int) -> dict[str, Any]:
        kind, shown = body_view(self.body, self.content_type, preview_bytes)
        return {
            "request": {"method": self.method, "url": self.url, "size": self.request_size,
                        "headers": [[k, masked(k, v)] for k, v in self.request_headers]},
            "status": self.status, "reason": self.reason, "http_version": self.http_version,
            "headers": [list(h) for h in self.headers], "content_type": self.content_type,
            "size": len(self.body), "headers_size": sum(len(k) + len(v) + 4
                                                        for k, v in self.headers),
            "body_truncated": self.body_truncated,
            "preview_truncated": len(self.body) > preview_bytes,
            "kind": kind, "body": shown,
            "timing": {"ttfb_ms": round(self.ttfb_ms, 2), "total_ms": round(self.total_ms, 2)},
            "redirects": self.redirects,
        }


def charset_of(content_type: str) -> str:
    """The charset a Content-Type declares (``text/plain; charset=iso-8859-1``), UTF-8
    when it declares none or one Python does not know: a declared Latin-1 body was read
    as UTF-8, so 'café' showed as 'caf\ufffd' and no assertion could match it."""
    for part in content_type.split(";")[1:]:
        key, _, value = part.partition("=")
        if key.strip().lower() == "charset":
            name = value.strip().strip('"').strip("'")
            try:
                return codecs.lookup(name).name
            except LookupError:
                break
    return "utf-8"


def body_view(body: bytes, content_type: str, preview_bytes: int) -> tuple[str, str]:
    """``(kind, text)``: ``json`` pretty-printed, ``text``, or ``binary`` shown as a hex
    dump of its start; everything cut to ``preview_bytes``."""
    ctype = content_type.lower()
    head = body[:preview_bytes]
    textual = ctype.startswith("text/") or any(t in ctype for t in _TEXT_TYPES)
    if not textual:
        try:
            head.decode("utf-8")
            textual = b"\x00" not in head
        except UnicodeDecodeError as exc:
            # A multi-byte character cut by the preview is still text.
            textual = exc.start >= len(head) - 3 and b"\x00" not in head
    if not textual:
        lines = []
        for offset in range(0, min(len(body), 512), 16):
            chunk = body[offset:offset + 16]
            ascii_ = "".join(chr(b) if 32 <= b < 127 else "." for b in chunk)
            lines.append(f"{offset:08x}  {chunk.hex(' '):<47}  {ascii_}")
        return "binary", "\n".join(lines)
    looks_json = "json" in ctype or (not ctype and head[:1] in (b"{", b"["))
    if looks_json and len(body) <= preview_bytes:
        try:
            return "json", json.dumps(json.loads(body), indent=2, ensure_ascii=False)
        except (ValueError, UnicodeDecodeError):
            pass
    return "text", head.decode(charset_of(content_type), "replace")


def no_cookie_jar() -> CookieJar:
    """A cookie jar that keeps nothing: a request sends the cookies it is given and no
    more. httpx's client kept every Set-Cookie and sent it on, across ports and host
    names of the pinned address, to every later request, run and monitor of the app.
    (A jar, not ``httpx.Cookies``: the client copies those into a jar of its own.)"""
    return CookieJar(policy=DefaultCookiePolicy(allowed_domains=[]))


class Sender:
    """Sends resolved requests through one connection pool, with the guard and caps."""

    def __init__(self, allow: Sequence[str] = (), *, timeout: float = 30.0,
                 max_body_bytes: int = 10 * 1024 * 1024, follow_redirects: bool = False,
                 client: httpx.AsyncClient | None = None):
        self.allow = list(allow)
        self.timeout = timeout
        self.max_body_bytes = max_body_bytes
        self.follow_redirects = follow_redirects
        # trust_env off: a proxy from the environment would send "loopback" elsewhere.
        self.client = client or httpx.AsyncClient(timeout=timeout, trust_env=False,
                                                  follow_redirects=False,
                                                  cookies=no_cookie_jar(),
                                                  verify=shared_tls_context(trust_env=False))

    async def aclose(self) -> None:
        await self.client.aclose()

    async def send(self, resolved: Resolved, target: Target | None = None) -> Exchange:
        """Send ``resolved`` and read its answer, redirects included, within the
        ``timeout``: httpx's own is per read, so a server dripping a byte a second held a
        send (and a run, or a monitor's lock) for as long as it liked."""
        if target is None:
            target = await guard(resolved.url, self.allow)
        try:
            async with asyncio.timeout(self.timeout):
                return await self._send(resolved, target)
        except TimeoutError:
            raise RequestProblem("url", f"no complete answer from {resolved.url} within "
                                 f"{self.timeout:g} s", 504) from None

    async def _send(self, resolved: Resolved, target: Target) -> Exchange:
        redirects: list[str] = []
        url = resolved.url
        start = time.perf_counter()
        while True:
            request = build(self.client, resolved, target)
            try:
                response = await self.client.send(request, stream=True)
            except httpx.TimeoutException as exc:
                raise RequestProblem("url", f"no answer from {url} within "
                                     f"{self.timeout:g} s ({type(exc).__name__})", 504
                                     ) from None
            except httpx.HTTPError as exc:
                raise RequestProblem("url", f"{url}: {type(exc).__name__}: {exc}", 502
                                     ) from None
            ttfb = time.perf_counter() - start
            try:
                chunks: list[bytes] = []
                size = 0
                truncated = False
                async for chunk in response.aiter_bytes():
                    size += len(chunk)
                    if size > self.max_body_bytes:
                        chunks.append(chunk[:len(chunk) - (size - self.max_body_bytes)])
                        truncated = True
                        break
                    chunks.append(chunk)
            except httpx.HTTPError as exc:
                raise RequestProblem("url", f"{url}: the answer broke off: {exc}", 502
                                     ) from None
            finally:
                await response.aclose()
            location = response.headers.get("location")
            if (self.follow_redirects and location and response.status_code in
                    (301, 302, 303, 307, 308) and len(redirects) < MAX_REDIRECTS):
                # The URL as requested, its query included (the list showed hops without).
                redirects.append(with_params(url, resolved.params))
                previous, url = url, urljoin(url, location)
                target = await guard(url, self.allow, "redirect")
                if _origin(url) != _origin(previous):
                    # As browsers and curl do: credentials are for the origin they were
                    # given to, never for wherever it redirects.
                    resolved = _without_credentials(resolved)
                if response.status_code == 303 or (
                        response.status_code in (301, 302) and resolved.method == "POST"):
                    resolved = Resolved("GET", url, [], [h for h in resolved.headers if
                                                         h[0].lower() != "content-type"])
                else:
                    resolved = Resolved(resolved.method, url, [], resolved.headers,
                                        resolved.content, resolved.data, resolved.files,
                                        resolved.auth)
                continue
            total = time.perf_counter() - start
            sent = request.headers.multi_items()
            body_size = int(request.headers.get("content-length") or 0)
            return Exchange(
                method=request.method, url=with_params(url, resolved.params),
                request_headers=[(k, v) for k, v in sent], request_size=body_size,
                status=response.status_code, reason=response.reason_phrase,
                http_version=response.http_version, headers=response.headers.multi_items(),
                body=b"".join(chunks), body_truncated=truncated, ttfb_ms=ttfb * 1000,
                total_ms=total * 1000, redirects=redirects)
