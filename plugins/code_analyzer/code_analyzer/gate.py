"""The quality gate on new code ("clean as you code") against any git ref, locally.

Only the files changed since the ref are analysed (metrics from the cache when their
content was seen before, ruff and bandit on those files only), so the gate answers in
seconds on a large project. New code = lines added or changed since the ref, in the
working tree (committed or not), plus untracked files. Conditions:

* no new issue at or above ``fail_on`` severity (default high) on a new line;
* no function touched by the change above ``max_complexity``;
* no changed Python file with a maintainability index under ``min_maintainability``.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from code_analyzer import gitutil, tools
from code_analyzer.metrics import analyze, finding
from code_analyzer.scan import SEVERITIES, Progress, ScanCancelled, ScanOptions, compute_metrics
from code_analyzer.store import Store
from code_analyzer.walk import language_of


class GateError(ValueError):
    """The gate cannot run: says which field (folder, ref) and why."""


@dataclass(frozen=True)
class GateRule:
    ref: str
    max_complexity: int = 15
    min_maintainability: float = 20.0
    fail_on: str = "high"


def check_target(folder: Path, ref: str) -> str:
    """The commit ``ref`` names in the repository of ``folder``; ``GateError`` naming the
    field (folder, ref) otherwise."""
    repo = gitutil.toplevel(folder)
    if repo is None:
        raise GateError(f"folder: {folder} is not inside a git repository")
    try:
        return gitutil.resolve_ref(repo, ref)
    except gitutil.GitError as exc:
        raise GateError(str(exc)) from None


def run_gate(folder: Path, rule: GateRule, store: Store | None, options: ScanOptions,
             cancel: threading.Event | None = None, progress: Progress | None = None,
             ) -> dict[str, Any]:
    cancel = cancel or threading.Event()
    report: Progress = progress or (lambda *_: None)
    started = time.monotonic()
    folder = folder.resolve()
    repo = gitutil.toplevel(folder)
    if repo is None:
        raise GateError(f"folder: {folder} is not inside a git repository")
    try:
        commit = gitutil.resolve_ref(repo, rule.ref)
        under = folder.relative_to(repo).as_posix() if folder != repo else ""
        report(0, None, f"diff against {rule.ref}")
        changed = gitutil.changes(repo, commit, under)
    except gitutil.GitError as exc:
        text = str(exc)
        raise GateError(text if text.startswith("ref:") else f"ref: {text}") from None
    prefix = f"{under}/" if under else ""
    entries: list[tuple[str, bytes, str]] = []
    lines: dict[str, set[int] | None] = {}  # folder-relative path -> new lines (None=all)
    old_paths: dict[str, str | None] = {}
    for ch in changed:
        language = language_of(ch.path)
        if language is None:
            continue
        path = repo / ch.path
        try:
            if path.is_symlink() or path.stat().st_size > options.max_bytes:
                continue
            data = path.read_bytes()
        except OSError:
            continue
        rel = ch.path[len(prefix):]
        entries.append((rel, data, language))
        lines[rel] = None if ch.whole else ch.lines
        old_paths[rel] = ch.old_path
    if cancel.is_set():
        raise ScanCancelled
    metrics, _ = compute_metrics(entries, store, options, cancel, report)

    def is_new(rel: str, first: int, last: int | None = None) -> bool:
        new = lines.get(rel)
        if new is None:
            return rel in lines
        return any(n in new for n in range(first, (last or first) + 1))

    issues: list[dict[str, Any]] = []
    functions: list[dict[str, Any]] = []
    files: list[dict[str, Any]] = []
    for (rel, _, language), m in zip(entries, metrics, strict=True):
        if m.get("binary"):
            continue
        base = _base_metrics(repo, commit, old_paths.get(rel), language)
        base_cc = {fn["name"]: fn["complexity"] for fn in (base or {}).get("functions", [])}
        files.append({"path": rel, "language": language, "mi": m["mi"],
                      "base_mi": (base or {}).get("mi"), "new_lines": (
                          m["loc"] if lines[rel] is None else len(lines[rel] or ()))})
        for f in m["findings"]:
            issues.append({**f, "path": rel})
        for fn in m["functions"]:
            if is_new(rel, fn["line"], fn["end_line"]):
                functions.append({"path": rel, **fn, "base_complexity": base_cc.get(fn["name"])})
    py_files = [e[0] for e in entries if e[2] == "python"]
    report(len(entries), len(entries), "running ruff and bandit on the changed files")
    try:
        contents = {rel: data for rel, data, lang in entries if lang == "python"}
        for run in (tools.run_ruff(folder, py_files, cancel, options.tool_timeout,
                                   options.ruff_cache_dir),
                    tools.run_bandit_cached(folder, contents, store, cancel,
                                            options.tool_timeout)):
            issues.extend(run.issues)
    except tools.Cancelled:
        raise ScanCancelled from None
    new_issues = [i for i in issues if is_new(i["path"], i["line"])]
    new_issues.sort(key=lambda i: (SEVERITIES.index(i["severity"]), i["path"], i["line"]))
    limit = SEVERITIES.index(rule.fail_on)
    blocking = [i for i in new_issues if SEVERITIES.index(i["severity"]) <= limit]
    too_complex = [f for f in functions if f["complexity"] > rule.max_complexity]
    low_mi = [f for f in files if f["mi"] is not None and f["mi"] < rule.min_maintainability]
    conditions = [
        {"name": f"no new {rule.fail_on}{'' if rule.fail_on == 'high' else ' or worse'} "
                 "issues", "threshold": 0, "actual": len(blocking), "passed": not blocking},
        {"name": "max cyclomatic complexity of changed functions",
         "threshold": rule.max_complexity,
         "actual": max((f["complexity"] for f in functions), default=0),
         "passed": not too_complex},
        {"name": "min maintainability index of changed files",
         "threshold": rule.min_maintainability,
         "actual": min((f["mi"] for f in files if f["mi"] is not None), default=None),
         "passed": not low_mi},
    ]
    functions.sort(key=lambda f: -f["complexity"])
    return {
        "passed": all(c["passed"] for c in conditions), "ref": rule.ref, "commit": commit,
        "folder": str(folder), "conditions": conditions, "new_issues": new_issues,
        "functions": functions, "files": files,
        "changed_files": len(changed), "analysed_files": len(files),
        "new_lines": sum(f["new_lines"] for f in files),
        "seconds": round(time.monotonic() - started, 3),
    }


def _base_metrics(repo: Path, commit: str, old_path: str | None, language: str,
                  ) -> dict[str, Any] | None:
    if old_path is None:
        return None
    data = gitutil.show(repo, commit, old_path)
    return None if data is None else analyze(old_path, data, language)


__all__ = ["GateError", "GateRule", "check_target", "finding", "run_gate"]
