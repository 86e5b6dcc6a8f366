"""System Manager: backups with GFS retention, verification and restore drills, off-site
copies, a restore wizard, maintenance tasks and windows, and a health watch.

Routes are under ``/plugins/system_manager/api/``; the work is in :mod:`.service`. The
backups themselves are the v1 API's (``/api/v1/backup``, administrators), reached through
the API integration layer's session (``ctx.api``).
"""

from __future__ import annotations

import asyncio
import functools
import tempfile
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from datetime import time as time_of_day
from pathlib import Path
from typing import Any

from fastapi import Query
from starlette.responses import JSONResponse, StreamingResponse

from plexichat_desktop.plugins.api import Plugin, PluginContext
from system_manager import crypto, maintenance, offsite
from system_manager.models import (
    Config,
    CopyIn,
    HealthIn,
    ImportIn,
    MaintenanceIn,
    ManualBackupIn,
    RestoreIn,
    RetentionIn,
    ScheduleIn,
    TargetIn,
    VerifyIn,
    WindowIn,
)
from system_manager.service import (
    CONFIG,
    SCHEDULE,
    TARGET,
    WINDOW,
    Manager,
    UserError,
)
from system_manager.store import Store
from system_manager.windows import Window

__all__ = ["SystemManagerPlugin"]

Handler = Callable[..., Awaitable[Any]]


def _guard(fn: Handler) -> Handler:
    """Turn the plugin's and the API's errors into answers that name the cause."""
    @functools.wraps(fn)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return await fn(*args, **kwargs)
        except UserError as exc:
            return JSONResponse({"detail": exc.detail}, status_code=exc.status)
        except Exception as exc:
            status = getattr(exc, "status", None)
            name = type(exc).__name__
            if name == "ApiPermissionError":
                return JSONResponse({"detail": str(exc)}, status_code=403)
            if name == "NotAuthenticated":
                return JSONResponse({"detail": "not logged in: log in on the API Integration "
                                               f"Layer page ({exc})"}, status_code=401)
            if isinstance(status, int) and 400 <= status < 500:
                detail = getattr(exc, "detail", str(exc))
                if status == 403:
                    detail = f"administrator needed: {detail}"
                return JSONResponse({"detail": detail}, status_code=status)
            if name in ("ApiUnavailable", "ApiHTTPError"):
                return JSONResponse({"detail": f"the v1 API failed: {exc}"}, status_code=502)
            raise
    return wrapper


