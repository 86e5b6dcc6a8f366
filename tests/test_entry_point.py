"""python -m plexichat_desktop: which arguments reach the test runner's child modes."""

import ast
from pathlib import Path


def test_every_child_mode_flag_is_seen_by_the_entry_point():
    # __main__ imports the child modes only for a first argument with this prefix.
    import plexichat_desktop
    from plexichat_desktop.testing import child

    main = Path(plexichat_desktop.__file__).with_name("__main__.py")
    prefix = next(node.value.value for node in ast.parse(main.read_text()).body
                  if isinstance(node, ast.Assign)
                  and getattr(node.targets[0], "id", "") == "CHILD_FLAG_PREFIX")
    flags = [value for name, value in vars(child).items()
             if name.endswith("_FLAG") and isinstance(value, str)]
    assert len(flags) == 3 and all(flag.startswith(prefix) for flag in flags)


LISTEN_FIRST = r"""
import asyncio, sys
from plexichat_desktop.cli import _load, build_parser
from plexichat_desktop.runtime import Listener

args = build_parser().parse_args(["serve", "--port", "0"])
paths, settings = _load(args)


async def main():
    listener = Listener(paths, settings)
    await listener.start()
    try:
        print(sorted(name for name in sys.modules if name.split(".")[0] in (
            "fastapi", "statistics", "jinja2")
            or name.startswith(("plexichat_desktop.plugins", "plexichat_desktop.testing",
                                "plexichat_desktop.server.v1", "plexichat_desktop.server.app"))))
    finally:
        await listener.stop()

asyncio.run(main())
"""


def test_serve_listens_before_it_imports_the_core(home):
    # What serve runs before its port answers: argument parsing, settings, the listener.
    # The framework, the plugin host, the test manager and the v1 API come after.
    # (multiprocessing is not checked: uvicorn imports it itself.)
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", LISTEN_FIRST], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]", done.stdout


WINDOW_FIRST = r"""
import sys
from plexichat_desktop.cli import _load, build_parser
from plexichat_desktop.runtime import Listener
import plexichat_desktop.gui.app
from plexichat_desktop.gui import bridge, browser, downloads, main_window, permissions, theme, web

paths, settings = _load(build_parser().parse_args(["--port", "0"]))
Listener(paths, settings)
from plexichat_desktop.core.lazy_clis import DEFERRED
# httpx's and uvicorn's command lines have stand-ins there (no file) until used.
print(sorted(name for name, module in sys.modules.items() if name.split(".")[0] in (
    "fastapi", "starlette", "uvicorn", "jinja2", "httpx")
    and not (name in DEFERRED and getattr(module, "__file__", None) is None)
    or name.startswith(("plexichat_desktop.plugins", "plexichat_desktop.testing.manager",
                        "plexichat_desktop.server.v1", "plexichat_desktop.server.app",
                        "plexichat_desktop.server.web_server"))))
"""


def test_the_window_needs_nothing_of_the_core_to_be_shown(home):
    # The desktop app shows its window while a worker thread imports the core
    # (gui.app._import_core): a module of the window that imported the framework or the
    # plugin host at its top would make the window wait for them again.
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", WINDOW_FIRST], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]", done.stdout
