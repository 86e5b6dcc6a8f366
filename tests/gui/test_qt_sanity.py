"""Guards against Qt binding bugs that would crash the app after a while, not at once."""

from __future__ import annotations

import sys

import PySide6
from PySide6.QtCore import QObject, Signal


class _Emitter(QObject):
    ping = Signal(object)


def test_emitting_signals_keeps_python_refcounts(qapp: object) -> None:
    """PySide6 6.12.0 dropped a reference to ``True`` on every ``Signal.emit`` (seen here on
    Python 3.11, where ``True`` is not immortal): after a few thousand emits the process
    aborts with "bool_dealloc: deallocating True or False". The dashboard emits a signal
    per test result, so pyproject.toml excludes that release; this fails if one slips in."""
    emitter = _Emitter()
    before = sys.getrefcount(True)
    for _ in range(100):
        emitter.ping.emit(1)
    assert sys.getrefcount(True) - before > -50, (
        f"PySide6 {PySide6.__version__} leaks a reference to True per Signal.emit; "
        "install another version (see pyproject.toml)")
