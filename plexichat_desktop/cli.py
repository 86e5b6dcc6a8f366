"""The ``plexichat-desktop`` command."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from plexichat_desktop import __version__
from plexichat_desktop.core.logs import setup_logging
from plexichat_desktop.core.paths import AppPaths, bundled_plugins_dir, extra_plugin_dirs
from plexichat_desktop.core.settings import Settings, load_settings, write_template_if_missing
from plexichat_desktop.core.validation import ConfigError

log = logging.getLogger("plexichat_desktop")

EXIT_OK, EXIT_ERROR, EXIT_USAGE = 0, 1, 2


class _TestCategories:
    """The choices of ``results --category``, read from the test analytics only when
    argparse looks at them: every other command, ``serve`` first, starts without importing
    that module (and ``statistics`` with it)."""

    @staticmethod
    def _names() -> tuple[str, ...]:
        from plexichat_desktop.testing.analytics import CATEGORIES

        return CATEGORIES

    def __contains__(self, name: object) -> bool:
        return name in self._names()

    def __iter__(self) -> Iterator[str]:
        return iter(self._names())


def _server_options(parser: argparse.ArgumentParser, default: Any = None) -> None:
    # The subcommand repeats the options with SUPPRESS defaults, so that
    # "--port 1 serve" and "serve --port 1" both work.
    parser.add_argument("--port", type=int, metavar="N", default=default,
                        help="port on 127.0.0.1 (default from settings: 8000; 0 = any free port)")
    parser.add_argument("--safe-mode", action="store_true",
                        default=False if default is None else default,
                        help="load no plugins but the bundled ones marked essential")
    parser.add_argument("--log-level", choices=["DEBUG", "INFO", "WARNING", "ERROR"],
                        default=default, help="override [logging] level")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="plexichat-desktop",
        description="PlexiChat Desktop: a desktop host for web-UI plugins and their tests. "
                    "Without a command it opens the desktop window (it prints the server URL "
                    "once ready), or runs the headless server when no display is available.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--no-webengine", action="store_true",
                        help="open plugin pages in the system browser instead of tabs")
    _server_options(parser)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    serve = sub.add_parser("serve", help="run the headless server with all plugins",
                           description="Run the server and plugins without a window. Prints "
                                       "the URL as soon as the port answers (requests wait "
                                       "there while the app and its plugins start); stops "
                                       "on Ctrl+C or SIGTERM.")
    _server_options(serve, argparse.SUPPRESS)

    test = sub.add_parser(
        "test", help="run plugin tests in isolated pytest processes",
        description="Run the tests of every plugin, one plugin, or one test "
                    "(PLUGIN::TEST_ID, where TEST_ID is a pytest node id, a file or a test "
                    "name). Exits as pytest would: 0 when everything passed, 1 for "
                    "failures, pytest's 2/3/4 (interrupted or a file that does not collect, "
                    "internal error, usage error), 5 when no test ran; 2 for bad arguments.")
    test.add_argument("target", nargs="?", metavar="PLUGIN[::TEST_ID]")
    test.add_argument("--timeout", type=float, metavar="S",
                      help="per-test timeout in seconds (default: the plugin's manifest)")
    test.add_argument("--retries", type=int, metavar="N",
                      help="rerun failed tests up to N times; one that then passes is flaky")
    test.add_argument("--priority", default="medium",
                      choices=["low", "medium", "high", "critical"])
    test.add_argument("--json", action="store_true",
                      help="print one JSON document with the summary and every result")
    test.add_argument("--watch", action="store_true",
                      help="keep running: on every save in the plugin's folder rerun the "
                           "tests the change affects (Ctrl+C stops)")
    dev = sub.add_parser(
        "dev", help="serve one plugin and reload it whenever its files change",
        description="Serve the plugin folder PATH with the app (the window when a display "
                    "exists, else headless). Saving a Python file or plugin.toml reloads "
                    "the plugin (teardown, fresh import, setup); saving a file under web/ "
                    "reloads its open pages; the tests the change affects rerun and show "
                    "in the Tests panel, the web dashboard and here. A failed reload shows "
                    "its reason in the page; the next good save recovers. Stops on Ctrl+C.")
    dev.add_argument("path", type=Path, metavar="PATH", help="the plugin folder")
    dev.add_argument("--no-tests", action="store_true",
                     help="do not rerun the affected tests on save")
    dev.add_argument("--headless", action="store_true",
                     help="no window even when a display exists")
    _server_options(dev, argparse.SUPPRESS)
    results = sub.add_parser("results", help="recent test runs, statistics and analytics",
                             description="Show recent test runs and statistics, a run's "
                                         "results, failure patterns or slow tests.")
    results.add_argument("plugin", nargs="?", metavar="PLUGIN|RUN_ID",
                         help="a plugin id, or a run id (a number) to list its results")
    results.add_argument("--limit", type=_positive_int, default=20,
                         help="how many runs (or results, patterns) to show (default 20)")
    results.add_argument("--failed", action="store_true",
                         help="with a run id: only its failed, errored, timed out or "
                              "crashed results, with their tracebacks")
    results.add_argument("--failures", action="store_true",
                         help="failures grouped by pattern, newest first")
    results.add_argument("--slow", action="store_true",
                         help="slowest tests and plugins, tests that got slower, suggestions")
    # A metavar of its own: argparse would otherwise list the choices while building.
    results.add_argument("--category", choices=_TestCategories(), metavar="CATEGORY",
                         help="only tests with this category marker: %(choices)s")
    results.add_argument("--json", action="store_true")

    sub.add_parser("login-link", help="print a fresh one-time browser sign-in link",
                   description="Ask the running server for a one-time link that signs a "
                               "browser in (valid 5 minutes; the token itself never goes "
                               "to the browser).")
    sub.add_parser("token", help="print the access token of the active home",
                   description="Print the secret token that requests to the server need "
                               "(Authorization: Bearer <token>).")

    schedule = sub.add_parser(
        "schedule", help="schedule plugin tests in the running app",
        description="List, add, preview, switch on or off and delete the test schedules of "
                    "the running app (they fire there; start it with 'plexichat-desktop "
                    "serve' or the window). Expressions: 5-field cron, 6-field cron with "
                    "the seconds last, @daily and the like, hourly/daily/weekly/monthly, "
                    "every_N_minutes|hours|days.")
    ssub = schedule.add_subparsers(dest="schedule_command", metavar="ACTION", required=True)
    slist = ssub.add_parser("list", help="the schedules, with their next run and last result")
    slist.add_argument("plugin", nargs="?", help="only this plugin's")
    slist.add_argument("--json", action="store_true", help="machine-readable output")
    sadd = ssub.add_parser("add", help="schedule a plugin's tests (or one test)")
    sadd.add_argument("plugin")
    sadd.add_argument("expression", help="e.g. daily, every_15_minutes, '0 9 * * 1-5'")
    sadd.add_argument("--test", help="one test (a node id, file or name) instead of the suite")
    sadd.add_argument("--timezone", help="IANA zone the expression is read in (default local)")
    sadd.add_argument("--priority", default="medium",
                      choices=["low", "medium", "high", "critical"])
    sadd.add_argument("--timeout", type=float, metavar="S", help="per-test timeout, seconds")
    sadd.add_argument("--retries", type=int, metavar="N", help="reruns of failed tests")
    sadd.add_argument("--disabled", action="store_true", help="add it switched off")
    spre = ssub.add_parser("preview", help="the next fire times of an expression")
    spre.add_argument("expression")
    spre.add_argument("--timezone")
    spre.add_argument("--count", type=_positive_int, default=5, help="how many (at most 20)")
    for action, text in (("enable", "switch a schedule on"), ("disable", "switch it off"),
                         ("rm", "delete a schedule")):
        ssub.add_parser(action, help=text).add_argument("id", help="the schedule's id")

    plugins = sub.add_parser("plugins", help="list, create, check, enable or disable plugins",
                             description="Manage plugins.")
    psub = plugins.add_subparsers(dest="plugins_command", metavar="ACTION", required=True)
    plist = psub.add_parser("list", help="every plugin found, with its state and reason",
                            description="List every plugin found (bundled, installed, user "
                                        "dir, PLEXICHAT_DESKTOP_PLUGINS_PATH) without "
                                        "importing plugin code.")
    plist.add_argument("--json", action="store_true", help="machine-readable output")
    pnew = psub.add_parser("new", help="create a working plugin to start from",
                           description="Scaffold a plugin: manifest, package, web page and a "
                                       "passing test.")
    pnew.add_argument("id", help="plugin id: lowercase letters, digits and _")
    pnew.add_argument("--dir", type=Path, help="parent folder (default: the user plugins dir)")
    pnew.add_argument("--name", help="display name (default: from the id)")
    pval = psub.add_parser("validate", help="check a plugin folder without running it",
                           description="Validate a plugin folder (or its plugin.toml).")
    pval.add_argument("path", type=Path)
    psub.add_parser("schema", help="print the JSON Schema of plugin.toml",
                    description="Print the manifest's JSON Schema, for editors that validate "
                                "TOML with one (e.g. Taplo / Even Better TOML: "
                                "#:schema ./plugin.schema.json at the top of plugin.toml).")
    preload = psub.add_parser(
        "reload", help="reload a plugin in the running app",
        description="Ask the running app to stop the plugin (and the plugins that need it), "
                    "read its manifest and code again from disk and start them again. Exit "
                    "code 0 when it runs again, 1 otherwise (the reason is printed).")
    preload.add_argument("id")
    for action in ("enable", "disable"):
        p = psub.add_parser(action, help=f"{action} a plugin from the next start on",
                            description=f"{action.capitalize()} a plugin; remembered across "
                                        "restarts. A running app applies it at its next start "
                                        "(its web UI applies it at once).")
        p.add_argument("id")
    return parser


def _cli_overrides(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    if getattr(args, "port", None) is not None:
        out.setdefault("server", {})["port"] = args.port
    if getattr(args, "log_level", None):
        out.setdefault("logging", {})["level"] = args.log_level
    return out


def _load(args: argparse.Namespace) -> tuple[AppPaths, Settings]:
    paths = AppPaths.from_env()
    settings, warnings = load_settings(paths, cli=_cli_overrides(args))
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)
    return paths, settings


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command in (None, "serve"):
        from plexichat_desktop.core import startup_gc

        startup_gc.pause()  # resumed once the app is up (serve, gui.app)
    try:
        paths, settings = _load(args)
    except ConfigError as exc:
        print(f"error: bad settings, nothing was started.\n{exc}", file=sys.stderr)
        return EXIT_USAGE
    command = args.command
    if command == "login-link":
        return _login_link(paths)
    if command == "token":
        from plexichat_desktop.server.token import load_or_create_token

        print(load_or_create_token(paths.token_file))
        return EXIT_OK
    if command == "plugins":
        return _plugins_command(args, paths, settings)
    if command == "schedule":
        from plexichat_desktop.scheduling.console import schedule_command

        return schedule_command(args, paths, _call_running_app)
    if command == "test":
        return _test_command(args, paths, settings)
    if command == "results":
        from plexichat_desktop.testing.console import show_results

        return show_results(paths, args.plugin, args.limit, args.json, failed=args.failed,
                            failures=args.failures, slow=args.slow, category=args.category,
                            known=lambda: set(_offline_manager(paths, settings, args).by_id))
    if command == "dev":
        return _dev_command(args, paths, settings)
    if command is None:
        return _default_command(args, paths, settings)
    return _serve(args, paths, settings)


def _default_command(args: argparse.Namespace, paths: AppPaths, settings: Settings) -> int:
    from plexichat_desktop.gui.environment import has_display

    if not has_display():
        print("plexichat-desktop: no display found (DISPLAY and WAYLAND_DISPLAY are unset); "
              "running the headless server instead (same as 'plexichat-desktop serve').",
              file=sys.stderr)
        return _serve(args, paths, settings)
    from plexichat_desktop.gui.app import run_gui
    from plexichat_desktop.runtime import RuntimeOptions

    lock, refused = _single_instance(paths, focus_existing=True)
    if lock is None:
        return refused
    try:
        _prepare(paths, settings)
        return run_gui(paths, settings, RuntimeOptions(safe_mode=args.safe_mode),
                       no_webengine=args.no_webengine, on_listening=lock.publish)
    finally:
        lock.release()


def _ask_running_app(paths: AppPaths, path: str, when_not_running: str,
                     timeout: float) -> Any:
    """POST ``path`` to the app running on this home (see :func:`_call_running_app`)."""
    return _call_running_app(paths, "POST", path, when_not_running, timeout)


def _call_running_app(paths: AppPaths, method: str, path: str, when_not_running: str,
                      timeout: float, **request: Any) -> Any:
    """``method`` ``path`` at the app running on this home, with its token (``request``:
    httpx's ``json``, ``params``): the answer, or None after saying why there is none
    (not running, or it did not answer)."""
    import httpx

    from plexichat_desktop.core.instance import InstanceLock
    from plexichat_desktop.server.token import load_or_create_token

    url = InstanceLock(paths.data_dir).holder().get("url")
    if not url:
        print(f"error: PlexiChat Desktop is not running with this home ({paths.data_dir}); "
              f"{when_not_running}", file=sys.stderr)
        return None
    token = load_or_create_token(paths.token_file)
    try:
        return httpx.request(method, f"{url}{path}", timeout=timeout,
                             headers={"Authorization": f"Bearer {token}"}, **request)
    except httpx.HTTPError as exc:
        print(f"error: the app at {url} did not answer: {exc}", file=sys.stderr)
        return None


def _login_link(paths: AppPaths) -> int:
    answer = _ask_running_app(paths, "api/browser-sessions/login-link",
                              "start it with 'plexichat-desktop serve'.", 10)
    if answer is None:
        return EXIT_ERROR
    if answer.status_code != 200:
        print(f"error: the app gave no login link (HTTP {answer.status_code})",
              file=sys.stderr)
        return EXIT_ERROR
    print(answer.json()["url"])
    return EXIT_OK


def _single_instance(paths: AppPaths, focus_existing: bool) -> tuple[Any, int]:
    """(the lock, 0) for the first instance on a home; (None, exit code) for a second one,
    which brings the first one's window to the front when it can."""
    from plexichat_desktop.core.instance import InstanceLock

    lock = InstanceLock(paths.data_dir)
    if lock.acquire():
        return lock, EXIT_OK
    holder = lock.holder()
    url, pid = holder.get("url"), holder.get("pid", "?")
    where = f" at {url}" if url else ""
    if focus_existing and url:
        import httpx

        from plexichat_desktop.server.token import load_or_create_token

        token = load_or_create_token(paths.token_file)
        try:
            # The URL is published once the port is bound, before the app is built: a
            # launch during the first one's start waits there for it (seconds on a busy
            # machine), then its window comes to the front.
            httpx.post(f"{url}api/app/focus", headers={"Authorization": f"Bearer {token}"},
                       timeout=10).raise_for_status()
            print(f"PlexiChat Desktop is already running{where} (pid {pid}); "
                  "its window was brought to the front.")
            return None, EXIT_OK
        except httpx.HTTPError:
            pass
    print(f"error: PlexiChat Desktop is already running{where} (pid {pid}) with this home "
          f"({paths.data_dir}); stop it first, or set PLEXICHAT_DESKTOP_HOME to run another "
          "instance.", file=sys.stderr)
    return None, EXIT_ERROR


def _prepare(paths: AppPaths, settings: Settings) -> None:
    paths.ensure()
    write_template_if_missing(paths)
    setup_logging(paths.log_dir, settings.logging.level, settings.logging.file_max_bytes,
                  settings.logging.file_backups)


def _serve(args: argparse.Namespace, paths: AppPaths, settings: Settings) -> int:
    from plexichat_desktop.runtime import Listener, RuntimeOptions, listen_then_start

    lock, refused = _single_instance(paths, focus_existing=False)
    if lock is None:
        return refused
    _prepare(paths, settings)

    def listening(listener: Listener) -> None:
        # Printed as soon as the port answers: requests wait there for the app.
        lock.publish(listener.url)
        print(f"PlexiChat Desktop is serving at {listener.url}", flush=True)
        # A one-time code, never the token: the link ends up in the browser's history.
        print(f"Open in a browser: {listener.identity.login_link()}", flush=True)
        print("(the link works once, within 5 minutes; 'plexichat-desktop login-link' "
              "prints a fresh one)", flush=True)

    async def run() -> int:
        stop = asyncio.Event()
        from plexichat_desktop.core import startup_gc

        try:
            runtime = await listen_then_start(paths, settings,
                                              RuntimeOptions(safe_mode=args.safe_mode), stop,
                                              listening)
        finally:
            startup_gc.resume()
        if runtime is None:
            return EXIT_ERROR
        await stop.wait()
        log.info("stopping (signal received)")
        await runtime.stop()
        return EXIT_OK

    try:
        return asyncio.run(run())
    finally:
        lock.release()


def _dev_command(args: argparse.Namespace, paths: AppPaths, settings: Settings) -> int:
    from plexichat_desktop.dev import DevSession, cleanup_holder, describe_start, plugin_dir_for
    from plexichat_desktop.gui.environment import has_display
    from plexichat_desktop.runtime import Runtime, RuntimeOptions, start_until_signal

    root = args.path.expanduser().resolve()
    if not (root / "plugin.toml").is_file():
        print(f"error: {root} is not a plugin folder (no plugin.toml); "
              "'plexichat-desktop plugins new ID --dir FOLDER' makes one.", file=sys.stderr)
        return EXIT_USAGE
    lock, refused = _single_instance(paths, focus_existing=False)
    if lock is None:
        return refused
    _prepare(paths, settings)
    folder, holder = plugin_dir_for(root, paths)
    options = RuntimeOptions(safe_mode=args.safe_mode,
                             extra_plugin_dirs=[folder] if folder is not None else [])
    tests = not args.no_tests

    async def attach(runtime: Runtime, window: Any = None) -> Any:
        session = DevSession(runtime, root, tests=tests, out=sys.stdout)
        await session.start()
        rec = await session.settled()
        print(describe_start(rec, root, runtime.url, tests), flush=True)
        if window is not None and rec is not None:
            for page in rec.pages()[:1]:  # the page being worked on, in front
                window.open_page(page["url"], page["title"])
        return session.stop

    try:
        if not args.headless and has_display():
            from plexichat_desktop.gui.app import run_gui

            return run_gui(paths, settings, options, no_webengine=args.no_webengine,
                           on_listening=lock.publish, attach=attach)

        async def run() -> int:
            runtime = Runtime(paths, settings, options)
            stop = asyncio.Event()
            url = await start_until_signal(runtime, stop)
            if url is None:
                return EXIT_ERROR
            lock.publish(url)
            print(f"PlexiChat Desktop is serving at {url}", flush=True)
            print(f"Open in a browser: {runtime.browser_login_link()}", flush=True)
            detach = await attach(runtime)
            await stop.wait()
            await detach()
            await runtime.stop()
            return EXIT_OK

        return asyncio.run(run())
    finally:
        cleanup_holder(holder)
        lock.release()


def _test_command(args: argparse.Namespace, paths: AppPaths, settings: Settings) -> int:
    from plexichat_desktop.testing.console import run_tests

    # The /tests API's bounds; written so that nan (no comparison holds) is refused too.
    if args.timeout is not None and not 0.01 <= args.timeout <= 86_400:
        print("error: --timeout must be a number of seconds from 0.01 to 86400",
              file=sys.stderr)
        return EXIT_USAGE
    if args.retries is not None and not 0 <= args.retries <= 10:
        print("error: --retries must be between 0 and 10", file=sys.stderr)
        return EXIT_USAGE
    paths.ensure()
    setup_logging(paths.log_dir, "WARNING" if settings.logging.level == "INFO"
                  else settings.logging.level, settings.logging.file_max_bytes,
                  settings.logging.file_backups)
    if args.watch:
        from plexichat_desktop.testing.watch import watch_tests

        plugin_id = (args.target or "").partition("::")[0]
        if not plugin_id or "::" in (args.target or ""):
            print("error: --watch takes a plugin id (plexichat-desktop test ID --watch)",
                  file=sys.stderr)
            return EXIT_USAGE
        try:
            return asyncio.run(watch_tests(paths, settings, plugin_id, extra_plugin_dirs(),
                                           bundled_plugins_dir(), sys.stdout))
        except KeyboardInterrupt:
            return EXIT_OK
    return asyncio.run(run_tests(paths, settings, args.target, args.timeout, args.retries,
                                 args.priority, args.json, extra_plugin_dirs(),
                                 bundled_plugins_dir()))


def _plugins_command(args: argparse.Namespace, paths: AppPaths, settings: Settings) -> int:
    from plexichat_desktop.plugins.checks import check_plugin_folder
    from plexichat_desktop.plugins.scaffold import scaffold_plugin

    action = args.plugins_command
    if action == "schema":
        from plexichat_desktop.plugins.manifest import manifest_schema

        print(json.dumps(manifest_schema(), indent=2))
        return EXIT_OK
    if action == "new":
        parent = args.dir if args.dir is not None else paths.user_plugins_dir
        try:
            root = scaffold_plugin(args.id, parent.expanduser().resolve(), args.name)
        except (ValueError, FileExistsError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_USAGE
        print(f"Created plugin '{args.id}' in {root}")
        if args.dir is not None:
            print(f"It is found when {parent} is on PLEXICHAT_DESKTOP_PLUGINS_PATH.")
        return EXIT_OK
    if action == "validate":
        result = check_plugin_folder(args.path.expanduser().resolve())
        for warning in result.warnings:
            print(f"warning: {warning}")
        for error in result.errors:
            print(f"error: {error}")
        if result.ok and result.manifest:
            print(f"OK: {result.manifest.id} {result.manifest.version} ({result.path})")
        return EXIT_OK if result.ok else EXIT_ERROR
    if action == "reload":
        return _reload_plugin(paths, args.id)
    manager = _offline_manager(paths, settings, args)
    if action == "list":
        return _list_plugins(manager, args.json)
    try:
        manager.get(args.id)
    except KeyError as exc:
        print(f"error: {exc.args[0]}", file=sys.stderr)
        return EXIT_ERROR
    manager.remember_enabled(args.id, action == "enable")
    print(f"Plugin '{args.id}' {action}d; it takes effect at the next start.")
    return EXIT_OK


def _reload_plugin(paths: AppPaths, plugin_id: str) -> int:
    answer = _ask_running_app(paths, f"api/plugins/{plugin_id}/reload",
                              "a plugin is read from disk anyway when the app starts.", 60)
    if answer is None:
        return EXIT_ERROR
    body = answer.json() if answer.headers.get("content-type", "").startswith(
        "application/json") else {}
    if answer.status_code == 404:
        print(f"error: {body.get('detail', f'no plugin {plugin_id!r}')}", file=sys.stderr)
        return EXIT_ERROR
    state, reason = body.get("state", "?"), body.get("reason")
    print(f"Plugin '{plugin_id}' reloaded: {state}" + (f" ({reason})" if reason else ""))
    return EXIT_OK if answer.status_code == 200 else EXIT_ERROR


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, got {value}")
    return value


def _offline_manager(paths: AppPaths, settings: Settings, args: argparse.Namespace) -> Any:
    from plexichat_desktop.core.events import EventBus
    from plexichat_desktop.plugins.manager import PluginManager

    manager = PluginManager(paths=paths, settings=settings, bus=EventBus(),
                            bundled_dir=bundled_plugins_dir(), extra_dirs=extra_plugin_dirs(),
                            safe_mode=getattr(args, "safe_mode", False))
    # Discovery logs every broken plugin; these commands print the states and reasons
    # themselves, so the same text would show twice.
    quiet = logging.getLogger("plexichat_desktop.plugins")
    level = quiet.level
    quiet.setLevel(logging.CRITICAL)
    try:
        manager.discover()
    finally:
        quiet.setLevel(level)
    return manager


def _list_plugins(manager: Any, as_json: bool) -> int:
    failures = manager.dependency_problems()
    rows = []
    for rec in manager.records:
        row = rec.to_dict()
        if rec.id in failures and manager.by_id.get(rec.id) is rec:
            row["state"], row["reason"] = "failed", failures[rec.id]
        rows.append(row)
    if as_json:
        print(json.dumps({"plugins": rows}, indent=2))
        return EXIT_OK
    if not rows:
        print("No plugins found.")
        return EXIT_OK
    width = max(len(r["id"]) for r in rows)
    for r in rows:
        version = r["version"] or "-"
        line = f"{r['id']:<{width}}  {r['state']:<12} {version:<10} {r['source']:<9} {r['path']}"
        print(line)
        indent = " " * (width + 2)
        if r["reason"] and r["state"] != "validated":
            print(f"{indent}-> " + r["reason"].replace("\n", "\n" + indent + "   "))
        for warning in r["warnings"]:
            print(f"{indent}warning: {warning}")
    return EXIT_OK

