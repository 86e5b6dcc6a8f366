"""Where alerts and scheduled reports go: a PlexiChat v1 notification to the signed-in
user, or a webhook (an HTTP POST to a URL the user typed, signed like v1's webhooks).

Neither needs a mail server or anything else to set up; a notification shows in every
PlexiChat client of the user (and reaches their v1 webhooks subscribed to
``notification.created``).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import ipaddress
import json
import socket
import time
import urllib.parse
from collections.abc import Sequence
from typing import Any

import httpx

from plexichat_desktop.plugins.guards import Target, TargetRefused, check_target_async
from plexichat_desktop.plugins.tls import shared_tls_context

USER_AGENT = "PlexiChat-Desktop-Analytics/1"
TIMEOUT = 10.0
#: The whole exchange (connect, send, the answer's head and excerpt) must end within this.
TOTAL_SECONDS = 20.0
#: How much of an answer is read (for the message of a failed delivery); the rest is not.
EXCERPT_BYTES = 2048
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
# Characters a URL typed into a rule may not hold (the guard refuses them too).
_CONTROL = {chr(c) for c in range(0x21)} | {"\x7f"}


class DeliveryError(Exception):
    """A notification or webhook could not be delivered; the message says why."""


def check_url(url: str, field: str = "webhook_url") -> str:
    """``url`` if it is an absolute http(s) URL with a host, a valid port and no
    credentials or control characters; else ``ValueError`` naming ``field``."""
    text = url.strip()
    if any(c in _CONTROL for c in text):
        raise ValueError(f"{field}: must not contain spaces or control characters")
    try:
        parts = urllib.parse.urlsplit(text)
        parts.port  # noqa: B018 -- raises for a port out of range or not a number
    except ValueError as exc:
        raise ValueError(f"{field}: is not a valid URL ({exc}): {text[:200]!r}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{field}: must be an absolute http:// or https:// URL, got "
                         f"{text[:200]!r}")
    if parts.username or parts.password:
        raise ValueError(f"{field}: credentials in the URL are not allowed (they would be "
                         "kept in plain text); use a URL with a secret token in its path")
    return text


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """``sha256=<hex>`` of HMAC-SHA256(secret, timestamp + "." + body), as v1 webhooks
    sign (docs/api-v1.md), so one receiver check works for both."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + digest.hexdigest()


