"""What libraries import while the app runs: httpx's and uvicorn's command lines only
when called, not with the packages (core/lazy_clis.py; what the app uses of both packages
is unchanged, and so are the command lines); nothing that fails in each HTTP request."""

import asyncio
import builtins
import http.server
import subprocess
import sys
import textwrap
import threading
from typing import Any

import httpx
import pytest

from plexichat_desktop.core import lazy_clis


def run_python(code: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def test_importing_the_app_then_httpx_and_uvicorn_leaves_their_command_lines_out():
    done = run_python("""
        import sys
        import plexichat_desktop, httpx, uvicorn, uvicorn.server
        assert uvicorn.Server is uvicorn.server.Server
        assert uvicorn.Config.__module__ == "uvicorn.config"
        print(sorted(m for m in ("rich", "click", "pygments") if m in sys.modules))
        with httpx.Client() as client:  # the package itself works as before
            print(type(client).__name__)
    """)
    assert done.stdout.split() == ["[]", "Client"]


def test_the_command_lines_still_run_through_the_stand_ins():
    done = run_python("""
        import sys
        import plexichat_desktop, httpx, uvicorn
        sys.argv = ["httpx", "--help"]
        try:
            httpx.main()
        except SystemExit as exc:
            print("httpx exit", exc.code)
        try:
            uvicorn.main(["--version"])
        except SystemExit as exc:
            print("uvicorn exit", exc.code)
        print("real modules:", type(sys.modules["uvicorn.main"].main).__name__,
              hasattr(sys.modules["httpx._main"], "print_help"))
    """)
    assert "Usage: httpx" in done.stdout
    assert "httpx exit 0" in done.stdout
    assert "Running uvicorn" in done.stdout and "uvicorn exit 0" in done.stdout
    assert "real modules: Command True" in done.stdout


def test_a_package_imported_before_keeps_its_own_module():
    done = run_python("""
        import sys
        import httpx
        import plexichat_desktop
        from plexichat_desktop.core import lazy_clis
        lazy_clis.defer()
        print(sys.modules["httpx._main"].__file__.endswith("_main.py"))
    """)
    assert done.stdout.strip() == "True"


def test_a_stand_in_whose_module_fails_to_import_says_so_each_time(monkeypatch):
    name = "plexichat_no_such_package._cli"
    stand_in = lazy_clis._stand_in(name, ("main",), {})
    monkeypatch.setitem(sys.modules, name, stand_in)
    for _ in range(2):  # not replaced by nothing: the next call tries again
        with pytest.raises(ModuleNotFoundError, match="plexichat_no_such_package"):
            stand_in.main()
        assert sys.modules[name] is stand_in
    with pytest.raises(ModuleNotFoundError):
        stand_in.anything_else  # noqa: B018  (an attribute is the real module's too)


def test_an_async_request_tries_no_import_that_fails(monkeypatch):
    # httpcore imports sniffio in each async request; without sniffio installed that
    # import searched all of sys.path and failed, every time (a dependency now).
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    failed: list[str] = []
    real_import = builtins.__import__

    def recording_import(name: str, *args: Any, **kwargs: Any) -> Any:
        try:
            return real_import(name, *args, **kwargs)
        except ImportError:
            failed.append(name)
            raise

    async def two_requests() -> list[int]:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.server_port}") as c:
            first = (await c.get("/")).status_code  # whatever the first one imports
            monkeypatch.setattr(builtins, "__import__", recording_import)
            second = (await c.get("/")).status_code
            monkeypatch.undo()
            return [first, second]

    try:
        assert asyncio.run(two_requests()) == [501, 501]  # no do_GET: the server says so
    finally:
        server.shutdown()
        server.server_close()
    assert failed == []


def test_the_clis_reading_commands_leave_fastapi_out():
    # FastAPI's import is ~0.2 s of CPU, 40% of `plexichat-desktop test` or `plugins list`
    # before they do anything; it comes with the first plugin context (a route), not with
    # the plugin API, the manager or the test manager's console.
    done = run_python("""
        import sys
        import plexichat_desktop.cli, plexichat_desktop.testing.console
        import plexichat_desktop.plugins.api, plexichat_desktop.plugins.manager
        print(sorted(m for m in ("fastapi", "starlette.responses") if m in sys.modules))
    """)
    assert done.stdout.split() == ["[]"]
