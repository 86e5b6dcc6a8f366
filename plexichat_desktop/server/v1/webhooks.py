"""Outbound webhook delivery: signed POSTs, retries with exponential backoff, a log.

Deliveries are rows of ``webhook_deliveries`` before anything is sent, so a delivery that is
due when the app stops is sent after the next start. One dispatcher task sleeps until the
earliest due delivery (or until woken by a new one) and sends due deliveries concurrently,
at most ``MAX_IN_FLIGHT`` at once.

Each request carries ``X-PlexiChat-Signature: sha256=<hex>``, the HMAC-SHA256 under the
webhook's secret of ``"<X-PlexiChat-Timestamp>.<raw body>"``; signing the timestamp too lets
a receiver refuse replays of old deliveries. While a rotated-out secret is still in its grace
period the header carries two entries, ``sha256=<new> sha256=<previous>`` (space-separated,
as Standard Webhooks and Stripe do), so receivers still holding the old secret keep
verifying until they are updated.

A delivery that ends failed counts against its webhook: after ``disable_after`` consecutive
failed deliveries (0 = never) the webhook is switched off, its owner gets a notification, and
what was still queued for it is failed (recoverable later with ``recover``).

Targets are checked twice against server-side request forgery: at registration, and again
right before every attempt (the name may resolve elsewhere by then: DNS rebinding). Unless
``[api] webhook_allow_private`` is on, a target that resolves to a loopback, private,
link-local, unspecified or otherwise non-public address is refused (except a loopback
address on a port the app itself announced as one of its own receivers, see
:attr:`WebhookDispatcher.local_ports`); the request then goes
to the very address that was checked (the URL's host is replaced by it, the ``Host`` header
and the TLS server name keep the name). Receivers' answers are kept in the delivery log
for administrators only: for anyone else the log must not be a way to read other servers.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import hashlib
import hmac
import ipaddress
import json
import logging
import random
import socket
import sqlite3
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from plexichat_desktop import __version__
from plexichat_desktop.core.settings import ApiSettings
from plexichat_desktop.core.waiting import cancel_and_wait, wait_set, within
from plexichat_desktop.plugins.tls import shared_tls_context
from plexichat_desktop.server.v1.common import iso, new_id, now
from plexichat_desktop.server.v1.store import ApiStore, one, scalar

if TYPE_CHECKING:  # imported when the first delivery goes out: not on the app's start path
    import httpx

log = logging.getLogger(__name__)

EVENTS = (
    "message.sent", "message.received", "user.login", "user.logout", "file.uploaded",
    "file.shared", "group.invited", "notification.created", "backup.completed",
    "system.alert", "webhook.test",
)
"""Event names a webhook may subscribe to (``*`` subscribes to all of them)."""
ADMIN_EVENTS = frozenset({"backup.completed", "system.alert"})
"""Events about the whole server, delivered to administrators' webhooks only."""
MAX_IN_FLIGHT = 8
BATCH = 32
EXCERPT = 300
SIGNATURE_HEADER = "X-PlexiChat-Signature"
TIMESTAMP_HEADER = "X-PlexiChat-Timestamp"
REDELIVERY_HEADER = "X-PlexiChat-Redelivery-Of"


IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class TargetRefused(ValueError):
    """A webhook URL whose host is (or resolves to) an address webhooks may not reach."""


def literal_address(host: str) -> IPAddress | None:
    """``host`` as an IP address when it is one in any form a resolver accepts: dotted,
    IPv6, and the legacy integer, octal, hex and short forms (``2130706433``,
    ``0177.0.0.1``, ``0x7f.1``, ``127.1``) that ``inet_aton`` reads as 127.0.0.1."""
    try:
        return ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        pass
    try:
        return ipaddress.IPv4Address(socket.inet_aton(host))
    except (OSError, ValueError):
        return None