def _literal(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address ``host`` spells (any spelling the C resolver reads); None for a name."""
    if ":" in host:
        try:
            return ipaddress.IPv6Address(host.split("%", 1)[0])
        except ValueError:
            return None
    try:
        return ipaddress.IPv4Address(socket.inet_aton(host))
    except OSError:
        return None


def _public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Whether ``address`` (or the IPv4 address it carries) is a public one."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        elif address in _NAT64 or int(address) >> 32 == 0:
            address = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address.is_global and not address.is_multicast


async def guard(url: str, allow: Sequence[str] = (), field: str = "webhook_url") -> Target:
    """Check a webhook URL with the host's network guard; the pinned :class:`Target`.

    The URL is the user's own choice, so a public host is allowed: a name is looked up
    once and *every* address it resolves to must be public, loopback or inside a network
    of ``allow`` (the ``webhook_allowed_hosts`` setting); a literal address must be
    public, loopback or allowed. Private, shared, link-local (cloud metadata),
    unique-local and reserved addresses are refused unless ``allow`` lists them.
    Raises :class:`TargetRefused` naming ``field``."""
    check_url(url, field)
    host = (urllib.parse.urlsplit(url.strip()).hostname or "").rstrip(".")
    literal = _literal(host)
    # A name is allowed but judged by every address it resolves to; a literal only
    # when it is public.
    own = [host] if literal is None else [str(literal)] if _public(literal) else []
    return await check_target_async(url.strip(), [*allow, *own], field=field)


async def refused_now(url: str, allow: Sequence[str] = (), field: str = "webhook_url"
                      ) -> str | None:
    """Why :func:`guard` will always refuse ``url``, when its host is an address (a name
    is judged when it is looked up, at delivery); None when it may be sent to."""
    host = (urllib.parse.urlsplit(url.strip()).hostname or "").rstrip(".")
    if _literal(host) is None:
        return None
    try:
        await guard(url, allow, field)
    except (TargetRefused, ValueError) as exc:
        return str(exc)
    return None


def build_request(client: httpx.AsyncClient, target: Target, body: bytes,
                  headers: dict[str, str]) -> httpx.Request:
    """The POST to the pinned address: ``Host`` (and for https the TLS server name, so
    the certificate is checked against it) stay the name the user typed."""
    extensions: dict[str, Any] = {}
    if target.scheme == "https" and target.host != target.address:
        extensions["sni_hostname"] = target.host
    return client.build_request("POST", target.url, content=body,
                                headers={**headers, "Host": target.host_header},
                                extensions=extensions)


async def post_webhook(url: str, secret: str, event: str, payload: dict[str, Any],
                       allow: Sequence[str] = ()) -> int:
    """POST ``{"event", "sent_at", "data"}`` to ``url``; the HTTP status of a 2xx answer.

    The target passes :func:`guard` (``allow``: the plugin's ``webhook_allowed_hosts``)
    and the request goes to the checked address, so a second, different DNS answer
    cannot redirect it. No redirects, no proxies from the environment; the exchange has
    a total deadline (:data:`TOTAL_SECONDS`) and only an excerpt of the answer is read.
    Raises :class:`DeliveryError` with the reason."""
    host = urllib.parse.urlsplit(url.strip()).hostname or "?"
    try:
        target = await guard(url, allow)
    except (TargetRefused, ValueError) as exc:
        raise DeliveryError(f"webhook refused: {exc}") from None
    body = json.dumps({"event": event, "sent_at": time.time(), "data": payload},
                      separators=(",", ":"), default=str).encode()
    timestamp = str(int(time.time()))
    headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT,
               "Accept-Encoding": "identity", "X-PlexiChat-Event": event,
               "X-PlexiChat-Timestamp": timestamp,
               "X-PlexiChat-Signature": sign(secret, timestamp, body)}
    excerpt = b""
    try:
        async with httpx.AsyncClient(timeout=TIMEOUT, follow_redirects=False,
                                     trust_env=False,
                                     verify=shared_tls_context(trust_env=False)) as client:
            request = build_request(client, target, body, headers)
            async with asyncio.timeout(TOTAL_SECONDS):
                response = await client.send(request, stream=True)
                try:
                    if not 200 <= response.status_code < 300:
                        async for chunk in response.aiter_raw():
                            excerpt += chunk
                            if len(excerpt) >= EXCERPT_BYTES:
                                break
                finally:
                    await response.aclose()
    except TimeoutError:
        raise DeliveryError(f"webhook {host}: no complete answer within "
                            f"{TOTAL_SECONDS:g} s") from None
    except httpx.HTTPError as exc:
        raise DeliveryError(f"webhook {host}: {type(exc).__name__}: {exc}".rstrip(": ")
                            ) from None
    if not 200 <= response.status_code < 300:
        said = excerpt[:200].decode("utf-8", "replace").strip()
        raise DeliveryError(f"webhook {host} answered HTTP {response.status_code}"
                            + (f": {said}" if said else ""))
    return response.status_code


async def notify(api: Any, title: str, message: str, *, kind: str = "info",
                 priority: str = "normal", action_url: str | None = None,
                 metadata: dict[str, Any] | None = None) -> str:
    """Send a v1 notification to the signed-in user; its id. Raises
    :class:`DeliveryError` when nobody is signed in or the API refuses it."""
    user = api.user
    if not user:
        raise DeliveryError("nobody is signed in to PlexiChat (sign in on the API "
                            "Integration page), so there is no one to notify")
    try:
        sent = await api.notifications.send(
            user["id"], title[:200], message[:2000], type=kind, priority=priority,
            action_url=action_url, metadata=metadata or {})
    except Exception as exc:  # the client's errors carry the server's reason
        raise DeliveryError(f"notification refused: {exc}") from None
    return str(sent.id)
