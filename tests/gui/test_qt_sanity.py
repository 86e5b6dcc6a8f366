"""Guards against Qt binding bugs that would crash the app after a while, not at once."""

from __future__ import annotations

import inspect
import sys
from pathlib import Path

import PySide6
import pytest
from PySide6.QtCore import QObject, Signal

from plexichat_desktop.gui.environment import module_mentions_pyside, spare_feature_scan


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


def test_pysides_import_check_reads_bytes_and_answers_as_before(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """spare_feature_scan swaps shiboken6's per-import check (does the module use PySide6?)
    for one that reads the file's bytes: the same answer for every module loaded here as
    PySide6's own rule ("PySide6" in inspect.getsource, False when that fails), and the
    import hook still records it. Fails when PySide6 renames the check: then see whether
    the new one is still slow."""
    feature = sys.modules["shibokensupport.feature"]
    assert callable(getattr(feature, "_mod_uses_pyside", None)), (
        f"PySide6 {PySide6.__version__} has no shibokensupport.feature._mod_uses_pyside")
    spare_feature_scan()
    assert feature._mod_uses_pyside is module_mentions_pyside

    def pysides_rule(module: object) -> bool:
        try:
            return "PySide6" in inspect.getsource(module)  # type: ignore[arg-type]
        except (TypeError, OSError, SyntaxError):
            return False

    modules = [m for m in list(sys.modules.values()) if m is not None]
    compared = [(m.__name__, module_mentions_pyside(m), pysides_rule(m)) for m in modules]
    assert [c for c in compared if c[1] != c[2]] == []
    assert sum(1 for c in compared if c[1]) >= 5  # the app's Qt modules, pytest-qt's

    (tmp_path / "qt_using_module.py").write_text("import PySide6.QtCore\n")
    (tmp_path / "plain_module.py").write_text("VALUE = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import plain_module  # noqa: F401
    import qt_using_module  # noqa: F401

    assert feature.pyside_feature_dict["qt_using_module"] == 0
    assert feature.pyside_feature_dict["plain_module"] == -1
