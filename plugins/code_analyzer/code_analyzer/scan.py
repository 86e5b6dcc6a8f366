"""A project scan: files -> cached metrics (in worker processes) -> tool issues -> import
graph -> hotspots -> one JSON result.

Runs in a thread (blocking work); the job wrapper passes a thread-safe ``progress`` and a
``cancel`` event that is checked between batches, and kills a running tool.
"""

from __future__ import annotations

import os
import pickle
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from code_analyzer import gitutil, imports, tools
from code_analyzer.metrics import analyze, content_key, finding
from code_analyzer.store import Store
from code_analyzer.walk import Candidate, Skipped, discover, kind_of
from plexichat_desktop.plugins.guards import NotRegular, read_regular

Progress = Callable[[float, float | None, str], None]
# Below this many files to analyse, worker start-up (~0.3 s each) costs more than it saves.
PARALLEL_MIN_FILES = 60
BATCH_FILES = 25
SEVERITIES = ("high", "medium", "low")


class ScanCancelled(Exception):
    pass


@dataclass(frozen=True)
class ScanOptions:
    max_bytes: int = 1024 * 1024
    workers: int = 0
    exclude: tuple[str, ...] = ()
    run_tools: bool = True
    tool_names: tuple[str, ...] = tools.TOOLS
    tool_timeout: float = 300.0
    vulture_min_confidence: int = 80
    max_complexity: int = 15
    ruff_cache_dir: Path | None = None
    churn_days: int = 180


def _check(cancel: threading.Event) -> None:
    if cancel.is_set():
        raise ScanCancelled


def _read(c: Candidate) -> bytes | str:
    try:
        return read_regular(c.path)  # a regular file when listed; it may not be now
    except NotRegular as exc:
        return (f"{kind_of(exc.mode)}, not read" if exc.mode is not None
                else f"cannot read: {exc.strerror}")
    except OSError as exc:
        return f"cannot read: {exc.strerror or exc}"


def compute_metrics(entries: list[tuple[str, bytes, str]], store: Store | None,
                    options: ScanOptions, cancel: threading.Event, progress: Progress,
                    ) -> tuple[list[dict[str, Any]], int]:
    """Metrics per entry (same order) and how many came from the cache."""
    keys = [content_key(data, lang) for _, data, lang in entries]
    cached = store.cached(keys) if store is not None else {}
    results: list[dict[str, Any] | None] = [cached.get(k) for k in keys]
    missing = [i for i, r in enumerate(results) if r is None]
    hits = len(entries) - len(missing)
    progress(hits, len(entries), f"{hits} files from the cache")
    done = hits
    for batch, batch_results in _batches(entries, missing, options.workers, cancel):
        for i, r in zip(batch, batch_results, strict=True):
            results[i] = r
        done += len(batch)
        progress(done, len(entries), f"analysed {entries[batch[-1]][0]}")
    if store is not None and missing:
        store.remember((keys[i], results[i]) for i in missing)
    return [r for r in results if r is not None], hits


Batches = Iterator[tuple[list[int], list[dict[str, Any]]]]


def _batches(entries: list[tuple[str, bytes, str]], missing: list[int], workers: int,
             cancel: threading.Event) -> Batches:
    workers = workers or os.cpu_count() or 1
    if len(missing) >= PARALLEL_MIN_FILES and workers > 1:
        return _in_workers(entries, missing, workers, cancel)
    return _in_thread(entries, missing, cancel)


def _in_thread(entries: list[tuple[str, bytes, str]], missing: list[int],
               cancel: threading.Event) -> Batches:
    for start in range(0, len(missing), 10):
        _check(cancel)
        batch = missing[start:start + 10]
        yield batch, [analyze(*entries[i]) for i in batch]


def _in_workers(entries: list[tuple[str, bytes, str]], missing: list[int], workers: int,
                cancel: threading.Event) -> Batches:
    batches = [missing[i:i + BATCH_FILES] for i in range(0, len(missing), BATCH_FILES)]
    with WorkerPool(min(workers, len(batches))) as pool:
        yield from pool.map(batches, lambda b: [entries[i] for i in b], cancel)


