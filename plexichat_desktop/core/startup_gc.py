"""The garbage collector during start-up.

Starting ``serve`` or the window makes a few hundred thousand objects that live as long as
the app (modules, routes, models, schemas). The collector runs again and again while they
are made and finds nothing to free: 40-50 ms of CPU before the app answers (measured with
``gc.callbacks`` in the started process). It is paused for the start and resumed once the
app is up, with what the start made moved out of its way (``gc.freeze``).
"""

from __future__ import annotations

import gc


def pause() -> None:
    """No automatic collection until :func:`resume`."""
    gc.disable()


def resume() -> None:
    """Collect automatically again. The objects made so far go to the permanent
    generation: later full collections do not walk them each time (the price: a cycle
    among them that becomes garbage later is not freed, which the start's long-lived
    objects do not do)."""
    if not gc.isenabled():
        gc.freeze()
        gc.enable()
