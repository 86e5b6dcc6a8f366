"""Concrete, computed advice for an active alert: which processes to close, what to clear.

Gathering (``top_by_memory``, ``top_by_cpu``, ``dir_size``) blocks and is run in a worker
thread; formatting (``*_suggestions``) is pure, so tests feed it made-up figures.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import platformdirs
import psutil

from performance_monitor.metrics import Sample

TOP_PROCESSES = 3
CPU_WINDOW_SECONDS = 0.5
DIR_SCAN_SECONDS = 1.5
DIR_SCAN_MAX_ENTRIES = 200_000
# Below this a folder is not worth suggesting to clear.
NOTABLE_BYTES = 50 * 1024 * 1024


@dataclass(frozen=True)
class ProcessInfo:
    """A process as shown in a suggestion. ``cpu_percent`` is a share of the whole
    machine (all cores), like the CPU figure it is compared with."""

    pid: int
    name: str
    rss: int = 0
    cpu_percent: float = 0.0
    # What an interpreter runs ("-u train.py"): three "python (pid N)" told nobody which.
    detail: str = ""
    # A process the app started (its page renderers, its test runs).
    own: bool = False

    @property
    def label(self) -> str:
        """``name (pid N)``, with what an interpreter runs: ``python (pid N: train.py)``."""
        return f"{self.name} (pid {self.pid}{': ' + self.detail if self.detail else ''})"

    @property
    def is_self(self) -> bool:
        """True for the PlexiChat Desktop process itself."""
        return self.pid == os.getpid()

    @property
    def is_host(self) -> bool:
        """True for PlexiChat Desktop and the processes it started, which advice must not
        tell the user to close (closing a page renderer breaks the window's tabs)."""
        return self.is_self or self.own


@dataclass(frozen=True)
class DirUsage:
    """How much a folder that may be cleared holds; ``complete`` is False when the scan
    stopped early, so ``size`` is a lower bound."""

    label: str
    path: Path
    size: int
    complete: bool = True


def format_bytes(value: float) -> str:
    """``1536`` -> ``"1.5 KiB"``: binary units, as operating systems report memory."""
    size = float(value)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(size) < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


COMM_LIMIT = 15  # Linux keeps a process name to 15 characters


def _name(proc: psutil.Process) -> str:
    try:
        name = proc.name() or f"pid {proc.pid}"
    except psutil.Error:
        return f"pid {proc.pid}"
    if len(name) == COMM_LIMIT:
        # Cut by the kernel ("plexichat-deskt"): a script run through an interpreter
        # names itself in its command line after the interpreter, where psutil does
        # not look; the word there that the name begins is the whole name.
        try:
            words = proc.cmdline()
        except psutil.Error:
            words = []
        for word in words:
            base = os.path.basename(word)
            if len(base) > COMM_LIMIT and base.startswith(name):
                return base
    return name


INTERPRETERS = ("python", "node", "java", "ruby", "perl", "php", "bash", "sh", "dotnet")
DETAIL_CHARS = 60


def _detail(proc: psutil.Process, name: str) -> str:
    """What an interpreter runs, from its command line (its arguments, cut short)."""
    if not name.rstrip("0123456789.").lower().startswith(INTERPRETERS):
        return ""
    try:
        words = proc.cmdline()[1:]
    except psutil.Error:
        return ""
    text = " ".join(words)
    return text if len(text) <= DETAIL_CHARS else text[:DETAIL_CHARS - 1] + "…"


def _ours(proc: psutil.Process) -> bool:
    """Whether this app started ``proc``, at any depth (its ancestors, read for the few
    shown: the app's whole process tree took another scan of every process)."""
    try:
        return any(parent.pid == os.getpid() for parent in proc.parents())
    except psutil.Error:
        return False


def _info(proc: psutil.Process, **figures: float) -> ProcessInfo:
    name = _name(proc)
    return ProcessInfo(proc.pid, name, detail=_detail(proc, name), own=_ours(proc),
                       **figures)  # type: ignore[arg-type]


def top_by_memory(limit: int = TOP_PROCESSES) -> list[ProcessInfo]:
    """The ``limit`` processes with the largest resident memory (RSS), largest first."""
    found = []
    for proc in psutil.process_iter(["memory_info"]):
        mem = proc.info.get("memory_info")
        if mem is None:  # access denied or the process just ended
            continue
        found.append((mem.rss, proc))
    found.sort(key=lambda item: item[0], reverse=True)
    # Named only the ones shown: a full name may need the command line read.
    return [_info(proc, rss=rss) for rss, proc in found[:limit]]


def top_by_cpu(limit: int = TOP_PROCESSES, window: float = CPU_WINDOW_SECONDS
               ) -> list[ProcessInfo]:
    """The ``limit`` processes that used the most CPU over the next ``window`` seconds.

    Uses process objects of its own rather than ``psutil.process_iter``'s shared cache,
    whose per-process CPU readings another caller in this process could reset.
    """
    procs = []
    for pid in psutil.pids():
        if pid == 0:  # Windows' "System Idle Process" counts idle time as CPU use
            continue
        try:
            proc = psutil.Process(pid)
            proc.cpu_percent(None)
        except psutil.Error:
            continue
        procs.append(proc)
    time.sleep(window)
    cores = psutil.cpu_count() or 1
    busy = []
    for proc in procs:
        try:
            busy.append((proc.cpu_percent(None) / cores, proc))
        except psutil.Error:
            continue
    busy.sort(key=lambda item: item[0], reverse=True)
    return [_info(proc, cpu_percent=round(percent, 1)) for percent, proc in busy[:limit]]


def dir_size(path: Path, max_entries: int = DIR_SCAN_MAX_ENTRIES,
             deadline: float | None = None) -> tuple[int, bool]:
    """Total size of the files below ``path`` and whether the scan finished.

    Bounded by entry count and by ``deadline`` (a ``time.monotonic()`` value), because a
    cache folder can hold millions of files and a full walk would take minutes.
    Symbolic links and other file systems mounted below are not followed; unreadable
    entries are skipped.
    """
    total, seen = 0, 0
    try:
        device = path.stat().st_dev
    except OSError:
        return 0, True
    stack = [path]
    while stack:
        folder = stack.pop()
        try:
            with os.scandir(folder) as entries:
                for entry in entries:
                    seen += 1
                    if seen > max_entries or (deadline is not None and seen % 256 == 0
                                              and time.monotonic() > deadline):
                        return total, False
                    try:
                        if entry.is_dir(follow_symlinks=False):
                            # Not into what is mounted below: clearing it frees nothing
                            # on this disk (a tmpfs in /tmp was counted).
                            if entry.stat(follow_symlinks=False).st_dev == device:
                                stack.append(Path(entry.path))
                        elif entry.is_file(follow_symlinks=False):
                            total += entry.stat(follow_symlinks=False).st_size
                    except OSError:
                        continue
        except OSError:
            continue
    return total, True


def cleanable_dirs() -> list[tuple[str, Path]]:
    """Folders whose content the user can usually delete: cache, temporary files, trash."""
    dirs = [("user cache folder", Path(platformdirs.user_cache_dir())),
            ("temporary files folder", Path(tempfile.gettempdir()))]
    if sys.platform == "darwin":
        dirs.append(("trash", Path.home() / ".Trash"))
    elif sys.platform != "win32":
        dirs.append(("trash", Path(platformdirs.user_data_dir()) / "Trash"))
    return dirs


def _same_filesystem(path: Path, other: str) -> bool:
    try:
        return path.stat().st_dev == os.stat(other).st_dev
    except OSError:
        return False


def measure_cleanable(disk_path: str, seconds: float = DIR_SCAN_SECONDS) -> list[DirUsage]:
    """Sizes of the :func:`cleanable_dirs` that live on the filesystem of ``disk_path``.

    Folders on another filesystem are left out: clearing them frees nothing on this one.
    """
    deadline = time.monotonic() + seconds
    found = []
    for label, path in cleanable_dirs():
        if not path.is_dir() or not _same_filesystem(path, disk_path):
            continue
        size, complete = dir_size(path, deadline=deadline)
        found.append(DirUsage(label, path, size, complete))
    return found


def cpu_suggestions(sample: Sample, top: list[ProcessInfo]) -> list[str]:
    """Advice for a CPU alert from the busiest processes."""
    out = [(f"PlexiChat Desktop itself (pid {p.pid}) uses {p.cpu_percent:.0f}% of total CPU;"
            " a plugin may be busy: its log says which." if p.is_self else
            f"PlexiChat Desktop's own {p.label} uses {p.cpu_percent:.0f}% of total CPU: "
            "a page of its window or a test run; close that tab or stop that run rather "
            "than the process." if p.own else
            f"Close or pause {p.label}: it uses {p.cpu_percent:.0f}% of total CPU.")
           for p in top if p.cpu_percent >= 1]
    if not out:
        out.append("No single process stands out; many short-lived processes (a build, "
                   "a script in a loop) may be starting and ending.")
    if sample.load_1 is not None and sample.load_1 > sample.cpu_count:
        out.append(f"Load average {sample.load_1:.2f} is above the {sample.cpu_count} "
                   "cores: processes are queueing for CPU time.")
    return out


def _memory_advice(proc: ProcessInfo) -> str:
    if proc.is_self:
        return (f"PlexiChat Desktop itself (pid {proc.pid}) holds {format_bytes(proc.rss)} of "
                "memory; disabling plugins you do not use makes it smaller.")
    if proc.own:
        return (f"PlexiChat Desktop's own {proc.label} holds {format_bytes(proc.rss)} of "
                "memory: a page of its window or a test run; closing tabs or runs you do "
                "not need makes it smaller (closing the process breaks them).")
    return f"Close {proc.label} if you do not need it: it holds {format_bytes(proc.rss)} of memory."


def memory_suggestions(sample: Sample, top: list[ProcessInfo]) -> list[str]:
    """Advice for a memory alert from the processes holding the most memory."""
    out = [_memory_advice(p) for p in top]
    out.append(f"{format_bytes(sample.memory_available)} of "
               f"{format_bytes(sample.memory_total)} is still available.")
    return out


def swap_suggestions(sample: Sample, top: list[ProcessInfo]) -> list[str]:
    """Advice for a swap alert: swapping comes from memory pressure, so free memory."""
    out = [f"{format_bytes(sample.swap_used)} of {format_bytes(sample.swap_total)} swap is "
           "in use; freeing memory lets the system swap less."]
    out += [_memory_advice(p) for p in top]
    return out


def disk_suggestions(sample: Sample, dirs: list[DirUsage]) -> list[str]:
    """Advice for a disk alert from the free space and the clearable folders."""
    out = [f"Only {format_bytes(sample.disk_free)} free of {format_bytes(sample.disk_total)}"
           f" on {sample.disk_path} ({sample.disk_percent:.0f}% used)."]
    notable = sorted((d for d in dirs if d.size >= NOTABLE_BYTES), key=lambda d: d.size,
                     reverse=True)
    for usage in notable:
        amount = format_bytes(usage.size) if usage.complete else (
            f"more than {format_bytes(usage.size)}")
        if usage.label == "trash":
            out.append(f"Empty the trash {usage.path}: it holds {amount}.")
        else:
            # Not "clear it": running programs keep their sockets and work files there.
            out.append(f"Delete old files you no longer need from the {usage.label} "
                       f"{usage.path} (it holds {amount}); leave what running programs "
                       "are using.")
    if not notable:
        out.append("The cache, temporary and trash folders hold little; look for large "
                   "downloads, videos, virtual machine images or old backups.")
    return out


def compute_suggestions(metric: str, sample: Sample) -> list[str]:
    """Gather the figures for ``metric`` and turn them into advice (blocks ~0.5-1.5 s)."""
    gather: dict[str, Callable[[], list[str]]] = {
        "cpu": lambda: cpu_suggestions(sample, top_by_cpu()),
        "memory": lambda: memory_suggestions(sample, top_by_memory()),
        "swap": lambda: swap_suggestions(sample, top_by_memory()),
        "disk": lambda: disk_suggestions(sample, measure_cleanable(sample.disk_path)),
    }
    if metric not in gather:
        raise ValueError(f"no suggestions for unknown metric {metric!r}")
    return gather[metric]()
