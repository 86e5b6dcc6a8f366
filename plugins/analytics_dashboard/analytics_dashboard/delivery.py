"""Where alerts and scheduled reports go: a PlexiChat v1 notification to the signed-in
user, or a webhook (an HTTP POST to a URL the user typed, signed like v1's webhooks).

Neither needs a mail server or anything else to set up; a notification shows in every
PlexiChat client of the user (and reaches their v1 webhooks subscribed to
``notification.created``).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import urllib.parse
from typing import Any

import httpx

from plexichat_desktop.plugins.guards import TargetRefused, check_target_async

USER_AGENT = "PlexiChat-Desktop-Analytics/1"
TIMEOUT = 10.0


class DeliveryError(Exception):
    """A notification or webhook could not be delivered; the message says why."""


def check_url(url: str, field: str = "webhook_url") -> str:
    """``url`` if it is an absolute http(s) URL with a host and no credentials; else
    ``ValueError`` naming ``field``."""
    parts = urllib.parse.urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{field}: must be an absolute http:// or https:// URL, got {url!r}")
    if parts.username or parts.password:
        raise ValueError(f"{field}: credentials in the URL are not allowed (they would be "
                         "kept in plain text); use a URL with a secret token in its path")
    return url.strip()


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """``sha256=<hex>`` of HMAC-SHA256(secret, timestamp + "." + body), as v1 webhooks
    sign (docs/api-v1.md), so one receiver check works for both."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + digest.hexdigest()


async def post_webhook(url: str, secret: str, event: str, payload: dict[str, Any]) -> int:
    """POST ``{"event", "sent_at", "data"}`` to ``url``; the HTTP status of a 2xx answer.

    The URL is the user's own choice (typed into a rule), so its host is allowed; the
    name is looked up once and, for http, the request goes to that address (a second,
    different DNS answer cannot redirect it). For https the name stays in the URL: the
    certificate must match it. No redirects, no proxies from the environment.
    Raises :class:`DeliveryError` with the reason."""
    url = check_url(url)
    host = urllib.parse.urlsplit(url).hostname or ""
    try:
        target = await check_target_async(url, [host], field="webhook_url")
    except TargetRefused as exc:
        raise DeliveryError(str(exc)) from None
    body = json.dumps({"event": event, "sent_at": time.time(), "data": payload},
                      separators=(",", ":"), default=str).encode()
    timestamp = str(int(time.time()))
    headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT,
               "X-PlexiChat-Event": event, "X-PlexiChat-Timestamp": timestamp,
               "X-PlexiChat-Signature": sign(secret, timestamp, body)}
    send_to = url
    if target.scheme == "http":
        send_to = target.url
        headers["Host"] = target.host_header
    try:
        async with httpx.AsyncClient(timeout=TIMEOUT, follow_redirects=False,
                                     trust_env=False) as client:
            response = await client.post(send_to, content=body, headers=headers)
    except httpx.HTTPError as exc:
        raise DeliveryError(f"webhook {host}: {type(exc).__name__}: {exc}".rstrip(": ")
                            ) from None
    if not 200 <= response.status_code < 300:
        raise DeliveryError(f"webhook {host} answered HTTP {response.status_code}")
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
