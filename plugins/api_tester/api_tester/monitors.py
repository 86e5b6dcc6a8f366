"""Scheduled monitors: a collection (or folder) run on the host's scheduler, offline, with
a notification when its outcome changes from passed to failed or back.

A monitor's state (last outcome, recent runs, transitions) is kept in ``monitors.json``
in the plugin's data dir, so a transition across an app restart is still seen. The host
cannot remove a schedule once added, so each monitor's schedule is named after the
monitor and its version: editing or deleting a monitor bumps the version and the old
schedule's runs return at once.
"""

from __future__ import annotations

import asyncio
import json
import re
import secrets
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from api_tester.storage import StorageProblem, check_name
from plexichat_desktop.plugins.files import keep_aside, write_atomic

KEEP_RUNS = 30
KEEP_TRANSITIONS = 30


class MonitorSpec(BaseModel):
    """What the page sends to create or change a monitor."""

    name: str = Field(min_length=1, max_length=100)
    collection: str = Field(max_length=100)
    folder: str = Field("", max_length=1000)
    environment: str | None = Field(None, max_length=100)
    schedule: str = Field("every_5_minutes", max_length=200)
    enabled: bool = True


class RunSummary(BaseModel):
    """One run of a monitor as kept in its history (``runs``)."""

    at: float
    status: Literal["passed", "failed"]
    passed: int = Field(ge=0)
    failed: int = Field(ge=0)
    detail: str = Field("", max_length=500)
    duration_ms: float  # wall-clock: a clock stepped back mid-run made it negative


class Transition(BaseModel):
    """A change of a monitor's outcome (``transitions``): what the notification said."""

    model_config = ConfigDict(populate_by_name=True)

    monitor: str
    name: str
    at: float
    from_: Literal["passed", "failed"] | None = Field(alias="from")
    to: Literal["passed", "failed"]
    detail: str = Field("", max_length=500)


def _valid_entries(model: type[BaseModel], entries: list[Any]) -> tuple[list[Any], int]:
    """The entries that are what ``model`` says, as it says them, and how many were not."""
    kept = []
    for entry in entries:
        try:
            kept.append(model.model_validate(entry).model_dump(by_alias=True))
        except ValueError:  # ValidationError is one
            continue
    return kept, len(entries) - len(kept)


class MonitorProblem(ValueError):
    def __init__(self, field: str, message: str, status: int = 422):
        self.field = field
        self.status = status
        super().__init__(message if message.startswith(field) else f"{field}: {message}")


RunCollection = Callable[[MonitorSpec], Awaitable[dict[str, Any]]]
Schedule = Callable[[str, Callable[[], Awaitable[Any]], str], Any]
Notify = Callable[[str, dict[str, Any]], None]


