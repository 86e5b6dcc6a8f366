"""Tasks of a workspace: Make targets, package.json scripts and [project.scripts].

A task is run as an argument list; no shell parses its name or its arguments. What a
Make recipe or an npm script itself contains is the project's own code (a shell runs it,
as in VS Code), so the arguments that could reach that shell are refused instead:
``VAR=value`` and options for make (``--eval`` runs make code), anything beyond plain
words for npm (npm pastes arguments into the script's shell command line).
"""

from __future__ import annotations

import json
import re
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from dev_tools.errors import ApiError
from dev_tools.workspace import Workspace, which

MAKEFILES = ("GNUmakefile", "makefile", "Makefile")
# A rule line: "target other: deps" (not a variable assignment, not a pattern rule).
_MAKE_RULE = re.compile(r"^([A-Za-z0-9_][A-Za-z0-9_./+-]*(?:\s+[A-Za-z0-9_][A-Za-z0-9_./+-]*)*)"
                        r"\s*::?(?!=)")
_ENTRY_POINT = re.compile(r"^([A-Za-z_][\w]*(?:\.[A-Za-z_]\w*)*)\s*:\s*"
                          r"([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)$")
_NPM_SAFE_ARG = re.compile(r"^[A-Za-z0-9_./:@%+,=-]+$")
MAX_ARGS = 64
MAX_ARG_CHARS = 4096


@dataclass(frozen=True)
class Task:
    id: str          # "make:build", "npm:test", "script:mycli"
    kind: str        # make | npm | script
    name: str
    detail: str      # what it runs, for the page

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def discover(ws: Workspace) -> tuple[list[Task], list[str]]:
    """Every task the workspace declares, and the problems met reading its files."""
    tasks: list[Task] = []
    problems: list[str] = []
    for name in MAKEFILES:
        path = ws.path / name
        if path.is_file():
            tasks += _make_targets(path, problems)
            break
    package = ws.path / "package.json"
    if package.is_file():
        try:
            data = json.loads(package.read_text("utf-8"))
            scripts = data.get("scripts") if isinstance(data, dict) else None
            if not isinstance(scripts, dict):
                scripts = {}
            for name, body in scripts.items():
                if isinstance(name, str) and isinstance(body, str):
                    tasks.append(Task(f"npm:{name}", "npm", name, body))
        except (OSError, ValueError) as exc:
            problems.append(f"package.json: {exc}")
    pyproject = ws.path / "pyproject.toml"
    if pyproject.is_file():
        import tomllib  # lazily: app start-up imports every plugin

        try:
            data = tomllib.loads(pyproject.read_text("utf-8"))
            project = data.get("project")
            scripts = project.get("scripts") if isinstance(project, dict) else None
            if not isinstance(scripts, dict):
                scripts = {}
            for name, target in scripts.items():
                if isinstance(target, str) and _ENTRY_POINT.match(target.strip()):
                    tasks.append(Task(f"script:{name}", "script", name, target.strip()))
                else:
                    problems.append(f"pyproject.toml: [project.scripts] {name!r} = "
                                    f"{target!r} is not a module:function entry point")
        except (OSError, ValueError) as exc:
            problems.append(f"pyproject.toml: {exc}")
    return tasks, problems


def _make_targets(path: Path, problems: list[str]) -> list[Task]:
    try:
        text = path.read_text("utf-8", "replace")
    except OSError as exc:
        problems.append(f"{path.name}: {exc}")
        return []
    seen: dict[str, str] = {}
    comment = ""
    for line in text.splitlines():
        if line.startswith("#"):
            comment = line.lstrip("#").strip()
            continue
        match = _MAKE_RULE.match(line)
        if match and not line.startswith("\t"):
            for target in match.group(1).split():
                # .PHONY and friends are directives; %-rules and files with a dot in the
                # first place are not things a person runs.
                if not target.startswith(".") and target not in seen:
                    trailing = line.partition("##")[2].strip()
                    seen[target] = trailing or comment
        if not line.strip():
            comment = ""
    return [Task(f"make:{t}", "make", t, d) for t, d in seen.items()]


def find(ws: Workspace, task_id: str) -> Task:
    tasks, _ = discover(ws)
    for task in tasks:
        if task.id == task_id:
            return task
    raise ApiError(404, "task", f"{task_id!r} is not a task of {ws.name} "
                                f"(known: {', '.join(t.id for t in tasks) or 'none'})")


