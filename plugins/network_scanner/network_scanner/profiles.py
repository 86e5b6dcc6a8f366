"""Scan profiles: named targets, ports and options, optionally rescanned on a schedule.

Profiles live in ``profiles.json`` in the plugin's data dir. The host cannot remove a
schedule once added, so each profile's schedule is named after the profile *and its
version*: editing or deleting a profile bumps the version and the old schedule's runs
return at once without scanning (the API tester's monitors do the same).
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from network_scanner.engine import ScanOptions
from plexichat_desktop.plugins.files import write_atomic


class ProfileSpec(BaseModel):
    """What the page sends to create or change a profile."""

    name: str = Field(min_length=1, max_length=100)
    options: ScanOptions = Field(default_factory=ScanOptions)
    schedule: str = Field("", max_length=200)  # "" = only when run by hand
    notify: bool = True


class ProfileProblem(ValueError):
    def __init__(self, field: str, message: str, status: int = 422):
        self.field = field
        self.status = status
        super().__init__(message if message.startswith(field) else f"{field}: {message}")


Schedule = Callable[[str, Callable[[], Awaitable[Any]], str], Any]
RunProfile = Callable[[str], Awaitable[Any]]


class Profiles:
    def __init__(self, file: Path, schedule: Schedule, run: RunProfile):
        self.file = file
        self._schedule = schedule
        self._run = run
        self.items: dict[str, dict[str, Any]] = {}
        if file.is_file():
            try:
                self.items = json.loads(file.read_text("utf-8")).get("profiles", {})
            except ValueError as exc:
                raise ProfileProblem("profiles", f"{file} is not valid JSON ({exc}); fix or "
                                                 "delete it", status=500) from None

    def start(self) -> list[str]:
        """Arm every scheduled profile; the problems (a hand-edited schedule) as text."""
        problems = []
        for profile_id, item in self.items.items():
            if item["spec"]["schedule"]:
                try:
                    self._arm(profile_id, item)
                except ValueError as exc:
                    problems.append(f"profile {item['spec']['name']!r}: {exc}")
        return problems

    def _save(self) -> None:
        write_atomic(self.file, json.dumps({"profiles": self.items}, indent=1) + "\n")

    def _arm(self, profile_id: str, item: dict[str, Any]) -> None:
        version = item["version"]

        async def fire() -> None:
            current = self.items.get(profile_id)
            if current is None or current["version"] != version:
                return  # edited or deleted since this schedule was armed
            await self._run(profile_id)

        self._schedule(item["spec"]["schedule"], fire, f"profile {profile_id} v{version}")

    def _arm_checked(self, profile_id: str, item: dict[str, Any]) -> None:
        try:
            self._arm(profile_id, item)
        except ValueError as exc:
            # The host's message names the plugin and schedule; the accepted forms follow.
            text = str(exc).split(": ", 2)[-1]
            raise ProfileProblem("schedule", text) from None

    def list(self) -> list[dict[str, Any]]:
        return [self.view(pid) for pid in self.items]

    def view(self, profile_id: str) -> dict[str, Any]:
        item = self.get(profile_id)
        return {"id": profile_id, **item["spec"], "version": item["version"],
                "created": item["created"], "last_scan": item.get("last_scan"),
                "last_change": item.get("last_change"),
                "schedule_name": f"profile {profile_id} v{item['version']}"
                if item["spec"]["schedule"] else None}

    def get(self, profile_id: str) -> dict[str, Any]:
        item = self.items.get(profile_id)
        if item is None:
            raise ProfileProblem("profile_id", f"no profile {profile_id!r}", status=404)
        return item

    def spec(self, profile_id: str) -> ProfileSpec:
        return ProfileSpec.model_validate(self.get(profile_id)["spec"])

    def create(self, spec: ProfileSpec) -> dict[str, Any]:
        if any(i["spec"]["name"] == spec.name for i in self.items.values()):
            raise ProfileProblem("name", f"a profile named {spec.name!r} exists", status=409)
        profile_id = secrets.token_hex(4)
        item = {"spec": spec.model_dump(), "version": 1, "created": time.time()}
        if spec.schedule:
            self._arm_checked(profile_id, item)  # a bad expression: nothing is saved
        self.items[profile_id] = item
        self._save()
        return self.view(profile_id)

    def update(self, profile_id: str, spec: ProfileSpec) -> dict[str, Any]:
        item = self.get(profile_id)
        if any(i["spec"]["name"] == spec.name for pid, i in self.items.items()
               if pid != profile_id):
            raise ProfileProblem("name", f"a profile named {spec.name!r} exists", status=409)
        new = {**item, "spec": spec.model_dump(), "version": item["version"] + 1}
        if spec.schedule:
            self._arm_checked(profile_id, new)
        self.items[profile_id] = new
        self._save()
        return self.view(profile_id)

    def delete(self, profile_id: str) -> None:
        self.get(profile_id)
        del self.items[profile_id]
        self._save()

    def record(self, profile_id: str, scan_id: str, changed: bool) -> None:
        item = self.items.get(profile_id)
        if item is None:
            return
        item["last_scan"] = scan_id
        if changed:
            item["last_change"] = scan_id
        self._save()
