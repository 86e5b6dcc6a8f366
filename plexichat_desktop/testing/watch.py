"""Watch mode: which of a plugin's tests a saved file affects, and rerunning them.

The rules (:func:`affected_tests`), from the changed files to test files:

- a test file (``test_*.py`` / ``*_test.py`` under the tests folder) -> that file;
- any other Python file under the tests folder (``conftest.py``, helpers) -> the whole
  suite: fixtures can reach every test;
- a module of the plugin -> the test files that import it, directly or through other
  modules of the plugin, plus the files that run the plugin in the app (they use the
  harness's ``plexichat_app``); the whole suite when no test file can be tied to it;
- ``plugin.toml`` -> the whole suite (timeouts, settings and requirements change);
- a file under ``web/`` -> the test files that name it, else none (the page reloads);
- any other file -> the test files that name it, else the whole suite.

Reruns go through the :class:`~plexichat_desktop.testing.manager.TestManager`, so their
results land in the store and on the bus like any other run (Tests dock, web dashboard).
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import logging
import signal
import sys
import time
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import Any, TextIO

from plexichat_desktop.core.waiting import cancel_and_wait, wait_set
from plexichat_desktop.testing.manager import TestManager, TestSelectionError
from plexichat_desktop.testing.models import Priority, RunRecord

log = logging.getLogger(__name__)

WHOLE_SUITE = None
# What a test (or a conftest.py above it) names when it runs the plugin in the app: any
# change of the plugin's code is one for it.
HARNESS_NAMES = ("plexichat_app", "plexichat_module_app", "plexichat_shared_app",
                 "start_app")
# How long the watcher waits for a burst of writes (an editor's save, a git checkout) to
# end before it reports them; short, because this is on the path from save to result.
STEP_MS = 20
DEBOUNCE_MS = 400
# Seconds between looks for a watched folder that was deleted, until it is back.
FOLDER_POLL = 0.5


def _is_test_file(path: Path) -> bool:
    return path.suffix == ".py" and (path.name.startswith("test_")
                                     or path.name.endswith("_test.py"))


def _module_name(root: Path, path: Path) -> str | None:
    try:
        parts = list(path.relative_to(root).with_suffix("").parts)
    except ValueError:
        return None
    if parts and parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts) or None


def _imports(path: Path, module: str | None) -> set[str]:
    """Every module name ``path`` imports (``from a import b`` counts as ``a`` and
    ``a.b``: b may be a submodule); relative imports are resolved against ``module``."""
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    except (OSError, SyntaxError, ValueError):
        return set()
    package = (module or "").split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - node.level + 1] if node.level > 1 else package
                name = ".".join([*base, node.module] if node.module else base)
            else:
                name = node.module or ""
            if name:
                found.add(name)
                found.update(f"{name}.{alias.name}" for alias in node.names)
    return found


def _with_parents(names: Iterable[str]) -> set[str]:
    """``a.b.c`` also imports ``a.b`` and ``a``."""
    out: set[str] = set()
    for name in names:
        parts = name.split(".")
        out.update(".".join(parts[:i]) for i in range(1, len(parts) + 1))
    return out


def affected_tests(root: Path, tests_path: str, changed: Iterable[Path]) -> list[str] | None:
    """The test files (relative to the plugin folder ``root``, sorted) to rerun after
    ``changed`` were saved; None for the whole suite, [] for none. See the module doc."""
    root = root.resolve()
    tests_dir = (root / tests_path).resolve()
    test_files = sorted(p for p in tests_dir.rglob("*.py")
                        if _is_test_file(p) and "__pycache__" not in p.parts)
    chosen: set[Path] = set()
    changed_modules: set[str] = set()
    for raw in changed:
        path = Path(raw).resolve()
        if not path.is_relative_to(root) or path == root:
            continue  # the plugin folder itself: touched, or its mode changed
        rel = path.relative_to(root)
        if not path.exists() and path.suffix != ".py" and rel != Path("plugin.toml"):
            continue  # an editor's probe or swap file, come and gone (vim's "4913")
        if path.is_relative_to(tests_dir):
            if _is_test_file(path):
                if path.exists():
                    chosen.add(path)
                continue
            if path.suffix == ".py":
                return WHOLE_SUITE
        if rel == Path("plugin.toml") or path.name == "conftest.py":
            return WHOLE_SUITE  # a conftest.py anywhere pytest loads it (the plugin root)
        if path.suffix == ".py" and not path.is_relative_to(tests_dir):
            name = _module_name(root, path)
            if name is not None:
                changed_modules.add(name)
            continue
        naming = [t for t in test_files if path.name in _text(t)]
        if naming:
            chosen.update(naming)
        elif rel.parts[0] != "web" and not path.is_relative_to(tests_dir):
            return WHOLE_SUITE
    if changed_modules:
        hit = _tests_importing(root, test_files, changed_modules)
        if hit is None:
            return WHOLE_SUITE
        chosen.update(hit)
    return sorted(p.relative_to(root).as_posix() for p in chosen)


def _text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, ValueError):
        return ""


def _tests_importing(root: Path, test_files: list[Path], changed: set[str]
                     ) -> set[Path] | None:
    """Test files reaching a changed module through the plugin's import graph, plus the
    ones running the plugin in the app; None when none can be tied to it."""
    graph: dict[str, set[str]] = {}
    for path in root.rglob("*.py"):
        rel_parts = path.relative_to(root).parts
        if "__pycache__" in rel_parts or rel_parts[0] == "web" or any(
                part.startswith(".") for part in rel_parts):
            continue
        name = _module_name(root, path)
        if name is None:
            continue
        imports = _with_parents(_imports(path, name))
        if rel_parts[0] != "tests":
            graph[name] = imports
        elif not _is_test_file(path) and path.name != "conftest.py":
            # A helper beside the tests, which they import by its own name (pytest puts
            # their folder on sys.path): a change it reaches is one for them too.
            graph[name] = graph[path.stem] = imports
    # Everything that imports a changed module, transitively, is affected too.
    affected = set(changed)
    grew = True
    while grew:
        grew = False
        for name, deps in graph.items():
            if name not in affected and deps & affected:
                affected.add(name)
                grew = True
    hit: set[Path] = set()
    reaches: dict[Path, bool] = {}  # per file, once: a conftest serves many tests

    def reaches_changed(source: Path) -> bool:
        if source not in reaches:
            module = _module_name(root, source)
            reaches[source] = bool(_with_parents(_imports(source, module)) & affected) or any(
                name in _text(source) for name in HARNESS_NAMES)
        return reaches[source]

    for test in test_files:
        # The test file and the conftest.py files pytest loads for it: a fixture of one
        # (an app started for the module, a helper importing the plugin) is the test's.
        if any(reaches_changed(source) for source in (test, *_conftests(root, test))):
            hit.add(test)
    return hit or None


def _conftests(root: Path, test: Path) -> list[Path]:
    """The conftest.py files from ``test``'s folder up to the plugin folder."""
    found = []
    folder = test.parent
    while folder.is_relative_to(root):
        conftest = folder / "conftest.py"
        if conftest.is_file():
            found.append(conftest)
        if folder == root:
            break
        folder = folder.parent
    return found


