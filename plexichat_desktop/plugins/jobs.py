"""Jobs: long work a plugin starts, with progress, cancel, result and error, owned by the host.

A plugin starts a job with ``ctx.jobs.start(name, work, *args)``; ``work`` is an ``async``
function whose first argument is the :class:`JobHandle`, through which it reports
progress. The host runs it as a task of the plugin (cancelled when the plugin stops),
keeps its state, streams every change to the plugin's page and serves it over HTTP::

    async def archive(job: JobHandle, folder: str) -> dict:
        files = list_files(folder)
        for done, path in enumerate(files, 1):
            await add_to_archive(path)
            job.progress(done, len(files), f"added {path.name}")
        return {"archive": str(target), "files": len(files)}

    async def start(body: ArchiveRequest):
        job = ctx.jobs.start("archive", archive, body.folder)
        return job.to_dict()                     # {"id": "...", "state": "queued", ...}

Cancelling (``ctx.jobs.cancel(id)``, the page's Cancel button, or the plugin stopping)
cancels the task: ``work`` gets ``asyncio.CancelledError`` at its next ``await`` and may
clean up in ``finally`` (delete a partial file) before it ends. Blocking work belongs in
``await asyncio.to_thread(...)``; a thread cannot be interrupted, so check
``job.cancel_requested`` between steps there.

States: ``queued`` (waiting for one of ``max_running`` slots), ``running``, then one of
``succeeded`` (``result`` is what ``work`` returned: keep it JSON-serialisable),
``failed`` (``error`` is ``"ValueError: message"``; the traceback goes to the plugin's
log; a :class:`~plexichat_desktop.plugins.api.PluginProblem` raised by ``work`` is a
refusal in words, the user's to act on: ``error`` is its detail, logged without a
traceback) or ``cancelled``. The last ``keep_finished`` finished jobs are kept for the page.

Routes every plugin gets (under ``/plugins/<id>/api/_host/``):

* ``GET jobs``: ``{"jobs": [job...]}``, newest first;
* ``GET jobs/{id}``: one job (404 naming the id);
* ``POST jobs/{id}/cancel``: cancel it (409 when it has finished already);
* ``GET jobs/events``: Server-Sent Events: ``jobs`` (the list) at once, then ``job`` (one
  job's dict) whenever one changes. Progress is sent at most once per 0.1 % step or
  message change, so a tight loop calling ``progress`` does not flood the page.

The page component ``/_app/plugins/jobs.js`` shows them (progress bar, Cancel); see its
header for the markup.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import secrets
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable
from enum import StrEnum
from typing import Any

from plexichat_desktop.plugins.faults import PLUGIN_FAULTS
from plexichat_desktop.plugins.hub import Event, EventHub

__all__ = ["Job", "JobHandle", "JobManager", "JobState", "UnknownJob"]

MAX_MESSAGE = 500


class JobState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        return self in (JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED)


class UnknownJob(KeyError):
    """No job with that id in this plugin (it never existed or was forgotten)."""

    def __str__(self) -> str:
        return str(self.args[0])


class Job:
    """One job's state, as the page sees it (:meth:`to_dict`). Read-only for plugins."""

    def __init__(self, job_id: str, name: str, plugin_id: str):
        self.id = job_id
        self.name = name
        self.plugin_id = plugin_id
        self.state = JobState.QUEUED
        self.done: float | None = None
        self.total: float | None = None
        self.message: str | None = None
        self.result: Any = None
        self.error: str | None = None
        self.created_at = time.time()
        self.started_at: float | None = None
        self.finished_at: float | None = None
        self.cancel_requested = False
        self.task: asyncio.Task[Any] | None = None

    @property
    def fraction(self) -> float | None:
        """``done / total`` in [0, 1]; None while the total is unknown (indeterminate)."""
        if self.state is JobState.SUCCEEDED:
            return 1.0
        if self.done is None or not self.total:
            return None
        return max(0.0, min(1.0, self.done / self.total))

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "name": self.name, "plugin_id": self.plugin_id,
            "state": str(self.state), "done": self.done, "total": self.total,
            "fraction": self.fraction, "message": self.message, "result": self.result,
            "error": self.error, "created_at": self.created_at,
            "started_at": self.started_at, "finished_at": self.finished_at,
            "cancel_requested": self.cancel_requested,
        }


