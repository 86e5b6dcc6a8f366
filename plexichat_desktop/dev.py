"""``plexichat-desktop dev PATH``: one plugin served and reloaded on every save.

A :class:`DevSession` watches the plugin folder of a running :class:`Runtime`:

- a Python file of the plugin or its ``plugin.toml`` changed -> ``PluginManager.reload``
  (teardown, a fresh import, setup), then a :class:`PluginReloaded` event of kind
  ``"code"`` with the new state and, when it failed, the reason;
- only files under ``web/`` changed -> a :class:`PluginReloaded` event of kind ``"page"``;
- and, in both cases and for test files, the tests the change affects rerun through the
  app's test manager (:mod:`plexichat_desktop.testing.watch`).

The desktop window reloads the open views of the plugin on that event (or shows the
failed-plugin pane with the reason); browser pages can follow it on ``/events``
(topic ``plugin.reloaded``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import tempfile
import time
from pathlib import Path
from typing import TextIO

from plexichat_desktop.core.events import PluginReloaded
from plexichat_desktop.core.paths import AppPaths, bundled_plugins_dir, extra_plugin_dirs
from plexichat_desktop.core.waiting import cancel_and_wait
from plexichat_desktop.plugins.manager import STARTABLE, PluginRecord
from plexichat_desktop.runtime import Runtime
from plexichat_desktop.testing.events import RunFinished
from plexichat_desktop.testing.models import BAD_OUTCOMES
from plexichat_desktop.testing.results import results_of
from plexichat_desktop.testing.watch import TestWatch, watch_changes

log = logging.getLogger(__name__)
SHOWN_FAILURES = 10  # bad results listed after a run; the rest by the results command


def plugin_dir_for(root: Path, paths: AppPaths) -> tuple[Path | None, Path | None]:
    """The folder to add to the plugin dirs so that the plugin at ``root`` loads, and a
    temporary folder to delete afterwards. (None, None) when a plugin dir the app already
    reads holds it. Otherwise a fresh folder with a link to ``root`` only: adding its
    parent would load every plugin next to it."""
    parent = root.parent.resolve()
    known = [bundled_plugins_dir(), paths.user_plugins_dir, *extra_plugin_dirs()]
    if any(folder is not None and parent == Path(folder).resolve() for folder in known):
        return None, None
    holder = Path(tempfile.mkdtemp(prefix="plexichat-dev-"))
    try:
        (holder / root.name).symlink_to(root, target_is_directory=True)
    except OSError:
        # No symlinks (Windows without the privilege): its parent, siblings and all.
        os.rmdir(holder)
        return parent, None
    return holder, holder


class DevSession:
    """Reloads one plugin of ``runtime`` when its files change; reruns affected tests."""

    def __init__(self, runtime: Runtime, root: Path, *, tests: bool = True,
                 out: TextIO | None = None):
        self.runtime = runtime
        self.root = root.resolve()
        self.tests = tests
        self.out = out
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._reporter: asyncio.Task[None] | None = None
        self._watch: TestWatch | None = None
        self._gone = False  # the plugin folder was deleted; said once, until it is back
        self.ready = asyncio.Event()

    @property
    def record(self) -> PluginRecord | None:
        """The plugin's record (found by folder: its id may be what is being edited)."""
        for rec in self.runtime.plugins.records:
            if rec.root.resolve() == self.root:
                return rec
        return None

    def _say(self, text: str) -> None:
        if self.out is not None:
            print(text, file=self.out, flush=True)

    async def settled(self, limit: float = 30.0) -> PluginRecord | None:
        """The record once the plugin's first start is over (the app may start plugins in
        the background, after the server answers)."""
        deadline = time.monotonic() + limit
        rec = self.record
        while (rec is not None and rec.state in STARTABLE and not rec.running
               and time.monotonic() < deadline):
            await asyncio.sleep(0.05)
        return rec

    async def start(self) -> None:
        """Start watching; returns (and sets ``ready``) once the watches are in place."""
        # Its per-burst INFO line would repeat what the reload line below says.
        logging.getLogger("watchfiles").setLevel(logging.WARNING)
        rec = self.record
        if rec is None:
            self._say(f"dev: no plugin was loaded from {self.root}; is plugin.toml there?")
        elif self.tests:
            self._watch = TestWatch(self.runtime.tests, rec.id)
            self._reporter = asyncio.get_running_loop().create_task(
                self._report_runs(), name="dev test results")
        self._task = asyncio.get_running_loop().create_task(self._run(), name="dev watcher")
        # The task's first step creates the inotify (or polling) watches, synchronously,
        # before its first await: once it has run, no save can be missed.
        await asyncio.sleep(0)
        self.ready.set()

    async def stop(self) -> None:
        self._stop.set()
        for task in (self._task, self._reporter):
            await cancel_and_wait(task)

    async def _run(self) -> None:
        async for paths in watch_changes(self.root, self._stop):
            try:
                await self._burst(paths)
            except Exception:
                log.exception("dev: handling the change of %s failed", sorted(paths))

    async def _burst(self, paths: set[Path]) -> None:
        """One burst of the watch; the plugin folder itself among them: gone, or back
        (the watch is made again then, see watch_changes)."""
        if self.root in paths:
            if not self.root.is_dir():
                self._gone = True
                self._say(f"dev: the plugin folder {self.root} is gone; its routes keep "
                          "answering from the code loaded last. Put it back (or stop with "
                          "Ctrl+C): dev then reloads it.")
                return
            if self._gone:
                self._gone = False
                self._say(f"dev: {self.root} is back")
                paths = {*paths, self.root / "plugin.toml"}  # reload it as it is now
        await self.changed(paths)

    async def changed(self, paths: set[Path]) -> None:
        """Act on one burst of saved files (see the module doc)."""
        rec = self.record
        if rec is None:
            return
        holder = self.runtime.plugins.by_id.get(rec.id)
        if holder is not rec:
            # Another plugin (a bundled one) has this id: a reload by id would restart
            # that one on every save here.
            self._say(f"dev: {self.root} declares id '{rec.id}', which "
                      f"{holder.root if holder else 'another plugin'} has already; give it "
                      "an id of its own in plugin.toml and start dev again")
            return
        tests = (rec.root / rec.manifest.tests.path).resolve() if rec.manifest else None
        code, page = [], []
        for path in paths:
            rel = path.resolve().relative_to(self.root) if path.resolve().is_relative_to(
                self.root) else None
            if rel is None or (tests is not None and path.resolve().is_relative_to(tests)):
                continue
            if not rel.parts:
                continue  # the plugin folder itself (touched, its mode changed)
            if rel.parts[0] == "web":
                page.append(rel.as_posix())
            elif rel.suffix == ".py" or rel == Path("plugin.toml"):
                code.append(rel.as_posix())
        if code:
            started = time.monotonic()
            # The manager publishes the PluginReloaded event the window follows.
            rec = await self.runtime.plugins.reload(rec.id, files=sorted(code))
            took = time.monotonic() - started
            if rec.running:
                self._say(f"reloaded {rec.id} in {took * 1000:.0f} ms ({', '.join(code)})")
            else:
                self._say(f"reload of {rec.id} failed: {rec.state}: {rec.reason}")
        elif page:
            self.runtime.bus.publish(PluginReloaded(plugin_id=rec.id, kind="page",
                                                    state=str(rec.state), reason=rec.reason,
                                                    files=sorted(page)))
            self._say(f"page changed: {', '.join(sorted(page))}")
        if self._watch is not None:
            # After the reload: a manifest that no longer loads says why there, and
            # queues no run that could only fail with "unknown plugin".
            await self._watch.changed(paths)

    async def _report_runs(self) -> None:
        sub = self.runtime.bus.subscribe(RunFinished, name="dev test results")
        try:
            async for event in sub:
                run = event.run  # type: ignore[attr-defined]
                if run.get("trigger") != "watch":
                    continue
                counts = ", ".join(f"{v} {k}" for k, v in run.get("counts", {}).items()
                                   if k != "total" and v)
                self._say(f"tests #{run['id']} {run['status']}: {counts or 'no results'}"
                          + (f" ({run['error']})" if run.get("error") else ""))
                if run["status"] != "passed":
                    await self._say_failures(run["id"])
        finally:
            sub.close()

    async def _say_failures(self, run_id: int) -> None:
        """The run's bad results, one line each (its count alone sent the author to the
        results command to learn which test failed, and why)."""
        attempts = await asyncio.to_thread(self.runtime.store.attempts_for_run, run_id)
        # Each test once, as its final result (a retry that passed is flaky, not failed).
        bad = [r for r in results_of(attempts) if r.outcome in BAD_OUTCOMES]
        for result in bad[:SHOWN_FAILURES]:
            first = next((line.strip() for line in (result.message or "").splitlines()
                          if line.strip()), "")
            self._say(f"  {str(result.outcome).upper()} {result.nodeid}"
                      + (f": {first[:160]}" if first else ""))
        if bad:
            more = f" ({len(bad) - SHOWN_FAILURES} more)" if len(bad) > SHOWN_FAILURES else ""
            self._say(f"  details{more}: plexichat-desktop results {run_id} --failed")


def cleanup_holder(holder: Path | None) -> None:
    """Delete the temporary folder of :func:`plugin_dir_for` (only the link inside)."""
    if holder is None:
        return
    for child in holder.iterdir():
        with contextlib.suppress(OSError):
            child.unlink()
    with contextlib.suppress(OSError):
        holder.rmdir()


def describe_start(rec: PluginRecord | None, root: Path, url: str, tests: bool) -> str:
    """The lines ``dev`` prints once the app serves."""
    if rec is None:
        return f"No plugin was loaded from {root}."
    pages = ", ".join(f"{url.rstrip('/')}{p['url']}" for p in rec.pages()) or "(no pages)"
    state = str(rec.state) + (f": {rec.reason}" if rec.reason else "")
    return (f"Plugin {rec.id} ({state}) from {root}\n  pages: {pages}\n"
            f"Watching {root}: Python or plugin.toml -> reload, web/ -> page reload"
            + (", tests affected -> rerun" if tests else "") + ". Ctrl+C stops.")



