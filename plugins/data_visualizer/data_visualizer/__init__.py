"""Data Visualizer: drop a file, query it with SQL, chart it, keep live dashboards.

Layers, each usable on its own (and tested so): ``loaders`` reads a file into a DuckDB
table with clear errors, ``engine`` keeps the datasets and runs read-only queries on a
hardened reader, ``sqlguard`` decides what a query may be, ``charts`` builds SQL and
Vega-Lite specs and checks specs against the Vega-Lite schema, ``dashboards`` stores
dashboards and expands their macros, ``live`` fills the live sources. This module wires
them to HTTP routes under ``/plugins/data_visualizer/api/``.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import json
import secrets
from pathlib import Path
from typing import Annotated, Any

from fastapi import Query, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, Field

from data_visualizer.charts import (
    AGGREGATES,
    CHART_TYPES,
    ChartError,
    ChartRequest,
    SpecError,
    build_chart,
    check_spec,
    schema_version,
)
from data_visualizer.config import VisualizerConfig
from data_visualizer.dashboards import (
    Dashboard,
    DashboardError,
    DashboardStore,
    TimeRange,
    expand_sql,
    export_json,
    parse_dashboard,
    suggest_dashboard,
)
from data_visualizer.engine import (
    Engine,
    NameError_,
    QueryCancelled,
    QueryTimeout,
    escape_cell,
    ident,
    safe_name,
)
from data_visualizer.live import LIVE_SOURCES, LiveSources, SourceUnavailable
from data_visualizer.loaders import FORMATS, LoadError, detect_format
from data_visualizer.sqlguard import SqlRefused
from plexichat_desktop.plugins.api import Plugin, PluginContext, PluginProblem
from plexichat_desktop.plugins.attachments import attachment_headers
from plexichat_desktop.plugins.hub import EventHub
from plexichat_desktop.plugins.jobs import JobHandle

__all__ = ["DataVisualizerPlugin"]

MAX_JSON_BODY = 5 * 1024 * 1024
QUERY_ID = r"^[A-Za-z0-9_-]{1,64}$"
Variables = dict[str, str | float | int | None]


class QueryBody(BaseModel):
    """A query of the SQL editor or of a dashboard panel."""

    sql: str = Field(min_length=1, max_length=200_000)
    max_rows: int | None = Field(None, ge=1, le=1_000_000)
    query_id: str | None = Field(None, pattern=QUERY_ID)
    time_range: TimeRange | None = None
    variables: Variables | None = None


class ChartBody(ChartRequest):
    """The chart builder's request: the choices, and the dashboard context to run it in."""

    time_range: TimeRange | None = None
    variables: Variables | None = None
    run: bool = True
    query_id: str | None = Field(None, pattern=QUERY_ID)


def _error(status: int, detail: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"detail": detail, **extra}, status_code=status)


def _close_opened_export(opening: asyncio.Future[Any]) -> None:
    """An export whose client left while its query ran: close it once the query ends
    (interrupted, or done just before: then its rows were never read)."""
    if not opening.cancelled() and opening.exception() is None:
        opening.result()[2]()


