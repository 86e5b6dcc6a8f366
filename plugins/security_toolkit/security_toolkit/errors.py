"""One error type for bad input: the host answers it with a 4xx naming the field."""

from __future__ import annotations

from typing import Any

from plexichat_desktop.plugins.api import PluginProblem


class Problem(PluginProblem):
    """Bad input or a state that forbids the action: the host's
    :class:`~plexichat_desktop.plugins.api.PluginProblem` with the field first.

    ``field`` names what to fix (``"password"``, ``"csv"``, ``"recipients[1]"``...),
    ``status`` is the HTTP status the route answers with (422 unless said otherwise); the
    answer is ``{"detail": "<field>: <message>", "field": <field>, **extra}``.
    The message never contains a secret: it names the field and what was wrong with it.
    """

    def __init__(self, field: str, message: str, status: int = 422, **extra: Any):
        super().__init__(status, field, message, **extra)