async def watch_changes(root: Path, stop: asyncio.Event) -> AsyncIterator[set[Path]]:
    """Sets of changed files under ``root`` (created, modified or deleted; caches, VCS
    folders and editor swap files left out), one set per burst of writes, until ``stop``
    is set. The watch exists once the iteration's first step has run.

    A deleted ``root`` takes its watch with it, and a folder made again under that name
    (even within the same burst: a script's ``rm -rf`` and copy, or a rename) was never
    seen again. The burst that deleted it is handed out at once if the folder is gone;
    once a folder is there again, a new watch is made first and then ``{root,
    root/plugin.toml}`` is handed out (with that burst, if it was held): everything in it
    may be new, as after a save of the manifest, and nothing saved after the caller hears
    of it is missed."""
    import watchfiles

    root = Path(root)
    held: set[Path] | None = None  # handed out, with {root}, once a new watch exists
    while not stop.is_set():
        while not root.is_dir():
            if await wait_set(stop, FOLDER_POLL):
                return
        bursts = watchfiles.awatch(root, stop_event=stop, step=STEP_MS, debounce=DEBOUNCE_MS,
                                   recursive=True, watch_filter=watchfiles.DefaultFilter())
        following: Any = anext(bursts)
        try:
            if held is not None:
                # The new watch's first step makes it; only then is the burst handed out.
                following = asyncio.ensure_future(following)
                await asyncio.sleep(0)
                if following.done() and isinstance(following.exception(), OSError):
                    continue  # gone again before it was watched: wait for it again
                yield held | {root, root / "plugin.toml"}
                held = None
            while True:
                try:
                    changes = await following
                except StopAsyncIteration:
                    return  # stop was set
                except FileNotFoundError:
                    if root.is_dir():
                        raise
                    held = held if held is not None else set()
                    break  # deleted while the watch was being made
                paths = {Path(path) for _, path in changes}
                deleted = any(change == watchfiles.Change.deleted and Path(path) == root
                              for change, path in changes)
                if deleted and root.is_dir():
                    held = paths  # made again already
                    break
                yield paths
                if deleted:
                    held = set()  # gone: watched again once it is back
                    break
                following = anext(bursts)
        finally:
            if isinstance(following, asyncio.Future):
                following.cancel()
                with contextlib.suppress(BaseException):
                    await following
            elif asyncio.iscoroutine(following):
                following.close()  # never started: nothing to cancel
            await bursts.aclose()


