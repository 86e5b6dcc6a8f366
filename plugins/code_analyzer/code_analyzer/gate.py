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
from code_analyzer.metrics import finding
from code_analyzer.scan import SEVERITIES, Progress, ScanCancelled, ScanOptions, compute_metrics
from code_analyzer.store import Store
from code_analyzer.walk import Skipped, candidate, language_of
from plexichat_desktop.plugins.guards import read_regular


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


@dataclass
class _NewCode:
    """The changed source files (folder-relative) and which of their lines are new."""

    entries: list[tuple[str, bytes, str]]
    lines: dict[str, set[int] | None]  # None: every line is new
    old_paths: dict[str, str | None]
    skipped: list[dict[str, str]]  # changed source files not analysed, and why

    def is_new(self, rel: str, first: int, last: int | None = None) -> bool:
        if rel not in self.lines:
            return False
        new = self.lines[rel]
        return new is None or any(n in new for n in range(first, (last or first) + 1))


def _diff(folder: Path, rule: GateRule) -> tuple[Path, str, str, list[gitutil.Change]]:
    repo = gitutil.toplevel(folder)
    if repo is None:
        raise GateError(f"folder: {folder} is not inside a git repository")
    under = folder.relative_to(repo).as_posix() if folder != repo else ""
    try:
        commit = gitutil.resolve_ref(repo, rule.ref)
        return repo, commit, under, gitutil.changes(repo, commit, under)
    except gitutil.GitError as exc:
        text = str(exc)
        raise GateError(text if text.startswith("ref:") else f"ref: {text}") from None


def _read(repo: Path, changed: list[gitutil.Change], prefix: str, max_bytes: int) -> _NewCode:
    code = _NewCode([], {}, {}, [])
    for ch in changed:
        language = language_of(ch.path)
        path = repo / ch.path
        if language is None:
            continue
        rel = ch.path[len(prefix):]
        # Said, not dropped: a changed file too big (or a link) the gate cannot judge
        # passed it without a word.
        found = candidate(path, rel, language, repo / prefix, max_bytes)
        if isinstance(found, Skipped):
            code.skipped.append(found.to_dict())
            continue
        try:
            data = read_regular(path, max_bytes)  # no symlink, FIFO or device
        except (OSError, ValueError) as exc:  # changed again since the look above
            code.skipped.append({"path": rel, "reason": f"changed while read: {exc}"})
            continue
        code.entries.append((rel, data, language))
        code.lines[rel] = None if ch.whole else ch.lines
        code.old_paths[rel] = ch.old_path
    return code


def _measure(code: _NewCode, metrics: list[dict[str, Any]],
             before: dict[str, dict[str, Any]],
             ) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    """Changed files (MI now and before), changed functions, and our own findings."""
    files, functions, findings = [], [], []
    for (rel, _, language), m in zip(code.entries, metrics, strict=True):
        if m.get("binary"):
            continue
        base = before.get(rel, {})
        base_cc = {fn["name"]: fn["complexity"] for fn in base.get("functions", [])}
        new_lines = code.lines[rel]
        files.append({"path": rel, "language": language, "mi": m["mi"],
                      "base_mi": base.get("mi"),
                      "new_lines": m["loc"] if new_lines is None else len(new_lines)})
        findings += [{**f, "path": rel} for f in m["findings"]]
        functions += [{"path": rel, **fn, "base_complexity": base_cc.get(fn["name"])}
                      for fn in m["functions"]
                      if code.is_new(rel, fn["line"], fn["end_line"])]
    return files, functions, findings


def _before(code: _NewCode, repo: Path, commit: str, store: Store | None,
            options: ScanOptions, cancel: threading.Event) -> dict[str, dict[str, Any]]:
    """Metrics of the changed files as they were at the ref (from the content cache when
    that version was scanned before, which it usually was)."""
    olds = {rel: old for rel, old in code.old_paths.items() if old is not None}
    blobs = gitutil.show_many(repo, commit, list(olds.values()))
    languages = {rel: lang for rel, _, lang in code.entries}
    entries = [(rel, data, languages[rel]) for rel, old in olds.items()
               if (data := blobs.get(old)) is not None]
    metrics, _ = compute_metrics(entries, store, options, cancel, lambda *_: None)
    return {rel: m for (rel, _, _), m in zip(entries, metrics, strict=True)}