def check_args(task: Task, args: list[str]) -> list[str]:
    if len(args) > MAX_ARGS:
        raise ApiError(422, "args", f"at most {MAX_ARGS} arguments, got {len(args)}")
    for index, arg in enumerate(args):
        field = f"args[{index}]"
        if not isinstance(arg, str):
            raise ApiError(422, field, "must be text")
        if "\x00" in arg:
            raise ApiError(422, field, "contains a NUL character")
        if len(arg) > MAX_ARG_CHARS:
            raise ApiError(422, field, f"longer than {MAX_ARG_CHARS} characters")
        if task.kind == "make" and (arg.startswith("-") or "=" in arg):
            raise ApiError(422, field, f"{arg!r}: make options and VAR=value overrides are "
                                       "refused (they reach the recipes' shell); give "
                                       "target names only")
        if task.kind == "npm" and not _NPM_SAFE_ARG.match(arg):
            raise ApiError(422, field, f"{arg!r}: npm passes script arguments through a "
                                       "shell, so only letters, digits and _./:@%+,=- "
                                       "are accepted")
    return args


def command(ws: Workspace, task: Task, args: list[str]) -> list[str]:
    """The argument list that runs ``task`` with ``args``."""
    if task.kind == "make":
        make = which("make")
        if make is None:
            raise ApiError(409, "task", "make is not installed (install it with your "
                                        "system's package manager)")
        return [make, "--no-print-directory", task.name, *args]
    if task.kind == "npm":
        npm = which("npm")
        if npm is None:
            raise ApiError(409, "task", "npm is not installed (install Node.js)")
        return [npm, "run", "--silent", task.name, *(["--", *args] if args else [])]
    match = _ENTRY_POINT.match(task.detail)
    assert match is not None  # discover() only lists valid entry points
    module, attr = match.groups()
    # The entry point was matched against identifier syntax above, so this is code we
    # wrote, not text from the file; argv goes in as a list.
    code = (f"import sys; sys.argv[0] = {task.name!r}; import importlib; "
            f"o = importlib.import_module({module!r})\n"
            f"for a in {attr.split('.')!r}: o = getattr(o, a)\n"
            f"sys.exit(o())")
    return [python_for(ws), "-c", code, *args]


def python_for(ws: Workspace) -> str:
    """The workspace's own interpreter (.venv/venv) when it has one, else the app's."""
    for folder in (".venv", "venv", "env"):
        for candidate in (ws.path / folder / "bin" / "python",
                          ws.path / folder / "Scripts" / "python.exe"):
            if candidate.is_file():
                return str(candidate)
    return sys.executable


def script_env(ws: Workspace) -> dict[str, str]:
    """PYTHONPATH so a [project.scripts] entry imports from a src/ or flat layout."""
    paths = [str(ws.path / "src"), str(ws.path)]
    return {"PYTHONPATH": ":".join(paths)}


@dataclass
class TaskRun:
    id: str
    workspace: str
    task: str
    args: list[str]
    argv: list[str]
    started_at: float
    finished_at: float | None = None
    state: str = "running"      # running | succeeded | failed | cancelled | error
    exit_code: int | None = None
    output: str = ""
    truncated: bool = False
    total_bytes: int = 0
    job_id: str | None = None

    def to_dict(self, with_output: bool = True) -> dict[str, Any]:
        data = asdict(self)
        if not with_output:
            data.pop("output")
        data["duration"] = (self.finished_at or time.time()) - self.started_at
        return data


class History:
    """Finished and running task runs, newest first, saved to a JSON file."""

    def __init__(self, path: Path, size: int):
        self.path = path
        self.size = size
        self.runs: list[TaskRun] = []
        try:
            for item in json.loads(path.read_text("utf-8")):
                run = TaskRun(**{k: v for k, v in item.items() if k != "duration"})
                if run.state == "running":  # the app stopped under it
                    run.state = "interrupted"
                self.runs.append(run)
        except (OSError, ValueError, TypeError):
            self.runs = []

    def add(self, run: TaskRun) -> None:
        self.runs.insert(0, run)
        del self.runs[self.size:]

    def get(self, run_id: str) -> TaskRun:
        for run in self.runs:
            if run.id == run_id:
                return run
        raise ApiError(404, "run", f"no task run {run_id!r} in the history")

    def save(self) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps([r.to_dict() for r in self.runs]), "utf-8")
        tmp.replace(self.path)
