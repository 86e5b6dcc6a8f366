"""The plugin lifecycle: discover -> validate -> resolve order -> import -> setup -> teardown.

Every call into plugin code is wrapped: an exception marks that plugin failed (with the
reason and the traceback) and start-up goes on with the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import importlib
import importlib.util
import inspect
import json
import logging
import os
import sys
import threading
import time
import traceback
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from packaging.version import Version

from plexichat_desktop import __version__
from plexichat_desktop.core.events import EventBus, PluginReloaded, PluginStateChanged
from plexichat_desktop.core.logs import plugin_filter
from plexichat_desktop.core.paths import AppPaths
from plexichat_desktop.core.settings import Settings
from plexichat_desktop.core.validation import ConfigError
from plexichat_desktop.core.waiting import first_set, wait_set, within
from plexichat_desktop.plugins.api import Plugin, PluginContext, ServiceRegistry
from plexichat_desktop.plugins.checks import check_code
from plexichat_desktop.plugins.discovery import Candidate, Source, discover, read_disabled
from plexichat_desktop.plugins.faults import PLUGIN_FAULTS
from plexichat_desktop.plugins.files import write_atomic
from plexichat_desktop.plugins.manifest import Manifest, load_manifest
from plexichat_desktop.plugins.requirements import MissingRequirement
from plexichat_desktop.plugins.resolve import Node, resolve
from plexichat_desktop.plugins.settings import SettingsError, validate_settings

log = logging.getLogger(__name__)


class PluginState(StrEnum):
    """Where a plugin is in its lifecycle.

    ``degraded`` is ``validated``/``active`` with optional requirements missing: the
    plugin is started (and runs) like any other, the reason names what is missing. A
    degraded plugin is running when it has a context (``PluginRecord.running``).
    """

    DISCOVERED = "discovered"
    VALIDATED = "validated"
    ACTIVE = "active"
    DEGRADED = "degraded"
    FAILED = "failed"
    DISABLED = "disabled"
    INCOMPATIBLE = "incompatible"


# States a plugin is started from, and states it can be in while it runs.
STARTABLE = frozenset({PluginState.VALIDATED, PluginState.DEGRADED})
RUNNING = frozenset({PluginState.ACTIVE, PluginState.DEGRADED})


class PluginError(Exception):
    """A plugin could not be loaded or started; the message says which and why."""


@dataclass
class PluginRecord:
    """What the host knows of one plugin folder."""

    id: str
    root: Path
    source: Source
    state: PluginState = PluginState.DISCOVERED
    manifest: Manifest | None = None
    reason: str | None = None
    detail: str | None = None
    warnings: list[str] = field(default_factory=list)
    instance: Plugin | None = None
    context: PluginContext | None = None
    dependency_failure: bool = False
    # Declared requirements this machine lacks (required ones make it incompatible).
    missing: list[MissingRequirement] = field(default_factory=list)

    @property
    def running(self) -> bool:
        """True while the plugin is set up and serving (``active`` or ``degraded``)."""
        return self.state in RUNNING and self.context is not None

    @property
    def degraded(self) -> list[str]:
        """Why the plugin runs with features off: one reason per missing optional entry."""
        return [m.reason for m in self.missing if m.optional]

    def ready_state(self) -> PluginState:
        """The state it has when startable or running: degraded or validated/active."""
        if self.degraded:
            return PluginState.DEGRADED
        return PluginState.ACTIVE if self.context is not None else PluginState.VALIDATED

    @property
    def name(self) -> str:
        return self.manifest.name if self.manifest else self.id

    def pages(self) -> list[dict[str, Any]]:
        pages = self.context.pages if self.context else (self.manifest.pages if self.manifest
                                                          else [])
        base = f"/plugins/{self.id}/"
        return [{"title": p.title, "url": base + p.path,
                 "icon_url": base + p.icon if p.icon else None} for p in pages]

    def to_dict(self) -> dict[str, Any]:
        m = self.manifest
        return {
            "id": self.id,
            "name": self.name,
            "version": m.version if m else None,
            "description": m.description if m else "",
            "author": m.author if m else "",
            "source": str(self.source),
            "path": str(self.root),
            "state": str(self.state),
            "reason": self.reason,
            "detail": self.detail,
            "warnings": list(self.warnings),
            "running": self.running,
            "degraded": self.degraded,
            "missing": [x.to_dict() for x in self.missing],
            "requires": dict(m.requires) if m else {},
            "requires_python": m.requires_python.model_dump() if m else {},
            "requires_system": m.requires_system.model_dump() if m else {},
            "permissions": m.permissions.model_dump() if m else {},
            "pages": self.pages(),
        }


def _describe(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


# Seconds a synchronous setup or teardown may hold the event loop before it is warned of.
BLOCKING_WARN = 1.0


class TimedOut(TimeoutError):
    """A setup or teardown ran past its timeout; not a plugin's own TimeoutError (a
    ``socket.timeout`` its code raised at once is that plugin's error, said as such)."""


