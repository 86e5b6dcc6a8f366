"""The AI part of the v1 server: configured providers, their keys, the per-user limit.

Providers: ``builtin`` is always there (:mod:`builtin`); administrators add
OpenAI-compatible servers and in-process GGUF models with ``PUT /ai/providers/{name}``.
Their settings are rows of ``ai_providers``. Their API keys are write-only: kept in
``ai_provider_keys.json`` (0600, like the API integration layer's token file) beside the
database and not in it, so a backup archive or a copy of the database never carries them;
answers only ever show a hint (the last four characters) and whether one is set.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import time
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from plexichat_desktop.core.settings import ApiSettings
from plexichat_desktop.plugins.files import write_atomic
from plexichat_desktop.server.v1.ai.builtin import NAME as BUILTIN
from plexichat_desktop.server.v1.ai.builtin import BuiltinProvider
from plexichat_desktop.server.v1.ai.local_gguf import LocalGgufProvider
from plexichat_desktop.server.v1.ai.openai_compat import OpenAICompatibleProvider
from plexichat_desktop.server.v1.ai.providers import Provider
from plexichat_desktop.server.v1.common import iso, now
from plexichat_desktop.server.v1.ratelimit import SlidingWindowLimiter
from plexichat_desktop.server.v1.store import ApiStore, one, rows

log = logging.getLogger(__name__)

KEYS_FILE = "ai_provider_keys.json"
RELOAD_AFTER = 5.0
KINDS = ("openai_compatible", "local_gguf")
# What non-administrators see of a provider: its address, model file, timeout and key
# hint are the administrator's set-up (and the hint is part of a secret).
PUBLIC_FIELDS = ("name", "kind", "builtin", "enabled", "models", "description")


def key_hint(key: str) -> str:
    """What answers show of an API key: its last four characters (as provider dashboards
    do), nothing for keys too short to spare four."""
    return "…" + key[-4:] if len(key) >= 16 else "…"


@dataclass(frozen=True)
class ModelRef:
    """A model id of the API, ``<provider>/<model>``, split."""

    provider: str
    model: str

    @property
    def id(self) -> str:
        return f"{self.provider}/{self.model}"


def parse_model(model_id: str) -> ModelRef | None:
    provider, sep, model = model_id.partition("/")
    return ModelRef(provider, model) if sep and provider and model else None


class KeyFile:
    """The providers' API keys in one JSON file readable by the user only."""

    def __init__(self, path: Path):
        self.path = path

    def load(self) -> dict[str, str]:
        try:
            data = json.loads(self.path.read_text("utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            log.warning("AI provider keys: %s is unreadable (%s); providers have no key",
                        self.path.name, type(exc).__name__)
            return {}
        return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}

    def save(self, keys: dict[str, str]) -> None:
        write_atomic(self.path, json.dumps(keys))


def _get(conn: sqlite3.Connection, name: str) -> dict[str, Any] | None:
    return one(conn.execute("SELECT * FROM ai_providers WHERE name = ?", (name,)))


def _all(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    return rows(conn.execute("SELECT * FROM ai_providers ORDER BY name"))


def _upsert(conn: sqlite3.Connection, name: str, values: dict[str, Any]
            ) -> tuple[dict[str, Any], bool]:
    current = _get(conn, name)
    stamp = now()
    if current is None:
        conn.execute(
            "INSERT INTO ai_providers (name, kind, base_url, model_path, enabled, timeout, "
            "models, key_hint, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (name, values["kind"], values.get("base_url"), values.get("model_path"),
             int(values["enabled"]), values["timeout"], json.dumps(values["models"]),
             values.get("key_hint"), stamp, stamp))
    else:
        merged = {**current, **values, "updated_at": stamp}
        conn.execute(
            "UPDATE ai_providers SET kind = ?, base_url = ?, model_path = ?, enabled = ?, "
            "timeout = ?, models = ?, key_hint = ?, updated_at = ? WHERE name = ?",
            (merged["kind"], merged["base_url"], merged["model_path"],
             int(merged["enabled"]), merged["timeout"],
             merged["models"] if isinstance(merged["models"], str)
             else json.dumps(merged["models"]), merged["key_hint"], stamp, name))
    row = _get(conn, name)
    assert row is not None
    return row, current is None


def _delete(conn: sqlite3.Connection, name: str) -> bool:
    return conn.execute("DELETE FROM ai_providers WHERE name = ?", (name,)).rowcount > 0


