"""The /tests HTTP API: discovery, runs, results, statistics, schedules and live events.

It keeps the original PlexiChat contract where clients may rely on it (paths, request
fields such as ``plugin_name`` and ``test_name``, ``{"success": true, ...}`` bodies) and
fixes what it got wrong: runs are queued and answered at once with 202 (``?wait=true``
waits), unknown things are 404 not 500, filters apply before the limit, and every
input error is a 4xx whose ``detail`` starts with the field it concerns.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Header, HTTPException, Path, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, Strict, field_validator
from pydantic.json_schema import SkipJsonSchema

from plexichat_desktop.core.sqlite import SQLITE_INT_MAX
from plexichat_desktop.plugins.sse import event_stream
from plexichat_desktop.scheduling.expressions import DuplicateScheduleError, InvalidScheduleError
from plexichat_desktop.server.errors import error_responses
from plexichat_desktop.server.event_log import EventLog
from plexichat_desktop.testing.analytics import CATEGORIES, duration_report
from plexichat_desktop.testing.manager import TestManager, TestSelectionError
from plexichat_desktop.testing.models import Outcome, RunRecord, TestAttempt
from plexichat_desktop.testing.results import results_of

PriorityName = Literal["low", "medium", "high", "critical"]
CategoryName = Literal["functionality", "performance", "security", "integration",
                       "analytics", "ux"]

"""Ids and offsets go to SQLite, whose integers are 64-bit: a larger number must be a 422,
not an OverflowError (a 500) from the driver."""
RunId = Annotated[int, Path(ge=1, le=SQLITE_INT_MAX)]
Offset = Annotated[int, Query(ge=0, le=SQLITE_INT_MAX)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _no_bool(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError("a number, not true or false")
    return value


# JSON true was a timeout of 1 s or 1 retry (pydantic's lax numbers), and 0 or "yes" a
# boolean: refused. Not strict mode as a whole: 8.0 is an integer to JSON Schema.
NoBool = BeforeValidator(_no_bool)
StrictFlag = Annotated[bool, Strict()]


class DiscoverRequest(_Body):
    plugin_name: str | None = None


class RunRequest(_Body):
    plugin_name: str = Field(min_length=1)
    test_name: str | None = None
    timeout: Annotated[float | None, NoBool] = Field(None, ge=0.01, le=86_400)
    priority: PriorityName = "medium"
    retries: Annotated[int | None, NoBool] = Field(None, ge=0, le=10)


# At most a thousand names (more than plugins anyone has): thousands of repeated names
# queued as many runs.
PluginNames = Annotated[list[str], Field(min_length=1, max_length=1000)]


class BulkRunRequest(_Body):
    plugins: PluginNames
    priority: PriorityName = "medium"


class ScheduleRequest(_Body):
    plugin_name: str = Field(min_length=1)
    test_name: str | None = None
    schedule_expression: str = Field(min_length=1, max_length=200)
    priority: PriorityName = "medium"
    timeout: Annotated[float | None, NoBool] = Field(None, ge=0.01, le=86_400)
    retries: Annotated[int | None, NoBool] = Field(None, ge=0, le=10)
    enabled: StrictFlag = True
    timezone: str | None = Field(None, max_length=64)


class ScheduleChange(_Body):
    """Only the fields present change. A null test_name, timeout, retries or timezone
    means the default (whole suite, the manifest's, the setting's, local time)."""

    test_name: str | None = None
    # None below only stands for "absent": a null has no meaning for these, so it is a
    # 422 naming the field, and the document does not offer it.
    schedule_expression: str | SkipJsonSchema[None] = Field(None, min_length=1,
                                                            max_length=200)
    priority: PriorityName | SkipJsonSchema[None] = None
    timeout: Annotated[float | None, NoBool] = Field(None, ge=0.01, le=86_400)
    retries: Annotated[int | None, NoBool] = Field(None, ge=0, le=10)
    enabled: StrictFlag | SkipJsonSchema[None] = None
    timezone: str | None = Field(None, max_length=64)

    @field_validator("schedule_expression", "priority", "enabled", mode="before")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        if value is None:
            raise ValueError("may not be null; leave the field out to keep its value")
        return value


def _iso(ts: float | None) -> str | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC).isoformat()


def result_dict(attempt: TestAttempt, attempts: int | None = None,
                flaky: bool | None = None) -> dict[str, Any]:
    """One result in the original contract's shape, plus the details a dashboard needs
    (``metadata.flaky``: passed on a retry within its run, when known)."""
    return {
        "test_id": f"{attempt.run_id}:{attempt.nodeid}",
        "run_id": attempt.run_id,
        "plugin_name": attempt.plugin_id,
        "test_name": attempt.nodeid,
        "status": str(attempt.outcome),
        "duration": attempt.duration,
        "message": attempt.message,
        "error": attempt.longrepr or None,
        "timestamp": _iso(attempt.finished_at),
        "metadata": {"attempt": attempt.attempt, "attempts": attempts or attempt.attempt,
                     "phase": attempt.phase, "stdout": attempt.stdout,
                     "stderr": attempt.stderr, "log": attempt.log, "flaky": flaky,
                     "reports": attempt.reports},
    }


def _selection_error(field: str, exc: Exception, status: int = 404) -> HTTPException:
    return HTTPException(status, f"{field}: {exc}")


def _selection_field(exc: TestSelectionError, plugin_field: str = "plugin_name") -> str:
    return "test_name" if exc.subject == "test" else plugin_field


def tests_router(manager: TestManager, scheduler: Any, events: EventLog,
                 stopping: asyncio.Event) -> APIRouter:
    """The /tests routes over one test manager and one scheduler service."""
    router = APIRouter(prefix="/tests", tags=["tests"])
    store = manager.store

    async def run_payload(run: RunRecord) -> dict[str, Any]:
        assert run.id is not None
        attempts = await asyncio.to_thread(store.attempts_for_run, run.id)
        results = [result_dict(r.final, r.attempts, r.flaky) for r in results_of(attempts)
                   if r.final is not None]
        return {"success": True, "run": run.to_dict(), "results": results}

    def check_plugin(plugin_id: str, field: str = "plugin_name") -> None:
        try:
            manager.plugin_record(plugin_id)
        except TestSelectionError as exc:
            raise _selection_error(field, exc) from None

    @router.post("/discover", responses=error_responses(400, 404, 422))
    async def discover(plugin_name: str | None = None,
                       body: Annotated[DiscoverRequest | None, Body()] = None
                       ) -> dict[str, Any]:
        """Collect tests (all plugins, or one by ``plugin_name`` in the query or body)."""
        wanted = plugin_name or (body.plugin_name if body else None)
        try:
            found = ({wanted: await manager.discover(wanted, refresh=True)} if wanted
                     else await manager.discover_all(refresh=True))
        except TestSelectionError as exc:
            raise _selection_error("plugin_name", exc) from None
        plugins: dict[str, dict[str, Any]] = {
            pid: {"tests": len(d.items), "errors": d.errors} for pid, d in found.items()}
        count = sum(p["tests"] for p in plugins.values())
        return {"success": True, "message": f"Discovered {count} tests",
                "discovered_count": count, "plugins": plugins}

    @router.get("/discovered", responses=error_responses(404, 422))
    async def discovered(plugin_name: str | None = None) -> dict[str, Any]:
        """What discovery found last (from the store: instant, no pytest run)."""
        if plugin_name:
            check_plugin(plugin_name)
        tests = await asyncio.to_thread(store.collected, plugin_name)
        return {"success": True, "tests": [t.to_dict() for t in tests]}

    async def submit(plugin_id: str, test_name: str | None, priority: str,
                     timeout: float | None = None, retries: int | None = None) -> RunRecord:
        try:
            # A blank test_name means the whole suite, as an absent one does.
            tests = [test_name] if test_name and test_name.strip() else None
            return await manager.submit(plugin_id, tests,
                                        priority=priority, trigger="api", timeout=timeout,
                                        reruns=retries)
        except TestSelectionError as exc:
            raise _selection_error(_selection_field(exc), exc) from None

    @router.post("/run", status_code=202, responses={
        200: {"description": "With ``?wait=true``: the finished run and its results."},
        **error_responses(400, 404, 422)})
    async def run(body: RunRequest, wait: bool = False) -> JSONResponse:
        """Queue a run; 202 with its id at once, or (``?wait=true``) 200 with the results."""
        queued = await submit(body.plugin_name, body.test_name, body.priority, body.timeout,
                              body.retries)
        assert queued.id is not None
        if wait:
            return JSONResponse(await run_payload(await manager.wait(queued.id)))
        return JSONResponse({"success": True, "run_id": queued.id, "run": queued.to_dict(),
                             "status_url": f"/tests/runs/{queued.id}"}, status_code=202)

    @router.post("/bulk-run", status_code=202,
                 responses=error_responses(400, 404, 422))
    async def bulk_run(body: Annotated[PluginNames | BulkRunRequest, Body()]) -> JSONResponse:
        """Queue a run for each named plugin (a JSON array, or ``{"plugins": [...]}``)."""
        names, priority = (body, "medium") if isinstance(body, list) else (
            body.plugins, body.priority)
        # Every name first: an error must not leave the runs before it queued.
        for index, name in enumerate(names):
            try:
                await manager.check_selection(name)
            except TestSelectionError as exc:
                raise _selection_error(f"plugins[{index}]", exc) from None
        # A plugin named twice runs once (its runs would only queue behind each other).
        runs = [await submit(name, None, priority) for name in dict.fromkeys(names)]
        return JSONResponse({"success": True, "run_ids": [r.id for r in runs],
                             "runs": [r.to_dict() for r in runs]}, status_code=202)

    @router.get("/runs", responses=error_responses(404, 422))
    async def runs(plugin_name: str | None = None,
                   limit: Annotated[int, Query(ge=1, le=500)] = 50,
                   offset: Offset = 0) -> dict[str, Any]:
        if plugin_name:
            check_plugin(plugin_name)
        found = await asyncio.to_thread(store.list_runs, plugin_name, limit, offset)
        total = await asyncio.to_thread(store.count_runs, plugin_name)
        return {"success": True, "runs": [r.to_dict() for r in found], "total": total,
                "limit": limit, "offset": offset, "has_more": offset + len(found) < total}

    @router.get("/runs/{run_id}", responses=error_responses(404, 422))
    async def get_run(run_id: RunId) -> dict[str, Any]:
        found = await asyncio.to_thread(store.get_run, run_id)
        if found is None:
            raise HTTPException(404, f"run_id: no run {run_id}")
        return await run_payload(found)

    @router.delete("/runs/{run_id}", responses=error_responses(404, 409, 422))
    async def cancel_run(run_id: RunId) -> dict[str, Any]:
        """Cancel a queued or running run."""
        found = await asyncio.to_thread(store.get_run, run_id)
        if found is None:
            raise HTTPException(404, f"run_id: no run {run_id}")
        if not await manager.cancel(run_id):
            raise HTTPException(409, f"run_id: run {run_id} is already {found.status}")
        return {"success": True, "message": f"run {run_id} cancelled"}

    @router.get("/results", responses=error_responses(404, 422))
    async def results(plugin_name: str | None = None,
                      status: Outcome | None = None,
                      limit: Annotated[int, Query(ge=1, le=1000)] = 50,
                      offset: Offset = 0, category: CategoryName | None = None,
                      run_id: Annotated[int | None, Query(ge=1, le=2**62)] = None
                      ) -> dict[str, Any]:
        """Final results, newest first, filtered by plugin, status, test category and run
        before the limit."""
        if plugin_name:
            check_plugin(plugin_name)
        found, total = await asyncio.to_thread(store.recent_results, plugin_name,
                                               status, limit, offset, category, run_id)
        return {"success": True, "results": [result_dict(a) for a in found],
                "count": len(found), "total": total, "limit": limit, "offset": offset,
                "has_more": offset + len(found) < total}

    @router.get("/statistics", responses=error_responses(404, 422))
    async def statistics(plugin_name: str | None = None, test_name: str | None = None,
                         days: Annotated[int, Query(ge=1, le=365)] = 30,
                         category: CategoryName | None = None) -> dict[str, Any]:
        """Totals, success rate, durations, flaky rate, last green and a per-day trend;
        ``category`` narrows the totals to tests with that category marker."""
        if plugin_name:
            check_plugin(plugin_name)
        if test_name and not plugin_name:
            raise HTTPException(422, "test_name: give plugin_name too")
        stats = await asyncio.to_thread(store.statistics, plugin_name, test_name, None,
                                        category)
        trend = await asyncio.to_thread(store.daily_trend, plugin_name, test_name, days)
        if test_name and plugin_name:  # plugin_name is given with test_name (422 above)
            stats["flip_rate"] = await asyncio.to_thread(store.flip_rate, plugin_name,
                                                         test_name)
        return {"success": True, "statistics": {**stats, "daily": trend}}

    @router.get("/analytics/failures", responses=error_responses(404, 422))
    async def failure_patterns(plugin_name: str | None = None,
                               category: CategoryName | None = None,
                               days: Annotated[int | None, Query(ge=1, le=3650)] = None,
                               new_since_run: Annotated[int | None,
                                                        Query(ge=0, le=2**62)] = None,
                               limit: Annotated[int, Query(ge=1, le=500)] = 50
                               ) -> dict[str, Any]:
        """Failures grouped by pattern (exception type, masked message, innermost frames
        of the plugin's own code), newest first, with first and last seen, count and the
        tests affected; ``new_since_run`` keeps patterns first seen after that run."""
        if plugin_name:
            check_plugin(plugin_name)
        since = None if days is None else time.time() - days * 86400
        found = await asyncio.to_thread(store.failure_groups, plugin_name, category, since,
                                        new_since_run, limit)
        return {"success": True, "patterns": [p.to_dict() for p in found]}

    @router.get("/analytics/durations", responses=error_responses(404, 422))
    async def durations(plugin_name: str | None = None,
                        top: Annotated[int, Query(ge=1, le=100)] = 10) -> dict[str, Any]:
        """The slowest tests and plugins, tests that got slower than their own history,
        and suggestions from what the test processes saw, each with its evidence."""
        if plugin_name:
            check_plugin(plugin_name)

        def gather() -> dict[str, Any]:
            return duration_report(store.duration_history(plugin_name),
                                   store.run_durations(plugin_name), top)

        return {"success": True, **await asyncio.to_thread(gather)}

    @router.get("/analytics/categories", responses=error_responses(404, 422))
    async def categories(plugin_name: str | None = None) -> dict[str, Any]:
        """Per test category (functionality, performance, security, integration,
        analytics, ux): final results, outcome counts and success rate."""
        if plugin_name:
            check_plugin(plugin_name)

        def gather() -> dict[str, Any]:
            out = {}
            for name in CATEGORIES:
                stats = store.statistics(plugin_name, None, None, name)
                out[name] = {k: stats[k] for k in ("total", "counts", "success_rate",
                                                   "mean_duration")}
            return out

        return {"success": True, "categories": await asyncio.to_thread(gather)}

    @router.get("/live-updates")
    async def live_updates() -> dict[str, Any]:
        """A polling fallback for clients without Server-Sent Events."""
        recent, _ = await asyncio.to_thread(store.recent_results, None, None, 5, 0)
        return {"success": True,
                "running_tests": manager.in_flight(),
                "running_runs": [r.to_dict() for r in manager.running()],
                "queued_runs": [r.to_dict() for r in manager.queued()],
                "recent_results": [result_dict(a) for a in recent],
                "last_event_id": events.last_id, "time": time.time()}

    @router.get("/events")
    async def live_events(last_event_id: Annotated[str | None, Header()] = None,
                          since: Annotated[int | None, Query(ge=0)] = None) -> Any:
        """Server-Sent Events of test runs and schedules; resumable with Last-Event-ID."""
        cursor = since
        if last_event_id is not None:
            try:
                cursor = int(last_event_id)
            except ValueError:
                raise HTTPException(400, "Last-Event-ID: not an event id") from None
        return event_stream(events.follow_batches(cursor), stopping)

    # -- schedules ----------------------------------------------------------------------
    def schedule_error(exc: Exception) -> HTTPException:
        if isinstance(exc, DuplicateScheduleError):
            return HTTPException(409, f"schedule_expression: {exc}")
        if isinstance(exc, TestSelectionError):
            return _selection_error(_selection_field(exc), exc)
        if isinstance(exc, InvalidScheduleError):
            # The timezone's error names the zone; the user's expression may hold "zone".
            field = "timezone" if str(exc).startswith(("unknown time zone", "time zone")) \
                else "schedule_expression"
            return HTTPException(422, f"{field}: {exc}")
        if isinstance(exc, KeyError):
            return HTTPException(404, f"schedule_id: {exc.args[0] if exc.args else exc}")
        return HTTPException(422, str(exc))

    @router.post("/schedule", status_code=201,
                 responses=error_responses(400, 404, 409, 422))
    async def create_schedule(body: ScheduleRequest) -> dict[str, Any]:
        """Schedule a plugin's tests (or one test); answers the schedule and its next run."""
        try:
            record = await scheduler.create(
                body.plugin_name, body.schedule_expression, test_id=body.test_name,
                timezone=body.timezone, priority=body.priority, timeout=body.timeout,
                retries=body.retries, enabled=body.enabled)
        except (TestSelectionError, InvalidScheduleError, ValueError) as exc:
            raise schedule_error(exc) from None
        return {"success": True, "schedule_id": record.id, "schedule": record.to_dict(),
                "message": "Test scheduled successfully"}

    @router.get("/schedules", responses=error_responses(404))
    async def list_schedules(plugin_name: str | None = None) -> dict[str, Any]:
        records = scheduler.list(plugin_name)
        if plugin_name is not None and not records:
            # A typo gets the known plugins, as /runs and /results answer it; a plugin
            # removed since still lists the schedules it left.
            check_plugin(plugin_name)
        return {"success": True, "schedules": [r.to_dict() for r in records]}

    @router.get("/schedule/preview", responses=error_responses(422))
    async def preview(expression: Annotated[str, Query(min_length=1, max_length=200)],
                      timezone: str | None = None,
                      count: Annotated[int, Query(ge=1, le=20)] = 5) -> dict[str, Any]:
        """The next fire times of an expression, for a form's live validation."""
        try:
            times = scheduler.preview(expression, timezone, count)
        except (InvalidScheduleError, ValueError) as exc:
            raise schedule_error(exc) from None
        return {"success": True, "expression": expression,
                "next": [t.isoformat() for t in times]}

    @router.get("/schedule/{schedule_id}", responses=error_responses(404))
    async def get_schedule(schedule_id: str) -> dict[str, Any]:
        try:
            record = scheduler.get(schedule_id)
        except KeyError as exc:
            raise schedule_error(exc) from None
        history = await scheduler.history(schedule_id, 50)
        return {"success": True, "schedule": record.to_dict(), "history": history}

    @router.patch("/schedule/{schedule_id}", responses=error_responses(400, 404, 422))
    async def update_schedule(schedule_id: str, body: ScheduleChange) -> dict[str, Any]:
        changes = body.model_dump(exclude_unset=True)
        renamed = {"schedule_expression": "expression", "test_name": "test_id"}
        try:
            record = await scheduler.update(
                schedule_id, **{renamed.get(k, k): v for k, v in changes.items()})
        except (TestSelectionError, InvalidScheduleError, ValueError, KeyError) as exc:
            raise schedule_error(exc) from None
        return {"success": True, "schedule": record.to_dict()}

    @router.delete("/schedule/{schedule_id}", responses=error_responses(404))
    async def delete_schedule(schedule_id: str) -> dict[str, Any]:
        try:
            await scheduler.delete(schedule_id)
        except KeyError as exc:
            raise schedule_error(exc) from None
        return {"success": True, "message": "Test unscheduled successfully"}

    return router