class SystemManagerPlugin(Plugin):
    """The plugin; ``self.manager`` holds the state (tests reach it through here)."""

    settings_model = Config
    manager: Manager

    async def setup(self, ctx: PluginContext) -> None:
        config: Config = ctx.config
        hour, minute = (int(p) for p in config.daily_at.split(":"))
        work_dir = Path(config.work_dir).expanduser() if config.work_dir else ctx.data_dir
        data_dir = ctx.data_dir.parent.parent
        dirs = maintenance.AppDirs(
            data_dir=data_dir, plugin_data=ctx.data_dir.parent,
            log_dir=maintenance.find_log_dir(), temp_dir=Path(tempfile.gettempdir()),
            own_dir=work_dir)
        store = Store(ctx.data_dir / "system_manager.sqlite3")
        store.interrupted()
        self.manager = Manager(ctx, store, daily_at=time_of_day(hour, minute),
                               scrypt_log_n=config.scrypt_log_n, work_dir=work_dir,
                               dirs=dirs, v1_notifications=config.v1_notifications)
        ctx.on_teardown(self._close)
        self._routes(ctx)
        await self.manager.rebuild_timer()

    async def _close(self) -> None:
        # The host cancels jobs only after these callbacks; the store must outlive them
        # (a cancelled run still writes its history entry).
        await self.manager.close()
        await self.manager.flush_notifications()
        jobs = self.manager.ctx.jobs
        unfinished = [j for j in jobs.list() if not j.state.finished]
        for job in unfinished:
            jobs.cancel(job.id)
        for job in unfinished:
            await jobs.wait(job.id)
        self.manager.store.close()

    # -- routes -------------------------------------------------------------------------
    def _routes(self, ctx: PluginContext) -> None:
        m = self.manager

        def route(path: str, fn: Handler, method: str = "GET", **kw: Any) -> None:
            ctx.add_route(path, _guard(fn), methods=[method], **kw)

        def job_answer(job: Any) -> JSONResponse:
            return JSONResponse(job.to_dict(), status_code=202)

        async def state() -> dict[str, Any]:
            account = await m.account()
            timer = m.timer_entries()
            schedules = []
            for sid, data in m.store.all(SCHEDULE):
                entry = timer.get(f"backup {sid}", {})
                job = m.running.get(sid)
                schedules.append({"id": sid, **data, "next_fire_at": entry.get("next_fire_iso"),
                                  "last_status": entry.get("last_status"),
                                  "running": job is not None and not job.state.finished,
                                  "skipped": m.store.count("backup", sid, "skipped"),
                                  "last_run": m.store.last_finished("backup", sid)})
            targets = [{"id": tid, **data, "password_set": m.password(tid) is not None}
                       for tid, data in m.store.all(TARGET)]
            now = datetime.now(UTC)
            windows = []
            for wid, data in m.store.all(WINDOW):
                window = Window.model_validate(data)
                nxt = window.next_start(now)
                windows.append({"id": wid, **data, "describe": window.describe(),
                                "active": window.occurrence_at(now) is not None,
                                "next_start": nxt.isoformat() if nxt else None})
            maint = timer.get("maintenance", {})
            return {
                "account": account, "schedules": schedules, "targets": targets,
                "windows": windows, "window_now": m.window_now(),
                "maintenance": {**m.maintenance_plan().model_dump(),
                                "next_fire_at": maint.get("next_fire_iso"),
                                "last_run": m.store.last_finished("maintenance",
                                                                  "maintenance")},
                "health_config": m.health_config().model_dump(),
                "health": m.health, "alerts": list(m.store.alerts().values()),
                "notifications": m.store.notifications(30), "unread": m.store.unread(),
                "history": m.store.history(40),
                "capabilities": {"encryption": crypto.available()},
            }

        async def backups() -> dict[str, Any]:
            await m.require_admin()
            return {"backups": await m.backups()}

        async def create_backup(body: ManualBackupIn | None = None) -> JSONResponse:
            body = body or ManualBackupIn()
            m.check_targets(body.targets)
            await m.require_admin()
            spec = ScheduleIn(name=body.name or "manual backup", expression="daily",
                              verify=body.verify, drill=body.drill, targets=body.targets)
            return job_answer(m.start_backup(spec, None, "manual"))

        async def verify_backup(backup_id: str, body: VerifyIn | None = None) -> JSONResponse:
            await m.require_admin()
            await m.api.backup.get(backup_id)  # 404 now, not inside the job
            drill = (body or VerifyIn()).drill
            return job_answer(ctx.jobs.start("verify and drill" if drill else "verify",
                                             m.verify_job, backup_id, drill))

        async def copy_backup(backup_id: str, body: CopyIn) -> JSONResponse:
            m.check_targets([body.target_id], "target_id")
            await m.require_admin()
            await m.api.backup.get(backup_id)
            return job_answer(ctx.jobs.start("off-site copy", m.copy_job, backup_id,
                                             body.target_id))

        async def delete_backup(backup_id: str) -> dict[str, Any]:
            await m.require_admin()
            records = await m.backups()
            completed = [r for r in records if r.get("status") == "completed"]
            if completed and completed[0]["id"] == backup_id:
                raise UserError(409, "backup_id: this is the newest completed backup; it is "
                                     "never deleted from here")
            await m.api.backup.delete(backup_id)
            m.store.forget(backup_id)
            m.changed("backups")
            return {"deleted": backup_id}

        # schedules
        async def add_schedule(body: ScheduleIn) -> JSONResponse:
            m.check_targets(body.targets)
            sid = m.store.put(SCHEDULE, body.model_dump())
            await m.rebuild_timer()
            return JSONResponse({"id": sid, **body.model_dump()}, status_code=201)

        async def put_schedule(sid: str, body: ScheduleIn) -> dict[str, Any]:
            m.schedule(sid)
            m.check_targets(body.targets)
            m.store.put(SCHEDULE, body.model_dump(), sid)
            await m.rebuild_timer()
            return {"id": sid, **body.model_dump()}

        async def delete_schedule(sid: str) -> dict[str, Any]:
            m.schedule(sid)
            m.store.delete(SCHEDULE, sid)
            await m.rebuild_timer()
            return {"deleted": sid}

        async def run_schedule(sid: str) -> JSONResponse:
            spec = m.schedule(sid)
            running = m.running.get(sid)
            if running is not None and not running.state.finished:
                raise UserError(409, f"schedule '{spec.name}' is running (job {running.id})")
            await m.require_admin()
            return job_answer(m.start_backup(spec, sid, "manual"))

        # retention
        async def retention_preview(body: RetentionIn) -> dict[str, Any]:
            await m.require_admin()
            return await m.retention_plan(body.scope, body.policy, body.timezone)

        async def retention_apply(body: RetentionIn) -> dict[str, Any]:
            if body.delete is None:
                raise UserError(422, "delete: list the backup ids the dry run showed; only "
                                     "those are deleted")
            await m.require_admin()
            result = await m.apply_retention(body.scope, body.policy, body.timezone,
                                             body.delete)
            m.store.record("retention", f"retention ({body.scope})", "manual",
                           "failed" if result["errors"] else "succeeded",
                           f"deleted {len(result['deleted'])}, kept {result['kept']}",
                           None, result)
            m.changed("history")
            return result

        # targets
        async def add_target(body: TargetIn) -> JSONResponse:
            tid = m.save_target(body)
            await m.rebuild_timer()
            return JSONResponse({"id": tid, **body.model_dump(exclude={"password"})},
                                status_code=201)

        async def put_target(tid: str, body: TargetIn) -> dict[str, Any]:
            m.target(tid)
            m.save_target(body, tid)
            return {"id": tid, **body.model_dump(exclude={"password"})}

        async def delete_target(tid: str) -> dict[str, Any]:
            m.target(tid)
            users = [s["name"] for _, s in m.store.all(SCHEDULE) if tid in s.get("targets", [])]
            if users:
                raise UserError(409, f"target '{tid}' is used by schedule(s) "
                                     f"{', '.join(users)}; remove it there first")
            m.store.delete(TARGET, tid)
            m.set_password(tid, None)
            m.changed("targets")
            return {"deleted": tid, "note": "copies already in the folder are kept"}

        async def target_copies(tid: str, verify: bool = False) -> dict[str, Any]:
            target = m.target(tid)
            folder = m.target_path(target)
            try:
                await asyncio.to_thread(offsite.check_folder, folder, target.name)
                reachable, reason = True, None
            except offsite.OffsiteError as exc:
                reachable, reason = False, str(exc)
            copies = await asyncio.to_thread(offsite.list_copies, folder)
            if verify:
                for meta in copies:
                    meta["check"] = await asyncio.to_thread(
                        offsite.verify_copy, folder, meta, m.passwords(tid))
            return {"target": {"id": tid, **target.model_dump(exclude={"password"})},
                    "reachable": reachable, "reason": reason, "copies": copies}

        async def import_copy(tid: str, body: ImportIn) -> JSONResponse:
            target = m.target(tid)
            await m.require_admin()
            copies = await asyncio.to_thread(offsite.list_copies, m.target_path(target))
            if not any(c.get("file") == body.file for c in copies):
                raise UserError(404, f"file: no copy {body.file!r} in '{target.name}'")
            return job_answer(ctx.jobs.start("bring back an off-site copy", m.import_job,
                                             tid, body.file, body.password))

        # restore
        async def restore_preflight(backup_id: str = Query(min_length=1, max_length=64)
                                    ) -> dict[str, Any]:
            await m.require_admin()
            record = (await m.api.backup.get(backup_id)).model_dump(mode="json")
            return {"backup": record, "catalog": m.store.catalog_entry(backup_id),
                    "blocked": await m.safety_evicts(backup_id),
                    "steps": ["a safety backup of the current data is made first",
                              "the server checks the archive's SHA-256 against the one "
                              "you expect", "all v1 data is replaced, sessions included"]}

        async def restore(body: RestoreIn) -> JSONResponse:
            if not body.confirm:
                raise UserError(422, "confirm: must be true; a restore replaces all v1 data")
            await m.require_admin()
            await m.api.backup.get(body.backup_id)
            if (evicted := await m.safety_evicts(body.backup_id)) is not None:
                raise UserError(409, evicted)
            return job_answer(ctx.jobs.start("restore", m.restore_job, body.backup_id,
                                             body.checksum))

        # maintenance
        async def put_maintenance(body: MaintenanceIn) -> dict[str, Any]:
            m.store.put(CONFIG, body.model_dump(), "maintenance")
            await m.rebuild_timer()
            return body.model_dump()

        async def maintenance_preview() -> dict[str, Any]:
            return await m.maintenance_preview()

        async def maintenance_run(body: MaintenanceIn | None = None) -> JSONResponse:
            tasks = (body or m.maintenance_plan()).tasks
            running = m.running.get("maintenance")
            if running is not None and not running.state.finished:
                raise UserError(409, "maintenance is already running")
            job = ctx.jobs.start("maintenance", m.maintenance_job, list(tasks), "manual")
            m.running["maintenance"] = job
            return job_answer(job)

        async def usage() -> dict[str, Any]:
            return await asyncio.to_thread(maintenance.disk_usage, m.dirs)

        # windows
        async def add_window(body: WindowIn) -> JSONResponse:
            wid = m.store.put(WINDOW, body.model_dump())
            m.changed("windows")
            return JSONResponse({"id": wid, **body.model_dump()}, status_code=201)

        async def put_window(wid: str, body: WindowIn) -> dict[str, Any]:
            if m.store.get(WINDOW, wid) is None:
                raise UserError(404, f"window '{wid}' not found")
            m.store.put(WINDOW, body.model_dump(), wid)
            m.changed("windows")
            return {"id": wid, **body.model_dump()}

        async def delete_window(wid: str) -> dict[str, Any]:
            if not m.store.delete(WINDOW, wid):
                raise UserError(404, f"window '{wid}' not found")
            m.changed("windows")
            return {"deleted": wid}

        # health, history, notifications
        async def health_check() -> dict[str, Any]:
            return await m.check_health()

        async def put_health(body: HealthIn) -> dict[str, Any]:
            m.store.put(CONFIG, body.model_dump(), "health")
            await m.rebuild_timer()
            return body.model_dump()

        async def history(limit: int = Query(50, ge=1, le=500),
                          kind: str | None = Query(None, max_length=40)) -> dict[str, Any]:
            return {"history": m.store.history(limit, kind)}

        async def notifications(limit: int = Query(50, ge=1, le=500)) -> dict[str, Any]:
            return {"notifications": m.store.notifications(limit), "unread": m.store.unread()}

        async def read_notifications() -> dict[str, Any]:
            marked = m.store.mark_read()
            m.changed("notifications")
            return {"marked": marked}

        async def stream() -> StreamingResponse:
            return ctx.event_stream(m.hub.events(first=[("changed", {"what": "all"})]))

        route("/state", state)
        route("/backups", backups)
        route("/backups", create_backup, "POST", status_code=202)
        route("/backups/{backup_id}/verify", verify_backup, "POST", status_code=202)
        route("/backups/{backup_id}/copy", copy_backup, "POST", status_code=202)
        route("/backups/{backup_id}", delete_backup, "DELETE")
        route("/schedules", add_schedule, "POST", status_code=201)
        route("/schedules/{sid}", put_schedule, "PUT")
        route("/schedules/{sid}", delete_schedule, "DELETE")
        route("/schedules/{sid}/run", run_schedule, "POST", status_code=202)
        route("/retention/preview", retention_preview, "POST")
        route("/retention/apply", retention_apply, "POST")
        route("/targets", add_target, "POST", status_code=201)
        route("/targets/{tid}", put_target, "PUT")
        route("/targets/{tid}", delete_target, "DELETE")
        route("/targets/{tid}/copies", target_copies)
        route("/targets/{tid}/import", import_copy, "POST", status_code=202)
        route("/restore/preflight", restore_preflight)
        route("/restore", restore, "POST", status_code=202)
        route("/maintenance", put_maintenance, "PUT")
        route("/maintenance/preview", maintenance_preview, "POST")
        route("/maintenance/run", maintenance_run, "POST", status_code=202)
        route("/maintenance/usage", usage)
        route("/windows", add_window, "POST", status_code=201)
        route("/windows/{wid}", put_window, "PUT")
        route("/windows/{wid}", delete_window, "DELETE")
        route("/health/check", health_check, "POST")
        route("/health/config", put_health, "PUT")
        route("/history", history)
        route("/notifications", notifications)
        route("/notifications/read", read_notifications, "POST")
        route("/stream", stream)
