"""``python -m plexichat_desktop`` and the frozen bundle's entry point."""

import sys

from plexichat_desktop.testing.child import (
    PYTEST_CHILD_FLAG,
    WARM_CHILD_FLAG,
    is_frozen,
    run_as_interpreter,
    run_pytest_child,
    run_warm_child,
)

if len(sys.argv) > 1 and sys.argv[1] == PYTEST_CHILD_FLAG:
    # The bundle's executable started as a test runner's pytest child.
    raise SystemExit(run_pytest_child(sys.argv[2:]))
if len(sys.argv) > 1 and sys.argv[1] == WARM_CHILD_FLAG:
    raise SystemExit(run_warm_child())
if is_frozen() and len(sys.argv) > 2 and sys.argv[1] in ("-c", "-m"):
    raise SystemExit(run_as_interpreter(sys.argv[1:]))

from plexichat_desktop.cli import main

raise SystemExit(main())
