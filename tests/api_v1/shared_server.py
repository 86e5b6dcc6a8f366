"""For a test module whose tests share one v1 server, the module's ``shared_v1``:

    from tests.api_v1.shared_server import OWN_SERVER, module_server  # noqa: F401

    pytestmark = pytest.mark.asyncio(loop_scope="module")

``module_server`` is the fixture ``v1`` for that module. Its tests run in the module's
event loop on that server, each with accounts of its own; a test marked ``OWN_SERVER``
runs in a loop of its own and starts its own server (``make_v1``) when it needs the first
account (the administrator), counts what the whole server holds, or needs settings of its
own.
"""

from __future__ import annotations

from typing import Any

import pytest
import pytest_asyncio

OWN_SERVER = pytest.mark.asyncio(loop_scope="function")


@pytest_asyncio.fixture(loop_scope="module", name="v1")
async def module_server(shared_v1: Any) -> Any:
    """``v1``: the module's shared server (instead of the conftest's one per test).
    Imported under this name, which no test uses for a variable."""
    return shared_v1
