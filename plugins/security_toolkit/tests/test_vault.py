"""The vault file: round trip, wrong password, flipped bits, tampering, KDF upgrade on
save, atomic 0600 writes with a backup, and the idle lock (a fake clock, no waiting)."""

from __future__ import annotations

import hashlib
import json
import logging
import stat
from pathlib import Path

import pytest
from security_toolkit.errors import Problem
from security_toolkit.session import Session
from security_toolkit.vault import (
    PREFIX,
    KdfParams,
    backup_path,
    create_vault,
    open_vault,
    read_header,
)

LOW = KdfParams(1, 64, 1)
PASSWORD = "correct horse battery"


def make(tmp_path: Path) -> Path:
    path = tmp_path / "v.stkv"
    vault = create_vault(path, PASSWORD, LOW)
    vault.payload["entries"].append({"id": "a", "title": "Mail", "password": "s3cret!"})
    vault.save()
    vault.lock()
    return path


def test_round_trip_and_file_mode(tmp_path: Path) -> None:
    path = make(tmp_path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(backup_path(path).stat().st_mode) == 0o600
    assert b"s3cret" not in path.read_bytes() and b"Mail" not in path.read_bytes()
    vault = open_vault(path, PASSWORD, LOW)
    assert vault.payload["entries"][0]["password"] == "s3cret!"
    assert not vault.upgrade_pending
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_wrong_password_is_a_clean_error(tmp_path: Path) -> None:
    path = make(tmp_path)
    with pytest.raises(Problem) as info:
        open_vault(path, "correct horse battery!", LOW)
    assert info.value.field == "password" and info.value.status == 422
    assert "wrong master password" in str(info.value)


@pytest.mark.parametrize("where", ["magic", "header", "check", "nonce", "ciphertext", "tag",
                                   "checksum"])
def test_a_flipped_bit_anywhere_is_detected_as_damage(tmp_path: Path, where: str) -> None:
    path = make(tmp_path)
    blob = bytearray(path.read_bytes())
    header_len = PREFIX.unpack_from(blob)[2]
    start = PREFIX.size + header_len
    offset = {"magic": 2, "header": PREFIX.size + 5, "check": start + 3,
              "nonce": start + 32 + 4, "ciphertext": start + 44 + 3, "tag": len(blob) - 40,
              "checksum": len(blob) - 1}[where]
    blob[offset] ^= 0x01
    path.write_bytes(bytes(blob))
    with pytest.raises(Problem) as info:
        open_vault(path, PASSWORD, LOW)
    assert info.value.field == "vault", info.value
    message = str(info.value)
    assert "not a Security Toolkit vault" in message if where == "magic" else "damaged" in message
    if where != "magic":
        assert "v.stkv.bak" in message  # says where the previous version is


def test_tampering_with_a_recomputed_checksum_is_caught(tmp_path: Path) -> None:
    path = make(tmp_path)
    blob = bytearray(path.read_bytes()[:-32])
    blob[-20] ^= 0x80  # inside the ciphertext
    path.write_bytes(bytes(blob) + hashlib.sha256(blob).digest())
    with pytest.raises(Problem) as info:
        open_vault(path, PASSWORD, LOW)
    assert info.value.field == "vault" and "altered" in str(info.value)

    # Lowering the KDF costs in the header (to speed up guessing) breaks the key check.
    (tmp_path / "x").mkdir()
    path = make(tmp_path / "x")
    blob = bytearray(path.read_bytes()[:-32])
    header_len = PREFIX.unpack_from(blob)[2]
    header = json.loads(blob[PREFIX.size:PREFIX.size + header_len])
    header["kdf"]["memory_kib"] = 72
    raw = json.dumps(header, separators=(",", ":")).encode()
    rebuilt = PREFIX.pack(b"STKVAULT", 1, len(raw)) + raw + blob[PREFIX.size + header_len:]
    path.write_bytes(rebuilt + hashlib.sha256(rebuilt).digest())
    with pytest.raises(Problem) as info:
        open_vault(path, PASSWORD, LOW)
    assert info.value.field == "password"


def test_hostile_kdf_costs_are_refused_before_running_argon2(tmp_path: Path) -> None:
    path = make(tmp_path)
    blob = bytearray(path.read_bytes()[:-32])
    header_len = PREFIX.unpack_from(blob)[2]
    header = json.loads(blob[PREFIX.size:PREFIX.size + header_len])
    header["kdf"]["memory_kib"] = 1 << 40
    raw = json.dumps(header).encode()
    rebuilt = PREFIX.pack(b"STKVAULT", 1, len(raw)) + raw + blob[PREFIX.size + header_len:]
    path.write_bytes(rebuilt + hashlib.sha256(rebuilt).digest())
    with pytest.raises(Problem, match="KDF parameters out of range"):
        open_vault(path, PASSWORD, LOW)


def test_kdf_parameters_are_upgraded_on_save(tmp_path: Path) -> None:
    path = make(tmp_path)
    stronger = KdfParams(2, 128, 2)
    vault = open_vault(path, PASSWORD, stronger)
    assert vault.upgrade_pending
    assert read_header(path)["kdf"] == LOW.to_dict()  # nothing written yet
    vault.save()
    assert read_header(path)["kdf"] == stronger.to_dict()
    vault.lock()
    again = open_vault(path, PASSWORD, stronger)
    assert not again.upgrade_pending and again.payload["entries"][0]["title"] == "Mail"
    # Asking for less never downgrades.
    assert not open_vault(path, PASSWORD, LOW).upgrade_pending


def test_change_password_and_truncated_file(tmp_path: Path) -> None:
    path = make(tmp_path)
    vault = open_vault(path, PASSWORD, LOW)
    with pytest.raises(Problem, match="at least 8"):
        vault.change_password("short", LOW)
    vault.change_password("a new master password", LOW)
    with pytest.raises(Problem):
        open_vault(path, PASSWORD, LOW)
    assert open_vault(path, "a new master password", LOW).payload["entries"]
    # Nor does the backup beside it open with the old password (audit: it was the file
    # from before the change, every entry readable with the password meant to be gone).
    backup = path.with_name(path.name + ".bak")
    assert backup.exists()
    with pytest.raises(Problem):
        open_vault(backup, PASSWORD, LOW)
    assert open_vault(backup, "a new master password", LOW).payload["entries"]
    path.write_bytes(path.read_bytes()[:40])
    with pytest.raises(Problem, match="damaged"):
        open_vault(path, "a new master password", LOW)
    with pytest.raises(Problem) as info:
        open_vault(tmp_path / "missing.stkv", PASSWORD, LOW)
    assert info.value.status == 404
    with pytest.raises(Problem) as info:
        create_vault(path, PASSWORD, LOW)
    assert info.value.status == 409


def test_a_failed_write_leaves_the_old_vault(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    path = make(tmp_path)
    before = path.read_bytes()
    vault = open_vault(path, PASSWORD, LOW)
    vault.payload["entries"].append({"id": "b", "title": "Bank", "password": "x"})

    def broken(*args: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr("os.replace", broken)  # as a full disk would
    with pytest.raises(OSError):
        vault.save()
    assert path.read_bytes() == before
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.asyncio
async def test_idle_lock_with_a_moved_clock(tmp_path: Path) -> None:
    clock = Clock()
    session = Session(tmp_path / "v.stkv", LOW, 60, logging.getLogger("t"), clock)
    await session.create(PASSWORD)
    assert session.status()["unlocked"]
    clock.now += 59
    session.vault()  # activity moves the deadline
    clock.now += 59
    assert session.status()["unlocked"] and session.status()["locks_in"] == 1.0
    clock.now += 1
    with pytest.raises(Problem) as info:
        session.vault()
    assert info.value.status == 423 and "idle" in str(info.value)
    assert session.status()["lock_reason"] == "idle for too long"
    await session.unlock(PASSWORD)
    clock.now += 50
    session.activity()  # the generator in use keeps the vault open...
    clock.now += 50
    assert session.status()["unlocked"]
    clock.now += 11
    session.activity()  # ...but never reopens it past its deadline
    assert not session.status()["unlocked"]
    await session.unlock(PASSWORD)
    # The timer path: firing after the deadline locks without any request.
    clock.now += 61
    session._fire()
    assert not session.status()["unlocked"]


def test_undoing_a_change_gives_the_old_password_its_age_back() -> None:
    """An old password fixed and then undone dropped out of the health report's "old"
    list: the undo dated it to the fix."""
    from security_toolkit import entries
    from security_toolkit.models import EntryIn

    entry = entries.new_entry(EntryIn(title="Old site", password="Tr0ub4dor&3"),
                              stamp="2021-01-05T10:00:00", changed="2021-01-05T10:00:00")
    entries.set_password(entry, "a brand new one", "2026-12-07T12:00:00")
    assert entry["password_changed"] == "2026-12-07T12:00:00"
    entries.restore_previous(entry)
    assert entry["password"] == "Tr0ub4dor&3"
    assert entry["password_changed"] == "2021-01-05T10:00:00"
    # The password the undo replaced is kept (audit: a generated one the user may have
    # set on the site already was thrown away), with its own age: undo again brings it.
    assert [h["password"] for h in entry["history"]] == ["a brand new one"]
    assert entry["history"][0]["since"] == "2026-12-07T12:00:00"
    entries.restore_previous(entry)
    assert entry["password"] == "a brand new one"
    assert entry["password_changed"] == "2026-12-07T12:00:00"
    # History written before the age was kept: the change's time, as before.
    entry["history"] = [{"password": "older", "until": "2025-03-01T00:00:00"}]
    entries.restore_previous(entry)
    assert entry["password_changed"] == "2025-03-01T00:00:00"