def _conditions(rule: GateRule, new_issues: list[dict[str, Any]],
                functions: list[dict[str, Any]], files: list[dict[str, Any]],
                ) -> list[dict[str, Any]]:
    limit = SEVERITIES.index(rule.fail_on)
    blocking = [i for i in new_issues if SEVERITIES.index(i["severity"]) <= limit]
    mis = [f["mi"] for f in files if f["mi"] is not None]
    worst_cc = max((f["complexity"] for f in functions), default=0)
    worse = "" if rule.fail_on == "high" else " or worse"
    return [
        {"name": f"no new {rule.fail_on}{worse} issues", "threshold": 0,
         "actual": len(blocking), "passed": not blocking},
        {"name": "max cyclomatic complexity of changed functions",
         "threshold": rule.max_complexity, "actual": worst_cc,
         "passed": worst_cc <= rule.max_complexity},
        {"name": "min maintainability index of changed files",
         "threshold": rule.min_maintainability, "actual": min(mis, default=None),
         "passed": all(mi >= rule.min_maintainability for mi in mis)},
    ]


def run_gate(folder: Path, rule: GateRule, store: Store | None, options: ScanOptions,
             cancel: threading.Event | None = None, progress: Progress | None = None,
             ) -> dict[str, Any]:
    """The verdict on the code changed in ``folder`` since ``rule.ref``."""
    cancel = cancel or threading.Event()
    report: Progress = progress or (lambda *_: None)
    started = time.monotonic()
    folder = folder.resolve()
    report(0, None, f"diff against {rule.ref}")
    repo, commit, under, changed = _diff(folder, rule)
    code = _read(repo, changed, f"{under}/" if under else "", options.max_bytes)
    if cancel.is_set():
        raise ScanCancelled
    metrics, _ = compute_metrics(code.entries, store, options, cancel, report)
    files, functions, issues = _measure(code, metrics,
                                        _before(code, repo, commit, store, options, cancel))
    report(len(files), len(files), "running ruff and bandit on the changed files")
    python = {rel: data for rel, data, lang in code.entries if lang == "python"}
    try:
        issues += tools.run_ruff(folder, list(python), cancel, options.tool_timeout,
                                 options.ruff_cache_dir).issues
        issues += tools.run_bandit_cached(folder, python, store, cancel,
                                          options.tool_timeout).issues
    except tools.Cancelled:
        raise ScanCancelled from None
    new_issues = sorted((i for i in issues if code.is_new(i["path"], i["line"])),
                        key=lambda i: (SEVERITIES.index(i["severity"]), i["path"], i["line"]))
    conditions = _conditions(rule, new_issues, functions, files)
    # A changed file nobody read cannot pass: listing it still let a gate whose only
    # change was such a file pass. A link to a file inside is judged there.
    unread = [s for s in code.skipped if not s["reason"].startswith("symlink to ")]
    conditions.append({"name": "every changed source file analysed", "threshold": 0,
                       "actual": len(unread), "passed": not unread})
    functions.sort(key=lambda f: -f["complexity"])
    return {
        "passed": all(c["passed"] for c in conditions), "ref": rule.ref, "commit": commit,
        "folder": str(folder), "conditions": conditions, "new_issues": new_issues,
        "functions": functions, "files": files,
        "changed_files": len(changed), "analysed_files": len(files), "skipped": code.skipped,
        "new_lines": sum(f["new_lines"] for f in files),
        "seconds": round(time.monotonic() - started, 3),
    }


__all__ = ["GateError", "GateRule", "check_target", "finding", "run_gate"]
