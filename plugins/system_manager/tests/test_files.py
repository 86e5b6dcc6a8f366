"""The file-level parts on real files: encryption, archive checks, off-site copies,
maintenance windows and maintenance tasks."""

from __future__ import annotations

import json
import os
import sqlite3
import time
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from system_manager import crypto, maintenance, offsite
from system_manager.archive import ArchiveProblem, check_archive, sha256_of
from system_manager.windows import Window, active_window

# -- encryption ---------------------------------------------------------------------------


@pytest.mark.parametrize("size", [0, 1, 4096, 4096 * 3, 4096 * 3 + 17])
def test_encryption_round_trips_any_size(tmp_path: Path, size: int) -> None:
    source = tmp_path / "plain"
    source.write_bytes(os.urandom(size))
    crypto.encrypt_file(source, tmp_path / "enc", "correct horse", log_n=10, chunk=4096)
    assert crypto.read_header(tmp_path / "enc")["chunk"] == 4096
    crypto.decrypt_file(tmp_path / "enc", tmp_path / "out", "correct horse")
    assert (tmp_path / "out").read_bytes() == source.read_bytes()


def _encrypted(tmp_path: Path) -> bytes:
    source = tmp_path / "plain"
    source.write_bytes(os.urandom(10000))
    crypto.encrypt_file(source, tmp_path / "enc", "correct horse", log_n=10, chunk=4096)
    return (tmp_path / "enc").read_bytes()


@pytest.mark.parametrize("damage, message", [
    (lambda b: b, "wrong password"),
    (lambda b: b[:-5], "cut short"),                                   # truncated
    (lambda b: b[:60] + bytes([b[60] ^ 1]) + b[61:], "wrong password or damaged"),
    (lambda b: b[:-4200 - 16] + b[-16:], "cut short"),                 # a chunk dropped
    (lambda b: b + b"tail", "cut short"),                              # appended bytes
])
def test_decryption_refuses_wrong_passwords_and_damage_and_leaves_nothing(
        tmp_path: Path, damage, message: str) -> None:
    blob = damage(_encrypted(tmp_path))
    (tmp_path / "bad").write_bytes(blob)
    password = "wrong horse" if message == "wrong password" else "correct horse"
    with pytest.raises(crypto.DecryptionError, match=message):
        crypto.decrypt_file(tmp_path / "bad", tmp_path / "out", password)
    assert not (tmp_path / "out").exists()
    assert not list(tmp_path.glob("*.partial"))


@pytest.mark.parametrize(("log_n", "r", "p"), [(22, 8, 1), (20, 32, 1), (15, 8, 16)])
def test_a_header_asking_for_gigabytes_of_scrypt_is_refused_before_deriving(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, log_n: int, r: int, p: int) -> None:
    # Review finding: a copy's header (an off-site folder is a USB stick or a share) could
    # ask for N = 2**22, r = 32: scrypt would take 128 r N = 16 GiB.
    source = tmp_path / "plain"
    source.write_bytes(b"x" * 100)
    crypto.encrypt_file(source, tmp_path / "enc", "correct horse", log_n=10, chunk=4096)
    raw = bytearray((tmp_path / "enc").read_bytes())
    raw[8:11] = bytes([log_n, r, p])
    (tmp_path / "enc").write_bytes(bytes(raw))

    def derive(*args: object) -> bytes:
        raise AssertionError(f"scrypt was run with {args[2:]}")

    monkeypatch.setattr(crypto, "_key", derive)
    with pytest.raises(crypto.DecryptionError, match="implausible header"):
        crypto.decrypt_file(tmp_path / "enc", tmp_path / "out", "correct horse")
    assert not (tmp_path / "out").exists()


def test_a_plain_file_is_not_taken_for_an_encrypted_one(tmp_path: Path) -> None:
    (tmp_path / "x.zip").write_bytes(b"PK\x03\x04 not encrypted")
    with pytest.raises(crypto.DecryptionError, match="not an encrypted"):
        crypto.decrypt_file(tmp_path / "x.zip", tmp_path / "out", "pw")


# -- archives -----------------------------------------------------------------------------

