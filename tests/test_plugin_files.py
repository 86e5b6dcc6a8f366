"""plexichat_desktop.plugins.files: a plugin's unreadable data file is kept, never lost."""

from pathlib import Path

from plexichat_desktop.plugins.files import keep_aside


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

