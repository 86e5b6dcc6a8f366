"""Forwarding a verified capture, rendered by an integration template, to a chat service
(Slack, Discord, Teams, Matrix) with retries of its own.

Targets pass the host's network guard on every attempt: loopback, or a host on the
``forward_allowed_hosts`` setting; the request goes to the address that was checked (no
DNS rebinding) and redirects are not followed. Log lines name the host only: a chat
webhook's URL is its password.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

import httpx

from plexichat_desktop.plugins.guards import TargetRefused, check_target_async
from plexichat_desktop.plugins.tls import shared_tls_context

RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})


def shown(url: str) -> str:
    """``url`` without its path and query, for logs and messages."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rsplit('@', 1)[-1]}/…"


class _HideUrls(logging.Filter):
    """Shortens the URLs this forwarder posts to in httpx's INFO lines."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) > 1 and str(args[1]) in self.urls:
            record.args = (args[0], shown(str(args[1])), *args[2:])
        return True


class Forwarder:
    """POSTs JSON to allowed targets; :meth:`send` retries with exponential backoff."""

    def __init__(self, allow: Sequence[str], attempts: int = 3, base_delay: float = 1.0,
                 timeout: float = 10.0, logger: logging.Logger | None = None):
        self.allow = list(allow)
        self.attempts = attempts
        self.base_delay = base_delay
        self.timeout = timeout
        self.log = logger or logging.getLogger(__name__)
        self._client = httpx.AsyncClient(timeout=timeout, follow_redirects=False,
                                         trust_env=False,
                                         verify=shared_tls_context(trust_env=False))
        self._hide = _HideUrls()
        logging.getLogger("httpx").addFilter(self._hide)

    async def aclose(self) -> None:
        logging.getLogger("httpx").removeFilter(self._hide)
        await self._client.aclose()

    async def check(self, url: str, field: str = "forward_url") -> None:
        """Raise ``TargetRefused`` (naming ``field``) for a URL the guard refuses."""
        try:
            parts = urlsplit(url)
            parts.port  # noqa: B018 -- raises for a port out of range
        except ValueError as exc:
            raise TargetRefused(f"{field}: is not a valid URL ({exc})") from None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise TargetRefused(f"{field}: must be an absolute http:// or https:// URL")
        if parts.username or parts.password:
            raise TargetRefused(f"{field}: must not carry a user name or password")
        await check_target_async(url, self.allow, field=field)

    async def send(self, url: str, payload: Any) -> dict[str, Any]:
        """Deliver ``payload``; the outcome with every attempt (status, error, duration)."""
        attempts: list[dict[str, Any]] = []
        for number in range(1, self.attempts + 1):
            started = time.perf_counter()
            status: int | None = None
            error: str | None = None
            try:
                target = await check_target_async(url, self.allow, field="forward_url")
                extensions = ({"sni_hostname": target.host} if urlsplit(url).scheme == "https"
                              and target.host != target.address else None)
                self._hide.urls.add(target.url)
                try:
                    # Only the status is used: the answer's body is never read (a chat
                    # service's answer is small; anything else must not fill memory),
                    # and the exchange has a total deadline (httpx's is per read).
                    request = self._client.build_request(
                        "POST", target.url, json=payload,
                        headers={"Host": target.host_header}, extensions=extensions)
                    try:
                        async with asyncio.timeout(2 * self.timeout):
                            response = await self._client.send(request, stream=True)
                            await response.aclose()
                    except TimeoutError:
                        raise httpx.ReadTimeout(f"no answer within {2 * self.timeout:g} s",
                                                request=request) from None
                finally:
                    self._hide.urls.discard(target.url)
                status = response.status_code
                if not 200 <= status < 300:
                    error = f"answered HTTP {status}"
            except TargetRefused as exc:
                error = f"refused: {exc}"
                attempts.append(self._attempt(number, status, error, started))
                break  # the guard will not change its mind
            except httpx.HTTPError as exc:
                error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            attempts.append(self._attempt(number, status, error, started))
            if error is None:
                return {"ok": True, "status": status, "attempts": attempts}
            if status is not None and status not in RETRY_STATUSES:
                break  # 4xx: the payload or URL is wrong; retrying will not help
            if number < self.attempts:
                await asyncio.sleep(self.base_delay * 2 ** (number - 1)
                                    * random.uniform(1.0, 1.25))
        self.log.warning("forwarding to %s failed after %d attempt(s): %s", shown(url),
                         len(attempts), attempts[-1]["error"])
        return {"ok": False, "status": attempts[-1]["status"], "attempts": attempts}

    @staticmethod
    def _attempt(number: int, status: int | None, error: str | None, started: float
                 ) -> dict[str, Any]:
        return {"attempt": number, "status": status, "error": error,
                "duration_ms": round((time.perf_counter() - started) * 1000, 1)}
