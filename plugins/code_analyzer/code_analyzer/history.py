"""Metrics of past commits (wily's idea), computed from git objects without a checkout.

Each commit's tree is listed with ``git ls-tree`` and its source files read in one
``git cat-file --batch``; metrics come from the content-hash cache, so only the files a
commit changed are analysed: the first commit costs a scan, each older one about its diff.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from code_analyzer import gitutil
from code_analyzer.scan import Progress, ScanOptions, _check, compute_metrics
from code_analyzer.store import Store
from code_analyzer.walk import language_of


class HistoryError(ValueError):
    """Names the field: the folder is no git repository."""


def _entries(repo: Path, commit: str, under: str, options: ScanOptions,
             ) -> list[tuple[str, bytes, str]]:
    prefix = f"{under}/" if under else ""
    wanted = []
    for path, size, blob in gitutil.tree_files(repo, commit, under):
        rel = path[len(prefix):]
        language = language_of(rel)
        excluded = any(part in options.exclude for part in rel.split("/")[:-1])
        if language is not None and size <= options.max_bytes and not excluded:
            wanted.append((rel, blob, language))
    blobs = gitutil.cat_objects(repo, [w[0] for w in wanted], [w[1] for w in wanted])
    return [(rel, data, language) for rel, _, language in wanted
            if (data := blobs.get(rel)) is not None]


def _point(commit: gitutil.Commit, metrics: list[dict[str, Any]]) -> dict[str, Any]:
    files = [m for m in metrics if not m.get("binary")]
    complexities = [fn["complexity"] for m in files for fn in m["functions"]]
    mis = [m["mi"] for m in files if m["mi"] is not None]
    return {
        "commit": commit.sha, "time": commit.time, "subject": commit.subject[:200],
        "files": len(files), "sloc": sum(m["sloc"] for m in files),
        "functions": len(complexities), "complexity_total": sum(complexities),
        "complexity_mean": round(sum(complexities) / len(complexities), 2)
        if complexities else 0,
        "complexity_max": max(complexities, default=0),
        "mi_mean": round(sum(mis) / len(mis), 2) if mis else None,
        "findings": sum(len(m["findings"]) for m in files),
    }


def history(folder: Path, count: int, store: Store | None, options: ScanOptions,
            cancel: threading.Event | None = None, progress: Progress | None = None,
            ) -> dict[str, Any]:
    """One point per commit (the last ``count`` touching ``folder``), oldest first."""
    cancel = cancel or threading.Event()
    report: Progress = progress or (lambda *_: None)
    started = time.monotonic()
    folder = folder.resolve()
    repo = gitutil.toplevel(folder)
    if repo is None:
        raise HistoryError(f"folder: {folder} is not inside a git repository")
    under = folder.relative_to(repo).as_posix() if folder != repo else ""
    commits = gitutil.log(repo, under, count)
    points = []
    analysed = 0
    for n, commit in enumerate(commits):
        _check(cancel)
        entries = _entries(repo, commit.sha, under, options)
        metrics, hits = compute_metrics(entries, store, options, cancel, lambda *_: None)
        analysed += len(entries) - hits
        points.append(_point(commit, metrics))
        report(n + 1, len(commits), f"{commit.sha[:8]} {commit.subject[:60]}")
    points.reverse()
    return {"folder": str(folder), "points": points, "analysed_files": analysed,
            "seconds": round(time.monotonic() - started, 3)}