class ProbeCache:
    """Each provider's last health probe (its model list), shared by every caller.

    ``GET /ai/models`` and ``/ai/health`` ask the providers with the administrator's API
    key; without this any signed-in user could make the server call upstream as often as
    they liked. A probe is reused for ``ttl()`` seconds while the provider's row is
    unchanged (a changed row, e.g. a new key or base URL, is a different provider), and
    callers arriving while one is running wait for that one instead of starting another.
    """

    def __init__(self, ttl: Callable[[], float]):
        self._ttl = ttl
        self._done: dict[str, tuple[float, Any, dict[str, Any]]] = {}
        self._running: dict[str, tuple[Any, asyncio.Future[dict[str, Any]]]] = {}

    async def get(self, name: str, fingerprint: Any,
                  probe: Callable[[], Awaitable[dict[str, Any]]], fresh: bool = False
                  ) -> dict[str, Any]:
        """The probe of ``name`` (a copy: callers change their entries): the cached one
        unless ``fresh``, else the one running, else a new one."""
        done = self._done.get(name)
        if (not fresh and done is not None and done[1] == fingerprint
                and done[0] > time.monotonic()):
            return dict(done[2])
        running = self._running.get(name)
        if running is None or running[0] != fingerprint:
            task = asyncio.ensure_future(probe())
            running = (fingerprint, task)
            self._running[name] = running
            task.add_done_callback(lambda t: self._finished(name, fingerprint, t))
        # Shielded: a caller that goes away must not cancel the probe others wait for.
        return dict(await asyncio.shield(running[1]))

    def _finished(self, name: str, fingerprint: Any,
                  task: asyncio.Future[dict[str, Any]]) -> None:
        # A probe of the provider as it was before a change may end after the newer one:
        # its answer must not replace the newer one's.
        latest = self._running.get(name, (None, None))[1] is task
        if latest:
            del self._running[name]
        if latest and not task.cancelled() and task.exception() is None:
            self._done[name] = (time.monotonic() + self._ttl(), fingerprint, task.result())

    def forget(self, name: str) -> None:
        # A probe still running asks the provider as it was: its answer must not be kept
        # (for a removed provider it would stay in memory for good).
        self._done.pop(name, None)
        self._running.pop(name, None)

    def retain(self, names: Collection[str]) -> None:
        """Drop the probes of providers that are gone: a backup restore removes rows
        without :meth:`forget` being called."""
        for table in (self._done, self._running):
            for name in [n for n in table if n not in names]:
                del table[name]