def make_archive(path: Path, users: int = 2, files: int = 1, counts: dict | None = None
                 ) -> Path:
    """A v1-shaped archive: a real SQLite database, files and a manifest."""
    db = path.parent / "db.sqlite3"
    db.unlink(missing_ok=True)
    conn = sqlite3.connect(db)
    for table in ("users", "messages", "files", "groups", "notifications", "webhooks"):
        conn.execute(f"CREATE TABLE {table} (id TEXT)")
    conn.executemany("INSERT INTO users VALUES (?)", [(str(i),) for i in range(users)])
    conn.executemany("INSERT INTO files VALUES (?)", [(str(i),) for i in range(files)])
    conn.commit()
    conn.close()
    real = {"users": users, "messages": 0, "files": files, "groups": 0, "notifications": 0,
            "webhooks": 0}
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.write(db, "plexichat.sqlite3")
        for i in range(files):
            zf.writestr(f"files/ab/abcdef00-0000-4000-8000-{i:012d}", os.urandom(3000))
        zf.writestr("manifest.json", json.dumps({"format": 1, "counts": counts or real,
                                                 "file_count": files}))
    return path


def test_a_sound_archive_passes_the_test(tmp_path: Path) -> None:
    report = check_archive(make_archive(tmp_path / "a.zip", users=3, files=2))
    assert report["counts"]["users"] == 3 and report["file_members"] == 2
    assert report["integrity"] == "ok"


def test_a_flipped_byte_inside_a_member_is_found(tmp_path: Path) -> None:
    archive = make_archive(tmp_path / "a.zip", files=1)
    with zipfile.ZipFile(archive) as zf:
        info = zf.getinfo("files/ab/abcdef00-0000-4000-8000-000000000000")
    raw = bytearray(archive.read_bytes())
    # The member's data starts after its local header (30 bytes + name + extra).
    offset = info.header_offset + 30 + len(info.filename) + 100
    raw[offset] ^= 0xFF
    archive.write_bytes(bytes(raw))
    with pytest.raises(ArchiveProblem, match="files/ab/abcdef00"):
        check_archive(archive)


def test_counts_that_differ_from_the_manifest_fail(tmp_path: Path) -> None:
    archive = make_archive(tmp_path / "a.zip", users=2, counts={
        "users": 5, "messages": 0, "files": 1, "groups": 0, "notifications": 0,
        "webhooks": 0})
    with pytest.raises(ArchiveProblem, match="users: manifest 5, database 2"):
        check_archive(archive)


def test_not_a_zip_and_stray_members_are_refused(tmp_path: Path) -> None:
    (tmp_path / "x.zip").write_bytes(b"nonsense")
    with pytest.raises(ArchiveProblem, match="not a readable zip"):
        check_archive(tmp_path / "x.zip")
    archive = make_archive(tmp_path / "a.zip")
    with zipfile.ZipFile(archive, "a") as zf:
        zf.writestr("../evil", b"x")
    with pytest.raises(ArchiveProblem, match=r"unexpected members: \.\./evil"):
        check_archive(archive)


# -- off-site copies ----------------------------------------------------------------------

def _record(archive: Path, when: str) -> dict:
    return {"id": f"{when[-2:]}aa0000-0000-4000-8000-000000000000", "name": "n",
            "created_at": f"2026-12-{when}T03:00:00+00:00", "checksum": sha256_of(archive),
            "size": archive.stat().st_size, "counts": {"users": 2}}


def test_copies_are_verified_listed_pruned_to_keep_n_and_restored(tmp_path: Path) -> None:
    archive = make_archive(tmp_path / "a.zip")
    target = tmp_path / "usb"
    target.mkdir()
    (target / "holiday.jpg").write_bytes(b"not ours")  # never touched by keep-N
    for day in ("01", "02", "03"):
        copied = offsite.copy_archive(archive, _record(archive, day), target, "usb")
        assert copied["verified"] and copied["sha256"] == sha256_of(archive)
        offsite.prune(target, 2, protect=copied["file"])
    copies = offsite.list_copies(target)
    assert [c["backup"]["created_at"][:10] for c in copies] == ["2026-12-03", "2026-12-02"]
    assert (target / "holiday.jpg").exists()
    sidecar = (target / (copies[0]["file"] + ".sha256")).read_text()
    assert sidecar == f"{sha256_of(archive)}  {copies[0]['file']}\n"   # sha256sum -c format
    assert offsite.verify_copy(target, copies[0])["ok"]
    out = offsite.restore_copy(target, copies[0], tmp_path / "back.zip", [])
    assert out.read_bytes() == archive.read_bytes()