class WorkerPool:
    """Worker processes (``code_analyzer.worker``) fed batches by one thread each."""

    def __init__(self, size: int):
        env = dict(os.environ)
        plugin_root = str(Path(__file__).resolve().parents[1])
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [plugin_root,
                                                           env.get("PYTHONPATH")]))
        self.procs = [subprocess.Popen(
            [sys.executable, "-m", "code_analyzer.worker"], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, env=env, start_new_session=True) for _ in range(size)]

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, *exc: object) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.kill()
            p.wait()
            for stream in (p.stdin, p.stdout):
                if stream is not None:
                    stream.close()

    def map(self, batches: list[list[int]], payload: Callable[[list[int]], Any],
            cancel: threading.Event) -> Iterator[tuple[list[int], list[dict[str, Any]]]]:
        """Yield ``(batch, results)`` as workers finish them; stop on cancel."""
        todo: queue.Queue[list[int]] = queue.Queue()
        for b in batches:
            todo.put(b)
        done: queue.Queue[tuple[list[int], Any]] = queue.Queue()

        def feed(proc: subprocess.Popen[bytes]) -> None:
            stdin, stdout = proc.stdin, proc.stdout
            if stdin is None or stdout is None:  # cannot happen: both are PIPE
                raise RuntimeError("metrics worker started without pipes")
            while not cancel.is_set():
                try:
                    batch = todo.get_nowait()
                except queue.Empty:
                    return
                try:
                    data = pickle.dumps(payload(batch), protocol=pickle.HIGHEST_PROTOCOL)
                    stdin.write(len(data).to_bytes(8, "big") + data)
                    stdin.flush()
                    size = int.from_bytes(stdout.read(8), "big")
                    # Our own child's answer to our own request: trusted input.
                    done.put((batch, pickle.loads(stdout.read(size))))  # nosec B301
                except Exception as exc:  # a dead worker: report, the scan fails clearly
                    done.put((batch, RuntimeError(
                        f"metrics worker {proc.pid} failed (exit {proc.poll()}): {exc!r}")))
                    return

        threads = [threading.Thread(target=feed, args=(p,), daemon=True,
                                    name="code_analyzer worker feed") for p in self.procs]
        for t in threads:
            t.start()
        for _ in batches:
            while True:
                _check(cancel)
                try:
                    batch, result = done.get(timeout=0.2)
                    break
                except queue.Empty:
                    if not any(t.is_alive() for t in threads) and done.empty():
                        raise RuntimeError(
                            "metrics workers stopped before the scan ended") from None
            if isinstance(result, Exception):
                raise result
            yield batch, result


def scan_folder(folder: Path, store: Store | None, options: ScanOptions,
                cancel: threading.Event | None = None,
                progress: Progress | None = None) -> dict[str, Any]:
    """Scan ``folder`` (already checked to be inside the roots)."""
    cancel = cancel or threading.Event()
    report: Progress = progress or (lambda *_: None)
    started = time.monotonic()
    folder = folder.resolve()
    report(0, None, "listing files")
    candidates, skipped = discover(folder, max_bytes=options.max_bytes,
                                   exclude=options.exclude)
    _check(cancel)
    entries: list[tuple[str, bytes, str]] = []
    for c in candidates:
        data = _read(c)
        if isinstance(data, str):
            skipped.append(Skipped(c.rel, data))
        else:
            entries.append((c.rel, data, c.language))
    metrics, hits = compute_metrics(entries, store, options, cancel, report)
    files, issues = _files_and_findings(entries, metrics, options.max_complexity, skipped)
    _check(cancel)
    tool_runs: list[dict[str, Any]] = []
    if options.run_tools:
        report(len(entries), len(entries), "running ruff, bandit and vulture")
        for r in _tools(folder, files, entries, store, options, cancel):
            tool_runs.append(r.summary())
            issues.extend(r.issues)
    _check(cancel)
    issues.sort(key=lambda i: (SEVERITIES.index(i["severity"]), i["path"], i["line"]))
    graph = imports.build_graph(files, imports.package_prefix(folder))
    report(len(entries), len(entries), "reading git history")
    hotspots, git_note = _hotspots(folder, files, options.churn_days)
    for f in files:  # the graph has what the page needs; keep results small
        f.pop("imports", None)
    summary = summarize(files, issues, graph, hits, len(skipped))
    summary["seconds"] = round(time.monotonic() - started, 3)
    return {"folder": str(folder), "summary": summary, "files": files, "issues": issues,
            "skipped": [s.to_dict() for s in skipped], "tools": tool_runs,
            "imports": graph, "hotspots": hotspots, "git": git_note}


