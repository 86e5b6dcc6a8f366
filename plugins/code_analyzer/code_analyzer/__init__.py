"""Code Analyzer: metrics, one issue list and a quality gate on new code, locally.

Layers, each usable alone: ``walk`` finds files (.gitignore, symlinks), ``metrics``
measures one file (radon / lizard), ``tools`` runs ruff, bandit and vulture, ``scan``
puts a project together (cache, worker processes, cancel), ``gate`` judges the change
since a git ref, ``imports`` builds the import graph, ``export`` writes JSON/CSV/SARIF
and ``store`` keeps the cache and the scan history. Heavy libraries are imported inside
the work, never at set-up: app start-up time counts every plugin.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any, Literal

from fastapi import Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from code_analyzer.config import AnalyzerConfig
from plexichat_desktop.plugins.api import Plugin, PluginContext
from plexichat_desktop.plugins.guards import UnsafePath, safe_path
from plexichat_desktop.plugins.jobs import JobHandle

MAX_GATE_ISSUES = 500


class ScanRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    folder: str = Field(min_length=1, max_length=4096)
    run_tools: bool = True


class HistoryRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    folder: str = Field(min_length=1, max_length=4096)
    commits: int = Field(20, ge=1, le=500)


class GateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    folder: str = Field(min_length=1, max_length=4096)
    ref: str = Field(min_length=1, max_length=200)
    max_complexity: int | None = Field(None, ge=1, le=1000)
    min_maintainability: float | None = Field(None, ge=0, le=100)
    fail_on: Literal["high", "medium", "low"] = "high"


def _error(status: int, detail: str, field: str | None = None) -> JSONResponse:
    body: dict[str, Any] = {"detail": detail}
    if field:
        body["errors"] = {field: detail}
    return JSONResponse(body, status_code=status)


def _validation_detail(exc: ValidationError) -> tuple[str, str]:
    err = exc.errors()[0]
    field = ".".join(str(p) for p in err["loc"]) or "body"
    return field, f"{field}: {err['msg']}"


class CodeAnalyzerPlugin(Plugin):
    settings_model = AnalyzerConfig

    def setup(self, ctx: PluginContext) -> None:
        self.ctx = ctx
        self.config: AnalyzerConfig = ctx.config
        self._store: Any = None
        for path, fn, methods in (
                ("/roots", self.roots, ["GET"]),
                ("/scan", self.start_scan, ["POST"]),
                ("/scans", self.list_scans, ["GET"]),
                ("/scans/{scan_id}", self.get_scan, ["GET"]),
                ("/scans/{scan_id}/export", self.export_scan, ["GET"]),
                ("/gate", self.start_gate, ["POST"]),
                ("/history", self.start_history, ["POST"])):
            ctx.add_route(path, fn, methods=methods)
        if self.config.scheduled_folders:
            ctx.schedule(self.config.scan_schedule, self.scheduled_scan, "scheduled scan")

    # -- helpers -------------------------------------------------------------------------
    @property
    def store(self) -> Any:
        if self._store is None:
            from code_analyzer.store import Store
            self._store = Store(self.ctx.data_dir / "code_analyzer.sqlite3")
        return self._store

    def options(self) -> Any:
        from code_analyzer.scan import ScanOptions
        c = self.config
        return ScanOptions(max_bytes=c.max_file_kb * 1024, workers=c.workers,
                           exclude=tuple(c.exclude), tool_timeout=c.tool_timeout_seconds,
                           vulture_min_confidence=c.vulture_min_confidence,
                           max_complexity=c.max_complexity,
                           ruff_cache_dir=self.ctx.data_dir / "ruff-cache")

    def resolve_folder(self, text: str) -> Path:
        """The folder inside one of the roots; ``UnsafePath`` (403) or
        ``FileNotFoundError``/``NotADirectoryError`` naming the field otherwise."""
        roots = self.config.root_paths()
        last: UnsafePath | None = None
        for root in roots:
            try:
                path = safe_path(root, text, field="folder")
            except UnsafePath as exc:
                last = exc
                continue
            if not path.exists():
                raise FileNotFoundError(f"folder: {text!r} does not exist")
            if not path.is_dir():
                raise NotADirectoryError(f"folder: {text!r} is not a folder")
            return path
        raise last or UnsafePath("folder: no root folder is configured (setting roots)")

    async def _parse(self, request: Request, model: type[BaseModel]) -> Any:
        try:
            return model.model_validate_json(await request.body() or b"{}")
        except ValidationError as exc:
            field, detail = _validation_detail(exc)
            return _error(422, detail, field)

    def _folder_or_error(self, text: str) -> Path | JSONResponse:
        try:
            return self.resolve_folder(text)
        except UnsafePath as exc:
            return _error(403, str(exc), "folder")
        except FileNotFoundError as exc:
            return _error(404, str(exc), "folder")
        except NotADirectoryError as exc:
            return _error(400, str(exc), "folder")

    # -- routes --------------------------------------------------------------------------
    async def roots(self) -> dict[str, Any]:
        """The folders a scan may read, and which tools are installed."""
        from code_analyzer.tools import TOOLS, tool_path
        return {"roots": [str(p) for p in self.config.root_paths()],
                "tools": {t: tool_path(t) is not None for t in TOOLS},
                "gate_defaults": {"max_complexity": self.config.max_complexity,
                                  "min_maintainability": self.config.min_maintainability},
                "missing": list(self.ctx.degraded)}

    async def start_scan(self, request: Request) -> Any:
        """Start a scan job: ``{"folder": "...", "run_tools": true}`` -> 202 with the job."""
        body = await self._parse(request, ScanRequest)
        if isinstance(body, JSONResponse):
            return body
        folder = self._folder_or_error(body.folder)
        if isinstance(folder, JSONResponse):
            return folder
        job = self.ctx.jobs.start("scan", self._scan_job, folder, body.run_tools)
        return JSONResponse(job.to_dict(), status_code=202)

    async def _run_threaded(self, job: JobHandle, fn: Any, *args: Any) -> Any:
        from code_analyzer.scan import ScanCancelled
        loop = asyncio.get_running_loop()
        cancel = threading.Event()

        def progress(done: float, total: float | None, message: str) -> None:
            loop.call_soon_threadsafe(job.progress, done, total, message)

        try:
            return await asyncio.to_thread(fn, *args, cancel, progress)
        except asyncio.CancelledError:
            cancel.set()  # the thread stops at its next check and kills a running tool
            raise
        except ScanCancelled:
            raise asyncio.CancelledError from None

    async def _scan_job(self, job: JobHandle, folder: Path, run_tools: bool) -> Any:
        from dataclasses import replace

        from code_analyzer.scan import scan_folder
        options = replace(self.options(), run_tools=run_tools)
        result = await self._run_threaded(job, scan_folder, folder, self.store, options)
        scan_id = await asyncio.to_thread(self.store.save_scan, str(folder),
                                          result["summary"], result, self.config.keep_scans)
        s = result["summary"]
        job.progress(s["files"], s["files"],
                     f"{s['files']} files, {s['sloc']} lines, "
                     f"{sum(s['issues'].values())} issues in {s['seconds']:.1f} s")
        return {"scan_id": scan_id, "folder": str(folder), "summary": s}

    async def scheduled_scan(self) -> list[dict[str, Any]]:
        """Scan each of ``scheduled_folders`` as a job (shown on the page like any scan);
        a folder that is gone or outside the roots is logged and skipped."""
        outcomes = []
        for text in self.config.scheduled_folders:
            try:
                folder = self.resolve_folder(text)
            except (UnsafePath, OSError) as exc:
                self.ctx.logger.warning("scheduled scan of %r skipped: %s", text, exc)
                outcomes.append({"folder": text, "state": "skipped", "error": str(exc)})
                continue
            job = self.ctx.jobs.start("scan", self._scan_job, folder, True)
            done = await self.ctx.jobs.wait(job.id)
            outcomes.append({"folder": str(folder), "state": str(done.state),
                             "error": done.error})
        return outcomes

    async def list_scans(self, folder: str | None = None, limit: int = 100) -> Any:
        """Scan summaries, oldest first: the trend of one folder (or of all)."""
        if not 1 <= limit <= 1000:
            return _error(422, "limit: must be between 1 and 1000", "limit")
        if folder is not None:
            resolved = self._folder_or_error(folder)
            if isinstance(resolved, JSONResponse):
                return resolved
            folder = str(resolved)
        scans = await asyncio.to_thread(self.store.scans, folder, limit)
        return {"scans": scans}

    async def get_scan(self, scan_id: int) -> Any:
        result = await asyncio.to_thread(self.store.scan, scan_id)
        if result is None:
            return _error(404, f"scan_id: no scan {scan_id}", "scan_id")
        return {"id": scan_id, **result}

    async def export_scan(self, scan_id: int, format: str = "json", kind: str = "files",
                          ) -> Any:
        """``format=json|csv|sarif``; for CSV, ``kind=files|functions|issues``."""
        from code_analyzer import export
        if format not in ("json", "csv", "sarif"):
            return _error(422, f"format: must be json, csv or sarif, got {format!r}",
                          "format")
        if kind not in export.CSV_KINDS:
            return _error(422, f"kind: must be one of {', '.join(export.CSV_KINDS)}, got "
                               f"{kind!r}", "kind")
        result = await asyncio.to_thread(self.store.scan, scan_id)
        if result is None:
            return _error(404, f"scan_id: no scan {scan_id}", "scan_id")
        name = f"code-analysis-{scan_id}"
        if format == "csv":
            return Response(export.to_csv(result, kind), media_type="text/csv",
                            headers={"Content-Disposition":
                                     f'attachment; filename="{name}-{kind}.csv"'})
        import json
        text = (export.to_json(result) if format == "json"
                else json.dumps(export.to_sarif(result), indent=2))
        suffix = "json" if format == "json" else "sarif"
        return Response(text, media_type="application/json", headers={
            "Content-Disposition": f'attachment; filename="{name}.{suffix}"'})

    async def start_gate(self, request: Request) -> Any:
        """Start the quality gate on new code since ``ref`` -> 202 with the job."""
        from code_analyzer.gitutil import REF
        body = await self._parse(request, GateRequest)
        if isinstance(body, JSONResponse):
            return body
        if not REF.fullmatch(body.ref) or ".." in body.ref:
            return _error(422, f"ref: {body.ref!r} is not a git ref", "ref")
        folder = self._folder_or_error(body.folder)
        if isinstance(folder, JSONResponse):
            return folder
        from code_analyzer.gate import GateRule, check_target
        try:  # a typo in the ref is answered at once, not as a failed job
            await asyncio.to_thread(check_target, folder, body.ref)
        except ValueError as exc:
            text = str(exc)
            field = text.split(":", 1)[0]
            return _error(422, text, field if field in ("folder", "ref") else None)
        rule = GateRule(body.ref, body.max_complexity or self.config.max_complexity,
                        self.config.min_maintainability if body.min_maintainability is None
                        else body.min_maintainability, body.fail_on)
        job = self.ctx.jobs.start("gate", self._gate_job, folder, rule)
        return JSONResponse(job.to_dict(), status_code=202)

    async def start_history(self, request: Request) -> Any:
        """Metrics of the last ``commits`` commits of a git folder -> 202 with the job."""
        body = await self._parse(request, HistoryRequest)
        if isinstance(body, JSONResponse):
            return body
        folder = self._folder_or_error(body.folder)
        if isinstance(folder, JSONResponse):
            return folder
        from code_analyzer.gitutil import GitError, resolve_ref, toplevel
        repo = await asyncio.to_thread(toplevel, folder)
        if repo is None:
            return _error(422, f"folder: {folder} is not inside a git repository", "folder")
        try:  # said here, not as git's words in a failed job
            await asyncio.to_thread(resolve_ref, repo, "HEAD")
        except GitError:
            return _error(422, f"folder: the repository of {folder} has no commit yet",
                          "folder")
        job = self.ctx.jobs.start("history", self._history_job, folder, body.commits)
        return JSONResponse(job.to_dict(), status_code=202)

    async def _history_job(self, job: JobHandle, folder: Path, commits: int) -> Any:
        from code_analyzer.history import history
        result = await self._run_threaded(job, history, folder, commits, self.store,
                                          self.options())
        job.progress(len(result["points"]), len(result["points"]),
                     f"{len(result['points'])} commits, {result['analysed_files']} file "
                     f"versions analysed in {result['seconds']:.1f} s")
        return result

    async def _gate_job(self, job: JobHandle, folder: Path, rule: Any) -> Any:
        from code_analyzer.gate import run_gate
        result = await self._run_threaded(job, run_gate, folder, rule, self.store,
                                          self.options())
        verdict = "passed" if result["passed"] else "failed"
        job.progress(1, 1, f"gate {verdict} against {rule.ref} in {result['seconds']:.1f} s")
        total = len(result["new_issues"])
        result["new_issues"] = result["new_issues"][:MAX_GATE_ISSUES]
        result["new_issues_total"] = total
        return result


__all__ = ["CodeAnalyzerPlugin"]