def test_an_encrypted_copy_needs_its_password_and_detects_damage(tmp_path: Path) -> None:
    archive = make_archive(tmp_path / "a.zip")
    target = tmp_path / "usb"
    target.mkdir()
    copied = offsite.copy_archive(archive, _record(archive, "05"), target, "usb",
                                  password="s3cret-pass", log_n=10)
    assert copied["encrypted"] and copied["file"].endswith(".zip.pxenc")
    data = (target / copied["file"]).read_bytes()
    assert b"plexichat.sqlite3" not in data  # nothing readable in the clear
    meta = offsite.list_copies(target)[0]
    with pytest.raises(offsite.OffsiteError, match="password is not set"):
        offsite.restore_copy(target, meta, tmp_path / "x.zip", [])
    with pytest.raises(crypto.WrongPassword, match="none of the 1 password"):
        offsite.restore_copy(target, meta, tmp_path / "x.zip", ["not-the-password"])
    # The target's passwords are tried in turn (its current one first, then earlier ones).
    out = offsite.restore_copy(target, meta, tmp_path / "x.zip",
                               ["changed-since", "s3cret-pass"])
    assert sha256_of(out) == sha256_of(archive)
    # Verify says whether a password it knows opens the copy, not only its SHA-256.
    assert offsite.verify_copy(target, meta, ["s3cret-pass"])["ok"]
    locked = offsite.verify_copy(target, meta, ["changed-since"])
    assert not locked["ok"] and "none of the target's passwords" in locked["reason"]
    (target / copied["file"]).write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    check = offsite.verify_copy(target, meta)
    assert not check["ok"] and "damaged" in check["reason"]


def test_a_missing_or_unusable_target_is_an_error_and_nothing_is_created(
        tmp_path: Path) -> None:
    archive = make_archive(tmp_path / "a.zip")
    gone = tmp_path / "unplugged" / "drive"
    with pytest.raises(offsite.OffsiteError, match=r"does not exist .*plugged in"):
        offsite.copy_archive(archive, _record(archive, "01"), gone, "usb")
    assert not gone.exists() and not gone.parent.exists()
    (tmp_path / "file").write_text("x")
    with pytest.raises(offsite.OffsiteError, match="not a folder"):
        offsite.copy_archive(archive, _record(archive, "01"), tmp_path / "file", "usb")


# -- maintenance windows ------------------------------------------------------------------

def test_a_window_past_midnight_covers_the_next_morning() -> None:
    window = Window(name="nightly", days=[6], start="23:00", minutes=180, timezone="UTC")
    sunday_late = datetime(2026, 12, 6, 23, 30, tzinfo=UTC)      # a Sunday
    monday_early = datetime(2026, 12, 7, 1, 59, tzinfo=UTC)
    monday_late = datetime(2026, 12, 7, 2, 0, tzinfo=UTC)
    assert window.occurrence_at(sunday_late) is not None
    assert window.occurrence_at(monday_early) is not None
    assert window.occurrence_at(monday_late) is None
    assert window.next_start(monday_late) == datetime(2026, 12, 13, 23, 0, tzinfo=UTC)
    assert active_window([("w1", window)], monday_early)["name"] == "nightly"
    assert active_window([("w1", window.model_copy(update={"enabled": False}))],
                         monday_early) is None


def test_a_window_keeps_its_wall_clock_start_and_real_length_across_dst() -> None:
    window = Window(name="w", days=[6], start="01:00", minutes=120,
                    timezone="Europe/Berlin")
    # Sunday 2026-03-29: clocks jump 02:00 -> 03:00; 01:00 CET is 00:00 UTC.
    start, end = window.occurrence_at(datetime(2026, 3, 29, 0, 30, tzinfo=UTC))
    assert start == datetime(2026, 3, 29, 0, 0, tzinfo=UTC)
    assert end - start == timedelta(minutes=120)   # ends 04:00 CEST, 120 real minutes
    in_gap = Window(name="g", days=[6], start="02:30", minutes=30, timezone="Europe/Berlin")
    assert in_gap.next_start(datetime(2026, 3, 28, tzinfo=UTC)) == datetime(
        2026, 3, 29, 1, 30, tzinfo=UTC)          # 03:30 CEST: the gap's length later


def test_bad_windows_are_refused_naming_the_field() -> None:
    from pydantic import ValidationError

    for bad, field in (({"days": [7]}, "days"), ({"start": "25:00"}, "start"),
                       ({"minutes": 2000}, "minutes"), ({"timezone": "Mars/Base"}, "timezone")):
        data = {"name": "w", "days": [0], "start": "01:00", "minutes": 60, **bad}
        with pytest.raises(ValidationError) as info:
            Window.model_validate(data)
        assert info.value.errors()[0]["loc"][0] == field


# -- maintenance --------------------------------------------------------------------------

