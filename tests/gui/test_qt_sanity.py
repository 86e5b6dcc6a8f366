"""Guards against Qt binding bugs that would crash the app after a while, not at once."""

from __future__ import annotations

import linecache
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path

import PySide6
import pytest
from PySide6.QtCore import QObject, Signal

from plexichat_desktop.gui import environment
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
    for one that reads a ``.py`` file's bytes: for every module loaded here the same answer
    as PySide6's own check, which still answers the rest (a module from a zip); the hook
    uses the new one (no source lands in linecache). Fails when PySide6 renames the check:
    then see whether the new one is still slow."""
    feature = sys.modules["shibokensupport.feature"]
    assert callable(getattr(feature, "_mod_uses_pyside", None)), (
        f"PySide6 {PySide6.__version__} has no shibokensupport.feature._mod_uses_pyside")
    spare_feature_scan()  # done by the conftest already: a second call changes nothing
    assert feature._mod_uses_pyside is module_mentions_pyside
    pysides_own = environment._pyside_check
    assert pysides_own is not None and pysides_own is not module_mentions_pyside

    def answer(check: Callable[[object], bool], module: object) -> bool | str:
        try:
            return check(module)
        except Exception as exc:  # PySide6's own check on a __file__ that is no str
            return type(exc).__name__

    modules = [m for m in list(sys.modules.values()) if m is not None]
    compared = [(m.__name__, answer(module_mentions_pyside, m), answer(pysides_own, m))
                for m in modules]
    assert [c for c in compared if c[1] != c[2]] == []
    assert sum(1 for c in compared if c[1] is True) >= 5  # the app's Qt modules, pytest-qt's

    (tmp_path / "qt_using_module.py").write_text("import PySide6.QtCore\n")
    (tmp_path / "plain_module.py").write_text("VALUE = 1\n")
    with zipfile.ZipFile(tmp_path / "zipped.zip", "w") as archive:
        archive.writestr("zipped_qt_module.py", "import PySide6.QtCore\n")
    names = ["qt_using_module", "plain_module", "zipped_qt_module"]
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.syspath_prepend(str(tmp_path / "zipped.zip"))
    try:
        import plain_module  # noqa: F401
        import qt_using_module  # noqa: F401
        import zipped_qt_module  # noqa: F401

        assert [feature.pyside_feature_dict[name] for name in names] == [0, -1, 0]
        assert str(tmp_path / "qt_using_module.py") not in linecache.cache
    finally:
        for name in names:
            sys.modules.pop(name, None)
            feature.pyside_feature_dict.pop(name, None)
