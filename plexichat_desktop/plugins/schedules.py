"""Scheduled work for plugins: ``ctx.schedule(expression, work, name)``.

The same grammar, DST rules and misfire policy as the host's test schedules (they come
from :mod:`plexichat_desktop.scheduling.expressions` and :mod:`~plexichat_desktop.
scheduling.planner`): ``hourly``, ``daily`` (at the app's ``[tests] daily_at``),
``every_15_minutes``, ``@weekly``, 5/6-field cron, in the machine's zone unless
``timezone`` says otherwise. In short:

* a wall-clock schedule (``daily``, ``0 9 * * 1-5``) fires once per local slot: a slot
  in the spring-forward gap runs at the first instant after it, the fall-back repeat
  is skipped; ``hourly`` and ``every_N_*`` fire by absolute time;
* fires missed while the app was closed or the machine slept are coalesced into one
  catch-up run if the newest is within the grace (default: the schedule's period, at
  most 24 h), started within ``[tests] catch_up_spread`` seconds at random; older ones
  are counted as missed;
* a fire that comes while the previous run of the same schedule is still going is
  skipped (counted, not queued);
* the last fire, its outcome and the counters persist across restarts (in the app's
  plugin data folder, outside the plugin's own ``data_dir``), keyed by ``name``: give
  each schedule a stable name. Changing a schedule's expression or zone starts it afresh.

Usage, in ``setup``::

    async def rescan() -> None:
        await scan_network(ctx.settings["subnet"])

    ctx.schedule("every_30_minutes", rescan, "rescan")

``work`` is an ``async`` function without arguments (start a job from it with
``ctx.jobs.start`` if the user should see its progress). Its exceptions are logged with
the plugin id and recorded as the run's error; the schedule goes on. Every schedule is
cancelled when the plugin stops, a run in progress included. The plugin's schedules are
listed at ``GET /plugins/<id>/api/_host/schedules`` (the desktop window does not list them
yet).
"""

from __future__ import annotations

import asyncio
import builtins
import json
import logging
import random
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from datetime import time as time_of_day
from pathlib import Path
from typing import Any

from plexichat_desktop.core.waiting import wait_set
from plexichat_desktop.plugins.faults import PLUGIN_FAULTS
from plexichat_desktop.plugins.files import write_atomic
from plexichat_desktop.scheduling.expressions import InvalidScheduleError, Schedule, parse
from plexichat_desktop.scheduling.planner import MISSED_CAP, detect_clock_jump, plan_misfires

__all__ = ["PluginSchedule", "PluginScheduler"]

CLOCK_JUMP_TOLERANCE = 60.0
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_. -]{0,99}$"
_TINY = timedelta(microseconds=1)
_PERSISTED = ("expression", "timezone", "anchor", "armed_at", "last_fire_at", "last_status",
              "last_error", "last_started_at", "last_finished_at", "runs", "skipped",
              "missed")


def _dt(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


def _iso(ts: float | None) -> str | None:
    return None if ts is None else _dt(ts).isoformat()


@dataclass(kw_only=True)
class PluginSchedule:
    """One schedule of a plugin and how its runs went (instants are UNIX seconds).

    ``last_status``: ``running``, ``succeeded``, ``failed``, ``cancelled`` (the plugin
    stopped during the run), ``skipped`` (the previous run was still going) or ``missed``
    (the app was not running and the miss was too old to catch up).
    """

    name: str
    expression: str
    timezone: str | None
    work: Callable[[], Awaitable[Any]] = field(repr=False)
    schedule: Schedule = field(repr=False)
    grace: timedelta | None = None
    anchor: float | None = None
    armed_at: float
    next_fire_at: float | None = None
    catch_up: tuple[float, float] | None = None  # (start at, the missed fire it stands for)
    last_fire_at: float | None = None
    last_status: str | None = None
    last_error: str | None = None
    last_started_at: float | None = None
    last_finished_at: float | None = None
    runs: int = 0
    skipped: int = 0
    missed: int = 0
    task: asyncio.Task[None] | None = field(default=None, repr=False)

    @property
    def running(self) -> bool:
        return self.task is not None and not self.task.done()

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "expression": self.expression, "timezone": self.timezone,
            "zone": self.schedule.tz.key, "kind": self.schedule.kind,
            "running": self.running, "next_fire_at": self.next_fire_at,
            "next_fire_iso": _iso(self.next_fire_at),
            "catch_up_at": self.catch_up[0] if self.catch_up else None,
            "last_fire_at": self.last_fire_at, "last_fire_iso": _iso(self.last_fire_at),
            "last_status": self.last_status, "last_error": self.last_error,
            "last_started_at": self.last_started_at,
            "last_finished_at": self.last_finished_at,
            "runs": self.runs, "skipped": self.skipped, "missed": self.missed,
        }

    def persisted(self) -> dict[str, Any]:
        return {key: getattr(self, key) for key in _PERSISTED}


