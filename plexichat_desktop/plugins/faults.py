"""What plugin code may raise that the host turns into that plugin's failure.

``Exception`` and ``SystemExit``: a plugin that calls ``sys.exit()`` while it is imported,
set up, serving a route or running a job or schedule fails on its own, with the reason
logged under its name; left alone, the exception ended the whole app (exit code 0 for
``SystemExit(0)``, without a word). ``KeyboardInterrupt`` and cancellation still pass: they
are the user's Ctrl+C and the app's own stopping.
"""

from __future__ import annotations

PLUGIN_FAULTS: tuple[type[BaseException], ...] = (Exception, SystemExit)
