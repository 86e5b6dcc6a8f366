"""One pytest runner, and so one pytest fork server, for a test module whose tests each
make a test manager of their own (store, bus, plugins, settings) but do not look at the
runner itself:

    from tests.shared_runner import MODULE_LOOP, module_runner  # noqa: F401 (a fixture)

    @MODULE_LOOP
    async def test_...(module_runner, ...):
        manager = TestManager(...)
        manager.runner = module_runner

Each run is still a pytest session of its own, forked from the pristine server; what the
module saves is the server's start (Python's and pytest's imports, ~0.2 s of CPU), paid
once instead of once per test. A test that looks at the runner, or needs a fork server of
its own (another preload, another environment), keeps its manager's own runner.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from plexichat_desktop.testing.runner import PytestRunner
from tests.conftest import fresh_home

# The module's loop, on which its runner's fork server is read.
MODULE_LOOP = pytest.mark.asyncio(loop_scope="module")


class ModuleRunner(PytestRunner):
    """A runner lent to one test's manager after another: a manager's stop ends what it
    was collecting, as a runner's close() does, and leaves the fork server running for
    the next test; ``shutdown`` ends it."""

    async def close(self) -> None:
        self.end_collections()

    async def shutdown(self) -> None:
        await super().close()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def module_runner(tmp_path_factory: pytest.TempPathFactory
                        ) -> AsyncIterator[ModuleRunner]:
    """The module's runner, its fork server started in an environment set up as the
    ``home`` fixture's (fresh, no plugin path from the caller's), which its sessions get."""
    root = tmp_path_factory.mktemp("module-runner")
    runner = ModuleRunner(root / "runs")
    with pytest.MonkeyPatch.context() as env:
        fresh_home(env, root / "home")
        runner.prepare()
    try:
        yield runner
    finally:
        await runner.shutdown()