class HeldTooLong(TimedOut):
    """A synchronous setup or teardown returned, later than its timeout (it could not be
    stopped: it held the event loop)."""


async def _call(fn: Callable[[], Awaitable[None] | None], timeout: float,
                logger: logging.Logger | None = None, what: str = "setup()") -> None:
    """``fn()``, and what it returns awaited within ``timeout`` seconds. A synchronous
    ``fn`` cannot be stopped (it holds the loop, and with it the whole app): it is judged
    when it returns, TimeoutError when it took longer than ``timeout``."""
    started = time.monotonic()
    result = fn()
    if inspect.isawaitable(result):
        try:
            await within(result, timeout)
        except TimeoutError:
            if time.monotonic() - started < timeout:
                raise  # the plugin's own, before the deadline
            raise TimedOut(f"past {timeout:g} s") from None
        return
    held = time.monotonic() - started
    if held > timeout:
        raise HeldTooLong(f"it held the app for {held:.1f} s")
    if held > BLOCKING_WARN and logger is not None:
        logger.warning("%s held the app for %.1f s: nothing else could run meanwhile; "
                       "make it async and move slow work to asyncio.to_thread", what, held)


class PluginManager:
    """Owns every plugin record and drives their lifecycle."""

    def __init__(
        self,
        *,
        paths: AppPaths,
        settings: Settings,
        bus: EventBus,
        bundled_dir: Path | None,
        extra_dirs: list[Path] | None = None,
        include_installed: bool = True,
        safe_mode: bool = False,
        host_version: str = __version__,
    ):
        self.paths = paths
        self.settings = settings
        self.bus = bus
        self.bundled_dir = bundled_dir
        self.extra_dirs = list(extra_dirs or [])
        self.include_installed = include_installed
        self.safe_mode = safe_mode or settings.plugins.safe_mode
        self.host_version = host_version
        self.records: list[PluginRecord] = []
        self.by_id: dict[str, PluginRecord] = {}
        self._memory: dict[str, dict[str, Any]] = {}  # each plugin's ctx.memory
        self._active_order: list[str] = []
        self._lock = asyncio.Lock()
        # Set once the first start() has tried every plugin: requests that arrive while a
        # start in the background is still going wait for it (see server/plugin_routes.py).
        self.started = asyncio.Event()
        self._abort_start = False
        self._aborted = asyncio.Event()  # set with _abort_start, for awaiting it
        self._wanted: set[str] = set()       # plugins a request waits for: they go first
        self._state_changed = asyncio.Event()
        # While set and unset: the first start() starts only wanted plugins (the others
        # wait for it, or for its deadline): see hold_others().
        self._hold: asyncio.Event | None = None
        self._hold_deadline = 0.0
        self._wake_start = asyncio.Event()  # a plugin became wanted, or the hold ended
        # Services plugins offer each other (PluginContext.provide / .service).
        self.services = ServiceRegistry()
        # The app's server URL, handed to every plugin's context; set by the runtime once
        # the port is bound (before plugins start), None without a server.
        self.server_url: str | None = None
        self.app_token: str | None = None

    # -- persistence of enable/disable -------------------------------------------------
    def _load_disabled(self) -> set[str]:
        return read_disabled(self.paths.plugin_states_file)

    def remember_enabled(self, pid: str, enabled: bool) -> None:
        """Persist whether ``pid`` is enabled; read at the next discovery."""
        disabled = self._load_disabled()
        self._save_disabled(disabled - {pid} if enabled else disabled | {pid})

    def _save_disabled(self, disabled: set[str]) -> None:
        write_atomic(self.paths.plugin_states_file,
                     json.dumps({"disabled": sorted(disabled)}, indent=2))

    # -- discovery and validation ---------------------------------------------------------
    def discover(self) -> list[PluginRecord]:
        """Find and validate every plugin; imports nothing."""
        disabled = self._load_disabled()
        self.records, self.by_id = [], {}
        candidates = discover(self.bundled_dir, self.paths.user_plugins_dir, self.extra_dirs,
                              self.include_installed)
        for cand in candidates:
            rec = self._validate(cand, disabled)
            first = self.by_id.get(rec.id)
            if first is not None:
                rec.state = PluginState.FAILED
                rec.reason = (f"duplicate plugin id '{rec.id}': {cand.manifest_path} and "
                              f"{first.root / 'plugin.toml'} ({first.source}) both declare it; "
                              "the first one found is used")
                log.error("%s", rec.reason)
            else:
                self.by_id[rec.id] = rec
            self.records.append(rec)
        self._check_folders()
        return self.records

    def _check_folders(self) -> None:
        """Fail the startable plugins whose folder the shared validator refuses (missing
        entry module or page file, a package name taken elsewhere, a syntax error), so
        ``plugins list``, the server and ``plugins validate`` agree. A plugin that cannot
        start for a dependency reason keeps that reason: it is the one to fix first."""
        problems = resolve(self._nodes())[1]
        packages: dict[str, PluginRecord] = {}  # top-level package -> the plugin with it
        for rec in self.by_id.values():
            if rec.state not in STARTABLE or rec.manifest is None or rec.id in problems:
                continue
            errors, _ = check_code(rec.root, rec.manifest,
                                   installed=rec.source is Source.INSTALLED)
            top = rec.manifest.module.split(".", 1)[0]
            # Only a plugin that will be imported claims its package name.
            owner = packages.setdefault(top, rec) if not errors else rec
            if owner is not rec:
                # Both folders are on sys.path: the second import would find the first
                # one's package (said only then, and only by the app, not by the list).
                errors.append(f"{rec.root / 'plugin.toml'}: entry: module name '{top}' is "
                              f"already the package of plugin '{owner.id}' ({owner.root}); "
                              "rename the plugin's package")
            if errors:
                rec.state, rec.reason = PluginState.FAILED, "; ".join(errors)
                log.error("plugin %s: %s", rec.id, rec.reason)

    def _validate(self, cand: Candidate, disabled: set[str],
                  honour_safe_mode: bool = True) -> PluginRecord:
        rec = PluginRecord(id=cand.root.name, root=cand.root, source=cand.source)
        try:
            manifest, warnings = load_manifest(cand.manifest_path)
        except ConfigError as exc:
            rec.state, rec.reason = PluginState.FAILED, f"invalid manifest: {exc}"
            log.error("plugin in %s: %s", cand.root, rec.reason)
            return rec
        rec.id, rec.manifest, rec.warnings = manifest.id, manifest, warnings
        for warning in warnings:
            log.warning("plugin %s: %s", manifest.id, warning)
        rec.missing = manifest.missing_requirements()
        required = [m.reason for m in rec.missing if not m.optional]
        if manifest.min_host_version and Version(manifest.min_host_version) > Version(
            self.host_version
        ):
            rec.state = PluginState.INCOMPATIBLE
            rec.reason = (f"needs PlexiChat Desktop {manifest.min_host_version} or newer; "
                          f"this is {self.host_version}")
        elif required:
            rec.state, rec.reason = PluginState.INCOMPATIBLE, "; ".join(required)
            log.error("plugin %s cannot start: %s", manifest.id, rec.reason)
        elif honour_safe_mode and self.safe_mode and not (
            cand.source is Source.BUNDLED and manifest.id in self.settings.plugins.essential
        ):
            rec.state, rec.reason = PluginState.DISABLED, "safe mode"
        elif manifest.id in disabled:
            rec.state, rec.reason = PluginState.DISABLED, "disabled by the user"
        else:
            rec.state = rec.ready_state()
            rec.reason = "; ".join(rec.degraded) or None
            if rec.reason:
                log.warning("plugin %s runs degraded: %s", manifest.id, rec.reason)
        return rec

    # -- start and stop --------------------------------------------------------------------
    def _set_state(self, rec: PluginRecord, state: PluginState, reason: str | None = None,
                   detail: str | None = None) -> None:
        rec.state, rec.reason, rec.detail = state, reason, detail
        self.bus.publish(PluginStateChanged(plugin_id=rec.id, state=str(state), reason=reason))
        # Wake whoever waits for a state (wait_started); they look again and wait anew.
        changed, self._state_changed = self._state_changed, asyncio.Event()
        changed.set()

    def _nodes(self) -> dict[str, Node]:
        return {
            pid: Node(pid, rec.manifest.version if rec.manifest else "0",
                      rec.manifest.requires if rec.manifest else {},
                      startable=rec.state in STARTABLE | RUNNING,
                      state=str(rec.state))
            for pid, rec in self.by_id.items()
        }

    def dependency_problems(self) -> dict[str, str]:
        """{plugin id: why its dependencies keep it from starting}, without starting it."""
        return resolve(self._nodes())[1]

    async def start(self) -> None:
        """Start every validated plugin in dependency order."""
        try:
            async with self._lock:
                await self._start_pending()
        finally:
            self._hold = None  # only the first start is held
            self.started.set()

    def abort_start(self) -> None:
        """Make a start still going stop after the plugin it is setting up (the app is
        stopping: starting the rest only to tear them down makes quitting slow); one still
        importing is not waited for, nor set up."""
        self._abort_start = True
        self._aborted.set()
        self._wake_start.set()

    @property
    def start_aborted(self) -> bool:
        """Whether abort_start() was called: the app is stopping."""
        return self._abort_start

    def want(self, pid: str) -> None:
        """``pid`` (and the plugins it needs) starts before the plugins nobody waits for:
        a window is about to show one of its pages, or a request waits for it."""
        if pid not in self._wanted:
            self._wanted.add(pid)
            self._wake_start.set()

    def hold_others(self, until: asyncio.Event, timeout: float) -> None:
        """Let the first start() begin with the wanted plugins only; the others start
        once ``until`` is set (the window's first pages have loaded) or ``timeout``
        seconds after the start began, whichever comes first. The pages a user looks at
        then do not share the CPU (and the GIL: imports run in worker threads) with
        every other plugin's start. A plugin a request asks for meanwhile starts at once."""
        self._hold = until
        self._hold_deadline = timeout

    def starting(self, rec: PluginRecord) -> bool:
        """Whether ``rec`` is waiting for the first start() to reach it."""
        return not self.started.is_set() and rec.state in STARTABLE and rec.context is None

    async def wait_started(self, rec: PluginRecord, timeout: float) -> None:
        """Wait until the first start() has reached ``rec`` (started or failed it), asking
        for it to go before plugins nobody waits for; at most ``timeout`` seconds."""
        self.want(rec.id)
        deadline = asyncio.get_running_loop().time() + timeout
        while self.starting(rec):
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                return
            await wait_set(self._state_changed, left)

    def _needed(self, remaining: list[str]) -> set[str]:
        """The wanted plugins of ``remaining`` and every plugin they need."""
        needed: set[str] = set()
        todo = [pid for pid in remaining if pid in self._wanted]
        while todo:
            pid = todo.pop()
            if pid in needed or pid not in self.by_id:
                continue
            needed.add(pid)
            manifest = self.by_id[pid].manifest
            todo.extend(manifest.requires if manifest else ())
        return needed

    def _next_to_start(self, remaining: list[str]) -> str:
        """What a request waits for goes first: the first plugin in dependency order that
        is wanted or that a wanted one needs (``remaining`` is in dependency order, so
        that one's own requirements have had their turn); else the next in order."""
        needed = self._needed(remaining)
        return next((pid for pid in remaining if pid in needed), remaining[0])

    async def _held(self, pid: str, remaining: list[str], deadline: float) -> bool:
        """Whether ``pid`` must wait for the hold (see hold_others); waits until the hold
        ends or a plugin becomes wanted, then the caller picks again."""
        hold = self._hold
        if hold is None or hold.is_set() or pid in self._needed(remaining):
            return False
        left = deadline - asyncio.get_running_loop().time()
        if left <= 0:
            self._hold = None
            return False
        self._wake_start.clear()
        await first_set(hold, self._wake_start, timeout=left)
        return True

    async def _start_pending(self) -> None:
        order, failures = resolve(self._nodes())
        for pid, why in failures.items():
            rec = self.by_id[pid]
            if rec.state in STARTABLE | RUNNING:
                rec.dependency_failure = True
                log.error("plugin %s cannot start: %s", pid, why)
                self._set_state(rec, PluginState.FAILED, why)
        remaining = list(order)
        deadline = asyncio.get_running_loop().time() + self._hold_deadline
        while remaining:
            if self._abort_start:
                break  # the app is stopping: the plugins not reached yet stay unstarted
            pid = self._next_to_start(remaining)
            if await self._held(pid, remaining, deadline):
                continue
            remaining.remove(pid)
            rec = self.by_id[pid]
            if rec.state not in STARTABLE or rec.context is not None:
                continue
            down = [d for d in rec.manifest.requires if not self.by_id[d].running
                    ] if rec.manifest else []
            if down:
                rec.dependency_failure = True
                self._set_state(rec, PluginState.FAILED,
                                f"requires '{down[0]}', which failed to start")
                continue
            await self._activate(rec)

    async def _activate(self, rec: PluginRecord) -> None:
        assert rec.manifest is not None
        manifest = rec.manifest
        try:
            plugin_settings = self._plugin_settings(manifest)
            instance = await self._import_unless_aborted(rec)
        except PluginError as exc:
            self._fail(rec, str(exc), exc.__cause__)
            return
        if instance is None or self._abort_start:
            # The app is stopping: a setup now would only be torn down at once.
            log.info("plugin %s not started: the app is stopping", rec.id)
            return
        ctx = PluginContext(manifest, rec.root, self.paths.plugin_data_root, self.bus,
                            plugin_settings, services=self.services,
                            server_url=self.server_url, app_token=self.app_token,
                            missing=[m for m in rec.missing if m.optional],
                            schedule_options=self._schedule_options(),
                            memory=self._memory.setdefault(rec.id, {}))
        instance.ctx = ctx
        model = getattr(instance, "settings_model", None)
        if model is not None:
            try:
                ctx.config = validate_settings(
                    model, plugin_settings, manifest.id, defaults_from=rec.root / "plugin.toml",
                    user_keys=set(self.settings.plugin.get(manifest.id, {})))
            except SettingsError as exc:
                await ctx._close()
                self._fail(rec, str(exc), None)
                return
        try:
            await _call(lambda: instance.setup(ctx), self.settings.plugins.setup_timeout,
                        ctx.logger)
        except HeldTooLong as exc:
            # A synchronous setup that did return: its teardown undoes what it started
            # outside the context (threads, files), as for any plugin that stops.
            try:
                await _call(instance.teardown, self.settings.plugins.setup_timeout,
                            ctx.logger, "teardown()")
            except PLUGIN_FAULTS as teardown_exc:
                ctx.logger.error("teardown() raised %s", _describe(teardown_exc),
                                 exc_info=teardown_exc)
            await ctx._close()
            self._fail(rec, f"setup() did not finish within "
                            f"{self.settings.plugins.setup_timeout:g} s ({exc}; a "
                            "synchronous setup cannot be stopped: make it async)", exc)
            return
        except TimedOut as exc:
            await ctx._close()
            self._fail(rec, f"setup() did not finish within "
                            f"{self.settings.plugins.setup_timeout:g} s", exc)
            return
        except PLUGIN_FAULTS as exc:
            await ctx._close()
            self._fail(rec, f"setup() raised {_describe(exc)}", exc)
            return
        rec.instance, rec.context, rec.dependency_failure = instance, ctx, False
        self._active_order.append(rec.id)
        self._set_state(rec, rec.ready_state(), "; ".join(rec.degraded) or None)
        log.info("plugin %s %s active (%s)", rec.id, manifest.version, rec.source)

    async def _import_unless_aborted(self, rec: PluginRecord) -> Plugin | None:
        """The plugin's instance, imported in a thread of its own; None if the app began
        to stop first.

        Off the loop, so that a plugin's imports (often the slowest part of its start)
        leave it free to answer requests. Not in the loop's executor: an import cannot be
        interrupted, and under load a big one (pydantic models) takes seconds. Stopping
        waited for it, then the loop's close joined the executor's threads: quitting
        right after the first page took over 10 s when it hit such an import. A daemon
        thread is left behind instead; it only imports, and owns nothing to close."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[Plugin] = loop.create_future()

        def settle(result: Plugin | None, error: BaseException | None) -> None:
            if done.done():  # the start was cancelled meanwhile
                return
            if result is not None:
                done.set_result(result)
            else:
                done.set_exception(error or PluginError("the import thread ended early"))

        def work() -> None:
            result: Plugin | None = None
            error: BaseException | None = None
            try:
                result = self._instantiate(rec)
            except BaseException as exc:  # handed to the loop, as to_thread would
                error = exc
            if not loop.is_closed():
                # The loop may close between the check and the call (the app quit).
                with contextlib.suppress(RuntimeError):
                    loop.call_soon_threadsafe(settle, result, error)

        context = contextvars.copy_context()  # the plugin's log context, as to_thread
        threading.Thread(target=context.run, args=(work,), daemon=True,
                         name=f"import plugin {rec.id}").start()
        aborted = asyncio.ensure_future(self._aborted.wait())
        waiters: list[asyncio.Future[Any]] = [done, aborted]
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            aborted.cancel()
        if not done.done():
            done.cancel()
            return None
        return done.result()

    def _schedule_options(self) -> dict[str, Any]:
        # Plugin schedules follow the app's test-schedule settings: one "daily" time and
        # one catch-up spread for the whole app.
        tests = self.settings.tests
        return {"at": tests.daily_time, "catch_up_spread": tests.catch_up_spread}

    def _fail(self, rec: PluginRecord, reason: str, exc: BaseException | None) -> None:
        detail = "".join(traceback.format_exception(exc)) if exc is not None else None
        logging.getLogger(f"plexichat.plugin.{rec.id}").error(
            "plugin failed: %s", reason, exc_info=exc)
        self._set_state(rec, PluginState.FAILED, reason, detail)

    def _plugin_settings(self, manifest: Manifest) -> dict[str, Any]:
        defaults = dict(manifest.settings)
        user = self.settings.plugin.get(manifest.id, {})
        merged = dict(defaults)
        for key, value in user.items():
            if key not in defaults:
                log.warning("settings [plugin.%s]: unknown key %r ignored", manifest.id, key)
                continue
            expected = type(defaults[key])
            ok = isinstance(value, expected) and not (
                isinstance(value, bool) and expected is not bool)
            if expected is float and isinstance(value, int) and not isinstance(value, bool):
                ok, value = True, float(value)
            if not ok:
                raise PluginError(
                    f"settings [plugin.{manifest.id}].{key}: expected {expected.__name__}, "
                    f"got {type(value).__name__} {value!r}")
            merged[key] = value
        return merged

    def _instantiate(self, rec: PluginRecord) -> Plugin:
        assert rec.manifest is not None
        module_name, class_name = rec.manifest.module, rec.manifest.class_name
        top = module_name.split(".", 1)[0]
        if rec.source is not Source.INSTALLED and str(rec.root) not in sys.path:
            # Appended, not prepended: a plugin must never shadow the host's modules.
            sys.path.append(str(rec.root))
        try:
            spec = importlib.util.find_spec(top)
        except (ImportError, ValueError) as exc:
            raise PluginError(f"entry module '{top}' cannot be located: {exc}") from exc
        if spec is None:
            raise PluginError(f"entry module '{top}' not found in {rec.root} "
                              f"(entry = \"{rec.manifest.entry}\")")
        origin = spec.origin or next(iter(spec.submodule_search_locations or []), None)
        if origin is None or not Path(origin).resolve().is_relative_to(rec.root):
            raise PluginError(
                f"entry module '{top}' resolves to {origin}, outside the plugin folder "
                f"{rec.root}: another plugin or installed package uses the same name; "
                "rename the plugin's package")
        plugin_filter.register_module(top, rec.id)
        try:
            module = importlib.import_module(module_name)
        except PLUGIN_FAULTS as exc:
            raise PluginError(f"import of '{module_name}' failed: {_describe(exc)}") from exc
        cls = getattr(module, class_name, None)
        if cls is None:
            found = sorted(name for name, value in vars(module).items()
                           if isinstance(value, type) and issubclass(value, Plugin)
                           and value is not Plugin)
            hint = (f"; its Plugin classes: {', '.join(found)}" if found
                    else "; it defines no Plugin subclass")
            raise PluginError(f"entry '{rec.manifest.entry}': module '{module_name}' has no "
                              f"'{class_name}'{hint}")
        if not (isinstance(cls, type) and issubclass(cls, Plugin)):
            raise PluginError(f"entry '{rec.manifest.entry}': '{class_name}' is not a subclass "
                              "of plexichat_desktop.plugins.api.Plugin")
        try:
            return cls()
        except PLUGIN_FAULTS as exc:
            raise PluginError(f"{class_name}() raised {_describe(exc)}") from exc

    async def _deactivate(self, rec: PluginRecord, state: PluginState | None,
                          reason: str | None = None) -> None:
        """Tear ``rec`` down and move it to ``state`` (None: startable again)."""
        instance, ctx = rec.instance, rec.context
        rec.instance = rec.context = None
        if rec.id in self._active_order:
            self._active_order.remove(rec.id)
        if instance is not None:
            try:
                await _call(instance.teardown, self.settings.plugins.setup_timeout,
                            ctx.logger if ctx is not None else None, "teardown()")
            except PLUGIN_FAULTS as exc:
                logging.getLogger(f"plexichat.plugin.{rec.id}").error(
                    "teardown() raised %s", _describe(exc), exc_info=exc)
        if ctx is not None:
            await ctx._close()
        self._set_state(rec, state if state is not None else rec.ready_state(), reason)

    async def stop(self) -> None:
        """Tear down every active plugin, dependents before their dependencies."""
        async with self._lock:
            for pid in reversed(list(self._active_order)):
                rec = self.by_id[pid]
                await self._deactivate(rec, None, "stopped")

    # -- enable and disable at run time ------------------------------------------------
    def _dependents(self, pid: str) -> list[str]:
        out: list[str] = []
        for other in self._active_order:
            rec = self.by_id[other]
            if rec.manifest and pid in rec.manifest.requires:
                out += [d for d in self._dependents(other) if d not in out] + [other]
        return out

    async def disable(self, pid: str) -> PluginRecord:
        """Stop a plugin (and the active plugins that need it); remembered across restarts."""
        rec = self.get(pid)
        async with self._lock:
            self.remember_enabled(pid, False)
            for dep in reversed(self._dependents(pid)):
                dep_rec = self.by_id[dep]
                dep_rec.dependency_failure = True
                await self._deactivate(dep_rec, PluginState.FAILED,
                                       f"requires '{pid}', which is disabled")
            if rec.running:
                await self._deactivate(rec, PluginState.DISABLED, "disabled by the user")
            elif rec.state in STARTABLE | {PluginState.DISABLED}:
                self._set_state(rec, PluginState.DISABLED, "disabled by the user")
        return rec

    async def enable(self, pid: str) -> PluginRecord:
        """Enable a plugin and start it (and the plugins that were waiting for it).

        This is a real reload: a plugin that is not running is read again from disk
        first (manifest, requirements, folder checks) and its modules are imported afresh,
        so code edited while it was disabled (or after it failed) is what starts. An
        incompatible plugin whose requirement was installed meanwhile starts too."""
        rec = self.get(pid)
        async with self._lock:
            self.remember_enabled(pid, True)
            if not rec.running:
                self._refresh(rec)
            for other in self.by_id.values():
                if other.state is PluginState.FAILED and other.dependency_failure:
                    other.state = other.ready_state()
            await self._start_pending()
        return rec

    async def reload(self, pid: str, files: Sequence[str] = ()) -> PluginRecord:
        """Stop ``pid`` (and the running plugins that need it), read it again from disk,
        import its code afresh and start it and them again. A disabled plugin stays
        disabled (use :meth:`enable`). Returns its record with the new state.

        Publishes a :class:`PluginReloaded` (kind ``"code"``) for it and each restarted
        dependent, with ``files`` (what changed, when the caller knows: ``dev``) on its
        own; the window reloads their open views, or shows why they failed."""
        rec = self.get(pid)
        async with self._lock:
            dependents = self._dependents(pid)
            for dep in reversed(dependents):
                await self._deactivate(self.by_id[dep], None, "reloading a dependency")
            if rec.running:
                await self._deactivate(rec, None, "reloading")
            if rec.state is not PluginState.DISABLED:
                self._refresh(rec)
            await self._start_pending()
        for name in [pid, *dependents]:
            done = self.by_id[name]
            self.bus.publish(PluginReloaded(plugin_id=name, kind="code", state=str(done.state),
                                            reason=done.reason,
                                            files=list(files) if name == pid else []))
        return rec

    def _refresh(self, rec: PluginRecord) -> None:
        """Re-read a stopped plugin from disk into ``rec`` and forget its imported modules."""
        fresh = self._validate(Candidate(rec.root, rec.source), disabled=set(),
                               honour_safe_mode=False)
        if fresh.state in STARTABLE and fresh.manifest is not None:
            errors, _ = check_code(rec.root, fresh.manifest,
                                   installed=rec.source is Source.INSTALLED)
            if errors:
                fresh.state, fresh.reason = PluginState.FAILED, "; ".join(errors)
        if fresh.manifest is not None and fresh.id != rec.id:
            fresh.state = PluginState.FAILED
            fresh.reason = (f"{rec.root / 'plugin.toml'} now declares id '{fresh.id}' instead "
                            f"of '{rec.id}'; restart the app to load it under its new id")
            fresh.manifest = rec.manifest
        for name in ("manifest", "warnings", "missing"):
            setattr(rec, name, getattr(fresh, name))
        rec.dependency_failure = False
        self._forget_modules(rec)
        self._set_state(rec, fresh.state, fresh.reason)

    def _forget_modules(self, rec: PluginRecord) -> None:
        """Drop the plugin's own modules from ``sys.modules`` so the next import reads the
        files again. Only modules whose file is inside the plugin folder are dropped."""
        root = os.path.realpath(rec.root)
        # Resolved per folder, not per module: a process holds thousands of modules in a
        # few hundred folders, and resolving each file's path cost ~0.1 s per reload.
        real_folders: dict[str, str] = {}
        for name, module in list(sys.modules.items()):
            where = getattr(module, "__file__", None)
            if not isinstance(where, str) or not where:
                continue
            folder = os.path.dirname(where)
            real = real_folders.get(folder)
            if real is None:
                real = real_folders[folder] = os.path.realpath(folder)
            if real == root or real.startswith(root + os.sep):
                del sys.modules[name]
                if where.endswith(".py"):
                    # The bytecode cache trusts mtime and size: a file edited within the
                    # same second to the same length would load the old code.
                    with contextlib.suppress(OSError, NotImplementedError, ValueError):
                        Path(importlib.util.cache_from_source(where)).unlink(missing_ok=True)
        importlib.invalidate_caches()

    def get(self, pid: str) -> PluginRecord:
        try:
            return self.by_id[pid]
        except KeyError:
            raise KeyError(f"no plugin with id '{pid}'") from None

    def active(self) -> list[PluginRecord]:
        return [self.by_id[pid] for pid in self._active_order]