class AiService:
    """Providers, keys and limits of ``/api/v1/ai`` for one v1 server."""

    def __init__(self, store: ApiStore, settings: ApiSettings, root: Path):
        self.store = store
        self.settings = settings
        self.keys = KeyFile(root / KEYS_FILE)
        self.limiter = SlidingWindowLimiter("AI chat", settings.ai_requests_per_minute, 60.0)
        self.models_limiter = SlidingWindowLimiter(
            "AI models and health", settings.ai_models_requests_per_minute, 60.0)
        self.probes = ProbeCache(lambda: self.settings.ai_models_cache_seconds)
        self.builtin = BuiltinProvider(lambda: self.settings.ai_builtin_token_delay)
        self._providers: dict[str, Provider] | None = None
        self._loaded_at = 0.0
        # Held by a change (key file, then row) and by a load (row, then key file): a
        # load between the two writes paired the old base_url with the new key, and two
        # changes at once lost one's key.
        self._config_lock = asyncio.Lock()
        self._rows: dict[str, dict[str, Any]] = {}
        # The in-process GGUF model stays loaded across configuration reads.
        self._gguf: dict[tuple[str, str], LocalGgufProvider] = {}

    # -- configuration -----------------------------------------------------------------
    async def rows(self) -> dict[str, dict[str, Any]]:
        """The configured providers' rows (``builtin`` excluded), by name."""
        await self.providers()
        return self._rows

    async def providers(self) -> dict[str, Provider]:
        """Every provider, enabled or not, by name (``builtin`` first).

        Kept in memory, dropped when this service changes the configuration and otherwise
        re-read after :data:`RELOAD_AFTER` seconds: a backup restore replaces the rows
        underneath without telling anyone."""
        if not self._stale():
            assert self._providers is not None
            return self._providers
        async with self._config_lock:
            if self._stale():  # else loaded by another caller while this one waited
                found = await self.store.read(_all)
                keys = await _in_thread(self.keys.load)
                providers: dict[str, Provider] = {BUILTIN: self.builtin}
                for row in found:
                    providers[row["name"]] = self._make(row, keys.get(row["name"]))
                self._rows = {row["name"]: row for row in found}
                self._providers = providers
                self._loaded_at = time.monotonic()
            assert self._providers is not None
            return self._providers

    def _stale(self) -> bool:
        return (self._providers is None
                or time.monotonic() - self._loaded_at > RELOAD_AFTER)

    async def snapshot(self) -> tuple[dict[str, Provider], dict[str, dict[str, Any]]]:
        """The providers and their rows from one load: two calls could straddle a reload
        and pair a provider with another version of its row (the probe cache's key)."""
        providers = await self.providers()
        return providers, self._rows

    def _make(self, row: dict[str, Any], key: str | None) -> Provider:
        if row["kind"] == "local_gguf":
            cache_key = (row["name"], row["model_path"] or "")
            if cache_key not in self._gguf:
                self._gguf[cache_key] = LocalGgufProvider(row["name"], row["model_path"] or "")
            return self._gguf[cache_key]
        return OpenAICompatibleProvider(row["name"], row["base_url"] or "", key, row["timeout"],
                                        lambda: self.settings.ai_allow_private)

    def enabled(self, name: str) -> bool:
        return name == BUILTIN or bool(self._rows.get(name, {}).get("enabled"))

    def allowlist(self, name: str) -> list[str]:
        row = self._rows.get(name)
        return json.loads(row["models"]) if row else []

    async def configure(self, name: str, values: dict[str, Any], api_key: str | None,
                        clear_key: bool) -> tuple[dict[str, Any], bool]:
        """Create or change provider ``name``; ``api_key`` replaces the key, ``clear_key``
        removes it. Returns the row and whether it was created."""
        async with self._config_lock:
            try:
                keys = await _in_thread(self.keys.load)
                if api_key is not None:
                    keys[name] = api_key
                    values["key_hint"] = key_hint(api_key)
                elif clear_key:
                    keys.pop(name, None)
                    values["key_hint"] = None
                if api_key is not None or clear_key:
                    await _in_thread(self.keys.save, keys)
                return await self.store.write(_upsert, name, values)
            finally:
                self._changed(name)

    async def remove(self, name: str) -> bool:
        async with self._config_lock:
            try:
                removed = await self.store.write(_delete, name)
                keys = await _in_thread(self.keys.load)
                if keys.pop(name, None) is not None:
                    await _in_thread(self.keys.save, keys)
                for cache_key in [k for k in self._gguf if k[0] == name]:
                    del self._gguf[cache_key]
                return bool(removed)
            finally:
                self._changed(name)

    def _changed(self, name: str) -> None:
        self._providers = None
        self.probes.forget(name)

    def describe(self, name: str, full: bool = True) -> dict[str, Any]:
        """A provider as ``GET /ai/providers`` shows it: never the key, only a hint; with
        ``full`` off (for non-administrators) not where it is or how it is reached
        either, only its name, kind, state and models."""
        if name == BUILTIN:
            found: dict[str, Any] = {
                "name": BUILTIN, "kind": "builtin", "builtin": True, "enabled": True,
                "base_url": None, "model_path": None, "timeout": None, "models": [],
                "api_key_set": False, "api_key_hint": None, "created_at": None,
                "updated_at": None,
                "description": "Deterministic rules, always present; not a language "
                               "model (tests and demos)."}
        else:
            row = self._rows[name]
            found = {
                "name": name, "kind": row["kind"], "builtin": False,
                "enabled": bool(row["enabled"]), "base_url": row["base_url"],
                "model_path": row["model_path"], "timeout": row["timeout"],
                "models": json.loads(row["models"]), "api_key_set": bool(row["key_hint"]),
                "api_key_hint": row["key_hint"], "created_at": iso(row["created_at"]),
                "updated_at": iso(row["updated_at"]),
                "description": {"openai_compatible": "An OpenAI-compatible server",
                                "local_gguf": "A GGUF model in process (llama-cpp-python)"
                                }.get(row["kind"], row["kind"])}
        return found if full else {key: found[key] for key in PUBLIC_FIELDS}


async def _in_thread(fn: Any, *args: Any) -> Any:
    return await asyncio.to_thread(fn, *args)
