"""How a pytest child is started, from a source install and from the frozen bundle.

A source install runs ``<python> -m pytest``. A frozen bundle (PyInstaller) has no
``python`` to run: its own executable doubles as the pytest child when its first argument
is :data:`PYTEST_CHILD_FLAG`, so plugin tests run the same way from the desktop bundle.
"""

from __future__ import annotations

import os
import sys

PYTEST_CHILD_FLAG = "--pytest-child"


def is_frozen() -> bool:
    return bool(getattr(sys, "frozen", False))


def child_command(python: str) -> list[str]:
    """The command line up to pytest's own arguments."""
    if is_frozen():
        return [sys.executable, PYTEST_CHILD_FLAG]
    return [python, "-m", "pytest"]


def run_pytest_child(argv: list[str]) -> int:
    """Be the pytest child inside a frozen bundle: ``PYTHONPATH`` (the plugin folder) is
    not read by the bundle's bootloader, so it is put on ``sys.path`` here."""
    for entry in reversed(os.environ.get("PYTHONPATH", "").split(os.pathsep)):
        if entry and entry not in sys.path:
            sys.path.insert(0, entry)
    import pytest

    return int(pytest.main(argv))


def run_as_interpreter(argv: list[str]) -> int:
    """Be ``python -c CODE ...`` or ``python -m MODULE ...`` inside a frozen bundle.

    Tests often start helper processes with ``[sys.executable, "-c", ...]``; in the bundle
    ``sys.executable`` is the app, so the app answers those two forms like Python would.
    """
    flag, target, *rest = argv
    if flag == "-c":
        sys.argv = ["-c", *rest]
        exec(compile(target, "<string>", "exec"), {"__name__": "__main__"})
    else:
        import runpy

        sys.argv = [target, *rest]
        runpy.run_module(target, run_name="__main__", alter_sys=True)
    return 0
