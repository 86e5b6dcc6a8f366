"""The System Manager's work: backups, checks, copies, retention, restores, maintenance
and the health watch, on top of the v1 API (``ctx.api``) and the plugin's store.

Every long operation runs as a host job (progress, cancel) and leaves one history entry
with its steps. Failures notify; so does the first success after a failure (recovery).
Scheduled fires go through one :class:`~plexichat_desktop.plugins.schedules.
PluginScheduler` of the plugin's own, rebuilt when the user changes a schedule; a fire
starts a job and returns, and a fire that finds the previous run of the same schedule
still going is skipped, recorded in the history and notified.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from datetime import time as time_of_day
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from plexichat_desktop.plugins.api import PluginProblem
from plexichat_desktop.plugins.files import write_atomic
from plexichat_desktop.plugins.hub import EventHub
from plexichat_desktop.plugins.jobs import Job, JobHandle
from plexichat_desktop.plugins.schedules import PluginScheduler
from plexichat_desktop.scheduling.expressions import local_zone
from system_manager import crypto, maintenance, offsite, retention
from system_manager.archive import ArchiveProblem, check_archive, sha256_of
from system_manager.drill import DrillFailed, run_drill
from system_manager.models import HealthIn, MaintenanceIn, ScheduleIn, TargetIn
from system_manager.store import Store
from system_manager.windows import Window, active_window

SCHEDULE, TARGET, WINDOW, CONFIG = "schedule", "target", "window", "config"
LABELS = {"v1": "v1 API health", "perf:cpu_percent": "Server CPU",
          "perf:memory_percent": "Server memory", "perf:disk_percent": "Server disk",
          "perf:latency_ms_p95": "API latency (p95)", "disk": "Free space on the data disk",
          "backup_age": "Age of the newest backup"}


# Secrets: a target's password under its id, the ones it had before under EARLIER + id.
EARLIER = "earlier:"
EARLIER_KEPT = 10



def _folder_key(path: Path) -> str:
    """A folder as compared between targets: resolved where it exists (a link and its
    target are one folder), else as written."""
    try:
        return str(path.resolve())
    except (OSError, RuntimeError):
        return str(path)

class UserError(Exception):
    """A request that cannot be done as asked; ``status`` and a message naming the field."""

    def __init__(self, status: int, detail: str):
        super().__init__(detail)
        self.status = status
        self.detail = detail


class AdminNeeded(UserError):
    def __init__(self, detail: str):
        super().__init__(403, detail)


class StepFailed(PluginProblem):
    """One step of a run failed; the run records it and goes on where it makes sense.

    A refusal in words (a wrong checksum, a backup the server did not finish): a job
    that ends with it fails with the message, logged without a traceback."""

    def __init__(self, message: str):
        super().__init__(409, None, message)


def _iso(ts: float | None) -> str | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC).isoformat()


class Manager:
    """State and operations of the plugin; the routes in ``__init__`` are thin."""

    def __init__(self, ctx: Any, store: Store, *, daily_at: time_of_day, scrypt_log_n: int,
                 work_dir: Path, dirs: maintenance.AppDirs, v1_notifications: bool = True,
                 scheduler_factory: Callable[[], PluginScheduler] | None = None):
        self.ctx = ctx
        self.store = store
        self.log: logging.Logger = ctx.logger
        self.daily_at = daily_at
        self.scrypt_log_n = scrypt_log_n
        self.work_dir = work_dir
        self.dirs = dirs
        self.hub = EventHub()
        self.running: dict[str, Job] = {}   # schedule id (or "maintenance") -> its job
        self.health: dict[str, Any] = {"checked_at": None, "checks": [], "window": None}
        self._scheduler_factory = scheduler_factory or self._default_scheduler
        self.timer: PluginScheduler | None = None
        self._timer_lock = asyncio.Lock()
        self._secrets = ctx.data_dir / "secrets.json"
        self.v1_notifications = v1_notifications
        self._sending: set[asyncio.Task[None]] = set()

    # -- plumbing -----------------------------------------------------------------------
    def changed(self, what: str) -> None:
        """Tell the page something changed (it re-reads what it shows)."""
        self.hub.publish("changed", {"what": what, "at": time.time()})

    @property
    def api(self) -> Any:
        return self.ctx.api

    def _default_scheduler(self) -> PluginScheduler:
        return PluginScheduler(self.ctx.plugin_id, self.ctx.data_dir / "timer.json",
                               self.log, at=self.daily_at, catch_up_spread=30.0)

    async def rebuild_timer(self) -> None:
        """(Re)arm the plugin's timer from the configured schedules, maintenance plan and
        health watch. A run in progress keeps going: it is a job, not the timer's task."""
        async with self._timer_lock:
            if self.timer is not None:
                await self.timer.close()
            timer = self._scheduler_factory()
            for sid, data in self.store.all(SCHEDULE):
                spec = ScheduleIn.model_validate(data)
                if spec.enabled:
                    timer.add(spec.expression, self._fire_backup(sid), f"backup {sid}",
                              timezone=spec.timezone)
            plan = self.maintenance_plan()
            if plan.enabled:
                timer.add(plan.expression, self._fire_maintenance, "maintenance",
                          timezone=plan.timezone)
            watch = self.health_config()
            if watch.enabled:
                timer.add(f"every_{watch.interval_minutes}_minutes", self._fire_health,
                          "health watch")
            self.timer = timer
        self.changed("schedules")

    async def close(self) -> None:
        async with self._timer_lock:
            if self.timer is not None:
                await self.timer.close()
                self.timer = None

    def timer_entries(self) -> dict[str, dict[str, Any]]:
        return {r.name: r.to_dict() for r in self.timer.list()} if self.timer else {}

    # -- notifications ------------------------------------------------------------------
    def window_now(self, now: datetime | None = None) -> dict[str, Any] | None:
        windows = [(wid, Window.model_validate(w)) for wid, w in self.store.all(WINDOW)]
        return active_window(windows, now)

    def notify(self, level: str, title: str, message: str, source: str = "",
               alert: bool = False) -> dict[str, Any]:
        """Record a notification and push it; an alert inside a maintenance window is
        recorded as suppressed (visible in the list, no push, counted as read)."""
        window = self.window_now() if alert else None
        note = self.store.notify(level, title, message, source, suppressed=window is not None)
        if window is not None:
            note["window"] = window["name"]
        else:
            self.ctx.publish("notification", {"level": level, "title": title,
                                              "message": message})
            if self.v1_notifications:
                task = self.ctx.create_task(self._send_v1(level, title, message),
                                            name="system_manager v1 notification")
                self._sending.add(task)
                task.add_done_callback(self._sending.discard)
        self.hub.publish("notification", note)
        return note

    async def _send_v1(self, level: str, title: str, message: str) -> None:
        """The same notification as a v1 notification to the logged-in administrator, so
        every v1 client (and its realtime socket) sees it; failures only go to the log."""
        user = self.api.user
        if not user:
            return
        kind = level if level in ("info", "success", "warning", "error") else "info"
        try:
            await self.api.notifications.send(
                user["id"], f"System Manager: {title}"[:200], message[:2000], type=kind,
                priority="high" if level == "error" else "normal")
        except Exception as exc:  # never let a notification fail the work
            self.log.info("could not send the v1 notification %r: %s", title, exc)

    async def flush_notifications(self) -> None:
        """Wait for v1 notifications still being sent (tests, teardown)."""
        if self._sending:
            await asyncio.gather(*list(self._sending), return_exceptions=True)

    # -- account ------------------------------------------------------------------------
    async def account(self) -> dict[str, Any]:
        """Who the API layer is logged in as, and whether that is an administrator."""
        api = self.api
        if not api.logged_in:
            return {"logged_in": False, "admin": False, "user": None,
                    "reason": "Log in on the API Integration Layer page as the "
                              "administrator (the first account of this install)."}
        try:
            me = await api.auth.me()
        except Exception as exc:
            return {"logged_in": False, "admin": False, "user": None,
                    "reason": f"The API session does not work ({exc}); log in again on "
                              "the API Integration Layer page."}
        admin = bool(getattr(me, "is_admin", False))
        return {"logged_in": True, "admin": admin, "user": getattr(me, "username", None),
                "reason": None if admin else
                f"'{getattr(me, 'username', '?')}' is not an administrator; backups need "
                "the administrator (the first account registered on this install)."}

    async def require_admin(self) -> None:
        state = await self.account()
        if not state["admin"]:
            raise AdminNeeded(f"administrator needed: {state['reason']}")

    async def backups(self) -> list[dict[str, Any]]:
        """Every backup on the server (newest first) with what this plugin knows of it."""
        records: list[dict[str, Any]] = []
        offset = 0
        with self.api.bypass_cache():
            while True:
                page = await self.api.backup.list(limit=100, offset=offset)
                records.extend(b.model_dump(mode="json") for b in page.backups)
                offset += len(page.backups)
                if not page.backups or offset >= page.total:
                    break
        catalog = self.store.catalog()
        for record in records:
            record["catalog"] = catalog.get(record["id"], {"origin": "other"})
        return records

    # -- secrets (off-site passwords) ---------------------------------------------------
    def _read_secrets(self) -> dict[str, Any]:
        try:
            data = json.loads(self._secrets.read_text(encoding="utf-8"))
            return data if isinstance(data, dict) else {}
        except (OSError, ValueError):
            return {}

    def set_password(self, target_id: str, password: str | None) -> None:
        """Set (None: forget, with the earlier ones) a target's password. A changed one
        is kept among the earlier ones: the copies already in the folder were encrypted
        with it, and changing the password made them impossible to bring back."""
        secrets = self._read_secrets()
        earlier_key = f"{EARLIER}{target_id}"
        if password is None:
            secrets.pop(target_id, None)
            secrets.pop(earlier_key, None)
        else:
            old = secrets.get(target_id)
            if isinstance(old, str) and old != password:
                earlier = [p for p in secrets.get(earlier_key) or [] if p not in (old, password)]
                secrets[earlier_key] = [old, *earlier][:EARLIER_KEPT]
            secrets[target_id] = password
        write_atomic(self._secrets, json.dumps(secrets))

    def password(self, target_id: str) -> str | None:
        value = self._read_secrets().get(target_id)
        return value if isinstance(value, str) else None

    def passwords(self, target_id: str) -> list[str]:
        """The target's current password, then the earlier ones (newest first)."""
        secrets = self._read_secrets()
        current = secrets.get(target_id)
        earlier = secrets.get(f"{EARLIER}{target_id}") or []
        return [p for p in [current, *earlier] if isinstance(p, str)]

    # -- configuration ------------------------------------------------------------------
    def schedule(self, sid: str) -> ScheduleIn:
        data = self.store.get(SCHEDULE, sid)
        if data is None:
            raise UserError(404, f"schedule '{sid}' not found")
        return ScheduleIn.model_validate(data)

    def target(self, tid: str) -> TargetIn:
        data = self.store.get(TARGET, tid)
        if data is None:
            raise UserError(404, f"target '{tid}' not found")
        return TargetIn.model_validate(data)

    def check_targets(self, ids: list[str], field: str = "targets") -> None:
        known = {tid for tid, _ in self.store.all(TARGET)}
        unknown = [t for t in ids if t not in known]
        if unknown:
            raise UserError(422, f"{field}: unknown off-site target(s) {', '.join(unknown)}")

    def save_target(self, body: TargetIn, tid: str | None = None) -> str:
        if body.encrypt and not crypto.available():
            raise UserError(422, "encrypt: the 'cryptography' package is not installed "
                                 "(pip install cryptography)")
        has_password = tid is not None and self.password(tid) is not None
        if body.encrypt and not body.password and not has_password:
            raise UserError(422, "password: an encrypted target needs a password")
        # Two targets on one folder wrote one record file for both copies: one copy was
        # no longer listed (nor ever pruned), the other listed as locked.
        here = _folder_key(self.target_path(body))
        for other_id, other in self.store.all(TARGET):
            if other_id != tid and _folder_key(Path(other.get("path", "")).expanduser()) == here:
                raise UserError(409, f"path: the target {other.get('name') or other_id!r} "
                                     "already keeps its copies in this folder; give each "
                                     "target a folder of its own")
        data = body.model_dump(exclude={"password"})
        tid = self.store.put(TARGET, data, tid)
        if body.password:
            self.set_password(tid, body.password)
        self.changed("targets")
        return tid

    def target_path(self, body: TargetIn) -> Path:
        return Path(body.path).expanduser()

    def maintenance_plan(self) -> MaintenanceIn:
        return MaintenanceIn.model_validate(self.store.get(CONFIG, "maintenance") or {})

    def health_config(self) -> HealthIn:
        return HealthIn.model_validate(self.store.get(CONFIG, "health") or {})

    # -- jobs ---------------------------------------------------------------------------
    def _work_file(self, suffix: str = ".zip") -> Path:
        self.work_dir.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=".work-", suffix=suffix, dir=self.work_dir)
        os.close(fd)
        return Path(name)

    def start_backup(self, spec: ScheduleIn, source_id: str | None, trigger: str) -> Job:
        """Start a backup run (create, check, drill, copy, retention) as a job."""
        job: Job = self.ctx.jobs.start(f"backup: {spec.name}", self._backup_job, spec,
                                       source_id, trigger)
        if source_id is not None:
            self.running[source_id] = job
        return job

    def _fire_backup(self, sid: str) -> Callable[[], Awaitable[None]]:
        async def fire() -> None:
            await self.run_scheduled(sid)
        return fire

    async def run_scheduled(self, sid: str) -> Job | None:
        """What a schedule's fire does: skip (recorded in the history, notified) while its
        previous run goes on, else start a run as a job and return it.

        The fire does not wait for the job: the timer would then see the fire itself as
        still running and skip the next one silently, where this records and notifies
        it; and rebuilding the timer (any schedule edited) cannot cancel a backup."""
        spec = self.schedule(sid)
        previous = self.running.get(sid)
        if previous is not None and not previous.state.finished:
            self.store.record("backup", spec.name, "schedule", "skipped",
                              "skipped: the previous run of this schedule is still going",
                              sid, {"running_job": previous.id})
            self.notify("warning", f"Backup '{spec.name}' skipped",
                        "The previous run is still going; this fire was skipped.", sid)
            self.changed("history")
            return None
        return self.start_backup(spec, sid, "schedule")

    async def _backup_job(self, job: JobHandle, spec: ScheduleIn, source_id: str | None,
                          trigger: str) -> dict[str, Any]:
        entry = self.store.begin("backup", spec.name, trigger, source_id)
        self.changed("history")
        steps: list[dict[str, Any]] = []
        result: dict[str, Any] = {"steps": steps}
        work: Path | None = None
        status = "failed"
        try:
            await self.require_admin()
            job.progress(2, 100, "creating the backup on the server")
            stamp = datetime.now().strftime("%Y-%m-%d %H:%M")
            created = await self.api.backup.create(name=f"{spec.name} {stamp}", wait=True)
            record = created.model_dump(mode="json")
            if record.get("status") != "completed":
                raise StepFailed(f"create: the server's backup is {record.get('status')}: "
                                 f"{record.get('error') or 'still running after 5 minutes'}")
            result["backup"] = {k: record.get(k) for k in ("id", "name", "size", "checksum",
                                                           "counts", "created_at")}
            self.store.remember(record["id"], "schedule" if source_id else "manual",
                                source_id, name=record.get("name"))
            steps.append({"step": "create", "ok": True,
                          "detail": f"{record.get('size')} bytes, SHA-256 "
                                    f"{str(record.get('checksum'))[:12]}…"})
            need_file = spec.verify or spec.drill or bool(spec.targets)
            if need_file:
                work = self._work_file()
                await self._step(steps, "download", self._download(job, record, work, 10, 30))
            if work is not None and spec.verify and _passed(steps):
                await self._step(steps, "archive test", self._verify_file(job, record, work))
            if work is not None and spec.drill and _passed(steps):
                await self._step(steps, "restore drill", self._drill(job, record, work))
            # A backup that failed a check is not copied off-site, and does not make
            # retention delete older ones: they may be the last good backups.
            checked = _passed(steps)
            for tid in spec.targets:
                name = f"copy to {self._target_name(tid)}"
                if checked:
                    await self._step(steps, name, self._copy(job, record, work, tid))
                else:
                    steps.append(_skipped(name, "the new backup failed a check"))
            if source_id is not None:
                if checked:
                    await self._step(steps, "retention", self._apply_retention(
                        source_id, spec.policy, spec.timezone))
                else:
                    steps.append(_skipped("retention", "the new backup failed a check; "
                                                       "nothing was deleted"))
            status = "succeeded" if all(s["ok"] for s in steps) else "failed"
        except asyncio.CancelledError:
            status = "cancelled"
            steps.append({"step": "cancelled", "ok": False, "detail": "cancelled by the user"})
            raise
        except Exception as exc:  # recorded and notified below, then re-raised for the job
            steps.append({"step": "error", "ok": False, "detail": _text(exc)})
            raise
        finally:
            if work is not None:
                work.unlink(missing_ok=True)
            self._finish_run(entry, "backup", spec.name, source_id, status, steps, result)
        job.progress(100, 100, "done" if status == "succeeded" else "finished with problems")
        return result

    def _target_name(self, tid: str) -> str:
        data = self.store.get(TARGET, tid)
        return str(data["name"]) if data else tid

    async def _step(self, steps: list[dict[str, Any]], name: str,
                    work: Awaitable[dict[str, Any]]) -> None:
        started = time.monotonic()
        try:
            detail = await work
            steps.append({"step": name, "ok": bool(detail.pop("ok", True)),
                          "detail": detail.pop("summary", ""), "data": detail,
                          "seconds": round(time.monotonic() - started, 2)})
        except (StepFailed, ArchiveProblem, DrillFailed, offsite.OffsiteError, OSError,
                crypto.DecryptionError, ImportError) as exc:
            steps.append({"step": name, "ok": False, "detail": _text(exc),
                          "seconds": round(time.monotonic() - started, 2)})
        except Exception as exc:
            if type(exc).__name__ in ("ChecksumMismatch", "ApiHTTPError", "ApiUnavailable",
                                      "NotAuthenticated"):
                steps.append({"step": name, "ok": False, "detail": _text(exc),
                              "seconds": round(time.monotonic() - started, 2)})
            else:
                raise

    def _finish_run(self, entry: int, kind: str, name: str, source_id: str | None,
                    status: str, steps: list[dict[str, Any]], result: dict[str, Any]) -> None:
        failed = [s for s in steps if not s["ok"]]
        summary = ("; ".join(f"{s['step']}: {s['detail']}" for s in failed) if failed
                   else ", ".join(s["step"] for s in steps) + ": all passed")
        previous = self.store.last_finished(kind, source_id) if source_id else None
        self.store.finish(entry, status, summary[:2000], result)
        if status == "failed":
            self.notify("error", f"{kind.title()} '{name}' failed", summary[:500],
                        source_id or kind)
        elif status == "succeeded" and previous and previous["status"] == "failed":
            self.notify("success", f"{kind.title()} '{name}' recovered",
                        "This run succeeded after a failed one.", source_id or kind)
        self.changed("history")

    async def _download(self, job: JobHandle, record: dict[str, Any], path: Path,
                        start: int, end: int) -> dict[str, Any]:
        job.progress(start, 100, "downloading the archive (checking its SHA-256)")
        await self.api.backup.download_to(record["id"], path)
        actual = await asyncio.to_thread(sha256_of, path)
        if actual != record.get("checksum"):
            raise StepFailed(f"the downloaded archive's SHA-256 is {actual}, the server "
                             f"recorded {record.get('checksum')}: corrupted download")
        job.progress(end, 100, "download verified")
        return {"summary": f"SHA-256 matches ({actual[:12]}…)", "sha256": actual}

    async def _verify_file(self, job: JobHandle, record: dict[str, Any], path: Path
                           ) -> dict[str, Any]:
        job.progress(35, 100, "testing the archive (CRC of every member, database)")
        try:
            report = await asyncio.to_thread(check_archive, path, self.work_dir)
        except ArchiveProblem as exc:
            self.store.remember(record["id"], verify={"ok": False, "at": time.time(),
                                                      "detail": str(exc)})
            raise
        self.store.remember(record["id"], verify={"ok": True, "at": time.time(),
                                                  "members": report["members"]})
        return {"summary": f"{report['members']} members, integrity ok, counts match the "
                           "manifest", "counts": report["counts"]}

    async def _drill(self, job: JobHandle, record: dict[str, Any], path: Path
                     ) -> dict[str, Any]:
        def progress(percent: int, message: str) -> None:
            job.progress(50 + percent * 0.3, 100, f"restore drill: {message}")

        try:
            report = await run_drill(path, str(record.get("checksum")), self.work_dir,
                                     progress)
        except DrillFailed as exc:
            self.store.remember(record["id"], drill={"ok": False, "at": time.time(),
                                                     "detail": str(exc)})
            raise
        self.store.remember(record["id"], drill={"ok": report["passed"], "at": time.time(),
                                                 "tables": report["tables"],
                                                 "files_verified": report["files_verified"]})
        counts = ", ".join(f"{t['table']} {t['restored']}" for t in report["tables"])
        summary = (f"restored in {report['seconds']} s: {counts}; "
                   f"{report['files_verified']}/{report['files_checked']} files verified")
        if not report["passed"]:
            bad = [f"{t['table']}: manifest {t['manifest']}, restored {t['restored']}"
                   for t in report["tables"] if not t["ok"]]
            summary = "counts differ: " + "; ".join(bad + report["file_problems"][:3]
                                                    + ([] if report["integrity"] == ["ok"]
                                                       else report["integrity"][:2]))
        return {"ok": report["passed"], "summary": summary, **report}

    async def _copy(self, job: JobHandle, record: dict[str, Any], path: Path | None,
                    tid: str) -> dict[str, Any]:
        target = self.target(tid)
        folder = self.target_path(target)
        own_file = path is None
        if path is None:
            path = self._work_file()
            await self._download(job, record, path, 80, 85)
        password = self.password(tid) if target.encrypt else None
        if target.encrypt and not password:
            raise StepFailed(f"target '{target.name}' encrypts but has no password set")
        job.progress(85, 100, f"copying to {target.name}")
        try:
            copied = await asyncio.to_thread(
                self._copy_blocking, path, record, folder, target, password)
        finally:
            if own_file:
                path.unlink(missing_ok=True)
        return {"summary": f"{copied['file']} ({'encrypted, ' if copied['encrypted'] else ''}"
                           f"read back and verified; {len(copied['pruned'])} old removed)",
                **copied}

    def _copy_blocking(self, path: Path, record: dict[str, Any], folder: Path,
                       target: TargetIn, password: str | None) -> dict[str, Any]:
        copied = offsite.copy_archive(path, record, folder, target.name, password=password,
                                      log_n=self.scrypt_log_n)
        copied["pruned"] = offsite.prune(folder, target.keep, protect=copied["file"])
        return copied

    # -- retention ----------------------------------------------------------------------
    async def retention_plan(self, scope: str, policy: retention.Policy,
                             timezone: str | None) -> dict[str, Any]:
        """The dry run: every completed backup of ``scope`` with keep/delete and why."""
        if scope != "all":
            self.schedule(scope)  # 404 for an unknown schedule
        records = [r for r in await self.backups() if r.get("status") == "completed"]
        if scope != "all":
            records = [r for r in records if r["catalog"].get("source_id") == scope]
        items = [retention.Item(r["id"], retention.parse_time(r["created_at"]),
                                r.get("name") or "") for r in records]
        decisions = retention.plan(items, policy, timezone)
        zone = ZoneInfo(timezone) if timezone else local_zone()
        rows = [d.to_dict(zone) for d in decisions]
        return {"scope": scope, "policy": policy.model_dump(), "timezone": zone.key,
                "decisions": rows, "keep": sum(1 for d in decisions if d.keep),
                "delete": [d.item.id for d in decisions if not d.keep],
                "server_max_backups": None}

    async def apply_retention(self, scope: str, policy: retention.Policy,
                              timezone: str | None, confirmed: list[str] | None
                              ) -> dict[str, Any]:
        """Delete what a fresh plan deletes; with ``confirmed``, only those of them (what
        the user saw in the dry run). Returns the deleted ids and the errors."""
        plan = await self.retention_plan(scope, policy, timezone)
        doomed = [i for i in plan["delete"] if confirmed is None or i in set(confirmed)]
        deleted, errors = [], []
        for backup_id in doomed:
            try:
                await self.api.backup.delete(backup_id)
                self.store.forget(backup_id)
                deleted.append(backup_id)
            except Exception as exc:
                errors.append(f"{backup_id}: {_text(exc)}")
        left_alone = [i for i in (confirmed or []) if i not in plan["delete"]]
        self.changed("backups")
        return {"deleted": deleted, "errors": errors, "kept": plan["keep"],
                "left_alone": left_alone}

    async def _apply_retention(self, sid: str, policy: retention.Policy,
                               timezone: str | None) -> dict[str, Any]:
        outcome = await self.apply_retention(sid, policy, timezone, None)
        return {"ok": not outcome["errors"],
                "summary": f"kept {outcome['kept']}, deleted {len(outcome['deleted'])}"
                           + (f"; errors: {'; '.join(outcome['errors'])}"
                              if outcome["errors"] else ""), **outcome}

    # -- verification of an existing backup ----------------------------------------------
    async def verify_job(self, job: JobHandle, backup_id: str, drill: bool) -> dict[str, Any]:
        record = (await self.api.backup.get(backup_id)).model_dump(mode="json")
        name = record.get("name") or backup_id
        entry = self.store.begin("verify", name, "manual", backup_id)
        steps: list[dict[str, Any]] = []
        status = "failed"
        work = self._work_file()
        try:
            await self._step(steps, "download", self._download(job, record, work, 5, 30))
            if steps[-1]["ok"]:
                await self._step(steps, "archive test", self._verify_file(job, record, work))
                if drill and steps[-1]["ok"]:
                    await self._step(steps, "restore drill", self._drill(job, record, work))
            else:
                self.store.remember(backup_id, verify={"ok": False, "at": time.time(),
                                                       "detail": steps[-1]["detail"]})
            status = "succeeded" if all(s["ok"] for s in steps) else "failed"
        finally:
            work.unlink(missing_ok=True)
            self._finish_run(entry, "verify", name, None, status, steps, {"steps": steps})
        job.progress(100, 100, "verified" if status == "succeeded" else "problems found")
        return {"backup_id": backup_id, "ok": status == "succeeded", "steps": steps}

    async def copy_job(self, job: JobHandle, backup_id: str, tid: str) -> dict[str, Any]:
        record = (await self.api.backup.get(backup_id)).model_dump(mode="json")
        name = f"{record.get('name') or backup_id} → {self._target_name(tid)}"
        entry = self.store.begin("copy", name, "manual", tid)
        steps: list[dict[str, Any]] = []
        status = "failed"
        try:
            await self._step(steps, "copy", self._copy(job, record, None, tid))
            status = "succeeded" if steps[-1]["ok"] else "failed"
        finally:
            self._finish_run(entry, "copy", name, tid, status, steps, {"steps": steps})
        if status != "succeeded":
            raise StepFailed(steps[-1]["detail"])
        job.progress(100, 100, "copied")  # the last step said 85 % while the job was done
        return {"backup_id": backup_id, "steps": steps}

    # -- restore ------------------------------------------------------------------------
    async def safety_evicts(self, backup_id: str) -> str | None:
        """Why the safety backup a restore makes first would delete ``backup_id`` (the
        server keeps its newest ``max_backups`` completed ones and deletes the oldest
        when one more is made), or None when it would not."""
        finished, offset = 0, 0
        while True:
            listing = await self.api.backup.list(limit=100, offset=offset)
            keep = listing.max_backups
            for backup in listing.backups:
                if backup.id == backup_id:
                    if keep is None or finished < keep - 1:
                        return None
                    return (f"backup_id: the server keeps {keep} backups and this is the "
                            f"oldest of them to go: the safety backup made before the "
                            f"restore would delete it. Delete a newer backup, or raise "
                            f"[api] max_backups, then restore")
                if backup.status == "completed":  # failed ones are kept apart
                    finished += 1
            offset += len(listing.backups)
            if not listing.has_more or not listing.backups:
                return None

    async def restore_job(self, job: JobHandle, backup_id: str, checksum: str
                          ) -> dict[str, Any]:
        """Safety backup first, then the restore with the expected checksum."""
        record = (await self.api.backup.get(backup_id)).model_dump(mode="json")
        name = record.get("name") or backup_id
        entry = self.store.begin("restore", name, "manual", backup_id)
        steps: list[dict[str, Any]] = []
        status = "failed"
        result: dict[str, Any] = {"steps": steps}
        try:
            if str(record.get("checksum", "")).lower() != checksum.lower():
                raise StepFailed(f"checksum: you expected {checksum.lower()}, the backup's "
                                 f"recorded SHA-256 is {record.get('checksum')}; nothing "
                                 "was changed")
            if (evicted := await self.safety_evicts(backup_id)) is not None:
                raise StepFailed(f"{evicted}; nothing was changed")
            job.progress(10, 100, "making the safety backup of the current data")
            safety = (await self.api.backup.create(
                name=f"safety before restoring {name}", wait=True)).model_dump(mode="json")
            if safety.get("status") != "completed":
                raise StepFailed(f"safety backup: {safety.get('status')} "
                                 f"({safety.get('error')}); nothing was restored")
            self.store.remember(safety["id"], "safety", backup_id, name=safety.get("name"))
            result["safety_backup"] = {k: safety.get(k) for k in ("id", "name", "checksum",
                                                                  "counts")}
            # Checked as the README says (downloaded, SHA-256, every member and the
            # database): it is the way back if the restore is regretted.
            work = self._work_file()
            try:
                await self._download(job, safety, work, 20, 30)
                checked = await self._verify_file(job, safety, work)
            except Exception as exc:
                raise StepFailed(f"safety backup: it did not pass its check ({_text(exc)}); "
                                 "nothing was restored") from exc
            finally:
                work.unlink(missing_ok=True)
            steps.append({"step": "safety backup", "ok": True,
                          "detail": f"{safety.get('name')} ({str(safety['checksum'])[:12]}…), "
                                    f"{checked['summary']}"})
            job.progress(50, 100, "restoring (the server checks the SHA-256 first)")
            sent = asyncio.ensure_future(self.api.backup.restore(
                backup_id, confirm=True, checksum=checksum.lower()))
            try:
                restored = await asyncio.shield(sent)
            except asyncio.CancelledError:
                # Once asked, the server restores whatever happens here: a cancel that
                # ended the job recorded "failed" over a restore that went on.
                if task := asyncio.current_task():
                    task.uncancel()
                restored = await asyncio.shield(sent)  # a second cancel leaves it be too
                result["cancel"] = "too late: the server had begun the restore, it was done"
            counts = dict(restored.counts)
            result["counts"] = counts
            steps.append({"step": "restore", "ok": True,
                          "detail": ", ".join(f"{k} {v}" for k, v in counts.items())})
            status = "succeeded"
        except Exception as exc:
            steps.append({"step": "restore", "ok": False, "detail": _text(exc)})
            raise
        finally:
            self._finish_run(entry, "restore", name, None, status, steps, result)
        job.progress(100, 100, "restored")
        result["note"] = ("Sessions issued after the backup no longer work: log in again "
                          "on the API Integration Layer page if asked.")
        return result

    async def import_job(self, job: JobHandle, tid: str, file: str,
                         password: str | None = None) -> dict[str, Any]:
        """Bring an off-site copy back to the server (decrypt with ``password``, else the
        target's current or an earlier password; check; upload)."""
        target = self.target(tid)
        folder = self.target_path(target)
        meta = next((m for m in offsite.list_copies(folder) if m.get("file") == file), None)
        if meta is None:
            raise UserError(404, f"file: no copy {file!r} in target '{target.name}'")
        entry = self.store.begin("import", file, "manual", tid)
        steps: list[dict[str, Any]] = []
        status = "failed"
        out = self._work_file()
        try:
            job.progress(10, 100, "checking (and decrypting) the copy")
            await asyncio.to_thread(offsite.restore_copy, folder, meta, out,
                                    [password] if password else self.passwords(tid))
            checksum = (meta.get("backup") or {}).get("checksum") or await asyncio.to_thread(
                sha256_of, out)
            job.progress(60, 100, "uploading to the server")
            uploaded = await self.api.backup.upload(out, checksum,
                                                    name=f"from {target.name}: {file}")
            self.store.remember(uploaded.id, "imported", tid, name=uploaded.name)
            steps.append({"step": "import", "ok": True, "detail": f"backup {uploaded.id}"})
            status = "succeeded"
            job.progress(100, 100, "brought back")  # it ended at 60 %, "uploading"
            return {"backup_id": uploaded.id, "checksum": checksum}
        except Exception as exc:
            steps.append({"step": "import", "ok": False, "detail": _text(exc)})
            raise
        finally:
            out.unlink(missing_ok=True)
            self._finish_run(entry, "import", file, None, status, steps, {"steps": steps})

    # -- maintenance --------------------------------------------------------------------
    async def _fire_maintenance(self) -> None:
        previous = self.running.get("maintenance")
        if previous is not None and not previous.state.finished:
            self.store.record("maintenance", "maintenance", "schedule", "skipped",
                              "skipped: the previous maintenance run is still going")
            self.changed("history")
            return
        plan = self.maintenance_plan()
        if plan.only_in_window and self.window_now() is None:
            self.store.record("maintenance", "maintenance", "schedule", "skipped",
                              "skipped: outside every maintenance window")
            self.changed("history")
            return
        job = self.ctx.jobs.start("maintenance", self.maintenance_job, plan.tasks, "schedule")
        self.running["maintenance"] = job

    def _busy_paths(self) -> set[Path]:
        """Work files and drill homes of jobs still running: never cleaned up."""
        if all(j.state.finished for j in self.ctx.jobs.list()
               if j.name != "maintenance"):
            return set()
        return set(self.work_dir.glob(".*"))

    async def maintenance_preview(self) -> dict[str, Any]:
        plan = self.maintenance_plan()
        cleanup = await asyncio.to_thread(maintenance.cleanup_plan, self.dirs,
                                          log_days=plan.log_days, temp_days=plan.temp_days,
                                          busy=self._busy_paths())
        tests = await asyncio.to_thread(maintenance.results_retention_plan,
                                        self.dirs.tests_db, plan.test_keep_days,
                                        plan.test_keep_runs)
        databases = await asyncio.to_thread(maintenance.find_databases, self.dirs)
        return {"cleanup": cleanup, "cleanup_bytes": sum(e["bytes"] for e in cleanup),
                "test_results": tests, "databases": databases, "plan": plan.model_dump()}

    async def maintenance_job(self, job: JobHandle, tasks: list[str], trigger: str
                              ) -> dict[str, Any]:
        plan = self.maintenance_plan()
        entry = self.store.begin("maintenance", "maintenance", trigger, "maintenance")
        steps: list[dict[str, Any]] = []
        status = "failed"
        try:
            if "sqlite" in tasks or "vacuum" in tasks:
                databases = await asyncio.to_thread(maintenance.find_databases, self.dirs)
                results = []
                for index, db in enumerate(databases):
                    job.progress(index, len(databases) + 3, f"checking {db['name']} "
                                                            f"({db['owner']})")
                    results.append({**await asyncio.to_thread(
                        maintenance.check_database, Path(db["path"]),
                        "vacuum" in tasks and db["vacuum"]), "owner": db["owner"]})
                damaged = [r for r in results if r["status"] in ("damaged", "error")]
                busy = sum(1 for r in results if r["status"] == "busy")
                saved = sum(r["bytes_before"] - r.get("bytes_after", r["bytes_before"])
                            for r in results)
                detail = (f"{len(results)} databases, "
                          f"{sum(1 for r in results if r['vacuumed'])} vacuumed, "
                          f"{max(saved, 0)} bytes freed")
                if damaged:
                    detail += f"; damaged: {', '.join(r['path'] for r in damaged)}"
                if busy:
                    detail += f"; {busy} busy (skipped)"
                in_use = sum(1 for r in results if r.get("skipped"))
                if in_use:
                    detail += f"; {in_use} in use, not vacuumed"
                steps.append({"step": "sqlite", "ok": not damaged, "data": results,
                              "detail": detail})
            if "cleanup" in tasks:
                job.message("cleaning up logs and leftovers")
                entries = await asyncio.to_thread(maintenance.cleanup_plan, self.dirs,
                                                  log_days=plan.log_days,
                                                  temp_days=plan.temp_days,
                                                  busy=self._busy_paths())
                done = await asyncio.to_thread(maintenance.apply_cleanup, entries)
                steps.append({"step": "cleanup", "ok": not done["errors"], "data": done,
                              "detail": f"{done['deleted']} removed, {done['bytes']} bytes"
                                        + (f"; {len(done['errors'])} errors"
                                           if done["errors"] else "")})
            if "test_results" in tasks:
                job.message("applying test-result retention")
                gone = await asyncio.to_thread(maintenance.apply_test_retention,
                                               self.dirs.tests_db, plan.test_keep_days,
                                               plan.test_keep_runs)
                steps.append({"step": "test results", "ok": True,
                              "detail": f"{gone} old runs deleted"})
            status = "succeeded" if all(s["ok"] for s in steps) else "failed"
        finally:
            self._finish_run(entry, "maintenance", "maintenance", "maintenance", status,
                             steps, {"steps": steps})
        job.progress(1, 1, "done")
        return {"steps": steps}

    # -- health -------------------------------------------------------------------------
    async def _fire_health(self) -> None:
        await self.check_health()

    async def check_health(self, now: datetime | None = None) -> dict[str, Any]:
        """Run every check, then raise or resolve alerts (notifying transitions, quietly
        inside a maintenance window)."""
        watch = self.health_config()
        checks: list[dict[str, Any]] = []

        def add(key: str, ok: bool, severity: str, message: str, value: Any = None,
                label: str | None = None) -> None:
            checks.append({"key": key, "label": label or LABELS.get(key, key), "ok": ok,
                           "severity": "ok" if ok else severity, "message": message,
                           "value": value})

        logged_in = self.api.logged_in
        if watch.check_v1:
            try:
                with self.api.bypass_cache():
                    health = await self.api.system.health()
                add("v1", health.status == "healthy", "critical",
                    f"v1 API {health.status}", health.status)
            except Exception as exc:
                add("v1", False, "critical", f"v1 API not answering: {_text(exc)}")
        if watch.check_performance and logged_in:
            try:
                with self.api.bypass_cache():
                    alerts = await self.api.performance.alerts(active_only=True)
                active = {str(a.get("metric")): a for a in alerts.alerts}
                for metric in ("cpu_percent", "memory_percent", "disk_percent",
                               "latency_ms_p95"):
                    alert = active.get(metric)
                    add(f"perf:{metric}", alert is None, str((alert or {}).get("severity",
                                                                               "warning")),
                        str(alert.get("message")) if alert else f"{metric} within limits",
                        (alert or {}).get("value"))
            except Exception as exc:
                self.log.info("performance alerts unavailable: %s", exc)
        usage = shutil.disk_usage(self.dirs.data_dir)
        free_pct = 100.0 * usage.free / usage.total if usage.total else 100.0
        free_gb = usage.free / (1 << 30)
        disk_ok = free_pct >= watch.disk_min_free_percent and free_gb >= watch.disk_min_free_gb
        add("disk", disk_ok, "critical" if free_pct < watch.disk_min_free_percent / 2 else
            "warning", f"{free_gb:.1f} GiB free ({free_pct:.1f} %) on the data disk",
            round(free_pct, 1))
        for tid, data in self.store.all(TARGET):
            target = TargetIn.model_validate(data)
            try:
                await asyncio.to_thread(offsite.check_folder, self.target_path(target),
                                        target.name)
                add(f"target:{tid}", True, "warning", f"target '{target.name}' reachable",
                    label=f"Off-site target “{target.name}”")
            except offsite.OffsiteError as exc:
                add(f"target:{tid}", False, "warning", str(exc),
                    label=f"Off-site target “{target.name}”")
        enabled = [s for _, s in self.store.all(SCHEDULE) if s.get("enabled", True)]
        if watch.backup_max_age_hours and enabled and logged_in:
            try:
                newest = next((b for b in await self.backups()
                               if b.get("status") == "completed"), None)
                age = (None if newest is None else
                       (time.time() - retention.parse_time(newest["created_at"]).timestamp())
                       / 3600.0)
                ok = age is not None and age <= watch.backup_max_age_hours
                add("backup_age", ok, "warning",
                    "no completed backup" if age is None else
                    f"newest backup is {age:.1f} h old (limit "
                    f"{watch.backup_max_age_hours:g} h)", None if age is None else round(age, 1))
            except Exception as exc:
                self.log.info("backup age unavailable: %s", exc)
        window = self.window_now(now)
        self._transitions(checks)
        self.health = {"checked_at": time.time(), "checks": checks, "window": window}
        self.changed("health")
        return self.health

    def _transitions(self, checks: list[dict[str, Any]]) -> None:
        known = self.store.alerts()
        now = time.time()
        for check in checks:
            current = known.get(check["key"])
            firing = current is not None and current["state"] == "firing"
            if not check["ok"] and not firing:
                self.store.set_alert(check["key"], "firing", check["severity"],
                                     check["message"], now)
                self.notify("error" if check["severity"] == "critical" else "warning",
                            f"Alert: {check['label']}", check["message"], check["key"],
                            alert=True)
            elif check["ok"] and firing:
                self.store.set_alert(check["key"], "ok", "ok", check["message"], now)
                self.notify("success", f"Recovered: {check['label']}", check["message"],
                            check["key"], alert=True)
            elif current is not None:
                self.store.set_alert(check["key"], current["state"], check["severity"],
                                     check["message"], current["since"])


def _passed(steps: list[dict[str, Any]]) -> bool:
    return all(s["ok"] for s in steps)


def _skipped(step: str, why: str) -> dict[str, Any]:
    # ok: a skip is not a failure of its own (the run already failed on the cause).
    return {"step": step, "ok": True, "skipped": True, "detail": f"skipped: {why}"}


def _text(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


async def wait_job(job: Job) -> Job:
    """Wait for ``job`` to finish (tests and the schedule fire)."""
    if job.task is not None:
        with contextlib.suppress(Exception):
            await asyncio.gather(job.task, return_exceptions=True)
    return job