class Monitors:
    def __init__(self, file: Path, run_collection: RunCollection, schedule: Schedule,
                 notify: Notify):
        self.file = file
        self._run_collection = run_collection
        self._schedule = schedule
        self._notify = notify
        self.items: dict[str, dict[str, Any]] = {}
        self._retired: dict[str, int] = {}  # deleted monitor id -> its last version
        self._locks: dict[str, asyncio.Lock] = {}
        #: what could not be read or scheduled (a hand-edited file), said at setup
        self.problems: list[str] = []
        if file.is_file():
            self._load()

    def _load(self) -> None:
        """The monitors of the file; one that is not a monitor (a hand edit) is left out
        and said, the file kept aside so nothing the user wrote is lost."""
        try:
            data = json.loads(self.file.read_text("utf-8"))
            raw = data.get("monitors", {}) if isinstance(data, dict) else None
            if not isinstance(raw, dict):
                raise ValueError("no 'monitors' object")
        except (OSError, ValueError) as exc:  # UnicodeDecodeError is a ValueError
            self._keep_aside(f"{self.file} could not be read ({exc})")
            return
        changed = history_dropped = False
        for monitor_id, item in raw.items():
            try:
                # Kept as validated, not as read: "enabled": "false" passes pydantic's lax
                # mode but the raw string is truthy (the monitor ran), a "version" of "3"
                # broke the next edit, a missing "status" every listing.
                spec = MonitorSpec.model_validate(item["spec"]).model_dump()
                runs, transitions = item.get("runs", []), item.get("transitions", [])
                if not isinstance(runs, list) or not isinstance(transitions, list):
                    raise TypeError("runs and transitions are lists")
                # The history too: the page and the listing read every field of it.
                runs, bad_runs = _valid_entries(RunSummary, runs[-KEEP_RUNS:])
                transitions, bad_transitions = _valid_entries(
                    Transition, transitions[-KEEP_TRANSITIONS:])
                status = item.get("status")
                clean = {"spec": spec, "version": int(item["version"]),
                         "status": status if status in (None, "passed", "failed") else None,
                         "runs": runs, "transitions": transitions}
            except (KeyError, TypeError, ValueError) as exc:  # ValidationError is one
                self.problems.append(f"monitor {monitor_id!r} in {self.file.name} is left "
                                     f"out: {type(exc).__name__}: {str(exc).splitlines()[0]}")
                continue
            if bad_runs or bad_transitions:
                history_dropped = True
                self.problems.append(
                    f"monitor {monitor_id!r} in {self.file.name}: {bad_runs} run(s) and "
                    f"{bad_transitions} transition(s) of its history were not readable and "
                    "are left out")
            changed = changed or clean != item
            self.items[monitor_id] = clean
        if len(self.items) < len(raw) or history_dropped:
            self._keep_aside(None)
        elif changed:
            self._save()

    def _keep_aside(self, problem: str | None) -> None:
        try:
            broken = keep_aside(self.file)
        except OSError:
            broken = self.file
        if problem is not None:
            self.problems.append(f"{problem}; no monitor was loaded")
        self.problems.append(f"the file as it was is kept as {broken}")
        if self.items:
            self._save()

    def start(self) -> None:
        """Register the schedule of every enabled monitor (from ``setup``); one that
        cannot be scheduled is said in :attr:`problems`, the others still are."""
        for monitor_id, item in self.items.items():
            if item["spec"]["enabled"]:
                try:
                    self._arm(monitor_id, item)
                except MonitorProblem as exc:
                    self.problems.append(f"monitor {monitor_id!r} is not scheduled: {exc}")

    def _save(self) -> None:
        write_atomic(self.file, json.dumps({"monitors": self.items}, indent=1) + "\n")

    def _arm(self, monitor_id: str, item: dict[str, Any]) -> None:
        version = item["version"]

        async def fire() -> None:
            await self.run(monitor_id, version=version)

        try:
            self._schedule(item["spec"]["schedule"], fire, f"monitor {monitor_id} v{version}")
        except ValueError as exc:
            text = str(exc).split(": ", 2)[-1]
            raise MonitorProblem("schedule", text) from None

    def _validate(self, spec: MonitorSpec, collections: Any) -> None:
        try:
            check_name(spec.collection, "collection")
            if spec.environment:
                collections.read_env(spec.collection, spec.environment)
            if not collections.requests(spec.collection, spec.folder):
                raise MonitorProblem("folder", "has no request to run", 422)
        except StorageProblem as exc:
            field = str(exc).split(":", 1)[0]
            raise MonitorProblem(field, str(exc), exc.status) from None

    def list(self) -> list[dict[str, Any]]:
        return [self.public(i) for i in sorted(self.items)]

    def public(self, monitor_id: str) -> dict[str, Any]:
        item = self.items[monitor_id]
        return {"id": monitor_id, **item["spec"], "status": item["status"],
                "last_run": item["runs"][-1] if item["runs"] else None,
                "runs": item["runs"][-10:], "transitions": item["transitions"][-10:]}

    def get(self, monitor_id: str) -> dict[str, Any]:
        if monitor_id not in self.items:
            raise MonitorProblem("id", f"no monitor {monitor_id!r}", 404)
        return self.items[monitor_id]

    def create(self, spec: MonitorSpec, collections: Any) -> dict[str, Any]:
        self._validate(spec, collections)
        base = re.sub(r"[^a-z0-9]+", "-", spec.name.lower()).strip("-")[:40] or "monitor"
        monitor_id = base if base not in self.items else f"{base}-{secrets.token_hex(3)}"
        # After a delete the old version's schedule stays with the host until a restart
        # (it fires, finds no such version and does nothing): a new monitor of the same
        # name starts past it, or its schedule's name is taken ("already has a schedule").
        item = {"spec": spec.model_dump(), "version": self._retired.get(monitor_id, 0) + 1,
                "status": None, "runs": [], "transitions": []}
        if spec.enabled:
            self._arm(monitor_id, item)  # raises on a bad schedule before anything is kept
        self._retired.pop(monitor_id, None)
        self.items[monitor_id] = item
        self._save()
        return self.public(monitor_id)

    def update(self, monitor_id: str, spec: MonitorSpec, collections: Any) -> dict[str, Any]:
        item = self.get(monitor_id)
        self._validate(spec, collections)
        changed = {**item, "spec": spec.model_dump(), "version": item["version"] + 1}
        if spec.enabled:
            self._arm(monitor_id, changed)
        self.items[monitor_id] = changed
        self._save()
        return self.public(monitor_id)

    def delete(self, monitor_id: str) -> None:
        self._retired[monitor_id] = self.get(monitor_id)["version"]
        del self.items[monitor_id]
        self._save()

    async def run(self, monitor_id: str, version: int | None = None) -> dict[str, Any] | None:
        """Run the monitor once; None when a stale schedule fired (the monitor changed)."""
        item = self.items.get(monitor_id)
        if item is None or (version is not None and (
                item["version"] != version or not item["spec"]["enabled"])):
            return None
        lock = self._locks.setdefault(monitor_id, asyncio.Lock())
        async with lock:
            spec = MonitorSpec(**item["spec"])
            started = time.time()
            try:
                report = await self._run_collection(spec)
                failed = report["failed"]
                status = "passed" if failed == 0 else "failed"
                first_failure = next((r for r in report["results"] if not r["passed"]), None)
                detail = "" if first_failure is None else (
                    f"{first_failure['name']}: " + (first_failure["error"] or "; ".join(
                        a["message"] for a in first_failure["assertions"] if not a["passed"])))
                summary = {"at": started, "status": status, "passed": report["passed"],
                           "failed": failed, "detail": detail[:500],
                           "duration_ms": round(max(0.0, time.time() - started) * 1000, 1)}
            except (StorageProblem, ValueError) as exc:
                status = "failed"
                summary = {"at": started, "status": status, "passed": 0, "failed": 0,
                           "detail": f"could not run: {exc}"[:500],
                           "duration_ms": round(max(0.0, time.time() - started) * 1000, 1)}
            item = self.items.get(monitor_id)
            if item is None:  # deleted while it ran
                return summary
            previous = item["status"]
            item["status"] = status
            item["runs"] = [*item["runs"], summary][-KEEP_RUNS:]
            # A first run that passes is no news; a first failure is.
            if previous != status and not (previous is None and status == "passed"):
                transition = {"monitor": monitor_id, "name": spec.name, "at": started,
                              "from": previous, "to": status, "detail": summary["detail"]}
                item["transitions"] = [*item["transitions"], transition][-KEEP_TRANSITIONS:]
                self._notify("monitor.transition", transition)
            self._save()
            self._notify("monitor.run", summary)
            return {"monitor": self.public(monitor_id), "run": summary}
