"""ruff, bandit and vulture as subprocesses, their output turned into one issue model.

Each tool runs from the app's environment (next to ``sys.executable``, else on PATH) with
an argument list, never through a shell, in a session of its own so a cancel kills it and
anything it started. An issue is ``{tool, rule, severity (high|medium|low), message,
path (relative, '/'), line, column, link, fix_available, fix_applicability}``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

TOOLS = ("ruff", "bandit", "vulture")
CHUNK = 400  # files per command line: far below ARG_MAX with long paths


class Cancelled(Exception):
    """The scan was cancelled while a tool ran; the tool was killed."""


def tool_path(name: str) -> str | None:
    """The tool next to this interpreter (the app's venv), else on PATH."""
    local = Path(sys.executable).parent / name
    if local.is_file() and os.access(local, os.X_OK):
        return str(local)
    return shutil.which(name)


@dataclass
class ToolRun:
    tool: str
    status: str = "ok"  # ok | missing | failed
    detail: str = ""
    seconds: float = 0.0
    issues: list[dict[str, Any]] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        return {"tool": self.tool, "status": self.status, "detail": self.detail,
                "seconds": round(self.seconds, 3), "issues": len(self.issues)}


def run(argv: Sequence[str], cwd: Path, cancel: threading.Event | None,
        timeout: float) -> tuple[int, str, str]:
    """Run ``argv`` (no shell); kill its process group on cancel or timeout."""
    proc = subprocess.Popen(list(argv), cwd=cwd, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)
    deadline = time.monotonic() + timeout
    while True:
        try:
            out, err = proc.communicate(timeout=0.2)
            return proc.returncode, out.decode("utf-8", "replace"), err.decode("utf-8",
                                                                                "replace")
        except subprocess.TimeoutExpired:
            stop = "cancelled" if cancel is not None and cancel.is_set() else (
                "timed out" if time.monotonic() > deadline else None)
            if stop is None:
                continue
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            if stop == "cancelled":
                raise Cancelled(argv[0]) from None
            raise TimeoutError(f"{Path(argv[0]).name} took longer than {timeout:g} s "
                               "(setting tool_timeout_seconds)") from None


def _rel(folder: Path, filename: str) -> str:
    path = Path(filename)
    if not path.is_absolute():
        path = folder / path
    try:
        return path.resolve().relative_to(folder).as_posix()
    except ValueError:
        return path.as_posix()


def _chunks(items: Sequence[str]) -> list[Sequence[str]]:
    return [items[i:i + CHUNK] for i in range(0, len(items), CHUNK)] or [[]]


# -- ruff ------------------------------------------------------------------------------
RUFF_HIGH = re.compile(r"^(E9|F63|F7|F82|PLE)")
RUFF_MEDIUM = re.compile(r"^(F|B|S|PLW|ASYNC|DTZ|TRY)")


def ruff_severity(code: str | None) -> str:
    # A syntax error (code that does not compile) has no rule code in older ruff and
    # "invalid-syntax" since 0.12 (it was graded low there, and the gate passed on code
    # that does not compile).
    if not code or code == "invalid-syntax" or RUFF_HIGH.match(code):
        return "high"
    return "medium" if RUFF_MEDIUM.match(code) else "low"


def parse_ruff(folder: Path, text: str) -> list[dict[str, Any]]:
    issues = []
    for item in json.loads(text or "[]"):
        code = item.get("code")
        fix = item.get("fix") or None
        loc = item.get("location") or {}
        issues.append({
            "tool": "ruff", "rule": code or "syntax-error", "severity": ruff_severity(code),
            "message": item.get("message", ""), "path": _rel(folder, item["filename"]),
            "line": loc.get("row") or 1, "column": loc.get("column") or 1,
            "link": item.get("url"), "fix_available": fix is not None,
            "fix_applicability": fix.get("applicability") if fix else None,
        })
    return issues


def run_ruff(folder: Path, files: Sequence[str], cancel: threading.Event | None,
             timeout: float, cache_dir: Path | None = None) -> ToolRun:
    result = ToolRun("ruff")
    exe = tool_path("ruff")
    if exe is None:
        return ToolRun("ruff", "missing", "ruff is not installed (pip install 'ruff>=0.6')")
    for chunk in _chunks(files):
        if not chunk:
            break
        # The project's own ruff configuration applies, as when the user runs ruff. Its
        # cache goes to our data folder: a scan must not write into the user's project.
        cache = ["--cache-dir", str(cache_dir)] if cache_dir else ["--no-cache"]
        rc, out, err = run([exe, "check", "--output-format", "json", "--exit-zero", *cache,
                            "--force-exclude", "--", *chunk], folder, cancel, timeout)
        if rc != 0:
            return ToolRun("ruff", "failed", f"ruff exited with {rc}: {err.strip()[:500]}")
        result.issues += parse_ruff(folder, out)
    return result


# -- bandit ----------------------------------------------------------------------------
def _is_test_file(rel: str) -> bool:
    name = rel.rsplit("/", 1)[-1]
    return ("/tests/" in f"/{rel}" or "/test/" in f"/{rel}" or name.startswith("test_")
            or name.endswith("_test.py") or name == "conftest.py")


def parse_bandit(folder: Path, text: str) -> list[dict[str, Any]]:
    issues = []
    for item in json.loads(text or "{}").get("results", []):
        rel = _rel(folder, item["filename"])
        issues.append({
            "tool": "bandit", "rule": item.get("test_id", "?"),
            "severity": str(item.get("issue_severity", "LOW")).lower(),
            "message": f"{item.get('issue_text', '')} (confidence "
                       f"{str(item.get('issue_confidence', '?')).lower()})",
            "path": rel, "line": item.get("line_number") or 1,
            "column": (item.get("col_offset") or 0) + 1, "link": item.get("more_info"),
            "fix_available": False, "fix_applicability": None,
        })
    return issues


def _without_test_asserts(issues: list[dict[str, Any]]) -> list[dict[str, Any]]:
    # assert in tests is how pytest works, not a security hole. Judged by the path after
    # the cache (whose findings are per content: a file and its copy under tests/ share
    # one entry, and the test copy's filtered list hid the other's finding on rescan).
    return [i for i in issues if not (i["rule"] == "B101" and _is_test_file(i["path"]))]


def run_bandit(folder: Path, files: Sequence[str], cancel: threading.Event | None,
               timeout: float, *, keep_test_asserts: bool = False) -> ToolRun:
    result = ToolRun("bandit")
    exe = tool_path("bandit")
    if exe is None:
        return ToolRun("bandit", "missing",
                       "bandit is not installed (pip install 'bandit>=1.7')")
    for chunk in _chunks(files):
        if not chunk:
            break
        rc, out, err = run([exe, "-f", "json", "-q", "--exit-zero", "--", *chunk],
                           folder, cancel, timeout)
        try:
            result.issues += parse_bandit(folder, out)
        except json.JSONDecodeError:
            return ToolRun("bandit", "failed",
                           f"bandit exited with {rc}: {(err or out).strip()[:500]}")
    if not keep_test_asserts:
        result.issues = _without_test_asserts(result.issues)
    return result


# -- vulture ---------------------------------------------------------------------------
VULTURE_LINE = re.compile(r"^(?P<path>.+?):(?P<line>\d+): (?P<msg>.+?)"
                          r" \((?P<conf>\d+)% confidence(?:, \d+ lines?)?\)$")
VULTURE_LINK = "https://github.com/jendrikseipp/vulture#readme"


def parse_vulture(folder: Path, text: str) -> list[dict[str, Any]]:
    issues = []
    for line in text.splitlines():
        m = VULTURE_LINE.match(line.strip())
        if not m:
            continue
        msg = m["msg"]
        kind = msg.split(" '", 1)[0]  # "unused function 'x'" -> "unused function"
        if kind.startswith("unreachable code"):
            kind = "unreachable code"
        issues.append({
            "tool": "vulture", "rule": kind.replace(" ", "-"),
            "severity": "medium" if kind.startswith("unreachable") else "low",
            "message": f"{msg} ({m['conf']}% confidence)", "path": _rel(folder, m["path"]),
            "line": int(m["line"]), "column": 1, "link": VULTURE_LINK,
            "fix_available": False, "fix_applicability": None,
        })
    return issues


def run_vulture(folder: Path, files: Sequence[str], cancel: threading.Event | None,
                timeout: float, min_confidence: int) -> ToolRun:
    exe = tool_path("vulture")
    if exe is None:
        return ToolRun("vulture", "missing",
                       "vulture is not installed (pip install 'vulture>=2.11')")
    if not files:
        return ToolRun("vulture")
    # All files in one call: dead code is only dead when nothing else uses it.
    rc, out, err = run([exe, "--min-confidence", str(min_confidence), "--", *files],
                       folder, cancel, timeout)
    if rc not in (0, 3):  # 3 = dead code found
        return ToolRun("vulture", "failed", f"vulture exited with {rc}: {err.strip()[:500]}")
    return ToolRun("vulture", issues=parse_vulture(folder, out))


def _bandit_tag() -> str:
    from importlib.metadata import PackageNotFoundError, version

    # "2": entries hold every finding of the content (before, a test file's asserts
    # were left out, and its entry served the same content elsewhere).
    try:
        return f"bandit:{version('bandit')}:2:"
    except PackageNotFoundError:
        return "bandit:?:2:"


def run_bandit_cached(folder: Path, contents: dict[str, bytes], store: Any,
                      cancel: threading.Event | None, timeout: float) -> ToolRun:
    """bandit on the files whose content it has not judged before. Its findings depend on
    one file's content and bandit's version only, so they are cached per content hash
    (ruff keeps its own cache; vulture's findings depend on the whole project)."""
    tag = _bandit_tag()
    keys = {rel: tag + hashlib.sha256(data).hexdigest() for rel, data in contents.items()}
    cached = store.cached(keys.values()) if store is not None else {}
    todo = [rel for rel, key in keys.items() if key not in cached]
    if not todo:
        result = ToolRun("bandit")
    else:
        result = run_bandit(folder, todo, cancel, timeout, keep_test_asserts=True)
        if result.status != "ok":
            return result
        if store is not None:
            fresh: dict[str, list[dict[str, Any]]] = {rel: [] for rel in todo}
            for issue in result.issues:
                fresh.setdefault(issue["path"], []).append(issue)
            store.remember((keys[rel], {"issues": fresh[rel]}) for rel in todo)
    for rel, key in keys.items():
        if key in cached:
            result.issues += [{**i, "path": rel} for i in cached[key]["issues"]]
    result.issues = _without_test_asserts(result.issues)
    if cached:
        result.detail = f"{len(keys) - len(todo)} files from the cache"
    return result


def run_all(folder: Path, files: Sequence[str], cancel: threading.Event | None, *,
            timeout: float, min_confidence: int, names: Sequence[str] = TOOLS,
            contents: dict[str, bytes] | None = None, store: Any = None,
            ruff_cache_dir: Path | None = None) -> list[ToolRun]:
    """The tools at once (each is a process: threads only wait for them). With
    ``contents`` (path -> bytes of ``files``) bandit's findings are cached in ``store``."""
    runs: dict[str, ToolRun] = {}
    errors: list[BaseException] = []

    def one(name: str) -> None:
        started = time.monotonic()
        try:
            if name == "ruff":
                r = run_ruff(folder, files, cancel, timeout, ruff_cache_dir)
            elif name == "bandit" and contents is not None:
                r = run_bandit_cached(folder, contents, store, cancel, timeout)
            elif name == "bandit":
                r = run_bandit(folder, files, cancel, timeout)
            else:
                r = run_vulture(folder, files, cancel, timeout, min_confidence)
        except Cancelled as exc:
            errors.append(exc)
            return
        except (OSError, TimeoutError, ValueError) as exc:
            r = ToolRun(name, "failed", f"{type(exc).__name__}: {exc}")
        r.seconds = time.monotonic() - started
        runs[name] = r

    threads = [threading.Thread(target=one, args=(n,), name=f"code_analyzer {n}")
               for n in names]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return [runs[n] for n in names]
