"""The one vault a running plugin has open, and its idle lock.

The idle lock is checked in two places: by a timer (armed for the exact moment the vault
falls idle, re-armed on activity) and at the start of every request, so a request that
arrives after the deadline finds the vault locked even if the timer has not fired yet
(a machine that slept). The clock is injectable, so tests move time instead of waiting.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from security_toolkit.errors import Problem
from security_toolkit.vault import KdfParams, Vault, create_vault, open_vault, read_header


class Session:
    """Holds the unlocked :class:`Vault` (or none) for one vault file."""

    def __init__(self, path: Path, params: KdfParams, idle_seconds: float,
                 logger: logging.Logger, clock: Callable[[], float] = time.monotonic):
        self.path = path
        self.params = params
        self.idle_seconds = idle_seconds
        self.clock = clock
        self.log = logger
        self._vault: Vault | None = None
        self._last_used = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self.lock_reason = "not unlocked yet"

    # -- state ---------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        self.check_idle()
        info: dict[str, Any] = {"exists": self.path.exists(), "unlocked": self._vault is not None,
                                "path": str(self.path), "idle_lock_seconds": self.idle_seconds,
                                "lock_reason": None if self._vault else self.lock_reason}
        if self._vault is not None:
            info["locks_in"] = round(max(0.0, self.idle_seconds
                                         - (self.clock() - self._last_used)), 1)
            info["kdf"] = self._vault.params.to_dict()
            info["entries"] = len(self._vault.payload["entries"])
        elif info["exists"]:
            try:
                info["kdf"] = read_header(self.path)["kdf"]
            except Problem as exc:
                info["damaged"] = exc.message
        return info

    def vault(self, touch: bool = True) -> Vault:
        """The unlocked vault; :class:`Problem` 423 when locked. ``touch=False`` for
        reads that are no sign of a user at work (the TOTP page refreshing its codes
        every period must not keep the vault open forever)."""
        self.check_idle()
        if self._vault is None:
            raise Problem("vault", f"the vault is locked ({self.lock_reason})", 423)
        if touch:
            self.touch()
        return self._vault

    def activity(self) -> None:
        """The user is at work in the toolkit without reading the vault (generator,
        hashes): keep an unlocked vault open, but never revive one past its deadline."""
        if not self.check_idle() and self._vault is not None:
            self.touch()

    def touch(self) -> None:
        self._last_used = self.clock()
        self._arm()

    def check_idle(self) -> bool:
        """Lock when idle past the limit; True when it locked now."""
        if self._vault is not None and self.clock() - self._last_used >= self.idle_seconds:
            self.lock("idle for too long")
            return True
        return False

    def _arm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # called outside the loop (unit tests): requests still check
        delay = max(0.0, self.idle_seconds - (self.clock() - self._last_used))
        self._timer = loop.call_later(delay + 0.05, self._fire)

    def _fire(self) -> None:
        self._timer = None
        if self._vault is not None and not self.check_idle():
            self._arm()  # activity moved the deadline: wait for the new one

    # -- transitions ---------------------------------------------------------------
    def lock(self, reason: str = "locked by the user") -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._vault is not None:
            self._vault.lock()
            self._vault = None
            self.log.info("vault locked: %s", reason)
        self.lock_reason = reason

    async def unlock(self, password: str) -> dict[str, Any]:
        """Open the vault (Argon2 runs in a thread); saves at once when the KDF costs
        are upgraded, so the stronger header is on disk from now on."""
        vault = await asyncio.to_thread(open_vault, self.path, password, self.params)
        upgraded = vault.upgrade_pending
        if upgraded:
            vault.save()
            self.log.info("vault KDF parameters upgraded to %s", vault.params.to_dict())
        self.lock("replaced")
        self._vault = vault
        self.lock_reason = ""
        self.touch()
        self.log.info("vault unlocked")
        return {"upgraded": upgraded, "kdf": vault.params.to_dict()}

    async def create(self, password: str) -> None:
        vault = await asyncio.to_thread(create_vault, self.path, password, self.params)
        self.lock("replaced")
        self._vault = vault
        self.touch()
        self.log.info("vault created")

    def save(self) -> None:
        """Write the vault now. Synchronous on purpose: AES-GCM and one small file are
        fast, and staying on the loop means no request mutates the payload mid-save."""
        self.vault().save()

    async def change_password(self, current: str, new: str) -> None:
        """Check ``current`` against the file, then re-key with ``new``."""
        vault = self.vault()
        probe = await asyncio.to_thread(open_vault, self.path, current, KdfParams(1, 8, 1))
        probe.lock()
        material = await asyncio.to_thread(vault.rekey_material, new, self.params)
        vault.rekey(material)
        self.log.info("vault master password changed")