def non_public_reason(address: IPAddress) -> str | None:
    """Why ``address`` is not a public internet address (None when it is one)."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour or (
            address.teredo[1] if address.teredo else None)
        if embedded is not None:
            return non_public_reason(embedded)
    for reason, flag in (("unspecified", address.is_unspecified),
                         ("loopback", address.is_loopback),
                         ("link-local", address.is_link_local),
                         ("private", address.is_private),
                         ("multicast", address.is_multicast),
                         ("reserved", address.is_reserved)):
        if flag:
            return reason
    return None if address.is_global else "not public"


@dataclass(frozen=True)
class Target:
    """Where one delivery goes: the URL with the checked address in place of the name."""

    url: str
    host_header: str
    sni_hostname: str | None


async def resolve_target(url: str, allow_private: bool,
                         local_ports: frozenset[int] | set[int] = frozenset()) -> list[Target]:
    """Resolve ``url``'s host and check every address; one pinned target per address, in
    the resolver's order (tried in turn, as a client falls back from ::1 to 127.0.0.1).
    A loopback address on one of ``local_ports`` (the app's own receivers) is allowed.

    Raises :class:`TargetRefused` naming the address and why, ``OSError`` when the name
    does not resolve."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:  # a port out of range: the same answer as a bad name
        raise OSError(f"{url[:80]}: {exc}") from None
    literal = literal_address(host)
    if literal is not None:
        addresses = [literal]
    else:
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(
                host, port, type=socket.SOCK_STREAM)
        except UnicodeError:  # the IDNA codec refuses the name (a label over 63 chars...)
            raise OSError(f"{host[:80]} is not a valid host name") from None
        addresses = list(dict.fromkeys(
            ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos))
        if not addresses:
            raise OSError(f"{host} has no address")
    if not allow_private:
        for address in addresses:
            reason = non_public_reason(address)
            if reason == "loopback" and parts.port in local_ports:
                continue  # the app's own receiver (the webhook manager's inspector)
            if reason is not None:
                shown = host if str(address) == host else f"{host} resolves to {address}, which"
                article = "an" if reason[0] in "aeiou" else "a"
                raise TargetRefused(
                    f"url: {shown} is {article} {reason} address; webhooks may only reach public "
                    f"addresses unless an administrator sets [api] webhook_allow_private")
    targets = []
    for pinned in addresses:
        netloc = f"[{pinned}]" if pinned.version == 6 else str(pinned)
        if parts.port is not None:
            netloc += f":{parts.port}"
        targets.append(Target(
            url=urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, "")),
            host_header=parts.netloc.rsplit("@", 1)[-1],
            sni_hostname=host if parts.scheme == "https" and literal is None else None))
    return targets


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The signature header value for ``body`` sent at ``timestamp``."""
    mac = hmac.new(secret.encode("utf-8"), timestamp.encode("ascii") + b"." + body,
                   hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def shown_url(url: str) -> str:
    """``url`` for a log line: scheme, host and port only. Many receivers' URLs carry a
    secret in their path or query (Slack, Discord, the inspector's inboxes)."""
    parts = urlsplit(url)
    host = parts.netloc.rsplit("@", 1)[-1]
    hidden = "/…" if (parts.path not in ("", "/") or parts.query) else ""
    return f"{parts.scheme}://{host}{hidden}"


class _HideTargets(logging.Filter):
    """Shortens the URLs of webhook deliveries in httpx's "HTTP Request: ..." lines (the
    app logs httpx at INFO): a receiver's path often holds its secret token."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: collections.Counter[str] = collections.Counter()  # URLs in flight

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) > 1 and str(args[1]) in self.urls:
            record.args = (args[0], shown_url(str(args[1])), *args[2:])
        return True


_hide_targets = _HideTargets()


def sign_all(secrets: list[str], timestamp: str, body: bytes) -> str:
    """The header value under every secret in force (current first), space-separated."""
    return " ".join(sign(secret, timestamp, body) for secret in secrets)


def secrets_in_force(row: dict[str, Any], at: float) -> list[str]:
    """The webhook's current secret, plus the previous one while its grace lasts."""
    found = [row["secret"]]
    if row.get("previous_secret") and (row.get("previous_secret_expires") or 0) > at:
        found.append(row["previous_secret"])
    return found


SHOWN_REQUEST_HEADERS = ("Content-Type", "X-PlexiChat-Event", "X-PlexiChat-Delivery",
                         "X-PlexiChat-Attempt", TIMESTAMP_HEADER, SIGNATURE_HEADER,
                         REDELIVERY_HEADER)


def delivery_dict(row: dict[str, Any], admin: bool = False) -> dict[str, Any]:
    """A delivery log entry as the API shows it; the receivers' answers (``response`` of
    each attempt) only to administrators."""
    attempts = json.loads(row["attempts"])
    if not admin:
        attempts = [{k: v for k, v in attempt.items() if k != "response"}
                    for attempt in attempts]
    return {
        "id": row["id"],
        "webhook_id": row["webhook_id"],
        "event": row["event"],
        "status": row["status"],
        "attempt_count": row["attempt_count"],
        "response_status": row["response_status"],
        "error": row["error"],
        "next_attempt_at": iso(row["next_attempt_at"]),
        "created_at": iso(row["created_at"]),
        "updated_at": iso(row["updated_at"]),
        "payload": json.loads(row["payload"]),
        "attempts": attempts,
        "redelivery_of": row.get("redelivery_of"),
    }


def enqueue_rows(conn: sqlite3.Connection, event: str, data: dict[str, Any],
             user_ids: list[str] | None, webhook_id: str | None) -> list[str]:
    """Insert the deliveries of ``event``; returns their ids (see WebhookDispatcher.enqueue)."""
    if webhook_id is not None:
        hooks = conn.execute("SELECT id, events FROM webhooks WHERE id = ? AND active = 1",
                             (webhook_id,)).fetchall()
    elif event in ADMIN_EVENTS:
        hooks = conn.execute(
            "SELECT w.id, w.events FROM webhooks w JOIN users u ON u.id = w.owner_id "
            "WHERE w.active = 1 AND u.is_admin = 1").fetchall()
    else:
        wanted = sorted(set(user_ids or ()))
        if not wanted:
            return []
        marks = ", ".join("?" * len(wanted))
        hooks = conn.execute(f"SELECT id, events FROM webhooks WHERE active = 1 AND "
                             f"owner_id IN ({marks})", wanted).fetchall()
    created: list[str] = []
    current = now()
    for hook in hooks:
        events = json.loads(hook["events"])
        if webhook_id is None and event not in events and "*" not in events:
            continue
        delivery_id = new_id()
        payload = {"id": delivery_id, "event": event, "webhook_id": hook["id"],
                   "created_at": iso(current), "data": data}
        conn.execute(
            "INSERT INTO webhook_deliveries (id, webhook_id, event, payload, status, "
            "next_attempt_at, created_at, updated_at) VALUES (?, ?, ?, ?, 'pending', ?, ?, ?)",
            (delivery_id, hook["id"], event, json.dumps(payload), current, current, current))
        created.append(delivery_id)
    return created


def _claim_due(conn: sqlite3.Connection, at: float, limit: int,
               skip: list[str]) -> tuple[list[dict[str, Any]], float | None]:
    marks = ", ".join("?" * len(skip)) or "''"
    due = [dict(row) for row in conn.execute(
        f"SELECT d.id, d.event, d.payload, d.attempt_count, d.attempts, d.redelivery_of, "
        f"w.url, w.secret, w.previous_secret, w.previous_secret_expires "
        f"FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id "
        f"WHERE d.status IN ('pending', 'retrying') AND d.next_attempt_at <= ? "
        f"AND d.id NOT IN ({marks}) ORDER BY d.next_attempt_at LIMIT ?",
        (at, *skip, limit))]
    for row in due:
        # NULL = in flight; reset at start-up in case the app stopped mid-attempt.
        conn.execute("UPDATE webhook_deliveries SET next_attempt_at = NULL WHERE id = ?",
                     (row["id"],))
    upcoming = conn.execute(
        "SELECT MIN(next_attempt_at) FROM webhook_deliveries "
        "WHERE status IN ('pending', 'retrying') AND next_attempt_at IS NOT NULL").fetchone()[0]
    return due, upcoming


def _record_attempt(conn: sqlite3.Connection, delivery_id: str, attempt: dict[str, Any],
                    status: str, next_at: float | None) -> dict[str, Any] | None:
    """Store one attempt; a final outcome updates the webhook's run of failures. Returns
    the webhook (id, owner, url) when this attempt made it switch itself off."""
    row = conn.execute("SELECT attempts, webhook_id FROM webhook_deliveries WHERE id = ?",
                       (delivery_id,)).fetchone()
    if row is None:  # the webhook was deleted meanwhile
        return None
    if status == "retrying" and scalar(
            conn, "SELECT disabled_reason IS NOT NULL AND active = 0 FROM webhooks "
                  "WHERE id = ?", (row["webhook_id"],)):
        # In flight when the webhook switched itself off: no more retries (recover later).
        status, next_at = "failed", None
    attempts = [*json.loads(row["attempts"]), attempt]
    current = now()
    conn.execute(
        "UPDATE webhook_deliveries SET status = ?, attempts = ?, attempt_count = ?, "
        "response_status = ?, error = ?, next_attempt_at = ?, updated_at = ? WHERE id = ?",
        (status, json.dumps(attempts), len(attempts), attempt["status_code"], attempt["error"],
         next_at, current, delivery_id))
    if status == "delivered":
        conn.execute("UPDATE webhooks SET consecutive_failures = 0 WHERE id = ?",
                     (row["webhook_id"],))
    elif status == "failed":
        # Counted while it is on: a test or a resend to a switched-off webhook (before
        # switching it on again) made "5 of 2 failed in a row".
        conn.execute("UPDATE webhooks SET consecutive_failures = consecutive_failures + 1 "
                     "WHERE id = ? AND active = 1", (row["webhook_id"],))
        return _maybe_disable(conn, row["webhook_id"], current)
    return None


def _maybe_disable(conn: sqlite3.Connection, webhook_id: str, at: float
                   ) -> dict[str, Any] | None:
    hook = one(conn.execute(
        "SELECT id, owner_id, url, description, active, disable_after, consecutive_failures "
        "FROM webhooks WHERE id = ?", (webhook_id,)))
    if (hook is None or not hook["active"] or hook["disable_after"] <= 0
            or hook["consecutive_failures"] < hook["disable_after"]):
        return None
    reason = (f"disabled automatically after {hook['consecutive_failures']} consecutive "
              f"failed deliveries")
    conn.execute("UPDATE webhooks SET active = 0, disabled_reason = ?, disabled_at = ? "
                 "WHERE id = ?", (reason, at, webhook_id))
    # What was still queued would only fail too: it is failed now, and recover brings it
    # back once the receiver works again.
    conn.execute(
        "UPDATE webhook_deliveries SET status = 'failed', next_attempt_at = NULL, "
        "error = 'not sent: the webhook was disabled', updated_at = ? "
        "WHERE webhook_id = ? AND status IN ('pending', 'retrying') "
        "AND next_attempt_at IS NOT NULL", (at, webhook_id))
    name = hook["description"] or hook["url"]
    conn.execute(
        "INSERT INTO notifications (id, user_id, sender_id, title, message, type, priority, "
        "action_url, metadata, created_at) VALUES (?, ?, NULL, ?, ?, 'warning', 'high', "
        "NULL, ?, ?)",
        (new_id(), hook["owner_id"], "Webhook disabled",
         f"{name}: {reason}. Fix the receiver, switch the webhook on again and recover the "
         f"failed deliveries.",
         json.dumps({"webhook_id": webhook_id, "kind": "webhook.disabled"}), at))
    return {**hook, "disabled_reason": reason}


def redeliver_rows(conn: sqlite3.Connection, delivery_ids: list[str]) -> list[str]:
    """Queue a copy of each delivery (same webhook, event and body, byte for byte, so
    receivers can deduplicate on the body's ``id``); returns the new ids, in order."""
    created: list[str] = []
    current = now()
    for original in delivery_ids:
        row = one(conn.execute("SELECT webhook_id, event, payload FROM webhook_deliveries "
                               "WHERE id = ?", (original,)))
        if row is None:
            continue
        new = new_id()
        conn.execute(
            "INSERT INTO webhook_deliveries (id, webhook_id, event, payload, status, "
            "next_attempt_at, created_at, updated_at, redelivery_of) "
            "VALUES (?, ?, ?, ?, 'pending', ?, ?, ?, ?)",
            (new, row["webhook_id"], row["event"], row["payload"], current, current, current,
             original))
        created.append(new)
    return created


def _requeue_in_flight(conn: sqlite3.Connection, at: float) -> int:
    return conn.execute(
        "UPDATE webhook_deliveries SET next_attempt_at = ? "
        "WHERE status IN ('pending', 'retrying') AND next_attempt_at IS NULL", (at,)).rowcount


def _get_delivery(conn: sqlite3.Connection, delivery_id: str) -> dict[str, Any] | None:
    return one(conn.execute("SELECT * FROM webhook_deliveries WHERE id = ?", (delivery_id,)))


class WebhookDispatcher:
    """Sends queued deliveries; see the module docstring."""

    def __init__(self, store: ApiStore, settings: ApiSettings):
        self.store = store
        self.settings = settings
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._client: httpx.AsyncClient | None = None
        self._in_flight: dict[str, asyncio.Task[None]] = {}
        self._waiters: dict[str, list[asyncio.Future[None]]] = {}
        # Events queued without waiting (emit): stop() lets them write before the store
        # closes; one that ran after it failed with "the database is closed" at exit.
        self._emitting: set[asyncio.Task[Any]] = set()
        self._slots = asyncio.Semaphore(MAX_IN_FLIGHT)
        #: Loopback ports of the app's own receivers (announced with the app token, see
        #: ``PUT /webhooks/local-receivers/{port}``): reachable without
        #: ``webhook_allow_private``. Kept in memory: a receiver announces itself each start.
        self.local_ports: set[int] = set()

    async def start(self) -> None:
        """Resume deliveries left in flight by the last run, then start dispatching."""
        await self.store.write(_requeue_in_flight, now())
        self._task = asyncio.get_running_loop().create_task(self._run(),
                                                            name="v1 webhook dispatcher")

    async def stop(self) -> None:
        """Stop dispatching; attempts in flight are cancelled and retried after a restart.
        Events emitted before are queued first (later ones are dropped, as before start)."""
        dispatcher, self._task = self._task, None  # emit() queues nothing from here on
        if self._emitting:
            await asyncio.gather(*self._emitting, return_exceptions=True)
        await cancel_and_wait(dispatcher)
        for task in list(self._in_flight.values()):
            task.cancel()
        if self._in_flight:
            await asyncio.gather(*self._in_flight.values(), return_exceptions=True)
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def wake(self) -> None:
        """Look for due deliveries now (after new ones were queued, or a restore)."""
        self._wake.set()

    async def enqueue(self, event: str, data: dict[str, Any], user_ids: list[str] | None = None,
                      webhook_id: str | None = None) -> list[str]:
        """Queue ``event`` for the subscribed webhooks of ``user_ids`` (admins' for server
        events, or exactly ``webhook_id``); returns the new delivery ids."""
        created = await self.store.write(enqueue_rows, event, data, user_ids, webhook_id)
        if created:
            self.wake()
        return created

    def emit(self, event: str, data: dict[str, Any], user_ids: list[str] | None = None) -> None:
        """Fire-and-forget :meth:`enqueue` for code paths that must not wait on it."""
        if self._task is None:
            return
        task = asyncio.get_running_loop().create_task(self.enqueue(event, data, user_ids))
        self._emitting.add(task)
        task.add_done_callback(self._emitting.discard)
        task.add_done_callback(_log_failure)

    async def wait_first_attempt(self, delivery_id: str, timeout: float) -> None:
        """Wait until ``delivery_id`` had its first attempt (or ``timeout`` passed)."""
        row = await self.store.read(_get_delivery, delivery_id)
        if row is None or row["attempt_count"] > 0:
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(delivery_id, []).append(future)
        with contextlib.suppress(TimeoutError):
            await within(future, timeout)

    def delay(self, attempt: int) -> float:
        """Seconds before retry number ``attempt`` (1 = the first retry), with jitter."""
        base = self.settings.webhook_retry_base * 2 ** (attempt - 1)
        return min(self.settings.webhook_retry_cap, base) * random.uniform(1.0, 1.25)

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            try:
                due, upcoming = await self.store.write(_claim_due, now(), BATCH,
                                                       list(self._in_flight))
            except Exception:
                # A database hiccup must not end delivery for good: log, pause, go on.
                log.exception("webhook dispatcher: reading due deliveries failed")
                await asyncio.sleep(1.0)
                continue
            for row in due:
                task = asyncio.get_running_loop().create_task(
                    self._attempt(row), name=f"v1 webhook delivery {row['id']}")
                self._in_flight[row["id"]] = task
                task.add_done_callback(functools.partial(self._forget, row["id"]))
            if len(due) == BATCH:
                continue
            timeout = None if upcoming is None else max(0.0, upcoming - now())
            await wait_set(self._wake, timeout)  # stop() cancels it: see core.waiting

    def _forget(self, delivery_id: str, _task: asyncio.Task[None]) -> None:
        self._in_flight.pop(delivery_id, None)

    async def _attempt(self, row: dict[str, Any]) -> None:
        try:
            await self._send(row)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("webhook delivery %s: recording the attempt failed; it is retried "
                          "after the next start", row["id"])

    async def _send(self, row: dict[str, Any]) -> None:
        import httpx

        async with self._slots:
            number = row["attempt_count"] + 1
            body = row["payload"].encode("utf-8")
            stamp = str(int(time.time()))
            headers = {
                "Content-Type": "application/json",
                "X-PlexiChat-Event": row["event"],
                "X-PlexiChat-Delivery": row["id"],
                "X-PlexiChat-Attempt": str(number),
                TIMESTAMP_HEADER: stamp,
                SIGNATURE_HEADER: sign_all(secrets_in_force(row, time.time()), stamp, body),
            }
            if row.get("redelivery_of"):
                headers[REDELIVERY_HEADER] = row["redelivery_of"]
            started = time.perf_counter()
            status_code: int | None = None
            error: str | None = None
            excerpt = ""
            try:
                # Checked again now: the name may point somewhere else than at registration.
                targets = await resolve_target(row["url"],
                                               self.settings.webhook_allow_private,
                                               frozenset(self.local_ports))
                response, excerpt = await self._post_first(targets, body, headers)
                status_code = response.status_code
                if not 200 <= status_code < 300:
                    error = f"receiver answered HTTP {status_code}"
            except TargetRefused as exc:
                error = f"refused: {exc}"
            except OSError as exc:
                error = f"cannot resolve the host: {exc}"
            except httpx.HTTPError as exc:
                error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            attempt = {"attempt": number, "at": iso(now()), "status_code": status_code,
                       "error": error, "duration_ms": round(
                           (time.perf_counter() - started) * 1000, 2), "response": excerpt,
                       # What was sent, for the log (signatures are no secret).
                       "request_headers": {k: headers[k] for k in SHOWN_REQUEST_HEADERS
                                           if k in headers}}
            if error is None:
                status, next_at = "delivered", None
            elif number >= self.settings.webhook_max_attempts:
                status, next_at = "failed", None
                log.warning("webhook delivery %s to %s failed after %d attempts: %s",
                            row["id"], shown_url(row["url"]), number, error)
            else:
                status, next_at = "retrying", now() + self.delay(number)
            disabled = await self.store.write(_record_attempt, row["id"], attempt, status,
                                              next_at)
            if disabled is not None:
                # The URL only: no secret or payload goes to the log.
                log.warning("webhook %s (%s) %s", disabled["id"],
                            shown_url(disabled["url"]), disabled["disabled_reason"])
        for future in self._waiters.pop(row["id"], []):
            if not future.done():
                future.set_result(None)
        if next_at is not None:
            self.wake()


    def _http(self) -> httpx.AsyncClient:
        import httpx

        if self._client is None:
            # No redirects: a receiver must answer itself, and a redirect could point the
            # signed payload somewhere the user never registered. trust_env off: a proxy
            # from the environment would connect somewhere other than the checked address.
            self._client = httpx.AsyncClient(
                timeout=self.settings.webhook_timeout, follow_redirects=False,
                trust_env=False, verify=shared_tls_context(trust_env=False),
                headers={"User-Agent": f"PlexiChat-Desktop-Webhooks/{__version__}"})
            if _hide_targets not in logging.getLogger("httpx").filters:
                logging.getLogger("httpx").addFilter(_hide_targets)
        return self._client

    async def _post_first(self, targets: list[Target], body: bytes, headers: dict[str, str]
                          ) -> tuple[httpx.Response, str]:
        """POST to the first checked address that accepts a connection; the response and
        the first :data:`EXCERPT` characters of its body.

        Only that much of the body is read (the receiver is anyone on the internet: a
        gigabyte answer must not be held in memory), and the whole exchange has a
        deadline of twice ``webhook_timeout`` (httpx's timeout is per read, so a receiver
        dripping a byte at a time would otherwise hold a delivery slot for ever)."""
        import httpx

        client = self._http()
        for index, target in enumerate(targets):
            extensions = ({"sni_hostname": target.sni_hostname}
                          if target.sni_hostname else None)
            _hide_targets.urls[target.url] += 1
            try:
                request = client.build_request(
                    "POST", target.url, content=body,
                    headers={**headers, "Host": target.host_header}, extensions=extensions)
                try:
                    async with asyncio.timeout(2 * self.settings.webhook_timeout):
                        response = await client.send(request, stream=True)
                        try:
                            excerpt = await _excerpt(response)
                        finally:
                            await response.aclose()
                except TimeoutError:
                    raise httpx.ReadTimeout(
                        f"no complete answer within {2 * self.settings.webhook_timeout:g} s",
                        request=request) from None
                return response, excerpt
            except httpx.ConnectError:
                if index == len(targets) - 1:
                    raise
            finally:
                _hide_targets.urls[target.url] -= 1
                if _hide_targets.urls[target.url] <= 0:
                    del _hide_targets.urls[target.url]
        raise AssertionError("resolve_target returns at least one target")


async def _excerpt(response: httpx.Response) -> str:
    """The start of a streamed response's body as text (at most :data:`EXCERPT`
    characters); the rest is never read."""
    limit = EXCERPT * 4  # UTF-8 takes at most 4 bytes a character
    data = b""
    async for chunk in response.aiter_bytes():
        data += chunk[: limit - len(data)]
        if len(data) >= limit:
            break
    return data.decode(response.encoding or "utf-8", errors="replace")[:EXCERPT]


def _log_failure(task: asyncio.Task[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("queueing a webhook event failed", exc_info=task.exception())