class PluginScheduler:
    """The schedules of one plugin; the host makes one per plugin context.

    ``clock``, ``monotonic`` and ``rng`` are injectable for tests, which drive it with
    :meth:`tick` instead of waiting.
    """

    def __init__(self, plugin_id: str, state_file: Path, logger: logging.Logger, *,
                 at: time_of_day = time_of_day(0, 0), catch_up_spread: float = 30.0,
                 max_sleep: float = 30.0, clock: Callable[[], float] = time.time,
                 monotonic: Callable[[], float] = time.monotonic,
                 rng: random.Random | None = None):
        self.plugin_id = plugin_id
        self.state_file = state_file
        self.logger = logger
        self.at = at
        self.catch_up_spread = catch_up_spread
        self.max_sleep = max_sleep
        self.clock = clock
        self.monotonic = monotonic
        self.rng = rng or random.Random()
        self._schedules: dict[str, PluginSchedule] = {}
        self._saved: dict[str, dict[str, Any]] | None = None
        self._wake: asyncio.Event | None = None
        self._loop_task: asyncio.Task[None] | None = None
        self._closed = False
        self._last_wall: float | None = None
        self._last_mono = 0.0

    # -- registration -----------------------------------------------------------------
    def add(self, expression: str, work: Callable[[], Awaitable[Any]], name: str, *,
            timezone: str | None = None, grace: timedelta | None = None,
            start: bool = True) -> PluginSchedule:
        """Register ``work`` to run on ``expression``; see the module docstring.

        Raises ``ValueError`` naming the plugin and schedule for a bad name, a duplicate
        name, or an expression the grammar refuses (with the accepted forms).
        """
        if self._closed:
            raise RuntimeError(f"plugin '{self.plugin_id}' is stopping; schedule {name!r} "
                               "cannot be added")
        if not isinstance(name, str) or not re.match(NAME_PATTERN, name):
            raise ValueError(f"plugin '{self.plugin_id}': schedule name {name!r} must be "
                             "1-100 letters, digits, spaces, '_', '-' or '.'")
        if name in self._schedules:
            raise ValueError(f"plugin '{self.plugin_id}' already has a schedule {name!r}")
        if not callable(work):
            raise TypeError(f"plugin '{self.plugin_id}': schedule {name!r} needs an async "
                            f"function, got {type(work).__name__}")
        now = self.clock()
        saved = self._load().get(name)
        if saved and (saved.get("expression") != expression.strip()
                      or saved.get("timezone") != timezone):
            self.logger.info("schedule %s changed from %r to %r: it starts afresh", name,
                             saved.get("expression"), expression)
            saved = None
        anchor = saved.get("anchor") if saved else now
        try:
            schedule = parse(expression, timezone, at=self.at,
                             anchor=_dt(anchor) if anchor is not None else None)
        except InvalidScheduleError as exc:
            raise ValueError(f"plugin '{self.plugin_id}': schedule {name!r}: {exc}") from None
        record = PluginSchedule(name=name, expression=schedule.expression, timezone=timezone,
                                work=work, schedule=schedule, grace=grace, anchor=anchor,
                                armed_at=now)
        if saved:
            for key in _PERSISTED:
                if key in saved and key not in ("expression", "timezone"):
                    setattr(record, key, saved[key])
            if record.last_status == "running":  # the app stopped during the run
                record.last_status = "cancelled"
        self._schedules[name] = record
        self._plan(record, now)
        self._save()
        if start:
            self._ensure_loop()
        return record

    def list(self) -> list[PluginSchedule]:
        return list(self._schedules.values())

    def get(self, name: str) -> PluginSchedule:
        try:
            return self._schedules[name]
        except KeyError:
            raise KeyError(f"plugin '{self.plugin_id}' has no schedule '{name}'") from None

    # -- planning ----------------------------------------------------------------------
    def _plan(self, record: PluginSchedule, now: float) -> None:
        """Deal with the fires missed since the last one accounted for; arm the next."""
        start = record.armed_at if record.last_fire_at is None else max(record.armed_at,
                                                                          record.last_fire_at)
        plan = plan_misfires(record.schedule, _dt(start), _dt(now), record.grace)
        if plan.missed:
            record.missed += len(plan.missed)
            record.last_status = "missed"
            self.logger.info("schedule %s missed %d fire(s) while the app was not running",
                             record.name, len(plan.missed))
        if plan.catch_up_at is not None:
            delay = self.rng.uniform(0.0, self.catch_up_spread) if self.catch_up_spread else 0.0
            record.catch_up = (now + delay, plan.catch_up_at.timestamp())
        elif plan.latest_due is not None:
            record.last_fire_at = plan.latest_due.timestamp()
        record.next_fire_at = plan.next_fire.timestamp()

    def _earliest(self) -> float | None:
        times = [t for r in self._schedules.values()
                 for t in (r.next_fire_at, r.catch_up[0] if r.catch_up else None)
                 if t is not None]
        return min(times) if times else None

    # -- the timer -----------------------------------------------------------------------
    def _ensure_loop(self) -> None:
        if self._wake is None:
            self._wake = asyncio.Event()
        self._wake.set()
        if self._loop_task is None:
            self._last_wall, self._last_mono = self.clock(), self.monotonic()
            self._loop_task = asyncio.get_running_loop().create_task(
                self._run(), name=f"plugin {self.plugin_id} schedules")

    async def _run(self) -> None:
        assert self._wake is not None
        while not self._closed:
            earliest = self._earliest()
            delay = self.max_sleep if earliest is None else min(
                self.max_sleep, max(0.0, earliest - self.clock()))
            if delay > 0:
                await wait_set(self._wake, delay)
            self._wake.clear()
            if self._closed:
                break
            try:
                await self.tick()
            except Exception:  # a bug must not end every schedule of the plugin for good
                self.logger.exception("the plugin's scheduler tick failed; retrying in 1 s")
                await asyncio.sleep(1.0)

    async def tick(self) -> builtins.list[str]:  # list, in this class, is the method
        """Fire what is due at ``clock()`` now; return the names of the runs started.

        Re-plans every schedule first when the wall clock jumped against the monotonic
        clock (suspend, resume, clock change) since the previous tick.
        """
        now, mono = self.clock(), self.monotonic()
        if self._last_wall is not None and detect_clock_jump(
                self._last_wall, now, self._last_mono, mono, CLOCK_JUMP_TOLERANCE):
            self.logger.info("clock jump or resume: re-planning %d schedule(s)",
                             len(self._schedules))
            for record in self._schedules.values():
                self._plan(record, now)
        self._last_wall, self._last_mono = now, mono
        started: list[str] = []
        changed = False
        for record in list(self._schedules.values()):
            fire_at: float | None = None
            if record.catch_up is not None and record.catch_up[0] <= now:
                fire_at = record.catch_up[1]
                record.catch_up = None
            if record.next_fire_at is not None and record.next_fire_at <= now:
                fire_at = self._latest_slot(record, now)
                record.catch_up = None  # a regular fire covers a catch-up still waiting
                record.next_fire_at = record.schedule.next_after(_dt(max(now, fire_at))
                                                                 ).timestamp()
            if fire_at is None:
                continue
            changed = True
            record.last_fire_at = fire_at
            if record.running:
                record.skipped += 1
                record.last_status = "skipped"
                self.logger.info("schedule %s: skipped the fire of %s, the previous run is "
                                 "still going", record.name, _iso(fire_at))
                continue
            self._start(record)
            started.append(record.name)
        if changed:
            self._save()
        return started

    def _latest_slot(self, record: PluginSchedule, now: float) -> float:
        """The fire to run now; slots passed while the loop was held up count as missed."""
        due = record.next_fire_at
        assert due is not None
        if now - due < 1.0:
            return due
        latest = record.schedule.previous_at_or_before(_dt(now))
        if latest is None or latest.timestamp() <= due:
            return due
        skipped = record.schedule.fires_between(_dt(due) - _TINY, latest - _TINY, MISSED_CAP)
        record.missed += len(skipped)
        return latest.timestamp()

    def _start(self, record: PluginSchedule) -> None:
        record.runs += 1
        record.last_status, record.last_error = "running", None
        record.last_started_at, record.last_finished_at = self.clock(), None
        record.task = asyncio.get_running_loop().create_task(
            self._execute(record), name=f"plugin {self.plugin_id} schedule {record.name}")

    async def _execute(self, record: PluginSchedule) -> None:
        status, error = "succeeded", None
        try:
            await record.work()
        except asyncio.CancelledError:
            status = "cancelled"
        except PLUGIN_FAULTS as exc:
            status = "failed"
            text = str(exc).strip().splitlines()
            error = f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__
            self.logger.error("schedule %s failed: %s", record.name, error, exc_info=exc)
        record.last_status, record.last_error = status, error
        record.last_finished_at = self.clock()
        self._save()

    async def wait_idle(self) -> None:
        """Wait until no run is going (tests)."""
        tasks = [r.task for r in self._schedules.values() if r.task is not None]
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    async def close(self) -> None:
        """Host side, at teardown: stop the timer, cancel running runs, save the state."""
        self._closed = True
        if self._wake is not None:
            self._wake.set()
        loop_task, self._loop_task = self._loop_task, None
        if loop_task is not None:
            loop_task.cancel()
            await asyncio.gather(loop_task, return_exceptions=True)
        runs = [r.task for r in self._schedules.values() if r.running and r.task]
        for task in runs:
            task.cancel()
        if runs:
            await asyncio.gather(*runs, return_exceptions=True)
        if self._schedules:
            self._save()

    # -- persistence -------------------------------------------------------------------
    def _load(self) -> dict[str, dict[str, Any]]:
        if self._saved is None:
            self._saved = {}
            try:
                data = json.loads(self.state_file.read_text(encoding="utf-8"))
                if isinstance(data, dict) and isinstance(data.get("schedules"), dict):
                    self._saved = {str(k): v for k, v in data["schedules"].items()
                                   if isinstance(v, dict)}
            except FileNotFoundError:
                pass
            except (OSError, ValueError) as exc:
                self.logger.error("%s is unreadable (%s); the plugin's schedules start "
                                  "afresh", self.state_file, exc)
        return self._saved

    def _save(self) -> None:
        saved = self._load()
        for name, record in self._schedules.items():
            saved[name] = record.persisted()
        try:
            write_atomic(self.state_file,
                         json.dumps({"schedules": saved}, indent=1, allow_nan=False))
        except (OSError, ValueError) as exc:
            self.logger.error("could not save the schedules to %s: %s", self.state_file, exc)
