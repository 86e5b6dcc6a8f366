"""``plexichat-desktop schedule``: the running app's test schedules from a terminal.

Schedules fire in the app (the window or ``serve``), so the command asks it through the
/tests API with the home's token, as ``plugins reload`` does; what the API refuses is
printed with its reason (the field first) and exit code 1.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from datetime import datetime
from typing import Any

from plexichat_desktop.core.paths import AppPaths

EXIT_OK, EXIT_ERROR = 0, 1
NOT_RUNNING = "schedules fire in the running app: start it with 'plexichat-desktop serve'."
Caller = Callable[..., Any]


def schedule_command(args: argparse.Namespace, paths: AppPaths, call: Caller) -> int:
    """Run ``schedule ACTION``; ``call`` is the CLI's (paths, method, path, when not
    running, timeout, **request) -> answer or None."""
    action = args.schedule_command
    request: dict[str, Any] = {}
    if action == "list":
        method, path = "GET", "schedules"
        request["params"] = {"plugin_name": args.plugin} if args.plugin else None
    elif action == "add":
        method, path = "POST", "schedule"
        fields = {"plugin_name": args.plugin, "schedule_expression": args.expression,
                  "test_name": args.test, "timezone": args.timezone,
                  "priority": args.priority, "timeout": args.timeout,
                  "retries": args.retries, "enabled": not args.disabled}
        request["json"] = {k: v for k, v in fields.items() if v is not None}
    elif action == "preview":
        method, path = "GET", "schedule/preview"
        request["params"] = {"expression": args.expression, "count": min(args.count, 20),
                             **({"timezone": args.timezone} if args.timezone else {})}
    elif action in ("enable", "disable"):
        method, path = "PATCH", f"schedule/{args.id}"
        request["json"] = {"enabled": action == "enable"}
    else:
        method, path = "DELETE", f"schedule/{args.id}"
    body = _body(call(paths, method, f"tests/{path}", NOT_RUNNING, 30, **request))
    if body is None:
        return EXIT_ERROR
    if action == "list" and args.json:
        json.dump(body["schedules"], sys.stdout, indent=2)
        sys.stdout.write("\n")
    elif action == "list":
        _print_list(body["schedules"])
    elif action == "preview":
        for instant in body["next"]:
            print(_when(datetime.fromisoformat(instant).timestamp()))
    elif action == "rm":
        print(f"Schedule {args.id} deleted")
    else:
        record = body["schedule"]
        upcoming = (f"next run {_when(record['next_run_at'])}" if record["enabled"]
                    else "switched off")
        print(f"Scheduled {record['id']}: {_what(record)} {record['expression']}, {upcoming}"
              if action == "add" else f"Schedule {record['id']} switched "
              + ("on: " + upcoming if record["enabled"] else "off"))
    return EXIT_OK


def _body(answer: Any) -> dict[str, Any] | None:
    """The answer's JSON when it succeeded; else None after printing why."""
    if answer is None:
        return None
    try:
        body = answer.json()
    except ValueError:
        body = {}
    if answer.status_code >= 400:
        detail = body.get("detail") if isinstance(body, dict) else None
        if isinstance(detail, list):  # FastAPI's 422: each problem with its field
            detail = "; ".join(f"{'.'.join(str(p) for p in item.get('loc', [])[1:])}: "
                               f"{item.get('msg', '')}" for item in detail)
        print(f"error: {detail or f'HTTP {answer.status_code}'}", file=sys.stderr)
        return None
    return body if isinstance(body, dict) else {}


def _what(record: dict[str, Any]) -> str:
    return record["plugin_id"] + (f"::{record['test_id']}" if record.get("test_id") else "")


def _when(instant: float | None) -> str:
    if instant is None:
        return "-"
    return datetime.fromtimestamp(instant).astimezone().strftime("%Y-%m-%d %H:%M:%S %Z")


def _print_list(records: list[dict[str, Any]]) -> None:
    if not records:
        print("No schedules. Add one with: plexichat-desktop schedule add PLUGIN daily")
        return
    rows = [("ID", "TESTS", "WHEN", "NEXT RUN", "LAST", "PRIORITY")]
    for record in records:
        when = record["expression"] + (f" ({record['timezone']})" if record.get("timezone")
                                       else "")
        rows.append((record["id"], _what(record), when,
                     _when(record["next_run_at"]) if record["enabled"] else "switched off",
                     record.get("last_status") or "not run yet", record["priority"]))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
              .rstrip())
