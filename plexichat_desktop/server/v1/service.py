"""The embedded PlexiChat v1 server as one object the runtime starts and stops."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from pathlib import Path
from typing import Any

from plexichat_desktop.core.paths import AppPaths
from plexichat_desktop.core.permissions import private_dir
from plexichat_desktop.core.settings import ApiSettings
from plexichat_desktop.server.v1.backup import BackupManager
from plexichat_desktop.server.v1.hub import RealtimeHub
from plexichat_desktop.server.v1.perf import PerformanceMonitor
from plexichat_desktop.server.v1.ratelimit import DeviceTokens, SlidingWindowLimiter
from plexichat_desktop.server.v1.store import ApiStore
from plexichat_desktop.server.v1.webhooks import WebhookDispatcher

ASGIApp = Callable[[MutableMapping[str, Any], Any, Any], Awaitable[None]]

log = logging.getLogger(__name__)

DATA_DIR_NAME = "api_v1"
DB_NAME = "plexichat.sqlite3"


class ApiV1:
    """State of the v1 API: store, files, limits, realtime hub, webhooks, metrics, backups.

    ``asgi`` is the application to mount at ``/api/v1``. Opening the store happens here;
    :meth:`start` / :meth:`stop` run the background work (webhook delivery, sampling).
    """

    def __init__(self, paths: AppPaths, settings: ApiSettings):
        self.settings = settings
        self.root: Path = paths.data_dir / DATA_DIR_NAME
        self.files_dir = self.root / "files"
        self.uploads_tmp = self.root / "incoming"
        for folder in (self.root, self.files_dir, self.uploads_tmp):
            private_dir(folder)
        self.store = ApiStore(self.root / DB_NAME)
        self.started_at = time.time()
        self.login_limiter = SlidingWindowLimiter(
            "login", settings.login_rate_limit, settings.rate_limit_window)
        self.login_devices = DeviceTokens()
        self.register_limiter = SlidingWindowLimiter(
            "register", settings.register_rate_limit, settings.rate_limit_window)
        self.request_limiter = SlidingWindowLimiter(
            "API", settings.requests_per_minute, 60.0, scope="user")
        # Each reaction is a write and a realtime frame to both parties, so a loop of
        # them floods the other person's clients even with requests_per_minute off.
        self.reaction_limiter = SlidingWindowLimiter(
            "reaction", settings.reactions_per_minute, 60.0)
        self.hub = RealtimeHub()
        self.webhooks = WebhookDispatcher(self.store, settings)
        self.perf = PerformanceMonitor(settings, self.root, on_alert=self._on_alert)
        self.backups = BackupManager(
            self.store, self.files_dir, self.root / "backups", settings.max_backups,
            on_completed=self._on_backup,
            max_unpacked=lambda: int(self.settings.max_restore_mb * (1 << 20)))
        # The FastAPI app of ~135 routes takes ~0.2 s to build (route and model analysis):
        # built in a worker thread when the first request comes, not during the app's
        # start (in the desktop app that start includes loading the first pages).
        self._asgi: ASGIApp | None = None
        self._building: asyncio.Future[None] | None = None
        self._build_lock = threading.Lock()
        self._started = False
        # Whether a request comes from the owner of this install (it carries the app's
        # token). Only the owner can create the administrator: the server listens on
        # loopback, which every local process and user can reach. The runtime sets it.
        self.is_owner: Callable[[Mapping[str, str]], bool] = lambda _headers: False

    @property
    def upload_types(self) -> set[str]:
        return {t.lower() if t.startswith(".") else "." + t.lower()
                for t in self.settings.allowed_upload_types}

    def file_path(self, file_id: str) -> Path:
        """Where the content of file ``file_id`` lives on disk."""
        return self.files_dir / file_id[:2] / file_id

    def _build(self) -> None:
        from plexichat_desktop.server import fastapi_compat

        fastapi_compat.install()  # before the route modules are imported and analysed
        from plexichat_desktop.server.v1.app import create_v1_app  # app imports this module

        with self._build_lock:
            if self._asgi is None:
                self._asgi = create_v1_app(self).state.asgi

    def build_soon(self) -> None:
        """Start building the sub-application in a worker thread."""
        if self._building is None and self._asgi is None:
            self._building = asyncio.ensure_future(asyncio.to_thread(self._build))

    async def ready(self) -> None:
        """Wait until the sub-application is built (building it now if nobody has)."""
        if self._asgi is None:
            self.build_soon()
            assert self._building is not None
            await asyncio.shield(self._building)

    async def asgi(self, scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        """The ASGI application to mount at ``/api/v1``."""
        if self._asgi is None:
            await self.ready()
        assert self._asgi is not None
        await self._asgi(scope, receive, send)

    async def start(self) -> None:
        """Start webhook delivery and metric sampling; resume interrupted work."""
        self.backups.recover()
        await self.webhooks.start()
        await self.perf.start()
        self._started = True
        log.info("PlexiChat v1 API ready (data in %s)", self.root)

    async def stop(self) -> None:
        """Close sockets, stop background work and close the store. Idempotent."""
        if self._building is not None:
            with contextlib.suppress(Exception):
                await asyncio.shield(self._building)
        if self._started:
            await self.hub.close_all()
            await self.perf.stop()
            await self.webhooks.stop()
            await self.backups.stop()
            self._started = False
        self.store.close()

    def emit(self, event: str, data: dict[str, Any], user_ids: list[str] | None = None) -> None:
        """Queue webhook deliveries for ``event`` (see webhooks.EVENTS) without waiting."""
        self.webhooks.emit(event, data, user_ids)

    def _on_alert(self, alert: dict[str, Any]) -> None:
        self.emit("system.alert", alert)

    def _on_backup(self, record: dict[str, Any]) -> None:
        self.emit("backup.completed", {k: v for k, v in record.items() if k != "created_ts"})
