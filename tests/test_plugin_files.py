"""plexichat_desktop.plugins.files: a plugin's data file written whole or not at all, and
an unreadable one kept, never lost."""

import os
import stat
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from plexichat_desktop.plugins.files import backup_path, keep_aside, write_atomic


def test_files_kept_aside_in_the_same_second_all_stay(tmp_path: Path) -> None:
    state = tmp_path / "monitors.json"
    kept = []
    for text in ("{first", "{second", "{third"):
        state.write_text(text)
        kept.append(keep_aside(state))
    assert not state.exists()
    assert [p.read_text() for p in kept] == ["{first", "{second", "{third"]
    assert len(set(kept)) == 3 and all(p.parent == tmp_path for p in kept)
    assert all(p.name.startswith("monitors.json.broken-") for p in kept)



def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def test_write_atomic_writes_whole_files_private_unless_told(tmp_path: Path) -> None:
    state = tmp_path / "deep" / "er" / "state.json"
    write_atomic(state, "grüße\r\nline two\n")
    assert state.read_bytes() == "grüße\r\nline two\n".encode()  # lines as given
    assert stat.S_IMODE(state.stat().st_mode) == 0o600
    shared = tmp_path / "collection.json"
    write_atomic(shared, b"{}", mode=0o644)
    assert stat.S_IMODE(shared.stat().st_mode) == 0o644
    write_atomic(shared, b'{"a": 1}', mode=0o644)  # replacing keeps what it is told
    assert shared.read_bytes() == b'{"a": 1}'
    assert _leftovers(tmp_path) == [] and _leftovers(state.parent) == []
    assert not (tmp_path / "collection.json.bak").exists()


def test_write_atomic_keeps_the_previous_file_as_a_backup(tmp_path: Path) -> None:
    vault = tmp_path / "v.stkv"
    write_atomic(vault, b"one", keep_backup=True)
    assert not backup_path(vault).exists()  # nothing to keep yet
    write_atomic(vault, b"two", keep_backup=True)
    write_atomic(vault, b"three", keep_backup=True)
    assert vault.read_bytes() == b"three" and backup_path(vault).read_bytes() == b"two"
    assert stat.S_IMODE(backup_path(vault).stat().st_mode) == 0o600
    assert backup_path(vault).name == "v.stkv.bak"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v.stkv", "v.stkv.bak"]


@pytest.mark.parametrize("keep_backup", [False, True])
def test_a_failed_write_leaves_the_target_and_no_temporary_file(
        tmp_path: Path, keep_backup: bool) -> None:
    # A folder where the file should go: the rename (or the backup's copy) fails for real.
    target = tmp_path / "state.json"
    target.mkdir()
    (target / "inside").write_text("kept")
    with pytest.raises(OSError):
        write_atomic(target, "{}", keep_backup=keep_backup)
    assert (target / "inside").read_text() == "kept"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json"]


def test_concurrent_writers_never_mix_or_share_a_temporary_file(tmp_path: Path) -> None:
    target = tmp_path / "shared.json"
    bodies = [(str(n) * 50_000).encode() for n in range(8)]

    def write(body: bytes) -> None:
        for _ in range(20):
            write_atomic(target, body)

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(write, bodies))
    assert target.read_bytes() in bodies
    assert _leftovers(tmp_path) == []


def test_user_modes_follow_the_users_session_not_the_apps_umask(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from plexichat_desktop.core.permissions import USER_UMASK_ENV, private_umask, user_umask
    from plexichat_desktop.plugins.files import user_modes

    for umask, modes in (("0o022", (0o644, 0o755)), ("0o027", (0o640, 0o750))):
        monkeypatch.setenv(USER_UMASK_ENV, umask)
        assert user_modes() == modes
    # The app making itself private remembers the session's umask for its children.
    monkeypatch.delenv(USER_UMASK_ENV)
    old = os.umask(0o002)
    try:
        private_umask()
        assert user_umask() == 0o002 and os.environ[USER_UMASK_ENV] == "0o2"
    finally:
        os.umask(old)