def _dirs(tmp_path: Path) -> maintenance.AppDirs:
    data = tmp_path / "data"
    for folder in ("plugin-data/system_manager", "plugin-data/other", "logs", "tmp",
                   "api_v1/incoming", "api_v1/backups"):
        (data / folder).mkdir(parents=True, exist_ok=True)
    return maintenance.AppDirs(data_dir=data, plugin_data=data / "plugin-data",
                               log_dir=data / "logs", temp_dir=data / "tmp",
                               own_dir=data / "plugin-data" / "system_manager")


def _age(path: Path, days: float) -> None:
    old = time.time() - days * 86400
    os.utime(path, (old, old))


def test_cleanup_plans_only_old_app_leftovers_and_applies_the_plan(tmp_path: Path) -> None:
    dirs = _dirs(tmp_path)
    logs = dirs.log_dir
    assert logs is not None
    (logs / "plexichat-desktop.log").write_text("live")
    _age(logs / "plexichat-desktop.log", 100)          # the live log: never
    for name, days in (("plexichat-desktop.log.1", 2), ("plexichat-desktop.log.2", 30)):
        (logs / name).write_text("old")
        _age(logs / name, days)
    drill = dirs.own_dir / ".drill-abc"
    drill.mkdir()
    (drill / "x").write_text("y" * 100)
    _age(drill, 2)
    upload = dirs.api_dir / "incoming" / "u.zip"
    upload.write_text("z")
    _age(upload, 0.1)                                    # too young
    over = dirs.temp_dir / "plexichat-dev-over"          # its plugin folder is gone
    over.mkdir()
    (over / "gone_plugin").symlink_to(tmp_path / "gone_plugin", target_is_directory=True)
    _age(over, 10)
    for name in ("someone-else", "plexichat-run-1", "plexichatty"):
        (dirs.temp_dir / name).mkdir()
        _age(dirs.temp_dir / name, 10)
    plan = maintenance.cleanup_plan(dirs, log_days=14, temp_days=3)
    paths = {Path(e["path"]).name: e["reason"] for e in plan}
    assert set(paths) == {"plexichat-desktop.log.2", ".drill-abc", "plexichat-dev-over"}
    done = maintenance.apply_cleanup(plan)
    assert done["deleted"] == 3 and not done["errors"]
    assert (logs / "plexichat-desktop.log").exists() and upload.exists()
    for name in ("someone-else", "plexichat-run-1", "plexichatty"):
        assert (dirs.temp_dir / name).exists()     # not made by the app: never


def test_cleanup_keeps_dev_session_folders_in_use(tmp_path: Path) -> None:
    dirs = _dirs(tmp_path)
    plugin = tmp_path / "my_plugin"                     # what a running session links to
    plugin.mkdir()
    live = dirs.temp_dir / "plexichat-dev-live"
    live.mkdir()
    (live / "my_plugin").symlink_to(plugin, target_is_directory=True)
    _age(live, 30)                                      # a long session: old, still in use
    young = dirs.temp_dir / "plexichat-dev-young"       # over, but less than a day old
    young.mkdir()
    (young / "gone").symlink_to(tmp_path / "gone", target_is_directory=True)
    _age(young, 0.5)
    odd = dirs.temp_dir / "plexichat-dev-odd"           # holds a real file: not a holder
    odd.mkdir()
    (odd / "notes.txt").write_text("mine")
    _age(odd, 30)
    assert maintenance.cleanup_plan(dirs, log_days=14, temp_days=0) == []
    assert live.exists() and (plugin).exists() and young.exists() and odd.exists()


def test_sqlite_checks_vacuum_sound_databases_and_never_damaged_ones(tmp_path: Path) -> None:
    dirs = _dirs(tmp_path)
    good = dirs.plugin_data / "other" / "notes.db"
    _wasteful_db(good)
    (dirs.plugin_data / "other" / "not-a-db.db").write_text("hello")
    bad = dirs.plugin_data / "other" / "broken.sqlite3"
    bad.write_bytes(good.read_bytes()[:4096] + b"\x00" * 100 + good.read_bytes()[4196:])
    found = {d["name"]: d for d in maintenance.find_databases(dirs)}
    assert set(found) == {"notes.db", "broken.sqlite3"}
    result = maintenance.check_database(good, vacuum=True)
    assert result["status"] == "ok" and result["vacuumed"]
    assert result["bytes_after"] < result["bytes_before"]
    # A page of zeros where the b-tree was: damaged, and VACUUM is not attempted.
    broken = maintenance.check_database(bad, vacuum=True)
    assert broken["status"] in ("damaged", "error") and not broken["vacuumed"]