class JobHandle:
    """What ``work`` gets as its first argument: report progress, see cancellation."""

    def __init__(self, job: Job, changed: Callable[[Job, bool], None]):
        self._job = job
        self._changed = changed

    @property
    def id(self) -> str:
        return self._job.id

    @property
    def cancel_requested(self) -> bool:
        """True once cancelling was asked; check it between steps of threaded work."""
        return self._job.cancel_requested

    def progress(self, done: float, total: float | None = None,
                 message: str | None = None) -> None:
        """Report ``done`` out of ``total`` units (files, bytes, percent: any unit), and
        optionally what is happening. ``total`` None keeps the previous total (or leaves
        the bar indeterminate). Cheap to call often; the page gets changes that show."""
        if not math.isfinite(done) or (total is not None and not math.isfinite(total)):
            raise ValueError(f"job {self._job.name!r}: progress must be finite numbers, "
                             f"got done={done!r}, total={total!r}")
        job = self._job
        before = (job.fraction, job.message)
        job.done = done
        if total is not None:
            job.total = total
        if message is not None:
            job.message = message[:MAX_MESSAGE]
        after_fraction = job.fraction
        visible = (before[1] != job.message or before[0] is None or after_fraction is None
                   or int(before[0] * 1000) != int(after_fraction * 1000))
        self._changed(job, visible)

    def message(self, text: str) -> None:
        """Say what is happening without changing the numbers."""
        self._job.message = text[:MAX_MESSAGE]
        self._changed(self._job, True)


