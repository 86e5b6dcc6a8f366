"""The scheduler service: persisted schedules that queue plugin test runs on time.

One asyncio task sleeps until the earliest due schedule, never longer than ``max_sleep``:
``time.monotonic`` (which asyncio timers use) stops while the machine is suspended, so a
long sleep would oversleep a resume by hours. It is woken early (an ``asyncio.Event``) when
schedules change. There is no polling: with nothing due it wakes every ``max_sleep``
seconds only to notice suspends and clock changes.

Every :meth:`SchedulerService.tick` compares the wall-clock delta since the previous tick
with the monotonic delta (:func:`planner.detect_clock_jump`). On a jump (resume from
suspend, clock set) and at start-up, every schedule goes through the misfire policy of
:func:`planner.plan_misfires`: the missed fire times within the grace window are
coalesced into one catch-up run, started after a random 0..``catch_up_spread`` second
delay so a dozen overdue plugins do not start in the same second, and older ones are
recorded as ``missed`` in the fire history so the gap shows.

A schedule whose previous run (or its automatic retry) is still queued or running does not
start again: that fire is recorded as ``skipped`` and the schedule moves on.

Instants are UNIX seconds (floats) in the records and the store, aware UTC datetimes when
talking to :mod:`expressions`/:mod:`planner`.
"""

from __future__ import annotations

import asyncio
import builtins
import dataclasses
import heapq
import itertools
import logging
import math
import random
import secrets
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from datetime import time as time_of_day
from typing import Any, TypeVar

from plexichat_desktop.core.events import Event, EventBus, Subscription
from plexichat_desktop.core.waiting import cancel_and_wait, wait_set, within
from plexichat_desktop.scheduling.events import (
    ScheduleChanged,
    ScheduleFired,
    ScheduleMissed,
    ScheduleSkipped,
)
from plexichat_desktop.scheduling.expressions import (
    DuplicateScheduleError,
    InvalidScheduleError,
    Schedule,
    parse,
)
from plexichat_desktop.scheduling.planner import (
    MISSED_CAP,
    detect_clock_jump,
    plan_misfires,
    spread,
)
from plexichat_desktop.scheduling.store import ScheduleStore
from plexichat_desktop.testing.events import RunFinished, RunStarted
from plexichat_desktop.testing.manager import TestManager, TestSelectionError
from plexichat_desktop.testing.models import Priority, RunStatus
from plexichat_desktop.testing.store import ResultStore

__all__ = ["CLOCK_JUMP_TOLERANCE", "ScheduleRecord", "SchedulerService"]

log = logging.getLogger(__name__)

T = TypeVar("T")

CLOCK_JUMP_TOLERANCE = 60.0
"""Seconds the wall clock may drift from the monotonic one between ticks before the
schedules are re-planned (NTP slews by far less; a suspend or a clock change by far more)."""
PRUNE_EVERY = 86_400.0
"""Monotonic seconds between two prunes of the fire history."""
STOP_GRACE = 5.0
"""Seconds :meth:`SchedulerService.stop` lets a tick in progress finish before cancelling."""
MAX_PREVIEW = 1000
MAX_RETRIES = 10  # the same bound as the HTTP API's
# A test schedule fires at most once a minute (a whole suite every few seconds is no
# schedule); plugins' own schedules (ctx.schedule) may be finer.
MIN_PERIOD = timedelta(minutes=1)
# Fires in a row that could not queue a run because the plugin or test is gone, after
# which the schedule is switched off (it went on "firing" every slot, unnoticed).
ORPHAN_FIRES = 3
ORPHAN_AFTER = 3600.0  # ...and at least this many seconds after the first of them

_EDITABLE = frozenset({"test_id", "expression", "timezone", "priority", "timeout", "retries",
                       "enabled"})
_DAY = 86_400.0
_TINY = timedelta(microseconds=1)