class TestWatch:
    """Reruns the tests a change affects through ``manager`` (trigger ``"watch"``, high
    priority). A newer save supersedes a watch run that has not finished."""

    __test__ = False

    def __init__(self, manager: TestManager, plugin_id: str):
        self.manager = manager
        self.plugin_id = plugin_id
        self._last: RunRecord | None = None

    async def changed(self, paths: Iterable[Path]) -> RunRecord | None:
        """Queue the affected tests of the changed ``paths``; the run, or None when the
        change affects no test (or the plugin has no tests to run)."""
        try:
            rec = self.manager.plugin_record(self.plugin_id)
        except TestSelectionError:
            return None  # its manifest is broken now: the reload says why
        tests_dir = self.manager.tests_dir(rec)
        if not tests_dir.is_dir():
            return None
        assert rec.manifest is not None
        selection = affected_tests(rec.root, rec.manifest.tests.path, paths)
        if selection == []:
            return None
        last = self._last
        if last is not None and last.id is not None and not last.status.finished:
            await self.manager.cancel(last.id)
        try:
            run = await self.manager.submit(self.plugin_id, selection, priority=Priority.HIGH,
                                            trigger="watch", precheck=False)
        except (TestSelectionError, ValueError) as exc:
            log.warning("watch: tests of %s not rerun: %s", self.plugin_id, exc)
            return None
        self._last = run
        return run


async def watch_tests(paths: Any, settings: Any, plugin_id: str, extra_dirs: list[Path],
                      bundled_dir: Path | None, out: TextIO,
                      stop: asyncio.Event | None = None) -> int:
    """``plexichat-desktop test ID --watch``: rerun the tests each save affects until
    ``stop`` is set (or SIGINT/SIGTERM), printing each run's report; the exit code."""
    from plexichat_desktop.core.events import EventBus
    from plexichat_desktop.plugins.manager import PluginManager
    from plexichat_desktop.testing.console import _print_report, _report, store_path
    from plexichat_desktop.testing.store import ResultStore

    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    bus = EventBus()
    plugins = PluginManager(paths=paths, settings=settings, bus=bus, bundled_dir=bundled_dir,
                            extra_dirs=extra_dirs)
    plugins.discover()
    store = ResultStore(store_path(paths))
    manager = TestManager(plugins, store, bus, paths.cache_dir / "runs", settings.tests)
    try:
        rec = manager.plugin_record(plugin_id)
    except TestSelectionError as exc:
        print(f"error: {exc}", file=sys.stderr)
        store.close()
        return 2
    await manager.start()
    manager.runner.prepare([rec.root])  # the fork server is warm before the first save
    watch = TestWatch(manager, plugin_id)

    async def report(run: RunRecord) -> None:
        assert run.id is not None
        started = time.monotonic()
        done = await manager.wait(run.id)
        if done.status.value == "cancelled":
            return
        result = await asyncio.to_thread(_report, store, [done])
        _print_report(result, time.monotonic() - started, out)
        out.flush()

    pending: set[asyncio.Task[None]] = set()

    async def follow() -> None:
        async for changed in watch_changes(rec.root, stop):
            shown = ", ".join(sorted(p.relative_to(rec.root).as_posix() for p in changed
                                     if p.is_relative_to(rec.root)))
            run = await watch.changed(changed)
            if run is None:
                continue
            what = ", ".join(run.selection) if run.selection else "the whole suite"
            print(f"\n-- saved {shown}: running {what}", file=out, flush=True)
            task = loop.create_task(report(run))
            pending.add(task)
            task.add_done_callback(pending.discard)

    follower = loop.create_task(follow(), name="test watch")
    try:
        # The follower's first step creates the inotify watches (synchronously, before its
        # first await). Only then is "Watching" true: a save made right after the line
        # appears was missed when the line came first.
        await asyncio.sleep(0)
        print(f"Watching {rec.root} for {plugin_id}: each save reruns the tests it affects. "
              "Ctrl+C stops.", file=out, flush=True)
        await follower
    finally:
        await cancel_and_wait(follower)
        for task in pending:
            task.cancel()
        await manager.stop()
        store.close()
    return 0
