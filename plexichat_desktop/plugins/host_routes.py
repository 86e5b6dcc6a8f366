"""The routes every plugin gets from the host under ``/plugins/<id>/api/_host/`` (see
``PluginContext._mount_host_routes`` in :mod:`plexichat_desktop.plugins.api`).

A module of its own so that the plugin API imports FastAPI only when a plugin is set up:
the CLI's commands that read manifests or results import the API and never route."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Request
from starlette.responses import JSONResponse, StreamingResponse

from plexichat_desktop.plugins.jobs import Job, JobManager, UnknownJob

if TYPE_CHECKING:
    from plexichat_desktop.plugins.api import PluginContext

_CONTEXT_KEY = "plexichat.plugin_context"


class HostRoutes:
    """The ``_host/`` routes of one plugin: one router shared by every plugin of the
    process, told which plugin a request is for. FastAPI builds pydantic fields for each
    route's parameters and answer: six routes of each plugin at each start were ~2 ms of
    CPU per plugin (30 ms for the 15 bundled ones), in every test that starts the app."""

    def __init__(self, context: PluginContext):
        self.context = context

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        scope = dict(scope)
        scope[_CONTEXT_KEY] = self.context
        await _host_router()(scope, receive, send)


@functools.cache
def _host_router() -> APIRouter:
    router = APIRouter()

    def ctx(request: Request) -> PluginContext:
        context: PluginContext = request.scope[_CONTEXT_KEY]
        return context

    @router.get("/status", include_in_schema=False)
    async def status(request: Request) -> dict[str, Any]:
        context = ctx(request)
        return {"plugin_id": context.plugin_id, "degraded": context.degraded,
                "missing": [m.to_dict() for m in context.missing]}

    @router.get("/schedules", include_in_schema=False)
    async def schedules(request: Request) -> dict[str, Any]:
        return {"schedules": [r.to_dict() for r in ctx(request)._scheduler.list()]}

    @router.get("/jobs", include_in_schema=False)
    async def jobs(request: Request) -> dict[str, Any]:
        return {"jobs": [j.to_dict() for j in ctx(request).jobs.list()]}

    # Before /jobs/{job_id}, which would match it.
    @router.get("/jobs/events", include_in_schema=False)
    async def job_events(request: Request) -> StreamingResponse:
        context = ctx(request)
        return context.event_stream(context.jobs.events())

    def job_answer(request: Request, act: Callable[[JobManager], Job]) -> Any:
        """The job ``act`` returns; 404 for an unknown job, 409 for one it cannot act on."""
        try:
            return act(ctx(request).jobs).to_dict()
        except UnknownJob as exc:
            return JSONResponse({"detail": str(exc)}, status_code=404)
        except ValueError as exc:
            return JSONResponse({"detail": str(exc)}, status_code=409)

    @router.get("/jobs/{job_id}", include_in_schema=False)
    async def job(request: Request, job_id: str) -> Any:
        return job_answer(request, lambda jobs: jobs.get(job_id))

    @router.post("/jobs/{job_id}/cancel", include_in_schema=False)
    async def cancel_job(request: Request, job_id: str) -> Any:
        return job_answer(request, lambda jobs: jobs.cancel(job_id))

    return router
