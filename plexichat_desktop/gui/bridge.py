"""The bus, seen from Qt: bus events become Qt signals on the GUI thread."""

from __future__ import annotations

import asyncio
from typing import Any

from PySide6.QtCore import QObject, Signal

from plexichat_desktop.core.events import (
    AppFocusRequested,
    Event,
    EventBus,
    PluginReloaded,
    PluginStateChanged,
)
from plexichat_desktop.core.waiting import cancel_and_wait
from plexichat_desktop.testing.events import (
    RunFinished,
    RunQueued,
    RunStarted,
    TestFinished,
    TestsCollected,
    TestStarted,
)


class EventBridge(QObject):
    """Subscribes to the bus and re-emits what widgets care about as signals."""

    pluginStateChanged = Signal(str, str, str)   # plugin id, state, reason
    runsChanged = Signal(dict)                    # a run's dict whenever it changes state
    focusRequested = Signal()
    pluginReloaded = Signal(str, str, str, str)   # plugin id, kind (code/page), state, reason
    testsCollected = Signal(int, str, int)        # run id, plugin id, total
    testStarted = Signal(int, str, str)           # run id, plugin id, node id
    testFinished = Signal(object)                 # the TestFinished event
    busEvent = Signal(object)                     # every event, for widgets that want more

    def __init__(self, bus: EventBus, parent: QObject | None = None):
        super().__init__(parent)
        self._sub = bus.subscribe(name="qt bridge", maxsize=10_000)
        self._task = asyncio.get_running_loop().create_task(self._pump(), name="qt bridge")

    async def _pump(self) -> None:
        async for event in self._sub:
            self._dispatch(event)

    def _dispatch(self, event: Event) -> None:
        self.busEvent.emit(event)
        if isinstance(event, PluginStateChanged):
            self.pluginStateChanged.emit(event.plugin_id, event.state, event.reason or "")
        elif isinstance(event, RunQueued | RunStarted | RunFinished):
            run: dict[str, Any] = event.run
            self.runsChanged.emit(run)
        elif isinstance(event, TestFinished):
            self.testFinished.emit(event)
        elif isinstance(event, TestStarted):
            self.testStarted.emit(event.run_id, event.plugin_id, event.nodeid)
        elif isinstance(event, TestsCollected):
            self.testsCollected.emit(event.run_id, event.plugin_id, event.total)
        elif isinstance(event, AppFocusRequested):
            self.focusRequested.emit()
        elif isinstance(event, PluginReloaded):
            self.pluginReloaded.emit(event.plugin_id, event.kind, event.state,
                                     event.reason or "")

    async def close(self) -> None:
        self._sub.close()
        await cancel_and_wait(self._task)
