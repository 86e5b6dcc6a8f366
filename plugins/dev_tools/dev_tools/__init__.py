"""Development Tools: act on a workspace (tasks, git, format, lint, local hooks, tests).

The plugin class wires routes to modules that each do one thing: ``workspace`` (roots,
picker, markers), ``tasks`` (discovery, argument checks, history), ``procs`` (no-shell
subprocesses in their own process group, capped output), ``gitops``, ``ruffing``,
``preview`` (tools run on a copy; changes written only on approval, hash-checked),
``hooks`` (local pre-commit hooks) and ``pytests``. Long work runs as host jobs.
"""

from __future__ import annotations

import asyncio
import functools
import secrets
import shutil
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from dev_tools import gitops, hooks, preview, procs, pytests, ruffing, shellchecking, tasks
from dev_tools.config import DevToolsConfig
from dev_tools.errors import ApiError
from dev_tools.workspace import Workspace, browse, open_workspace
from plexichat_desktop.plugins.api import Plugin, PluginContext
from plexichat_desktop.plugins.hub import EventHub
from plexichat_desktop.plugins.jobs import JobHandle

# Live output is sent in pieces of at most this many characters, so one huge line does
# not become one huge event.
EVENT_CHARS = 16_384
PathList = Annotated[list[Annotated[str, Field(min_length=1, max_length=4096)]],
                     Field(min_length=1, max_length=1000)]


class WorkspaceBody(BaseModel):
    workspace: str = Field(min_length=1, max_length=4096)


class TaskBody(WorkspaceBody):
    task: str = Field(min_length=1, max_length=300)
    args: list[str] = Field(default_factory=list, max_length=tasks.MAX_ARGS)


class PathsBody(WorkspaceBody):
    paths: PathList


class CommitBody(WorkspaceBody):
    message: str = Field(max_length=100_000)
    amend: bool = False


class SwitchBody(WorkspaceBody):
    branch: str = Field(min_length=1, max_length=200)
    create: bool = False


class FixBody(WorkspaceBody):
    unsafe: bool = False


class HooksBody(WorkspaceBody):
    files: Literal["all", "staged"] = "all"
    hooks: list[str] | None = Field(default=None, max_length=200)


class ApplyBody(WorkspaceBody):
    preview: str = Field(min_length=1, max_length=64)
    files: list[str] = Field(default_factory=list, max_length=100_000)


class TestsBody(WorkspaceBody):
    nodeids: list[str] = Field(default_factory=list, max_length=pytests.MAX_NODEIDS)
    rerun_failed: bool = False
    # False: PYTEST_DISABLE_PLUGIN_AUTOLOAD=1 (faster where many pytest plugins are installed)
    plugins: bool = True