def _files_and_findings(entries: list[tuple[str, bytes, str]],
                        metrics: list[dict[str, Any]], max_complexity: int,
                        skipped: list[Skipped],
                        ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The measured files, and our own findings: bad files and too complex functions."""
    files: list[dict[str, Any]] = []
    findings: list[dict[str, Any]] = []
    for (rel, _, _), m in zip(entries, metrics, strict=True):
        if m.get("binary"):
            skipped.append(Skipped(rel, "binary (NUL bytes)"))
            continue
        files.append({"path": rel, **m})
        findings += [{**f, "path": rel} for f in m["findings"]]
        findings += [{**finding("CA003", "medium", f"{fn['name']} has cyclomatic complexity "
                                f"{fn['complexity']} (limit {max_complexity})", fn["line"]),
                      "path": rel}
                     for fn in m["functions"] if fn["complexity"] > max_complexity]
    return files, findings


def _tools(folder: Path, files: list[dict[str, Any]], entries: list[tuple[str, bytes, str]],
           store: Store | None, options: ScanOptions, cancel: threading.Event,
           ) -> list[tools.ToolRun]:
    python = {f["path"] for f in files if f["language"] == "python"}
    contents = {rel: data for rel, data, _ in entries if rel in python}
    try:
        return tools.run_all(folder, sorted(python), cancel, timeout=options.tool_timeout,
                             min_confidence=options.vulture_min_confidence,
                             names=options.tool_names, store=store, contents=contents,
                             ruff_cache_dir=options.ruff_cache_dir)
    except tools.Cancelled:
        raise ScanCancelled from None


def summarize(files: list[dict[str, Any]], issues: list[dict[str, Any]],
              graph: dict[str, Any], cache_hits: int, skipped: int) -> dict[str, Any]:
    complexities = [fn["complexity"] for f in files for fn in f["functions"]]
    mis = [f["mi"] for f in files if f["mi"] is not None]
    severities = [i["severity"] for i in issues]
    languages: dict[str, int] = {}
    for f in files:
        languages[f["language"]] = languages.get(f["language"], 0) + f["sloc"]
    return {
        "files": len(files), "skipped": skipped, "cache_hits": cache_hits,
        **{key: sum(f[key] for f in files) for key in ("loc", "sloc", "comments", "blank")},
        "functions": len(complexities),
        "complexity_total": sum(complexities),
        "complexity_mean": _mean(complexities),
        "complexity_max": max(complexities, default=0),
        "mi_mean": _mean(mis) if mis else None,
        "mi_min": round(min(mis), 2) if mis else None,
        "issues": {s: severities.count(s) for s in SEVERITIES},
        "cycles": len(graph["cycles"]), "languages": languages,
    }


def _mean(values: list[float] | list[int]) -> float:
    return round(sum(values) / len(values), 2) if values else 0


def _hotspots(folder: Path, files: list[dict[str, Any]], days: int,
              ) -> tuple[list[dict[str, Any]], str]:
    """Files ranked by commits x complexity (CodeScene's hotspot idea): code that is both
    hard to read and often changed is where a clean-up pays off first."""
    repo = gitutil.toplevel(folder)
    if repo is None:
        return [], "not a git repository: no hotspots"
    under = folder.relative_to(repo).as_posix() if folder != repo else ""
    try:
        stats = gitutil.churn(repo, under, days)
    except (gitutil.GitError, OSError) as exc:
        return [], f"git log failed: {exc}"
    prefix = f"{under}/" if under else ""
    rows = []
    for f in files:
        s = stats.get(prefix + f["path"])
        if not s or not f["complexity"]:
            continue
        rows.append({"path": f["path"], "commits": s["commits"], "churn": s["lines"],
                     "complexity": f["complexity"], "max_complexity": f["max_complexity"],
                     "score": s["commits"] * f["complexity"]})
    rows.sort(key=lambda r: (-r["score"], r["path"]))
    return rows[:100], f"git history of the last {days} days"
