"""``python -m plexichat_desktop`` and the frozen bundle's entry point."""

import sys

# The child modes below are reached only through the frozen bundle or a first argument
# starting with CHILD_FLAG_PREFIX (every flag of plexichat_desktop.testing.child does;
# tests/test_startup_order.py checks it): the app's own commands, `serve` first, do not
# import multiprocessing and the child module before they start.
CHILD_FLAG_PREFIX = "--pytest-"

_child_mode = len(sys.argv) > 1 and sys.argv[1].startswith(CHILD_FLAG_PREFIX)
if getattr(sys, "frozen", False) or _child_mode:
    import multiprocessing

    from plexichat_desktop.testing.child import (
        FORK_SERVER_FLAG,
        PYTEST_CHILD_FLAG,
        WARM_CHILD_FLAG,
        interpreter_args,
        is_frozen,
        run_as_interpreter,
        run_fork_server,
        run_pytest_child,
        run_warm_child,
    )

    # In the frozen bundle, multiprocessing's helper processes (spawn, resource tracker)
    # start this executable; freeze_support lets them run their own code instead of the app.
    multiprocessing.freeze_support()

    if len(sys.argv) > 1 and sys.argv[1] == PYTEST_CHILD_FLAG:
        # The bundle's executable started as a test runner's pytest child.
        raise SystemExit(run_pytest_child(sys.argv[2:]))
    if len(sys.argv) > 1 and sys.argv[1] == WARM_CHILD_FLAG:
        raise SystemExit(run_warm_child())
    if len(sys.argv) > 1 and sys.argv[1] == FORK_SERVER_FLAG:
        raise SystemExit(run_fork_server())
    if is_frozen() and interpreter_args(sys.argv[1:]) is not None:
        raise SystemExit(run_as_interpreter(sys.argv[1:]))

from plexichat_desktop.cli import main  # noqa: E402  (after the child modes above)

raise SystemExit(main())