def answers(fn: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    """Turn :class:`ApiError` into its JSON answer (4xx naming the field)."""
    @functools.wraps(fn)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return await fn(*args, **kwargs)
        except ApiError as exc:
            return exc.response()
    return wrapper


class DevToolsPlugin(Plugin):
    """Workspace picker, Tasks, Source Control, Problems, previews of changes, tests."""

    settings_model = DevToolsConfig

    def setup(self, ctx: PluginContext) -> None:
        self.ctx = ctx
        self.config: DevToolsConfig = ctx.config
        self.hub = EventHub(maxsize=512)
        self.history = tasks.History(ctx.data_dir / "task-history.json",
                                     self.config.history_size)
        self.previews = preview.PreviewStore()
        self.last_tests: dict[str, dict[str, Any]] = {}
        self.running: dict[str, str] = {}  # task run id -> job id
        routes: list[tuple[str, Callable[..., Awaitable[Any]], str]] = [
            ("/roots", self.roots, "GET"),
            ("/browse", self.browse, "GET"),
            ("/workspace", self.workspace, "GET"),
            ("/events", self.events, "GET"),
            ("/tasks", self.list_tasks, "GET"),
            ("/tasks/run", self.run_task, "POST"),
            ("/tasks/history", self.task_history, "GET"),
            ("/tasks/history/{run_id}", self.task_run, "GET"),
            ("/git/status", self.git_status, "GET"),
            ("/git/diff", self.git_diff, "GET"),
            ("/git/stage", self.git_stage, "POST"),
            ("/git/unstage", self.git_unstage, "POST"),
            ("/git/commit", self.git_commit, "POST"),
            ("/git/branches", self.git_branches, "GET"),
            ("/git/switch", self.git_switch, "POST"),
            ("/git/log", self.git_log, "GET"),
            ("/git/show", self.git_show, "GET"),
            ("/lint", self.lint, "POST"),
            ("/format/preview", self.format_preview, "POST"),
            ("/fix/preview", self.fix_preview, "POST"),
            ("/hooks", self.list_hooks, "GET"),
            ("/hooks/preview", self.hooks_preview, "POST"),
            ("/preview/{preview_id}", self.get_preview, "GET"),
            ("/preview/apply", self.apply_preview, "POST"),
            ("/tests/run", self.run_tests, "POST"),
            ("/tests/last", self.tests_last, "GET"),
        ]
        for path, endpoint, method in routes:
            ctx.add_route(path, answers(endpoint), methods=[method])

    # -- helpers -------------------------------------------------------------------------
    def ws(self, path: str | None, field: str = "workspace") -> Workspace:
        return open_workspace(self.config.root_paths(), path, field)

    def _start(self, name: str, work: Callable[..., Awaitable[Any]], *args: Any) -> Any:
        job = self.ctx.jobs.start(name, work, *args)
        return JSONResponse(job.to_dict(), status_code=202)

    # -- workspace -----------------------------------------------------------------------
    async def roots(self) -> dict[str, Any]:
        return {"roots": [str(r) for r in self.config.root_paths()],
                "tools": {name: shutil.which(name) is not None
                          for name in ("git", "make", "npm")} | {
                              "ruff": _has_ruff(),
                              "shellcheck": shellchecking.shellcheck_binary() is not None},
                "degraded": self.ctx.degraded}

    async def browse(self, path: Annotated[str, Query(max_length=4096)] = "") -> Any:
        return await asyncio.to_thread(browse, self.config.root_paths(), path or None)

    async def workspace(self, workspace: Annotated[str, Query(max_length=4096)] = "") -> Any:
        ws = self.ws(workspace)
        info = ws.detect()
        found, problems = await asyncio.to_thread(tasks.discover, ws)
        info["tasks"] = [t.to_dict() for t in found]
        info["problems"] = problems
        info["repository"] = (await gitops.repo_state(ws)) is not None
        return info

    async def events(self) -> Any:
        """Server-Sent Events: ``output`` (a task's live output) and ``run`` (a task run
        started or finished)."""
        return self.ctx.event_stream(self.hub.events())

    # -- tasks ---------------------------------------------------------------------------
    async def list_tasks(self, workspace: Annotated[str, Query(max_length=4096)] = "") -> Any:
        ws = self.ws(workspace)
        found, problems = await asyncio.to_thread(tasks.discover, ws)
        return {"tasks": [t.to_dict() for t in found], "problems": problems}

    async def run_task(self, body: TaskBody) -> Any:
        ws = self.ws(body.workspace)
        task = tasks.find(ws, body.task)
        args = tasks.check_args(task, body.args)
        argv = tasks.command(ws, task, args)
        run = tasks.TaskRun(secrets.token_hex(6), str(ws.path), task.id, args, argv,
                            time.time())
        job = self.ctx.jobs.start("task", self._task_job, ws, task, run)
        run.job_id = job.id
        self.history.add(run)
        self.hub.publish("run", run.to_dict(with_output=False))
        return JSONResponse({"run": run.to_dict(), "job": job.to_dict()}, status_code=202)

    async def _task_job(self, job: JobHandle, ws: Workspace, task: tasks.Task,
                        run: tasks.TaskRun) -> dict[str, Any]:
        buffer = procs.OutputBuffer(self.config.max_output_bytes)
        job.message(f"{task.id} {' '.join(run.args)}".strip())

        def output(text: str) -> None:
            for start in range(0, len(text), EVENT_CHARS):
                self.hub.publish("output", {"run": run.id,
                                            "text": text[start:start + EVENT_CHARS]})

        env = procs.child_env(tasks.script_env(ws) if task.kind == "script" else None)
        try:
            result = await procs.run(run.argv, ws.path, env=env, on_output=output,
                                     buffer=buffer)
            run.exit_code = result.exit_code
            run.state = "succeeded" if result.exit_code == 0 else "failed"
        except asyncio.CancelledError:
            run.state = "cancelled"
            raise
        except OSError as exc:
            run.state = "error"
            buffer.add(f"could not start {run.argv[0]}: {exc}\n")
        finally:
            run.finished_at = time.time()
            run.output = buffer.text()
            run.truncated = buffer.truncated
            run.total_bytes = buffer.total_bytes
            self.hub.publish("run", run.to_dict(with_output=False) | {
                "tail": buffer.tail if buffer.truncated else ""})
            await asyncio.to_thread(self._save_history)
        if run.state == "error":
            raise RuntimeError(run.output.strip().splitlines()[-1])
        # The job ran to its end either way; the message says how the task itself ended.
        job.message(f"{task.id}: {run.state} (exit {run.exit_code})")
        return {"run": run.id, "exit_code": run.exit_code, "state": run.state}

    def _save_history(self) -> None:
        try:
            self.history.save()
        except OSError:
            self.ctx.logger.exception("saving the task history failed")

    async def task_history(self, workspace: Annotated[str, Query(max_length=4096)] = ""
                           ) -> Any:
        path = str(self.ws(workspace).path) if workspace else None
        return {"runs": [r.to_dict(with_output=False) for r in self.history.runs
                         if path is None or r.workspace == path]}

    async def task_run(self, run_id: str) -> Any:
        return self.history.get(run_id).to_dict()

    # -- git -----------------------------------------------------------------------------
    async def git_status(self, workspace: Annotated[str, Query(max_length=4096)] = "") -> Any:
        return await gitops.status(self.ws(workspace))

    async def git_diff(self, workspace: Annotated[str, Query(max_length=4096)] = "",
                       path: Annotated[str, Query(max_length=4096)] = "",
                       staged: bool = False) -> Any:
        ws = self.ws(workspace)
        return await gitops.diff(ws, ws.git_rel(path) if path else None, staged)

    def _paths(self, ws: Workspace, paths: list[str]) -> list[str]:
        return [ws.git_rel(p, f"paths[{i}]") for i, p in enumerate(paths)]

    async def git_stage(self, body: PathsBody) -> Any:
        ws = self.ws(body.workspace)
        await gitops.stage(ws, self._paths(ws, body.paths))
        return await gitops.status(ws)

    async def git_unstage(self, body: PathsBody) -> Any:
        ws = self.ws(body.workspace)
        await gitops.unstage(ws, self._paths(ws, body.paths))
        return await gitops.status(ws)

    async def git_commit(self, body: CommitBody) -> Any:
        return await gitops.commit(self.ws(body.workspace), body.message, body.amend)

    async def git_branches(self, workspace: Annotated[str, Query(max_length=4096)] = ""
                           ) -> Any:
        return await gitops.branches(self.ws(workspace))

    async def git_switch(self, body: SwitchBody) -> Any:
        ws = self.ws(body.workspace)
        await gitops.switch(ws, body.branch, body.create)
        return await gitops.branches(ws)

    async def git_log(self, workspace: Annotated[str, Query(max_length=4096)] = "",
                      limit: Annotated[int, Query(ge=1, le=1000)] = 100,
                      ref: Annotated[str, Query(max_length=200)] = "") -> Any:
        return await gitops.log(self.ws(workspace), limit, ref or None)

    async def git_show(self, workspace: Annotated[str, Query(max_length=4096)] = "",
                       commit: Annotated[str, Query(max_length=64)] = "") -> Any:
        return await gitops.show(self.ws(workspace), commit)

    # -- ruff ----------------------------------------------------------------------------
    async def lint(self, body: WorkspaceBody) -> Any:
        ws = self.ws(body.workspace)
        ruffing.ruff_binary()  # 409 now rather than a failed job
        return self._start("lint", self._lint_job, ws)

    async def _lint_job(self, job: JobHandle, ws: Workspace) -> dict[str, Any]:
        job.message(f"ruff check {ws.name}")
        result = await ruffing.lint(ws, self.config.tool_timeout)
        result["tools"] = ["ruff"]
        if shellchecking.shellcheck_binary() is not None:
            job.message("shellcheck")
            is_git = (await gitops.repo_state(ws)) is not None
            files = await preview.list_files(ws, is_git)
            scripts = await asyncio.to_thread(shellchecking.shell_files, ws, files)
            found = await shellchecking.check(ws, scripts, self.config.tool_timeout)
            result["problems"] += found
            result["problems"].sort(key=lambda p: (p["path"], p["line"], p["column"]))
            result["total"] += len(found)
            result["shown"] += len(found)
            result["tools"].append("shellcheck")
        job.message(f"{result['total']} problems")
        return result

    async def format_preview(self, body: WorkspaceBody) -> Any:
        ws = self.ws(body.workspace)
        command = ruffing.format_command()
        return self._start("format", self._command_preview, ws, "format", command)

    async def fix_preview(self, body: FixBody) -> Any:
        ws = self.ws(body.workspace)
        command = ruffing.fix_command(body.unsafe)
        return self._start("fix", self._command_preview, ws, "fix", command)

    async def _make_copy(self, job: JobHandle, ws: Workspace,
                         only: set[str] | None = None) -> tuple[preview.Copy, bool]:
        is_git = (await gitops.repo_state(ws)) is not None
        job.message("listing files")
        files = await preview.list_files(ws, is_git)
        if only is not None:
            # Every TOML file goes along: a config's `extend` may name one of them
            # (the preview failed: "Failed to read .../config/ruff-base.toml").
            files = [f for f in files if f in only or Path(f).name in ruffing.CONFIG_FILES
                     or f.endswith(".toml")]
        copy = preview.Copy(ws, files, self.config.max_copy_files, self.config.max_copy_bytes)
        job.message(f"copying {len(files)} files")
        try:
            await asyncio.to_thread(copy.fill)
        except BaseException:
            copy.cleanup()
            raise
        return copy, is_git

    def _discard(self, copy: preview.Copy) -> None:
        """Delete a preview's copy in the background: on a slow disk removing thousands
        of files takes seconds the user need not wait for."""
        self.ctx.create_task(asyncio.to_thread(copy.cleanup), name="dev_tools remove copy")

    async def _command_preview(self, job: JobHandle, ws: Workspace, kind: str,
                               command: list[str]) -> dict[str, Any]:
        only = None
        check: procs.ProcResult | None = None
        if kind == "format":
            # Formatting is per file: ask ruff (read-only) which files it would change and
            # copy only those and the config files, not the whole tree.
            job.message("ruff format --diff (read-only)")
            check = await procs.run(ruffing.check_format_command(), ws.path,
                                    cap=50_000_000, timeout=self.config.tool_timeout)
            only = ruffing.would_reformat(check.output)
            if not only:
                item = self.previews.add(preview.Preview(
                    preview.new_id(), kind, ws.path, {},
                    {"output": check.output, "exit_code": check.exit_code}))
                job.message("0 files would change")
                return item.to_dict()
        copy, _ = await self._make_copy(job, ws, only)
        # The files to format go in batches: thousands of names must stay far below the
        # system's command-line limit.
        batches: list[list[str]] = [[]] if only is None else [sorted(only)[i:i + 1000]
                                             for i in range(0, len(only), 1000)]
        try:
            job.message(f"running {kind} on a copy")
            for batch in batches:
                result = await procs.run([*command[:-1], *batch] if batch else command,
                                         copy.dir, cap=self.config.max_output_bytes,
                                         timeout=self.config.tool_timeout)
                if result.exit_code is None or result.exit_code > 1:
                    break
            changes = await asyncio.to_thread(copy.changes)
        finally:
            self._discard(copy)
        if result.exit_code is None:
            raise RuntimeError(f"{kind} stopped after {self.config.tool_timeout:g} s "
                               "(tool_timeout)")
        # ruff exits 2 when some file cannot be parsed but still formats or fixes the
        # others: show those changes with ruff's message rather than failing them all.
        output: str = result.output
        code: int | None = result.exit_code
        if check is not None and check.exit_code not in (0, 1):
            # Files the check could not parse are not in the copy: keep its messages.
            output, code = ruffing.messages(check.output) + output, check.exit_code
        item = self.previews.add(preview.Preview(
            preview.new_id(), kind, ws.path, changes, {"output": output, "exit_code": code}))
        job.message(f"{len(changes)} files would change")
        return item.to_dict()

    async def get_preview(self, preview_id: str) -> Any:
        return self.previews.get(preview_id).to_dict()

    async def apply_preview(self, body: ApplyBody) -> Any:
        ws = self.ws(body.workspace)
        item = self.previews.get(body.preview)
        return await asyncio.to_thread(preview.apply, item, ws, body.files)

    # -- hooks ---------------------------------------------------------------------------
    async def list_hooks(self, workspace: Annotated[str, Query(max_length=4096)] = "") -> Any:
        ws = self.ws(workspace)
        config = await asyncio.to_thread(hooks.load, ws.path)
        return {"hooks": [h.to_dict() for h in config.hooks],
                "skipped_repos": config.skipped_repos}

    async def hooks_preview(self, body: HooksBody) -> Any:
        ws = self.ws(body.workspace)
        config = await asyncio.to_thread(hooks.load, ws.path)
        chosen = config.hooks
        if body.hooks is not None:
            known = {h.id for h in config.hooks}
            for index, hook_id in enumerate(body.hooks):
                if hook_id not in known:
                    raise ApiError(404, f"hooks[{index}]", f"{hook_id!r} is not a local or "
                                                           "meta hook of the config")
            chosen = [h for h in config.hooks if h.id in body.hooks]
        if body.files == "staged":
            await gitops.require_repo(ws)
        return self._start("hooks", self._hooks_job, ws, config, chosen, body.files)

    async def _hooks_job(self, job: JobHandle, ws: Workspace, config: hooks.HookConfig,
                         chosen: list[hooks.Hook], which: str) -> dict[str, Any]:
        copy, _ = await self._make_copy(job, ws)
        try:
            if which == "staged":
                staged = await gitops.git(ws, "diff", "--cached", "--name-only", "-z", "--relative",
                                          "--diff-filter=ACMR")
                files = [f for f in staged.output.split("\x00") if f in copy.before]
            else:
                files = list(copy.before)
            reports = []
            tag_cache: dict[str, set[str]] = {}
            for index, hook in enumerate(chosen):
                job.progress(index, len(chosen), f"{hook.id}")
                reports.append(await self._run_hook(hook, config, copy, files, chosen,
                                                    tag_cache))
            job.progress(len(chosen), len(chosen), "comparing")
            changes = await asyncio.to_thread(copy.changes)
        finally:
            self._discard(copy)
        item = self.previews.add(preview.Preview(
            preview.new_id(), "hooks", ws.path, changes,
            {"hooks": reports, "skipped_repos": config.skipped_repos, "scope": which,
             "passed": all(r["status"] in ("passed", "skipped") for r in reports)}))
        return item.to_dict()

    async def _run_hook(self, hook: hooks.Hook, config: hooks.HookConfig,
                        copy: preview.Copy, files: list[str], every: list[hooks.Hook],
                        tag_cache: dict[str, set[str]]) -> dict[str, Any]:
        report: dict[str, Any] = hook.to_dict() | {"status": "passed", "output": "",
                                                   "files": 0, "modified": []}
        if not hook.runnable:
            return report | {"status": "skipped", "output": hook.why_not or ""}
        selected = hooks.select(hook, config, copy.dir, files, tag_cache)
        report["files"] = len(selected)
        if not selected and not hook.always_run:
            return report | {"status": "skipped", "output": "no files to check"}
        before = await asyncio.to_thread(copy.snapshot)
        code, output = 0, ""
        if hook.language == "pygrep":
            code, output = await asyncio.to_thread(hooks.pygrep, hook, copy.dir, selected)
        elif hook.language == "fail":
            code, output = 1, hook.entry + "\n" + "".join(f"{f}\n" for f in selected)
        elif hook.repo == "meta":
            code, output = _meta(hook, config, copy, files, every, tag_cache)
        else:
            try:
                command = hooks.argv(hook, copy.dir, copy.ws.path)
            except FileNotFoundError as exc:
                return report | {"status": "skipped", "output": f"not run: {exc}"}
            batches = ([selected[i:i + hooks.BATCH]
                        for i in range(0, len(selected), hooks.BATCH)]
                       if hook.pass_filenames else [[]])
            outputs = []
            for batch in batches:
                result = await procs.run([*command, *batch], copy.dir,
                                         cap=self.config.max_output_bytes,
                                         timeout=self.config.tool_timeout)
                outputs.append(result.output)
                if result.exit_code != 0:
                    code = result.exit_code if result.exit_code is not None else -1
            output = "".join(outputs)
        after = await asyncio.to_thread(copy.snapshot)
        modified = sorted(p for p in set(before) | set(after) if before.get(p) != after.get(p))
        status = "failed" if code != 0 else ("modified" if modified else "passed")
        return report | {"status": status, "exit_code": code, "output": output,
                         "modified": modified}

    # -- tests ---------------------------------------------------------------------------
    async def run_tests(self, body: TestsBody) -> Any:
        ws = self.ws(body.workspace)
        nodeids = pytests.check_nodeids(ws, body.nodeids)
        if body.rerun_failed:
            last = self.last_tests.get(str(ws.path))
            if last is None:
                raise ApiError(409, "rerun_failed", "no test run of this workspace yet")
            if not last["failed"]:
                raise ApiError(409, "rerun_failed", "the last run had no failed test")
            nodeids = list(last["failed"])
        return self._start("tests", self._tests_job, ws, nodeids, body.plugins)

    async def _tests_job(self, job: JobHandle, ws: Workspace, nodeids: list[str],
                         autoload: bool) -> dict[str, Any]:
        job.message(f"pytest in {ws.name}")
        result = await pytests.run(ws, nodeids, self.config.max_output_bytes, job.progress,
                                   autoload)
        result["finished_at"] = time.time()
        self.last_tests[str(ws.path)] = result
        counts = ", ".join(f"{n} {k}" for k, n in sorted(result["counts"].items()))
        ended = (f"; pytest ended before finishing (exit code {result['exit_code']})"
                 if result["ended_early"] else "")
        job.message((counts or "no tests ran") + ended)
        return result

    async def tests_last(self, workspace: Annotated[str, Query(max_length=4096)] = "") -> Any:
        """``{"last": result}``; null before the first run (not a 404: the page asks on
        every workspace it opens, and a 404 is a console error in the browser)."""
        ws = self.ws(workspace)
        return {"last": self.last_tests.get(str(ws.path))}


def _meta(hook: hooks.Hook, config: hooks.HookConfig, copy: preview.Copy, files: list[str],
          every: list[hooks.Hook], tag_cache: dict[str, set[str]]) -> tuple[int, str]:
    import re

    if hook.id == "identity":
        return 0, "".join(f"{f}\n" for f in hooks.select(hook, config, copy.dir, files,
                                                         tag_cache))
    if hook.id == "check-hooks-apply":
        idle = [h.id for h in every if h.repo != "meta" and not h.always_run
                and not hooks.select(h, config, copy.dir, files, tag_cache)]
        return (1 if idle else 0), "".join(f"{h} does not apply to this repository\n"
                                           for h in idle)
    useless = [h.id for h in every if h.repo != "meta" and h.exclude != "^$"
               and not any(re.search(h.exclude, f) for f in files)]
    return (1 if useless else 0), "".join(f"the exclude pattern of {h} does not match any "
                                          "file\n" for h in useless)


def _has_ruff() -> bool:
    try:
        ruffing.ruff_binary()
    except ApiError:
        return False
    return True


__all__ = ["DevToolsPlugin"]