def _wasteful_db(path: Path, wal: bool = False) -> None:
    conn = sqlite3.connect(path)
    if wal:
        conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE t (x TEXT)")
    conn.executemany("INSERT INTO t VALUES (?)", [("x" * 500,)] * 2000)
    conn.commit()
    conn.execute("DELETE FROM t")
    conn.commit()
    conn.close()


def test_stores_held_open_by_their_plugin_are_checked_but_not_vacuumed(
        tmp_path: Path) -> None:
    dirs = _dirs(tmp_path)
    wal = dirs.plugin_data / "other" / "live-wal.sqlite3"
    plain = dirs.plugin_data / "other" / "live-plain.sqlite3"
    closed = dirs.plugin_data / "other" / "closed.sqlite3"
    for path, mode in ((wal, True), (plain, False), (closed, False)):
        _wasteful_db(path, wal=mode)
    # The owning plugin's open connections (idle: no transaction, no lock held).
    owners = [sqlite3.connect(wal), sqlite3.connect(plain)]
    try:
        for owner in owners:
            assert owner.execute("SELECT COUNT(*) FROM t").fetchone() == (0,)
        for path in (wal, plain):
            before = path.read_bytes()
            result = maintenance.check_database(path, vacuum=True)
            assert result["status"] == "ok" and result["integrity"] == ["ok"]
            assert not result["vacuumed"] and result["skipped"].startswith("in use"), result
            assert path.read_bytes() == before              # not rewritten under it
        # a writer mid-transaction in another connection: also in use, not waited for
        owners[1].execute("BEGIN IMMEDIATE")
        owners[1].execute("INSERT INTO t VALUES ('y')")
        assert maintenance.held_open(plain) is not None
        owners[1].rollback()
    finally:
        for owner in owners:
            owner.close()
    result = maintenance.check_database(closed, vacuum=True)       # nobody holds it
    assert result["vacuumed"] and "skipped" not in result
    assert result["bytes_after"] < result["bytes_before"]


def test_test_result_retention_counts_then_deletes_old_runs(tmp_path: Path) -> None:
    from plexichat_desktop.testing.store import ResultStore

    db = tmp_path / "tests.sqlite3"
    store = ResultStore(db)
    store.close()
    conn = sqlite3.connect(db)
    columns = [r[1] for r in conn.execute("PRAGMA table_info(runs)")]
    conn.close()
    assert "queued_at" in columns and "plugin_id" in columns
    assert maintenance.results_retention_plan(db, 30, 100)["runs"] == 0
    assert maintenance.apply_test_retention(db, 30, 100) == 0
    assert maintenance.results_retention_plan(tmp_path / "none.sqlite3", 1, 1)["present"] \
        is False


def test_disk_usage_lists_every_plugin_folder_largest_first(tmp_path: Path) -> None:
    dirs = _dirs(tmp_path)
    (dirs.plugin_data / "other" / "big").write_bytes(b"x" * 5000)
    (dirs.own_dir / "small").write_bytes(b"x" * 10)
    usage = maintenance.disk_usage(dirs)
    assert [p["plugin"] for p in usage["plugins"]] == ["other", "system_manager"]
    assert usage["plugins"][0]["bytes"] == 5000
    assert 0 < usage["disk"]["free_percent"] <= 100


def test_the_drill_never_follows_a_file_id_out_of_its_home(tmp_path: Path) -> None:
    # Review finding: the restored database's file ids were joined to the drill home
    # as they were; "../../secret" made the drill hash a file outside it and report its
    # size.
    from system_manager.drill import _verify_restored

    outside = tmp_path / "secret"
    outside.write_bytes(b"s" * 1234)
    home = tmp_path / "a" / "b"
    (home / "files").mkdir(parents=True)
    conn = sqlite3.connect(home / "plexichat.sqlite3")
    for table in ("users", "messages", "groups", "notifications", "webhooks"):
        conn.execute(f"CREATE TABLE {table} (id TEXT)")
    conn.execute("CREATE TABLE files (id TEXT, size INTEGER, sha256 TEXT)")
    conn.execute("INSERT INTO files VALUES ('../../secret', 1, 'x')")
    conn.commit()
    conn.close()
    result = _verify_restored(home)
    assert result["files_verified"] == 0
    assert result["file_problems"] == ["file '../../secret': not a file id"]
    assert "1234" not in json.dumps(result)
