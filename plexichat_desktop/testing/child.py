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


# Interpreter options that may come before -c/-m (multiprocessing passes some); the bundle
# cannot honour them, and none changes what the code does. Those taking a value: -X, -W.
_FLAGS = {"-B", "-E", "-I", "-O", "-OO", "-P", "-q", "-s", "-S", "-u", "-b", "-bb", "-d", "-v"}
_FLAGS_WITH_VALUE = {"-X", "-W"}


def interpreter_args(argv: list[str]) -> tuple[str, str, list[str]] | None:
    """``(flag, target, rest)`` when ``argv`` reads like ``python [options] -c CODE ...``
    or ``python [options] -m MODULE ...``; None otherwise."""
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg in ("-c", "-m") and i + 1 < len(argv):
            return arg, argv[i + 1], argv[i + 2:]
        if arg in _FLAGS_WITH_VALUE:
            i += 2
        elif arg in _FLAGS or (arg[:2] in _FLAGS_WITH_VALUE and len(arg) > 2):
            i += 1
        else:
            return None
    return None


def run_as_interpreter(argv: list[str]) -> int:
    """Be ``python [options] -c CODE ...`` or ``python [options] -m MODULE ...`` inside a
    frozen bundle.

    Tests often start helper processes with ``[sys.executable, "-c", ...]``; in the bundle
    ``sys.executable`` is the app, so the app answers those forms like Python would.
    """
    parsed = interpreter_args(argv)
    if parsed is None:
        raise SystemExit(f"not an interpreter command line: {argv!r}")
    flag, target, rest = parsed
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

    # The slow imports, done ahead of the order. Not our reporter plugin: pytest loads it
    # with -p and would warn that an already imported module cannot be rewritten (an
    # error for plugins that turn warnings into errors).
    import _pytest.assertion.rewrite
    import _pytest.python  # noqa: F401
    import pytest

    line = sys.stdin.readline()
    if not line.strip():
        return 0
    order = json.loads(line)
    log = os.open(order["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.close(log)
    faulthandler.enable()
    # Started with ``-m`` in the runner's work dir, which Python put first on sys.path; a
    # cold child has the plugin folder there instead.
    if sys.path and sys.path[0] in ("", os.getcwd()):
        del sys.path[0]
    os.chdir(order["cwd"])
    os.environ.update(order["env"])
    os.environ["PYTHONPATH"] = order["pythonpath"]
    sys.path.insert(0, order["pythonpath"])
    return int(pytest.main(order["args"]))


if __name__ == "__main__":
    raise SystemExit(run_warm_child())