class JobManager:
    """The jobs of one plugin: ``ctx.jobs``. Created by the host; plugins call
    :meth:`start`, :meth:`get`, :meth:`list`, :meth:`cancel` and read :attr:`hub`."""

    def __init__(self, plugin_id: str, logger: logging.Logger, *, max_running: int = 4,
                 keep_finished: int = 100,
                 on_finished: Callable[[Job], None] | None = None):
        if max_running < 1 or keep_finished < 0:
            raise ValueError("max_running must be >= 1 and keep_finished >= 0")
        self.plugin_id = plugin_id
        self.logger = logger
        self.max_running = max_running
        self.keep_finished = keep_finished
        #: Every change of every job, as ``("job", job_dict)`` events; the jobs route
        #: streams it. A plugin may merge it into its own stream.
        self.hub = EventHub()
        self._jobs: OrderedDict[str, Job] = OrderedDict()
        self._slots = asyncio.Semaphore(max_running)
        self._on_finished = on_finished
        self._closed = False

    def start(self, name: str, work: Callable[..., Awaitable[Any]], *args: Any,
              **kwargs: Any) -> Job:
        """Start ``work(handle, *args, **kwargs)`` as a job named ``name``; returns the
        :class:`Job` at once (``queued``). Raises ``RuntimeError`` once the plugin stops."""
        if self._closed:
            raise RuntimeError(f"plugin '{self.plugin_id}' is stopping; no new job "
                               f"{name!r} can start")
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            raise RuntimeError(f"plugin '{self.plugin_id}': start job {name!r} from the app's "
                               "event loop (an async def route, setup or task), not from a "
                               "thread or a plain def route") from None
        if not name or len(name) > 200:
            raise ValueError(f"plugin '{self.plugin_id}': a job needs a name of 1-200 "
                             f"characters, got {name!r}")
        job = Job(secrets.token_hex(8), name, self.plugin_id)
        self._jobs[job.id] = job
        handle = JobHandle(job, self._changed)
        job.task = loop.create_task(
            self._run(job, handle, work, args, kwargs),
            name=f"plugin {self.plugin_id} job {name} {job.id}")
        self._publish(job)
        return job

    async def _run(self, job: Job, handle: JobHandle, work: Callable[..., Awaitable[Any]],
                   args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        try:
            async with self._slots:
                job.state, job.started_at = JobState.RUNNING, time.time()
                self._publish(job)
                result = await work(handle, *args, **kwargs)
            # FastAPI's import (~0.2 s of CPU) is left to the first finished job: the
            # plugin API imports this module, and so does every CLI command.
            from fastapi.encoders import jsonable_encoder

            try:
                # Pydantic models, dataclasses, paths and datetimes become JSON here, once,
                # instead of breaking every page's stream later.
                job.result = jsonable_encoder(result)
                json.dumps(job.result, allow_nan=False)
            except (TypeError, ValueError) as exc:
                raise TypeError(f"job {job.name!r} returned a {type(result).__name__}, which "
                                f"is not JSON-serialisable ({exc})") from None
            job.state = JobState.SUCCEEDED
        except asyncio.CancelledError:
            job.state = JobState.CANCELLED
            # A job is cancelled through its own task: swallowing it here is what lets the
            # task end normally. A cancelled manager (plugin stopping) gets the same state.
        except PLUGIN_FAULTS as exc:
            from plexichat_desktop.plugins.api import PluginProblem  # api imports this module

            job.state = JobState.FAILED
            text = str(exc).strip().splitlines()
            if isinstance(exc, PluginProblem):
                # The user's input or situation (a malformed file, a wrong checksum), said
                # in words: no crash, so no traceback in the log.
                job.error = text[0] if text else exc.message
                self.logger.info("job %s (%s) refused: %s", job.name, job.id, job.error)
            else:
                job.error = f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__
                self.logger.error("job %s (%s) failed: %s", job.name, job.id, job.error,
                                  exc_info=exc)
        finally:
            job.finished_at = time.time()
            if job.state is not JobState.SUCCEEDED:
                job.result = None
            self._publish(job)
            self._forget_old()
            if self._on_finished is not None:
                try:
                    self._on_finished(job)
                except Exception:
                    self.logger.exception("job %s: the finish callback failed", job.id)

    def _changed(self, job: Job, visible: bool) -> None:
        if visible:
            self._publish(job)

    def _publish(self, job: Job) -> None:
        if self.hub.subscriber_count:
            self.hub.publish("job", job.to_dict())

    def _forget_old(self) -> None:
        finished = [j for j in self._jobs.values() if j.state.finished]
        for job in finished[:max(0, len(finished) - self.keep_finished)]:
            del self._jobs[job.id]

    def get(self, job_id: str) -> Job:
        """The job ``job_id``; :class:`UnknownJob` (a ``KeyError``) naming it otherwise."""
        try:
            return self._jobs[job_id]
        except KeyError:
            raise UnknownJob(f"plugin '{self.plugin_id}' has no job '{job_id}'") from None

    def list(self) -> list[Job]:
        """Every job still known, newest first."""
        return list(reversed(self._jobs.values()))

    def cancel(self, job_id: str) -> Job:
        """Ask job ``job_id`` to stop; returns it. ``ValueError`` once it has finished."""
        job = self.get(job_id)
        if job.state.finished:
            raise ValueError(f"job '{job_id}' ({job.name}) has already {job.state}")
        if not job.cancel_requested:
            job.cancel_requested = True
            if job.task is not None:
                job.task.cancel()
            self._publish(job)
        return job

    async def wait(self, job_id: str) -> Job:
        """Wait until job ``job_id`` has finished (whatever the outcome); returns it."""
        job = self.get(job_id)
        if job.task is not None:
            await asyncio.gather(job.task, return_exceptions=True)
        return job

    async def events(self) -> AsyncIterator[Event]:
        """``("jobs", [job...])`` now, then ``("job", job)`` per change: for a stream."""
        async for event in self.hub.events(first=[("jobs", [j.to_dict()
                                                             for j in self.list()])]):
            yield event

    async def close(self) -> None:
        """Host side, at teardown: cancel every unfinished job and wait for them."""
        self._closed = True
        tasks = []
        for job in self._jobs.values():
            if not job.state.finished and job.task is not None:
                job.cancel_requested = True
                job.task.cancel()
                tasks.append(job.task)
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
