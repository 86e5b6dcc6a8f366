"""One error type for bad input: the routes turn it into a 4xx naming the field."""

from __future__ import annotations


class Problem(Exception):
    """Bad input or a state that forbids the action.

    ``field`` names what to fix (``"password"``, ``"csv"``, ``"recipients[1]"``...),
    ``status`` is the HTTP status the route answers with (422 unless said otherwise).
    The message never contains a secret: it names the field and what was wrong with it.
    """

    def __init__(self, field: str, message: str, status: int = 422):
        super().__init__(f"{field}: {message}")
        self.field = field
        self.status = status
        self.message = message
