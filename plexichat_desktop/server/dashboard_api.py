"""JSON for the test dashboards, beside the /tests API: what one screen needs in one call.

The /tests API answers one question per call (runs, results, statistics); a dashboard
screen needs a plugin table with sparklines, or a test tree with each test's last outcome,
all consistent with the live event stream it then follows. Each snapshot here therefore
carries ``last_event_id``: the page opens ``/tests/events?since=<last_event_id>`` and
receives every event newer than the snapshot (one the snapshot already reflects may come
again; pages apply events idempotently). Runs still going are in the snapshot too
(``live``), rebuilt from the same event log, so a page opened mid-run shows the tests
already finished in it.

The summary numbers are not here: pages read ``GET /tests/statistics`` for them, the call
the native panel makes, so both dashboards show the same figures.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Path, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict

from plexichat_desktop.plugins.manager import PluginRecord
from plexichat_desktop.server.event_log import EventLog
from plexichat_desktop.server.tests_api import result_dict
from plexichat_desktop.testing.manager import TestManager, TestSelectionError
from plexichat_desktop.testing.models import BAD_OUTCOMES, RunRecord
from plexichat_desktop.testing.results import FLAKY_WINDOW, is_flaky, success_rate

SPARKLINE_RUNS = 20
PluginId = Annotated[str, Path(min_length=1, max_length=200)]


class DashboardError(BaseModel):
    """An error answer: ``detail`` starts with the field it concerns (or is FastAPI's list
    of validation errors, each with its ``loc``)."""

    detail: str | list[dict[str, Any]]


class RerunRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    priority: Literal["low", "medium", "high", "critical"] = "medium"


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    text = {400: "The body is not JSON.",
            404: "An unknown plugin or test (detail names the field).",
            409: "Nothing to do: the plugin has no failed tests to rerun.",
            422: "A parameter is missing or out of range (detail names it)."}
    return {code: {"model": DashboardError, "description": text[code]} for code in codes}


def _spark(run: RunRecord) -> dict[str, Any]:
    return {"id": run.id, "status": str(run.status), "finished_at": run.finished_at,
            "total": run.counts.get("total", 0), "success_rate": success_rate(run.counts)}


def dashboard_router(manager: TestManager, events: EventLog) -> APIRouter:
    """The /tests/dashboard routes over one test manager and the event log of its events."""
    router = APIRouter(prefix="/tests/dashboard", tags=["dashboard"])
    store = manager.store

    def plugin_record(plugin_id: str) -> PluginRecord:
        try:
            return manager.plugin_record(plugin_id)
        except TestSelectionError as exc:
            raise HTTPException(404, f"plugin_id: {exc}") from None

    def plugin_info(rec: PluginRecord) -> dict[str, Any]:
        assert rec.manifest is not None
        return {"id": rec.id, "name": rec.manifest.name, "version": rec.manifest.version,
                "description": rec.manifest.description, "state": str(rec.state),
                "has_tests": manager.tests_dir(rec).is_dir()}

    def live_runs(plugin_id: str | None = None) -> tuple[list[dict[str, Any]], int]:
        """Queued and running runs with what the event log knows of their progress, and
        the id of the newest event that went into it. Synchronous on purpose: nothing can
        append to the log between reading it and reading ``last_id``."""
        runs = [r for r in (*manager.running(), *manager.queued())
                if plugin_id in (None, r.plugin_id)]
        current = {entry["run_id"]: entry["test_name"] for entry in manager.in_flight()}
        live: dict[int, dict[str, Any]] = {}
        for run in runs:
            assert run.id is not None
            live[run.id] = {"run": run.to_dict(), "completed": 0,
                            "total": len(run.selection or []), "results": {},
                            "current": current.get(run.id), "current_since": None}
        if live:
            for _, topic, data in events.since(0):
                entry = live.get(data.get("run_id", -1))
                if entry is None:
                    continue
                if topic == "tests.collected":
                    entry["total"] = data.get("total") or entry["total"]
                elif topic == "tests.test_started" and data["nodeid"] == entry["current"]:
                    entry["current_since"] = data["timestamp"]
                elif topic == "tests.test_finished":
                    entry["results"][data["nodeid"]] = {
                        "outcome": data["outcome"], "duration": data["duration"],
                        "message": data["message"], "finished_at": data["timestamp"]}
                    entry["completed"] = max(entry["completed"], data["completed"])
                    entry["total"] = data.get("total") or entry["total"]
        return list(live.values()), events.last_id

    @router.get("/overview", responses=_errors(422))
    async def overview(recent: Annotated[int, Query(ge=0, le=200)] = 20) -> dict[str, Any]:
        """Every testable plugin with its test count, last run, success rate, sparkline
        of its last runs and failed-test count; recent results; runs queued or going."""
        live, last_event_id = live_runs()
        records = sorted(manager.testable(), key=lambda r: r.id)

        def gather() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
            collected: dict[str, int] = {}
            for test in store.collected():
                collected[test.plugin_id] = collected.get(test.plugin_id, 0) + 1
            rows = []
            for rec in records:
                info = plugin_info(rec)
                history = store.list_runs(rec.id, SPARKLINE_RUNS)
                finished = [r for r in history if r.status.finished]
                stats = store.statistics(rec.id)
                summaries = store.test_summaries(rec.id, FLAKY_WINDOW)
                count = collected.get(rec.id)
                source = "collected" if count is not None else None
                if count is None and summaries:
                    count, source = len(summaries), "results"
                rows.append({
                    **info,
                    "tests": count, "tests_source": source,
                    "success_rate": stats["success_rate"], "results": stats["total"],
                    "runs": stats["runs"], "mean_duration": stats["mean_duration"],
                    "last_run": finished[0].to_dict() if finished else None,
                    "failed_tests": sum(s["outcome"] in BAD_OUTCOMES
                                        for s in summaries.values()),
                    "flaky_tests": sum(is_flaky(s) for s in summaries.values()),
                    "sparkline": [_spark(r) for r in reversed(finished)],
                })
            found, _ = store.recent_results(None, None, recent, 0) if recent else ([], 0)
            return rows, [result_dict(a) for a in found]

        plugins, results = await asyncio.to_thread(gather)
        return {"success": True, "last_event_id": last_event_id, "plugins": plugins,
                "recent_results": results, "live": live}

    @router.get("/plugins/{plugin_id}", responses=_errors(404, 422))
    async def plugin(plugin_id: PluginId,
                     runs: Annotated[int, Query(ge=1, le=200)] = 15) -> dict[str, Any]:
        """A plugin's tests in collection order (file, class, name: the page builds the
        tree), each with its last result and flaky mark; its recent runs; runs going."""
        rec = plugin_record(plugin_id)
        live, last_event_id = live_runs(plugin_id)

        def gather() -> dict[str, Any]:
            summaries = store.test_summaries(plugin_id, FLAKY_WINDOW)
            tests = []
            seen = set()
            for test in store.collected(plugin_id):
                seen.add(test.nodeid)
                tests.append({**test.to_dict(), "collected": True,
                              "last": summaries.get(test.nodeid)})
            # Tests with results that discovery no longer finds (renamed, deleted): still
            # listed, so their history stays reachable, after the collected ones.
            for nodeid in sorted(set(summaries) - seen):
                file, _, rest = nodeid.partition("::")
                cls, _, name = rest.rpartition("::")
                tests.append({"plugin_id": plugin_id, "nodeid": nodeid, "file": file,
                              "line": None, "name": name or nodeid, "cls": cls or None,
                              "collected": False, "last": summaries[nodeid]})
            for entry in tests:
                entry["flaky"] = bool(entry["last"]) and is_flaky(entry["last"])
            recent = store.list_runs(plugin_id, runs)
            # Without any discovery yet, "not collected" would mean "unknown", not "gone".
            return {"tests": tests, "discovered": bool(seen),
                    "runs": [r.to_dict() for r in recent]}

        data = await asyncio.to_thread(gather)
        return {"success": True, "last_event_id": last_event_id, "plugin": plugin_info(rec),
                **data, "live": live}

    @router.get("/plugins/{plugin_id}/test", responses=_errors(404, 422))
    async def test_details(plugin_id: PluginId,
                           test_name: Annotated[str, Query(min_length=1, max_length=2000)],
                           attempts: Annotated[int, Query(ge=1, le=200)] = 20
                           ) -> dict[str, Any]:
        """One test: its newest attempts (retries included) with message, traceback and
        captured output, its statistics and flip rate."""
        plugin_record(plugin_id)

        def gather() -> dict[str, Any] | None:
            history = store.test_history(plugin_id, test_name, attempts)
            collected = next((t for t in store.collected(plugin_id)
                              if t.nodeid == test_name), None)
            if not history and collected is None:
                return None
            stats = store.statistics(plugin_id, test_name)
            stats["flip_rate"] = store.flip_rate(plugin_id, test_name)
            return {"test": collected.to_dict() if collected else {"nodeid": test_name},
                    "collected": collected is not None, "statistics": stats,
                    "attempts": [result_dict(a) for a in history]}

        found = await asyncio.to_thread(gather)
        if found is None:
            raise HTTPException(404, f"test_name: no test '{test_name}' in plugin "
                                     f"'{plugin_id}' (neither collected nor ever run)")
        return {"success": True, **found}

    @router.post("/plugins/{plugin_id}/rerun-failed", status_code=202,
                 responses=_errors(400, 404, 409, 422))
    async def rerun_failed(plugin_id: PluginId, body: RerunRequest | None = None
                           ) -> JSONResponse:
        """Queue one run of the tests whose latest result is a failure (failed, error,
        timed out, crashed) and that discovery still finds."""
        plugin_record(plugin_id)
        priority = body.priority if body else "medium"
        summaries = await asyncio.to_thread(store.test_summaries, plugin_id, 1)
        failed = [nodeid for nodeid, s in summaries.items() if s["outcome"] in BAD_OUTCOMES]
        try:
            known = {t.nodeid for t in (await manager.discover(plugin_id)).items}
        except TestSelectionError as exc:
            raise HTTPException(404, f"plugin_id: {exc}") from None
        chosen = [nodeid for nodeid in failed if nodeid in known]
        if not chosen:
            raise HTTPException(409, f"plugin_id: plugin '{plugin_id}' has no failed tests "
                                     f"to rerun")
        try:
            run = await manager.submit(plugin_id, chosen, priority=priority,
                                       trigger="dashboard")
        except TestSelectionError as exc:
            raise HTTPException(404, f"plugin_id: {exc}") from None
        return JSONResponse({"success": True, "run_id": run.id, "run": run.to_dict(),
                             "tests": chosen}, status_code=202)

    return router
