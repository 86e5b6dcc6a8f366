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


WARM_CHILD_FLAG = "--pytest-warm"


def warm_command(python: str) -> list[str]:
    """A child that imports pytest now and runs one session when told what to run."""
    if is_frozen():
        return [sys.executable, WARM_CHILD_FLAG]
    return [python, "-m", "plexichat_desktop.testing.child"]


def run_warm_child() -> int:
    """Import pytest, then wait for one JSON line on stdin and be that pytest session.

    The line holds ``cwd``, ``pythonpath``, ``env`` (added to the environment), ``log``
    (where stdout and stderr go from then on) and ``args``. EOF instead of a line (the
    app went away) ends the child quietly.
    """
    import faulthandler
    import json

    # The slow imports, done ahead of the order.
    import _pytest.assertion.rewrite
    import _pytest.python  # noqa: F401
    import pytest

    import plexichat_desktop.testing.reporter  # noqa: F401

    line = sys.stdin.readline()
    if not line.strip():
        return 0
    order = json.loads(line)
    log = os.open(order["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.close(log)
    faulthandler.enable()
    os.chdir(order["cwd"])
    os.environ.update(order["env"])
    os.environ["PYTHONPATH"] = order["pythonpath"]
    sys.path.insert(0, order["pythonpath"])
    return int(pytest.main(order["args"]))


if __name__ == "__main__":
    raise SystemExit(run_warm_child())