def _dt(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


def _iso(ts: float | None) -> str | None:
    return None if ts is None else _dt(ts).isoformat()


@dataclass(kw_only=True)
class ScheduleRecord:
    """One schedule: what runs, when, and how its last fire went.

    Instants are UNIX seconds. ``anchor`` (the phase of an every_N_* grid, None for crons)
    and ``armed_at`` (when the current timing took effect; fire times at or before it are
    never counted as missed) are bookkeeping the scheduler persists so a restart continues
    exactly where it stopped.
    """

    id: str
    plugin_id: str
    test_id: str | None = None      # None = the whole suite; else what the user typed
    expression: str
    timezone: str | None = None     # IANA name; None = the machine's zone
    priority: Priority = Priority.MEDIUM
    timeout: float | None = None    # per-test timeout of its runs; None = the manifest's
    retries: int | None = None      # test-level reruns; None = the default
    enabled: bool = True
    created_at: float
    last_fire_at: float | None = None   # the scheduled instant last fired (or accounted for)
    last_run_id: int | None = None
    last_status: str | None = None      # a RunStatus value, or "missed" / "skipped"
    next_run_at: float | None = None    # None while disabled
    anchor: float | None = None
    armed_at: float | None = None       # None = created_at

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict: priority as its lowercase name, plus ISO 8601 UTC strings."""
        data = self._fields()
        data["priority"] = self.priority.name.lower()
        data["next_run_iso"] = _iso(self.next_run_at)
        data["last_fire_iso"] = _iso(self.last_fire_at)
        return data

    def to_row(self) -> dict[str, Any]:
        """The dict :meth:`ScheduleStore.save_schedule` takes."""
        data = self._fields()
        data["priority"] = int(self.priority)
        data["armed_at"] = self.created_at if self.armed_at is None else self.armed_at
        return data

    def _fields(self) -> dict[str, Any]:
        # Not dataclasses.asdict: it deep-copies every value, and every field is a scalar;
        # start-up after a pause writes 10,000 of these.
        return {name: getattr(self, name) for name in _RECORD_FIELDS}

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> ScheduleRecord:
        """Rebuild a record from :meth:`ScheduleStore.load_schedules` output."""
        values = {k: v for k, v in row.items() if k in _RECORD_FIELDS}
        values["priority"] = Priority.parse(row["priority"])
        values["enabled"] = bool(row["enabled"])
        return cls(**values)

    @property
    def planning_start(self) -> float:
        """Fire times at or before this instant are accounted for (or were never due)."""
        armed = self.created_at if self.armed_at is None else self.armed_at
        return armed if self.last_fire_at is None else max(armed, self.last_fire_at)


_RECORD_FIELDS = tuple(f.name for f in dataclasses.fields(ScheduleRecord))


@dataclass
class _Due:
    record: ScheduleRecord
    fire_at: float
    catch_up: bool
    missed: list[float] = field(default_factory=list)


Fire = tuple[str, float, str, int | None, str | None]   # as ScheduleStore.save_schedules takes


class SchedulerService:
    """Owns every schedule: validates, persists, and fires them through the test manager.

    Create one per app with the app's store, test manager and bus; ``await start()`` after
    the test manager started, ``await stop()`` before it stops. ``clock``/``monotonic`` and
    ``rng`` are injectable for tests. ``at`` is the local time of day the daily-and-longer
    words (``daily``, ``weekly``, ...) fire at (an app setting).

    Records handed out (``create``, ``get``, ``list``...) are copies; change a schedule
    with :meth:`update`.
    """

    def __init__(self, store: ResultStore, manager: TestManager, bus: EventBus, *,
                 clock: Callable[[], float] = time.time,
                 monotonic: Callable[[], float] = time.monotonic,
                 rng: random.Random | None = None, catch_up_spread: float = 30.0,
                 max_sleep: float = 30.0, at: time_of_day = time_of_day(0, 0)):
        if not (math.isfinite(catch_up_spread) and catch_up_spread >= 0):
            raise ValueError(f"catch_up_spread must be a finite number >= 0, "
                             f"got {catch_up_spread!r}")
        if not (math.isfinite(max_sleep) and max_sleep > 0):
            raise ValueError(f"max_sleep must be a finite number > 0, got {max_sleep!r}")
        if not isinstance(at, time_of_day) or at.tzinfo is not None or at.microsecond:
            raise ValueError(f"at must be a naive datetime.time in whole seconds, got {at!r}")
        self.store = store                      # runs (a schedule's last run)
        self.schedules = ScheduleStore(store)   # schedules and their fire history
        self.manager = manager
        self.bus = bus
        self.clock = clock
        self.monotonic = monotonic
        self.rng = rng or random.Random()
        self.catch_up_spread = float(catch_up_spread)
        self.max_sleep = float(max_sleep)
        self.at = at
        self._records: dict[str, ScheduleRecord] = {}
        self._parsed: dict[str, Schedule] = {}
        self._catch_ups: dict[str, tuple[float, float]] = {}   # id -> (start at, fire time)
        # id -> (fires in a row that found its plugin or test gone, when the first was)
        self._orphan_fires: dict[str, tuple[int, float]] = {}
        # Timers: (when, seq, schedule id, is catch-up). Entries are never removed in place;
        # one whose schedule moved on is stale and dropped when it reaches the top.
        self._timers: list[tuple[float, int, str, bool]] = []
        self._seq = itertools.count()
        # One lock for every change of schedule state and its write to the store, so a tick,
        # an edit and a finished run never interleave half-way.
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._stopping = False
        self._loop_task: asyncio.Task[None] | None = None
        self._follow_task: asyncio.Task[None] | None = None
        self._sub: Subscription | None = None
        self._pending: set[asyncio.Future[Any]] = set()
        self._last_wall: float | None = None
        self._last_mono = 0.0
        self._last_prune: float | None = None

    # -- life cycle -----------------------------------------------------------------------
    async def start(self) -> None:
        """Load the schedules, deal with fire times missed while stopped, arm the timer."""
        if self._loop_task is not None:
            raise RuntimeError("the scheduler is already running")
        self._stopping = False
        rows = await asyncio.to_thread(self._load_rows)
        self._records.clear()
        self._parsed.clear()
        self._catch_ups.clear()
        self._timers.clear()
        for row in rows:
            record = ScheduleRecord.from_row(row)
            self._records[record.id] = record
            try:
                self._parsed[record.id] = self._compile(record.expression, record.timezone,
                                                        record.anchor)
            except InvalidScheduleError as exc:
                # Stays listed (so the user can fix or delete it) but never fires. Not
                # persisted as disabled: a missing tzdata package is no reason to lose it.
                log.error("schedule %s (%r) is no longer valid and will not fire: %s",
                          record.id, record.expression, exc.reason)
                record.next_run_at = None
        self._sub = self.bus.subscribe((RunStarted, RunFinished), name="scheduler",
                                       maxsize=10_000)
        async with self._lock:
            now = self.clock()
            await self._replan(now)
            self._last_wall, self._last_mono = now, self.monotonic()
        loop = asyncio.get_running_loop()
        self._loop_task = loop.create_task(self._run(), name="scheduler")
        self._follow_task = loop.create_task(self._follow_runs(self._sub),
                                             name="scheduler-runs")
        log.info("scheduler started with %d schedule(s)", len(self._records))

    def _load_rows(self) -> list[dict[str, Any]]:
        rows = self.schedules.load_schedules()
        for row in rows:
            # A run still "queued" or "running" belonged to the previous process; the test
            # manager has marked it interrupted by now, and its RunFinished went unseen.
            if row["last_run_id"] is not None and row["last_status"] in (
                    RunStatus.QUEUED.value, RunStatus.RUNNING.value):
                run = self.store.get_run(row["last_run_id"])
                if run is not None and run.status.finished:
                    row["last_status"] = run.status.value
        return rows

    async def stop(self) -> None:
        """Stop the timer (letting a tick in progress finish) and flush pending writes."""
        self._stopping = True
        self._wake.set()
        task, self._loop_task = self._loop_task, None
        if task is not None:
            try:
                await within(asyncio.shield(task), STOP_GRACE)
            except TimeoutError:
                await cancel_and_wait(task)
        follower, self._follow_task = self._follow_task, None
        await cancel_and_wait(follower)
        if self._sub is not None:
            self._sub.close()
            self._sub = None
        if self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)

    # -- the timer ------------------------------------------------------------------------
    def sleep_time(self, now: float | None = None) -> float:
        """Seconds the timer sleeps from ``now`` (default: the clock): until the earliest
        due schedule or catch-up, at most ``max_sleep``, never negative."""
        now = self.clock() if now is None else now
        when = self._earliest()
        if when is None:
            return self.max_sleep
        return min(self.max_sleep, max(0.0, when - now))

    async def _run(self) -> None:
        while not self._stopping:
            self._maybe_prune()
            delay = self.sleep_time()
            if delay > 0:
                await wait_set(self._wake, delay)
            self._wake.clear()
            if self._stopping:
                break
            try:
                await self.tick()
            except Exception:  # a bug or a full disk must not stop every schedule for good
                log.exception("scheduler tick failed; trying again in a second")
                await asyncio.sleep(1.0)

    def _maybe_prune(self) -> None:
        mono = self.monotonic()
        if self._last_prune is not None and mono - self._last_prune < PRUNE_EVERY:
            return
        self._last_prune = mono
        task = self._io_task(self.schedules.prune_fire_history)
        task.add_done_callback(_log_failure("pruning the schedule fire history"))

    async def tick(self) -> list[int]:
        """Fire everything due at ``clock()`` now; return the ids of the runs queued.

        The timer calls this; tests call it directly with an injected clock. It first
        checks for a clock jump since the previous tick and re-plans if there was one.
        """
        async with self._lock:
            now = self.clock()
            mono = self.monotonic()
            if self._last_wall is not None and detect_clock_jump(
                    self._last_wall, now, self._last_mono, mono, CLOCK_JUMP_TOLERANCE):
                log.warning("the wall clock moved %+.0f s against the monotonic clock "
                            "(suspend or clock change): re-planning %d schedule(s)",
                            (now - self._last_wall) - (mono - self._last_mono),
                            len(self._records))
                await self._replan(now)
            self._last_wall, self._last_mono = now, mono
            due = self._collect_due(now)
            if not due:
                return []
            fires: list[Fire] = []
            events: list[Event] = []
            try:
                queued = await self._fire(due, fires, events)
            finally:
                # The next fire times are worked out after the runs were queued (that is
                # what keeps a burst of fires punctual), and re-armed even if firing failed.
                for item in due:
                    if not item.catch_up:
                        self._rearm(item.record, max(now, item.fire_at))
            await self._persist([d.record for d in due], fires)
            for event in events:
                self.bus.publish(event)
            for item in due:  # re-armed (next run, last fire and status): pages follow
                self.bus.publish(ScheduleChanged(schedule=item.record.to_dict(),
                                                 change="updated"))
            return queued

    def _collect_due(self, now: float) -> list[_Due]:
        found: dict[str, _Due] = {}
        while self._timers and self._timers[0][0] <= now:
            when, _, sid, catch_up = heapq.heappop(self._timers)
            if not self._current(when, sid, catch_up):
                continue
            record = self._records[sid]
            if catch_up:
                _, fire_at = self._catch_ups.pop(sid)
                found.setdefault(sid, _Due(record, fire_at, True))
                continue
            missed: list[float] = []
            fire_at = when
            # Fire times are whole seconds apart at least, so only a tick a second or more
            # late can have passed a second slot; the common on-time tick skips the search.
            if now - when >= 1.0:
                schedule = self._parsed[sid]
                latest = schedule.previous_at_or_before(_dt(now))
                if latest is not None and latest.timestamp() > when:
                    # Held up past more than one slot without a clock jump (the event loop
                    # was blocked): run the newest slot, record the ones before as missed.
                    missed = [t.timestamp() for t in schedule.fires_between(
                        _dt(when) - _TINY, latest - _TINY, MISSED_CAP)]
                    fire_at = latest.timestamp()
            # This fire is newer than a catch-up still waiting, and covers it.
            self._catch_ups.pop(sid, None)
            found[sid] = _Due(record, fire_at, False, missed)
        return sorted(found.values(), key=lambda d: (-int(d.record.priority), d.fire_at))

    def _rearm(self, record: ScheduleRecord, after: float) -> None:
        schedule = self._parsed.get(record.id)
        if schedule is None or not record.enabled or self._records.get(record.id) is not record:
            return
        record.next_run_at = schedule.next_after(_dt(after)).timestamp()
        self._push(record.next_run_at, record.id, False)

    async def _fire(self, due: list[_Due], fires: list[Fire], events: list[Event]) -> list[int]:
        """Queue a run for each due item (or skip it); collect history rows and events."""
        active = self._active_runs()
        queued: list[int] = []
        for item in due:
            record = item.record
            if item.missed:
                fires += [(record.id, t, "missed", None, "the scheduler was held up")
                          for t in item.missed]
                events.append(ScheduleMissed(schedule_id=record.id, fire_at=item.missed[-1],
                                             count=len(item.missed)))
            record.last_fire_at = item.fire_at
            reason = None
            if record.id in active:
                reason = f"run {active[record.id]} of this schedule is still queued or running"
            else:
                try:
                    run = await self.manager.submit(
                        record.plugin_id, [record.test_id] if record.test_id else None,
                        priority=record.priority,
                        trigger="catch_up" if item.catch_up else "schedule",
                        timeout=record.timeout, reruns=record.retries, schedule_id=record.id)
                except Exception as exc:  # plugin uninstalled, test renamed, store error
                    if not isinstance(exc, TestSelectionError):
                        log.exception("schedule %s could not queue its run", record.id)
                    reason = f"could not queue a run: {exc}"
                    if isinstance(exc, TestSelectionError):
                        reason += self._orphaned(record)
            if reason is not None:
                record.last_status = "skipped"
                fires.append((record.id, item.fire_at, "skipped", None, reason))
                events.append(ScheduleSkipped(schedule_id=record.id, fire_at=item.fire_at,
                                              reason=reason))
                log.info("schedule %s skipped its fire at %s: %s", record.id,
                         _iso(item.fire_at), reason)
                continue
            assert run.id is not None
            self._orphan_fires.pop(record.id, None)
            record.last_run_id, record.last_status = run.id, str(run.status)
            active[record.id] = run.id
            queued.append(run.id)
            fires.append((record.id, item.fire_at, "caught_up" if item.catch_up else "fired",
                          run.id, None))
            events.append(ScheduleFired(schedule_id=record.id, run_id=run.id,
                                        fire_at=item.fire_at, catch_up=item.catch_up))
        return queued

    def _refuse_duplicate(self, plugin_id: str, test_id: str | None, expression: str,
                          zone: str | None, level: Priority, timeout: float | None,
                          retries: int | None, but: str | None = None) -> None:
        """DuplicateScheduleError when another schedule is the very same (a retried
        request, a double click): the same test with another priority or timeout is a
        schedule of its own."""
        wanted = (plugin_id, test_id, expression, zone, level, timeout, retries)
        for existing in self._records.values():
            if existing.id != but and (
                    existing.plugin_id, existing.test_id, existing.expression,
                    existing.timezone, existing.priority, existing.timeout,
                    existing.retries) == wanted:
                raise DuplicateScheduleError(existing.id)

    def _orphaned(self, record: ScheduleRecord) -> str:
        """Count a fire whose plugin or test is gone; after ORPHAN_FIRES in a row over at
        least ORPHAN_AFTER seconds the schedule is switched off (the skip's reason says
        so)."""
        count, since = self._orphan_fires.get(record.id, (0, self.clock()))
        count += 1
        self._orphan_fires[record.id] = (count, since)
        # A folder away for a moment (a git checkout, a manifest being edited) is no
        # reason: only fires over an hour or more count.
        if count < ORPHAN_FIRES or self.clock() - since < ORPHAN_AFTER:
            log.warning("schedule %s (%s) could not queue a run (%d in a row): it is "
                        "switched off after %d over %.0f h", record.id, record.plugin_id,
                        count, ORPHAN_FIRES, ORPHAN_AFTER / 3600)
            return ""
        record.enabled = False
        record.next_run_at = None
        self._orphan_fires.pop(record.id, None)
        log.warning("schedule %s (%s) switched off: %d fires in a row could not queue a run",
                    record.id, record.plugin_id, count)
        return (f"; switched off after {count} fires in a row over "
                f"{(self.clock() - since) / 3600:.1f} h that could not queue a run")

    def _active_runs(self) -> dict[str, int]:
        """Schedule id -> a queued or running run of it (automatic retries included)."""
        return {run.schedule_id: run.id for run in [*self.manager.queued(),
                                                    *self.manager.running()]
                if run.schedule_id is not None and run.id is not None}

    async def _replan(self, now: float) -> None:
        """Apply the misfire policy to every schedule (start-up and after a clock jump)."""
        touched: list[ScheduleRecord] = []
        fires: list[Fire] = []
        events: list[Event] = []
        catch_ups: list[tuple[ScheduleRecord, float]] = []
        for record in self._records.values():
            schedule = self._parsed.get(record.id)
            if not record.enabled or schedule is None:
                if record.next_run_at is not None:
                    record.next_run_at = None
                    touched.append(record)
                continue
            before = (record.next_run_at, record.last_fire_at, record.last_status)
            start = record.planning_start
            first = schedule.next_after(_dt(start)).timestamp()
            if first > now:
                # Nothing missed, the usual case: skip plan_misfires, whose grace needs the
                # cron's period estimate (a cold estimate costs ~1 ms per distinct cron).
                record.next_run_at = first
                self._push(record.next_run_at, record.id, False)
                if before != (record.next_run_at, record.last_fire_at, record.last_status):
                    touched.append(record)
                continue
            plan = plan_misfires(schedule, _dt(start), _dt(now))
            if plan.missed:
                fires += [(record.id, t.timestamp(), "missed", None, None) for t in plan.missed]
                events.append(ScheduleMissed(schedule_id=record.id,
                                             fire_at=plan.missed[-1].timestamp(),
                                             count=len(plan.missed)))
                if plan.missed_truncated:
                    log.info("schedule %s missed more than %d fire times; only the newest "
                             "are recorded", record.id, MISSED_CAP)
            if plan.catch_up_at is not None:
                # The catch-up slot counts as done only once it ran: a restart before that
                # plans it again. The missed ones are recorded now, so move past them.
                if plan.missed:
                    record.last_fire_at = plan.missed[-1].timestamp()
                catch_ups.append((record, plan.catch_up_at.timestamp()))
            elif plan.latest_due is not None:
                record.last_fire_at = plan.latest_due.timestamp()
                record.last_status = "missed"
            record.next_run_at = plan.next_fire.timestamp()
            self._push(record.next_run_at, record.id, False)
            if before != (record.next_run_at, record.last_fire_at, record.last_status):
                touched.append(record)
        # Highest priority first; the random delays keep them from starting together.
        catch_ups.sort(key=lambda pair: -int(pair[0].priority))
        for (record, fire_at), delay in spread(catch_ups, self.catch_up_spread, self.rng):
            start_at = now + delay
            self._catch_ups[record.id] = (start_at, fire_at)
            self._push(start_at, record.id, True)
        if catch_ups or fires:
            log.info("%d catch-up run(s) planned within %.0f s, %d missed fire time(s) "
                     "recorded", len(catch_ups), self.catch_up_spread, len(fires))
        await self._persist(touched, fires)
        for event in events:
            self.bus.publish(event)
        for record in touched:
            self.bus.publish(ScheduleChanged(schedule=record.to_dict(), change="updated"))

    # -- timers -----------------------------------------------------------------------------
    def _push(self, when: float | None, schedule_id: str, catch_up: bool) -> None:
        if when is None:
            return
        heapq.heappush(self._timers, (when, next(self._seq), schedule_id, catch_up))
        if len(self._timers) > 2 * (len(self._records) + len(self._catch_ups)) + 1024:
            # Edits leave stale entries behind; drop them before they pile up.
            self._timers = [t for t in self._timers if self._current(t[0], t[2], t[3])]
            heapq.heapify(self._timers)

    def _current(self, when: float, schedule_id: str, catch_up: bool) -> bool:
        record = self._records.get(schedule_id)
        if record is None or not record.enabled or schedule_id not in self._parsed:
            return False
        if catch_up:
            pending = self._catch_ups.get(schedule_id)
            return pending is not None and pending[0] == when
        return record.next_run_at == when

    def _earliest(self) -> float | None:
        while self._timers and not self._current(self._timers[0][0], self._timers[0][2],
                                                 self._timers[0][3]):
            heapq.heappop(self._timers)
        return self._timers[0][0] if self._timers else None

    # -- finished runs ------------------------------------------------------------------------
    async def _follow_runs(self, sub: Subscription) -> None:
        async for event in sub:
            # Started too: the schedule said "queued" for the whole of a long run.
            assert isinstance(event, RunStarted | RunFinished)
            run = event.run
            record = self._records.get(run.get("schedule_id") or "")
            # The run this schedule last queued, or an automatic retry of it.
            if record is None or record.last_run_id not in (run.get("id"),
                                                             run.get("parent_run_id")):
                continue
            try:
                async with self._lock:
                    if self._records.get(record.id) is not record:
                        continue
                    record.last_run_id, record.last_status = run["id"], str(run["status"])
                    # Published before the write lands so readers of the record and of the
                    # event never disagree; a failed write is logged below.
                    self.bus.publish(ScheduleChanged(schedule=record.to_dict(),
                                                     change="updated"))
                    await self._persist([record])
            except Exception:
                log.exception("could not record the end of run %s", run.get("id"))

    # -- persistence ------------------------------------------------------------------------
    def _io_task(self, func: Callable[..., T], *args: Any) -> asyncio.Future[T]:
        """Run a store call in a thread as a task that ``stop`` waits for.

        Cancelling the awaiting coroutine would not stop the thread anyway; tracking the
        task lets ``stop`` return only once the write landed (before the store closes).
        """
        task = asyncio.ensure_future(asyncio.to_thread(func, *args))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)
        return task

    async def _persist(self, records: Iterable[ScheduleRecord],
                       fires: Sequence[Fire] = ()) -> None:
        # Only schedules still present: one deleted while a tick awaited must stay deleted.
        rows = {r.id: r.to_row() for r in records if self._records.get(r.id) is r}
        kept = [f for f in fires if f[0] in self._records]
        if rows or kept:
            await asyncio.shield(self._io_task(self.schedules.save_schedules, list(rows.values()),
                                               kept))

    # -- validation ---------------------------------------------------------------------------
    def _compile(self, expression: str, timezone: str | None, anchor: float | None) -> Schedule:
        return parse(expression, timezone, at=self.at,
                     anchor=None if anchor is None else _dt(anchor))

    @staticmethod
    def _anchor_for(schedule: Schedule, now: float) -> float | None:
        """The grid phase of a new interval schedule (None for crons).

        An interval that divides a day lands on the UTC-midnight grid (the epoch), like
        cron ``*/N`` but with equal gaps: every_15_minutes fires at :00, :15, :30, :45.
        Any other interval counts from its creation, rounded down to the minute, since
        there is no natural grid (anchors.md Part 2, point 6).
        """
        if schedule.interval is None:
            return None
        seconds = schedule.interval.total_seconds()
        if seconds < _DAY and _DAY % seconds == 0:
            return 0.0
        return math.floor(now / 60.0) * 60.0

    def _check_fields(self, expression: str, timezone: str | None, priority: Priority | str,
                      timeout: float | None, retries: int | None, enabled: bool,
                      new_expression: bool = True
                      ) -> tuple[Schedule, str | None, Priority, float | None, int | None]:
        if timezone is not None and not isinstance(timezone, str):
            raise InvalidScheduleError(f"time zone must be an IANA zone name, got {timezone!r}",
                                       forms=False)
        zone = None if timezone is None else timezone.strip()
        schedule = self._compile(expression, zone, None)
        gap = schedule.period_estimate
        # Only for a new expression: one made before the limit can still be paused.
        if new_expression and gap < MIN_PERIOD:
            raise InvalidScheduleError(
                f"fires every {gap.total_seconds():g} s; a test schedule fires at most once "
                "a minute (one value in the seconds field)", expression)
        level = Priority.parse(priority)
        if timeout is not None:
            if isinstance(timeout, bool) or not isinstance(timeout, int | float) \
                    or not math.isfinite(timeout) or timeout <= 0:
                raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
            timeout = float(timeout)
        if retries is not None and (isinstance(retries, bool) or not isinstance(retries, int)
                                    or not 0 <= retries <= MAX_RETRIES):
            raise ValueError(f"retries must be a whole number from 0 to {MAX_RETRIES}, "
                             f"got {retries!r}")
        if not isinstance(enabled, bool):
            raise ValueError(f"enabled must be true or false, got {enabled!r}")
        return schedule, zone, level, timeout, retries

    @staticmethod
    def _clean_test_id(test_id: str | None) -> str | None:
        if test_id is None:
            return None
        if not isinstance(test_id, str):
            raise TestSelectionError(f"test id must be a string, got {test_id!r}",
                                     subject="test")
        return test_id.strip() or None

    def _get(self, schedule_id: str) -> ScheduleRecord:
        try:
            return self._records[schedule_id]
        except KeyError:
            raise KeyError(f"no schedule '{schedule_id}'") from None

    # -- the public API -----------------------------------------------------------------------
    async def create(self, plugin_id: str, expression: str, *, test_id: str | None = None,
                     timezone: str | None = None, priority: Priority | str = "medium",
                     timeout: float | None = None, retries: int | None = None,
                     enabled: bool = True) -> ScheduleRecord:
        """Add a schedule; returns it with its first ``next_run_at``.

        Everything is validated before anything is stored. Raises TestSelectionError for
        an unknown plugin or test (or a plugin without tests), InvalidScheduleError for
        the expression or time zone (its message lists the accepted forms), ValueError
        for the priority, a timeout that is not > 0, retries or enabled.
        """
        # Cheap, and first: a typo'd plugin is the usual error.
        self.manager.plugin_record(plugin_id)
        test_id = self._clean_test_id(test_id)
        schedule, zone, level, timeout, retries = self._check_fields(
            expression, timezone, priority, timeout, retries, enabled)
        # The checks submit() makes, so a schedule that validates here can queue its runs.
        await self.manager.check_selection(plugin_id, test_id)
        async with self._lock:
            self._refuse_duplicate(plugin_id, test_id, schedule.expression, zone, level,
                                   timeout, retries)
            now = self.clock()
            anchor = self._anchor_for(schedule, now)
            if anchor is not None:
                schedule = self._compile(schedule.expression, zone, anchor)
            schedule_id = secrets.token_hex(6)
            while schedule_id in self._records:
                schedule_id = secrets.token_hex(6)
            record = ScheduleRecord(
                id=schedule_id, plugin_id=plugin_id, test_id=test_id,
                expression=schedule.expression, timezone=zone, priority=level,
                timeout=timeout, retries=retries, enabled=enabled, created_at=now,
                armed_at=now, anchor=anchor,
                next_run_at=schedule.next_after(_dt(now)).timestamp() if enabled else None)
            self._records[record.id] = record
            self._parsed[record.id] = schedule
            self._push(record.next_run_at, record.id, False)
            await self._persist([record])
            snapshot = dataclasses.replace(record)
        self._wake.set()
        self.bus.publish(ScheduleChanged(schedule=snapshot.to_dict(), change="created"))
        log.info("schedule %s created: %s %r", record.id, plugin_id, record.expression)
        return snapshot

    async def update(self, schedule_id: str, **changes: Any) -> ScheduleRecord:
        """Change some of ``test_id``, ``expression``, ``timezone``, ``priority``,
        ``timeout``, ``retries``, ``enabled``; same validation as :meth:`create`.

        KeyError for an unknown id, ValueError for any other keyword. A new expression or
        zone, or re-enabling, re-arms the schedule from now (an interval gets a new grid
        only when its expression changes); fire times before the change are never
        reported as missed.
        """
        unknown = set(changes) - _EDITABLE
        if unknown:
            raise ValueError(f"cannot change {', '.join(sorted(unknown))}; a schedule's "
                             f"editable fields are {', '.join(sorted(_EDITABLE))}")
        current = dataclasses.replace(self._get(schedule_id))
        test_id = (self._clean_test_id(changes["test_id"]) if "test_id" in changes
                   else current.test_id)
        enabled = changes.get("enabled", current.enabled)
        schedule, zone, level, timeout, retries = self._check_fields(
            changes.get("expression", current.expression),
            changes.get("timezone", current.timezone), changes.get("priority", current.priority),
            changes.get("timeout", current.timeout), changes.get("retries", current.retries),
            enabled, new_expression=changes.get("expression", current.expression)
            != current.expression)
        re_enabled = enabled and not current.enabled
        if test_id != current.test_id or re_enabled:
            await self.manager.check_selection(current.plugin_id, test_id)
        async with self._lock:
            record = self._get(schedule_id)  # it may have been deleted meanwhile
            self._refuse_duplicate(record.plugin_id, test_id, schedule.expression, zone, level,
                                   timeout, retries, but=record.id)
            now = self.clock()
            new_expression = schedule.expression != record.expression
            retimed = new_expression or zone != record.timezone or re_enabled
            anchor = self._anchor_for(schedule, now) if new_expression else record.anchor
            compiled = self._compile(schedule.expression, zone, anchor)
            record.test_id, record.expression, record.timezone = test_id, schedule.expression, zone
            record.priority, record.timeout, record.retries = level, timeout, retries
            record.enabled, record.anchor = enabled, anchor
            self._parsed[record.id] = compiled
            if retimed or not enabled:
                self._catch_ups.pop(record.id, None)
            if retimed:
                record.armed_at = now
            if not enabled:
                record.next_run_at = None
            elif retimed or record.next_run_at is None:
                record.next_run_at = compiled.next_after(_dt(now)).timestamp()
                self._push(record.next_run_at, record.id, False)
            await self._persist([record])
            snapshot = dataclasses.replace(record)
        self._wake.set()
        self.bus.publish(ScheduleChanged(schedule=snapshot.to_dict(), change="updated"))
        return snapshot

    async def delete(self, schedule_id: str) -> None:
        """Remove a schedule and its fire history (KeyError for an unknown id)."""
        async with self._lock:
            record = self._get(schedule_id)
            del self._records[schedule_id]
            self._parsed.pop(schedule_id, None)
            self._catch_ups.pop(schedule_id, None)
            await asyncio.shield(self._io_task(self.schedules.delete_schedule, schedule_id))
        self._wake.set()
        self.bus.publish(ScheduleChanged(schedule=record.to_dict(), change="deleted"))
        log.info("schedule %s deleted", schedule_id)

    def get(self, schedule_id: str) -> ScheduleRecord:
        """A copy of one schedule (KeyError for an unknown id)."""
        return dataclasses.replace(self._get(schedule_id))

    # Annotations below this method write builtins.list: in the class body, list is it.
    def list(self, plugin_id: str | None = None) -> list[ScheduleRecord]:
        """Copies of the schedules (all, or one plugin's): soonest first, disabled last."""
        found = [r for r in self._records.values() if plugin_id in (None, r.plugin_id)]
        found.sort(key=lambda r: (r.next_run_at is None, r.next_run_at or 0.0, r.created_at,
                                  r.id))
        return [dataclasses.replace(r) for r in found]

    async def history(self, schedule_id: str,
                      limit: int = 50) -> builtins.list[dict[str, Any]]:
        """The schedule's newest fire records, newest first (KeyError for an unknown id).

        Each has ``fire_at``, ``status`` (fired, caught_up, missed, skipped), ``run_id``,
        ``detail`` and ``recorded_at``; see :meth:`ScheduleStore.fire_history`.
        """
        self._get(schedule_id)
        return await asyncio.to_thread(self.schedules.fire_history, schedule_id, limit)

    def preview(self, expression: str, timezone: str | None = None,
                count: int = 5) -> builtins.list[datetime]:
        """The next ``count`` fire times (aware UTC) a schedule created now would have.

        For a form's live validation; InvalidScheduleError on a bad expression or zone.
        """
        if isinstance(count, bool) or not isinstance(count, int) or not 0 <= count <= MAX_PREVIEW:
            raise ValueError(f"count must be from 0 to {MAX_PREVIEW}, got {count!r}")
        now = self.clock()
        schedule, zone, *_ = self._check_fields(expression, timezone, "medium", None, None,
                                                True)
        anchor = self._anchor_for(schedule, now)
        if anchor is not None:
            schedule = self._compile(schedule.expression, zone, anchor)
        return schedule.upcoming(_dt(now), count)


def _log_failure(what: str) -> Callable[[asyncio.Future[Any]], None]:
    def check(task: asyncio.Future[Any]) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.error("%s failed: %s", what, task.exception())
    return check