class DataVisualizerPlugin(Plugin):
    """Datasets, queries, charts, dashboards and live sources behind the page."""

    settings_model = VisualizerConfig

    def setup(self, ctx: PluginContext) -> None:
        """Open the workspace and register the routes."""
        self.ctx = ctx
        self.config: VisualizerConfig = ctx.config
        self.engine = Engine(ctx.data_dir, threads=self.config.threads,
                             memory_limit=self.config.memory_limit, reserved=LIVE_SOURCES)
        ctx.on_teardown(self.engine.close)
        self.store = DashboardStore(ctx.data_dir / "dashboards")
        self.uploads = ctx.data_dir / "uploads"
        self.uploads.mkdir(exist_ok=True)
        for leftover in self.uploads.iterdir():  # uploads cut short by a stop
            leftover.unlink(missing_ok=True)
        self.hub = EventHub(maxsize=256)
        self.live = LiveSources(self.engine, self.hub, server_url=ctx.server_url,
                                app_token=ctx.app_token, api=lambda: ctx.api,
                                interval=self.config.live_interval_seconds)
        self._load_failures: dict[str, BaseException] = {}

        r = ctx.add_route
        r("/info", self.info)
        r("/datasets", self.datasets)
        r("/datasets", self.upload, methods=["POST"], status_code=201)
        r("/datasets/{name}", self.preview)
        r("/datasets/{name}", self.drop, methods=["DELETE"])
        r("/live/{name}/refresh", self.refresh_live, methods=["POST"])
        r("/query", self.query, methods=["POST"])
        r("/queries/{query_id}/cancel", self.cancel, methods=["POST"])
        r("/export.csv", self.export_csv)
        r("/chart", self.chart, methods=["POST"])
        r("/spec/check", self.spec_check, methods=["POST"])
        r("/dashboards", self.dashboards)
        r("/dashboards", self.create_dashboard, methods=["POST"], status_code=201)
        r("/dashboards/{board_id}", self.get_dashboard)
        r("/dashboards/{board_id}", self.put_dashboard, methods=["PUT"])
        r("/dashboards/{board_id}", self.delete_dashboard, methods=["DELETE"])
        r("/dashboards/{board_id}/export", self.export_dashboard)
        r("/stream", self.stream)
        ctx.create_task(self.live.run(), name="data_visualizer live sources")

    # -- overview ------------------------------------------------------------------------
    async def info(self) -> dict[str, Any]:
        """Limits and choices the page needs (formats, chart types, sizes)."""
        return {"formats": list(FORMATS), "chart_types": list(CHART_TYPES),
                "aggregates": list(AGGREGATES), "vega_lite": schema_version(),
                "max_upload_bytes": int(self.config.max_upload_mb * 1024 * 1024),
                "max_rows": self.config.max_rows,
                "query_timeout_seconds": self.config.query_timeout_seconds,
                "live_interval_seconds": self.config.live_interval_seconds}

    async def datasets(self) -> dict[str, Any]:
        """The loaded datasets (newest first) and the live sources."""
        loaded = sorted(self.engine.datasets.values(), key=lambda d: -d.loaded_at)
        return {"datasets": [d.to_dict() for d in loaded], "live": self.live.info(),
                "broken": [{"name": n, "reason": r} for n, r in self.engine.broken.items()]}

    # -- loading -------------------------------------------------------------------------
    async def upload(
        self, request: Request,
        filename: Annotated[str, Query(min_length=1, max_length=255,
                                       description="The file's name (its extension "
                                                   "decides the format).")],
        name: Annotated[str | None, Query(max_length=48)] = None,
        format: Annotated[str | None, Query()] = None,
        sheet: Annotated[str | None, Query(max_length=100)] = None,
        dashboard: bool = False,
    ) -> Any:
        """Load the request body (the file's bytes) as a dataset.

        201 with the dataset (and, with ``dashboard=true``, a saved first dashboard for
        it); 413 past ``max_upload_mb``; 422 for a malformed file (``detail`` names the
        line, ``line`` holds it), an unknown format or a bad name. A dataset of the same
        name is replaced only when the new file loads."""
        limit = int(self.config.max_upload_mb * 1024 * 1024)
        too_big = (f"body: the file is larger than the limit of {self.config.max_upload_mb:g} "
                   "MB (setting max_upload_mb)")
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > limit:
            return _error(413, too_big)
        if format is not None and format not in FORMATS:
            return _error(422, f"format: {format!r} is not one of {', '.join(FORMATS)}")
        try:
            target = self.engine.check_name(name or safe_name(filename))
        except NameError_ as exc:
            return _error(422, str(exc))
        previous = self.engine.datasets.get(target)
        path = self.uploads / secrets.token_hex(8)
        try:
            size, head = 0, b""
            with path.open("wb") as handle:
                async for chunk in request.stream():
                    size += len(chunk)
                    if size > limit:
                        return _error(413, too_big)
                    if len(head) < 8192:
                        head += chunk[:8192]
                    handle.write(chunk)
            if size == 0:
                return _error(422, "body: the file is empty", line=1)
            fmt = format or detect_format(filename, head)
            job = self.ctx.jobs.start("load", self._load, path, filename,
                                      target, fmt, sheet)
            job = await self.ctx.jobs.wait(job.id)
            failure = self._load_failures.pop(job.id, None)
            if isinstance(failure, LoadError):
                return _error(422, f"file {Path(filename).name}: {failure}", line=failure.line)
            if isinstance(failure, NameError_):
                return _error(422, str(failure))
            if str(job.state) == "cancelled":
                return _error(409, f"loading {filename} was cancelled; nothing changed")
            if job.error:
                return _error(500, f"loading {filename} failed: {job.error}")
        finally:
            path.unlink(missing_ok=True)
        dataset = self.engine.datasets[target]
        answer: dict[str, Any] = {"dataset": dataset.to_dict()}
        if dashboard:
            # The same file dropped again (a fresh export) keeps the dashboard made for it
            # when its columns did not change; its panels show the new rows.
            same = [b for b in self.store.list() if b.made_for == target] if (
                previous is not None and previous.columns == dataset.columns) else []
            if same:
                board = same[0]
            else:
                board = await asyncio.to_thread(suggest_dashboard, dataset, self._builder())
                self.store.save(board)
            answer["dashboard"] = board.model_dump(mode="json", by_alias=True)
        self.hub.publish("dataset", {"name": target, "action": "loaded",
                                     "dataset": answer["dataset"]})
        return JSONResponse(answer, status_code=201)

    async def _load(self, job: JobHandle, path: Path, filename: str, name: str, fmt: str,
                    sheet: str | None) -> dict[str, Any]:
        query_id = f"load-{job.id}"
        task = asyncio.ensure_future(asyncio.to_thread(
            self.engine.load, path, filename, name, fmt, sheet=sheet, query_id=query_id))
        job.progress(0, 100, f"reading {filename}")
        try:
            while not task.done():
                await asyncio.wait({task}, timeout=0.25)
                progress = self.engine.load_progress(query_id)
                if progress is not None:
                    job.progress(progress, 100, f"reading {filename}")
            dataset = task.result()
        except asyncio.CancelledError:
            self.engine.interrupt(query_id)
            with contextlib.suppress(Exception):
                await task
            raise
        except (LoadError, NameError_) as exc:
            self._load_failures[job.id] = exc
            # The file's problem, said to the user: a refusal, not a crash to log.
            raise PluginProblem(422, "file", f"{Path(filename).name}: {exc}") from None
        except Exception as exc:
            if self.engine.was_interrupted(exc):
                raise asyncio.CancelledError from None
            raise
        return {"dataset": dataset.name, "rows": dataset.rows}

    async def preview(self, name: str, limit: Annotated[int, Query(ge=1, le=1000)] = 100
                      ) -> Any:
        """The first rows of a dataset or live source, its columns and a summary of each
        column (type, min, max, distinct, nulls...)."""
        if name not in self.engine.datasets and name not in LIVE_SOURCES:
            return _error(404, f"name: no dataset {name!r}")
        if name in LIVE_SOURCES and self.engine.live_info(name) is None:
            try:
                await self.live.refresh(name)
            except SourceUnavailable as exc:
                return _error(503, f"{name}: {exc}")
        try:
            result = await asyncio.to_thread(
                self.engine.run, f"SELECT * FROM {ident(name)} LIMIT {limit}",
                max_rows=limit, timeout=self.config.query_timeout_seconds)
            summary = await asyncio.to_thread(self.engine.summarize, name,
                                              timeout=self.config.query_timeout_seconds)
        except QueryTimeout as exc:
            return _error(408, f"{name}: {exc}")
        except QueryCancelled as exc:
            return _error(409, f"{name}: {exc}")
        dataset = self.engine.datasets.get(name)
        return {"name": name, "dataset": dataset.to_dict() if dataset else None,
                "columns": result.columns, "rows": result.rows, "summary": summary}

    async def drop(self, name: str) -> Any:
        """Forget a dataset (its file in the workspace goes; the original stays)."""
        if name not in self.engine.datasets:
            return _error(404, f"name: no dataset {name!r}")
        await asyncio.to_thread(self.engine.drop, name)
        self.hub.publish("dataset", {"name": name, "action": "dropped"})
        return {"dropped": name}

    async def refresh_live(self, name: str) -> Any:
        """Fetch a live source now; 503 naming why it is not available."""
        if name not in LIVE_SOURCES:
            return _error(404, f"name: no live source {name!r} (sources: "
                               f"{', '.join(LIVE_SOURCES)})")
        try:
            rows = await self.live.refresh(name)
        except SourceUnavailable as exc:
            return _error(503, f"{name}: {exc}")
        except PermissionError as exc:
            return _error(403, f"{name}: {exc}")
        return {"name": name, "new_rows": len(rows), "source": next(
            s for s in self.live.info() if s["name"] == name)}

    # -- queries -------------------------------------------------------------------------
    def _expand(self, sql: str, time_range: TimeRange | None, variables: Variables | None,
                field_name: str = "sql") -> str:
        return expand_sql(sql, time_range, variables or {}, field_name=field_name)

    async def _run(self, sql: str, *, max_rows: int, query_id: str | None) -> Any:
        try:
            checked = await asyncio.to_thread(self.engine.check, sql)
            await self.live.refresh_if_stale(checked.tables)
            empty = self._unfilled_live(checked.tables)
            if empty is not None:
                return empty
            result = await asyncio.to_thread(
                self.engine.run, sql, max_rows=max_rows,
                timeout=self.config.query_timeout_seconds, query_id=query_id, checked=checked)
        except SqlRefused as exc:
            return _error(422, str(exc))
        except QueryTimeout as exc:
            return _error(408, str(exc))
        except QueryCancelled as exc:
            return _error(409, str(exc))
        return result.to_dict()

    def _unfilled_live(self, tables: set[str]) -> JSONResponse | None:
        """A 503 naming why a live source the query reads has no table yet, or None."""
        for name in sorted(tables & set(LIVE_SOURCES)):
            if self.engine.live_info(name) is None:
                reason = self.live.errors.get(name, "it has not been read yet")
                return _error(503, f"{name}: {reason}")
        return None

    async def query(self, body: QueryBody) -> Any:
        """Run one read-only query (SELECT/EXPLAIN; macros and ``$variables`` expanded):
        columns, rows (at most ``max_rows``), ``truncated``, ``seconds``. 422 naming what
        is refused or wrong, 408 past the time limit, 409 when cancelled."""
        try:
            sql = self._expand(body.sql, body.time_range, body.variables)
        except DashboardError as exc:
            return _error(422, str(exc))
        max_rows = min(body.max_rows or self.config.max_rows, self.config.max_rows * 10)
        return await self._run(sql, max_rows=max_rows, query_id=body.query_id)

    async def cancel(self, query_id: str) -> Any:
        """Stop the running query ``query_id`` (the page's Stop button)."""
        if not self.engine.interrupt(query_id):
            return _error(404, f"query_id: no query {query_id!r} is running")
        return {"cancelled": query_id}

    async def export_csv(
        self,
        request: Request,
        sql: Annotated[str, Query(min_length=1, max_length=200_000)],
        filename: Annotated[str, Query(max_length=120, pattern=r"^[\w .()-]+$")] = "result.csv",
        time_range: Annotated[str | None, Query(max_length=200)] = None,
        variables: Annotated[str | None, Query(max_length=20_000)] = None,
    ) -> Any:
        """Every row of a query as CSV (a download; not cut at ``max_rows``)."""
        try:
            window = TimeRange.model_validate(json.loads(time_range)) if time_range else None
            values = json.loads(variables) if variables else {}
            if not isinstance(values, dict):
                raise ValueError("variables must be a JSON object")
            expanded = self._expand(sql, window, values)
        except (ValueError, DashboardError) as exc:
            return _error(422, str(exc).splitlines()[0])
        # Its own id: a client that goes away (or the app stopping) interrupts the query,
        # which otherwise ran on in its thread, a core busy, until it ended. Nothing
        # cancels a route whose client left, so the wait looks for that itself.
        query_id = f"export-{secrets.token_hex(8)}"
        opening = asyncio.ensure_future(asyncio.to_thread(
            self.engine.open_export, expanded, query_id=query_id,
            timeout=self.config.query_timeout_seconds))
        try:
            while not (await asyncio.wait({opening}, timeout=0.5))[0]:
                if await request.is_disconnected():
                    self.engine.interrupt(query_id)
                    opening.add_done_callback(_close_opened_export)
                    return Response(status_code=499)  # nobody reads it
            header, rows, _ = opening.result()
        except asyncio.CancelledError:
            self.engine.interrupt(query_id)
            opening.add_done_callback(_close_opened_export)
            raise
        except SqlRefused as exc:
            return _error(422, str(exc))
        except QueryTimeout as exc:
            return _error(408, str(exc))
        except QueryCancelled as exc:
            return _error(409, str(exc))

        def lines() -> Any:
            buffer = io.StringIO()
            writer = csv.writer(buffer)
            writer.writerow([escape_cell(c) for c in header])
            for count, row in enumerate(rows, 1):
                writer.writerow([escape_cell(c) for c in row])
                if count % 2000 == 0:
                    yield buffer.getvalue()
                    buffer.seek(0)
                    buffer.truncate()
            yield buffer.getvalue()

        name = filename if filename.lower().endswith(".csv") else filename + ".csv"
        return StreamingResponse(lines(), media_type="text/csv; charset=utf-8",
                                 headers=attachment_headers(name, "result.csv"))

    # -- charts --------------------------------------------------------------------------
    def _builder(self) -> Any:
        def build(choice: dict[str, Any]) -> dict[str, Any]:
            request = ChartRequest.model_validate(choice)
            base = self._base_sql(request)
            return build_chart(self.engine, request, self._expand(base, None, None), base)

        return build

    def _base_sql(self, request: ChartRequest) -> str:
        if request.sql and request.sql.strip():
            return request.sql.strip().rstrip(";")
        if not request.source:
            raise ChartError("source: choose a dataset or live source (or give sql)")
        if request.source not in self.engine.datasets and request.source not in LIVE_SOURCES:
            raise ChartError(f"source: no dataset {request.source!r}")
        return f"SELECT * FROM {ident(request.source)}"

    async def chart(self, body: ChartBody) -> Any:
        """Build a chart: ``sql`` (DuckDB aggregates, bins and samples), ``spec``
        (Vega-Lite, checked against its schema) and, unless ``run`` is false, the
        ``result`` of the SQL in the given time range. 422 naming the bad choice."""
        try:
            base = self._base_sql(body)
            if body.source in LIVE_SOURCES and self.engine.live_info(body.source) is None:
                with contextlib.suppress(SourceUnavailable):
                    await self.live.refresh(body.source)
                empty = self._unfilled_live({body.source})
                if empty is not None:
                    return empty
            expanded_base = self._expand(base, body.time_range, body.variables)
            built = await asyncio.to_thread(build_chart, self.engine, body, expanded_base, base)
            if not body.run:
                return built
            sql = self._expand(built["sql"], body.time_range, body.variables)
        except (ChartError, SpecError, DashboardError, SqlRefused) as exc:
            return _error(422, str(exc))
        result = await self._run(sql, max_rows=self.config.max_rows, query_id=body.query_id)
        if isinstance(result, Response):
            return result
        return {**built, "result": result}

    async def spec_check(self, request: Request) -> Any:
        """Check ``{"spec": {...}}`` against the Vega-Lite schema: ``{"ok": true}`` or 422
        naming the path of the first problem."""
        body = await self._json_body(request)
        if isinstance(body, Response):
            return body
        if not isinstance(body, dict) or "spec" not in body:
            return _error(422, "spec: missing (send {\"spec\": {...}})")
        try:
            check_spec(body["spec"])
        except SpecError as exc:
            return _error(422, str(exc))
        return {"ok": True}

    # -- dashboards ----------------------------------------------------------------------
    async def _json_body(self, request: Request) -> Any:
        raw = b""
        async for chunk in request.stream():
            raw += chunk
            if len(raw) > MAX_JSON_BODY:
                return _error(413, f"body: larger than {MAX_JSON_BODY // (1024 * 1024)} MB")
        try:
            return json.loads(raw)
        except ValueError as exc:
            return _error(422, f"body: not JSON ({exc})")

    async def dashboards(self) -> dict[str, Any]:
        """Every dashboard: id, title, panel count, last change (newest first)."""
        return {"dashboards": [{"id": b.id, "title": b.title, "panels": len(b.panels),
                                "updated": b.updated} for b in self.store.list()]}

    async def create_dashboard(self, request: Request) -> Any:
        """Create a dashboard, or import an exported one (it gets a new id when its id is
        taken, so an import never overwrites). 422 naming the first bad field."""
        body = await self._json_body(request)
        if isinstance(body, Response):
            return body
        try:
            board = parse_dashboard(body)
        except (DashboardError, SpecError) as exc:
            return _error(422, str(exc))
        with contextlib.suppress(KeyError):
            self.store.get(board.id)
            board.id = secrets.token_hex(6)
        return JSONResponse(self.store.save(board).model_dump(mode="json", by_alias=True),
                            status_code=201)

    async def get_dashboard(self, board_id: str) -> Any:
        """One dashboard."""
        try:
            return self.store.get(board_id).model_dump(mode="json", by_alias=True)
        except KeyError:
            return _error(404, f"board_id: no dashboard {board_id!r}")

    async def put_dashboard(self, board_id: str, request: Request) -> Any:
        """Replace a dashboard (panels, range, variables, refresh); 422 naming the field."""
        try:
            self.store.get(board_id)
        except KeyError:
            return _error(404, f"board_id: no dashboard {board_id!r}")
        body = await self._json_body(request)
        if isinstance(body, Response):
            return body
        if isinstance(body, dict):
            body["id"] = board_id
        try:
            board = parse_dashboard(body)
        except (DashboardError, SpecError) as exc:
            return _error(422, str(exc))
        return self.store.save(board).model_dump(mode="json", by_alias=True)

    async def delete_dashboard(self, board_id: str) -> Any:
        """Delete a dashboard."""
        try:
            self.store.delete(board_id)
        except KeyError:
            return _error(404, f"board_id: no dashboard {board_id!r}")
        return {"deleted": board_id}

    async def export_dashboard(self, board_id: str) -> Any:
        """A dashboard as a JSON file to download (import it with POST /dashboards)."""
        try:
            board: Dashboard = self.store.get(board_id)
        except KeyError:
            return _error(404, f"board_id: no dashboard {board_id!r}")
        return Response(export_json(board), media_type="application/json",
                        headers=attachment_headers(f"{board.title.strip() or 'dashboard'}.json",
                                                   "dashboard.json"))

    # -- live ----------------------------------------------------------------------------
    async def stream(self) -> Any:
        """Server-Sent Events: ``hello`` (the live sources) at once, then ``rows`` (new
        rows of a live source), ``dataset`` (a file loaded or dropped)."""
        return self.ctx.event_stream(self.hub.events(first=[("hello", {
            "live": self.live.info(), "interval": self.config.live_interval_seconds})]))
