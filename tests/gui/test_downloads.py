"""Downloads from a page, for real: the desktop window, QtWebEngine offscreen and the
fixture plugin ``desktop_kit`` served by the real server (an attachment route, a ``blob:``
behind ``<a download>``, a download that breaks off half way)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication, QFileDialog, QLineEdit

from plexichat_desktop.gui.downloads import FOLDER_KEY, safe_file_name, unique_path
from tests.gui.shell_helpers import wait_loaded

KIT_PAGE = "/plugins/desktop_kit/index.html"
REPORT = b"when,what\n2026-01-01,first\n2026-01-02,second\n"


@pytest.mark.parametrize(("suggested", "expected"), [
    ("../../escaped/report 2026.csv", "report 2026.csv"),
    ("..\\..\\Windows\\win.ini", "win.ini"),
    ("/etc/passwd", "passwd"),
    ("..", "download"),
    ("", "download"),
    (".bashrc", "bashrc"),
    ("CON.txt", "_CON.txt"),
    ("a:b?c*.txt", "a_b_c_.txt"),
    ("tab\there\x00.txt", "tab_here_.txt"),
    ("trailing. ", "trailing"),
    ("x" * 300 + ".csv", "x" * 196 + ".csv"),
])
def test_a_suggested_name_becomes_a_bare_file_name(suggested: str, expected: str) -> None:
    assert safe_file_name(suggested) == expected


def test_a_taken_name_gets_a_number(tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_text("1")
    (tmp_path / "a (1).csv").write_text("2")
    assert unique_path(tmp_path, "a.csv") == tmp_path / "a (2).csv"
    assert unique_path(tmp_path, "b") == tmp_path / "b"


def open_kit(shell: Any, qtbot: Any, js: Any) -> Any:
    pane = shell.window.open_page(KIT_PAGE, "Kit")
    wait_loaded(qtbot, js, pane, "document.getElementById('blob') && "
                                 "document.getElementById('blob').href.startsWith('blob:')")
    return pane


def click(js: Any, pane: Any, element_id: str) -> None:
    js(pane.view, f"(document.getElementById({element_id!r}).click(), 1)")


def download(qtbot: Any, js: Any, shell: Any, pane: Any, element_id: str) -> Any:
    with qtbot.waitSignal(shell.downloads.finished, timeout=30_000) as done:
        click(js, pane, element_id)
    return done.args[0]


def test_an_export_lands_in_the_configured_folder_under_a_safe_name(
        kit_shell: Any, qtbot: Any, js: Any, download_dir: Path, tmp_path: Path) -> None:
    pane = open_kit(kit_shell, qtbot, js)
    messages: list[str] = []
    kit_shell.window.statusBar().messageChanged.connect(messages.append)
    outcome = download(qtbot, js, kit_shell, pane, "export")
    assert outcome.state == "completed", outcome
    assert "Downloading report 2026.csv…" in messages
    # The page asked for "../../escaped/report 2026.csv": the folder is not its choice.
    saved = download_dir / "report 2026.csv"
    assert outcome.path == saved
    assert saved.read_bytes() == REPORT
    assert not list(tmp_path.rglob("escaped")) and not Path("/escaped").exists()
    status = kit_shell.window.statusBar().currentMessage()
    assert "Saved report 2026.csv" in status and str(download_dir) in status
    # The same export again keeps the first file.
    again = download(qtbot, js, kit_shell, pane, "export")
    assert again.path == download_dir / "report 2026 (1).csv"
    assert again.path.read_bytes() == REPORT
    assert sorted(p.name for p in download_dir.iterdir()) == [
        "report 2026 (1).csv", "report 2026.csv"]


def test_a_download_from_a_standalone_window_reports_there(
        kit_shell: Any, qtbot: Any, js: Any, download_dir: Path) -> None:
    window = kit_shell.window.open_window(KIT_PAGE, "Kit")
    wait_loaded(qtbot, js, window.pane, "document.getElementById('export') !== null")
    outcome = download(qtbot, js, kit_shell, window.pane, "export")
    assert outcome.state == "completed" and outcome.path == download_dir / "report 2026.csv"
    assert window.statusBar().currentMessage().startswith("Saved report 2026.csv")
    assert not kit_shell.window.statusBar().currentMessage().startswith("Saved")


def test_a_blob_made_in_the_page_downloads_too(kit_shell: Any, qtbot: Any, js: Any,
                                               download_dir: Path) -> None:
    pane = open_kit(kit_shell, qtbot, js)
    outcome = download(qtbot, js, kit_shell, pane, "blob")
    assert outcome.state == "completed", outcome
    assert outcome.url.startswith("blob:")
    # <a download="../notes/today's notes.txt">: the name without its folder parts.
    assert [p.name for p in download_dir.iterdir()] == ["today's notes.txt"]
    assert (download_dir / "today's notes.txt").read_bytes() == b"notes made in the page\n"


def test_a_download_that_breaks_off_says_it_failed(kit_shell: Any, qtbot: Any, js: Any,
                                                   download_dir: Path) -> None:
    pane = open_kit(kit_shell, qtbot, js)
    outcome = download(qtbot, js, kit_shell, pane, "broken")
    assert outcome.state == "failed", outcome
    assert outcome.error
    status = kit_shell.window.statusBar().currentMessage()
    assert status.startswith("Download of broken.bin failed:"), status
    assert not (download_dir / "broken.bin").exists()


POLLS = 750  # 15 s of 20 ms polls, within download()'s wait


def answer_dialog(act: Callable[[QFileDialog], bool]) -> list[str]:
    """Once the modal save dialog is up (it runs its own event loop inside the download
    handler), ``act`` on it until it says it is done. A dialog left open would hold that
    loop, and the test, forever: after POLLS tries it is rejected and the returned list
    says so, for the test to fail on."""
    gave_up: list[str] = []

    def poll(tries: int = 0) -> None:
        dialog = QApplication.activeModalWidget()
        up = isinstance(dialog, QFileDialog) and dialog.isVisible()
        if up and act(dialog):
            return
        if tries >= POLLS:
            gave_up.append(f"no answer after {POLLS} tries (dialog up: {up}, showing "
                           f"{dialog.selectedFiles() if up else None})")
            if up:
                dialog.reject()
            return
        QTimer.singleShot(20, lambda: poll(tries + 1))

    QTimer.singleShot(0, poll)
    return gave_up


def test_the_save_dialog_opens_in_the_folder_used_last(kit_shell: Any, qtbot: Any, js: Any,
                                                       tmp_path: Path) -> None:
    downloads = kit_shell.downloads
    downloads.ask, downloads.folder = True, None  # as on a desktop with no folder set
    first, chosen = tmp_path / "first", tmp_path / "chosen"
    first.mkdir()
    chosen.mkdir()
    kit_shell.window.settings.setValue(FOLDER_KEY, str(first))  # used last time
    pane = open_kit(kit_shell, qtbot, js)
    seen: dict[str, str] = {}

    def save_as(dialog: QFileDialog) -> bool:
        seen.setdefault("proposed", dialog.selectedFiles()[0])
        # The dialog's folder model catches up with a new folder in its own time: the
        # answer goes in once the dialog shows it, as a person would see it.
        dialog.setDirectory(str(chosen))
        # Typed as a person would: selectFile() was seen to leave the page's name there.
        name = dialog.findChild(QLineEdit, "fileNameEdit")
        assert name is not None, "not Qt's own file dialog"
        name.setText("mine.csv")
        if [Path(f).resolve() for f in dialog.selectedFiles()] != [
                (chosen / "mine.csv").resolve()]:
            return False
        dialog.accept()
        return True

    gave_up = answer_dialog(save_as)
    outcome = download(qtbot, js, kit_shell, pane, "export")
    assert not gave_up, gave_up
    assert outcome.state == "completed", outcome
    # It opened in the folder used last, with the page's name made safe.
    assert seen["proposed"] == str(first / "report 2026.csv")
    assert outcome.path == chosen / "mine.csv"
    assert (chosen / "mine.csv").read_bytes() == REPORT
    assert kit_shell.window.settings.value(FOLDER_KEY) == str(chosen)

    def cancel(dialog: QFileDialog) -> bool:
        seen["folder"] = dialog.directory().absolutePath()
        dialog.reject()
        return True

    answer_dialog(cancel)
    outcome = download(qtbot, js, kit_shell, pane, "export")
    assert seen["folder"] == str(chosen)
    assert outcome.state == "cancelled"
    assert kit_shell.window.statusBar().currentMessage() == \
        "Download of report 2026.csv cancelled"
    assert sorted(p.name for p in chosen.iterdir()) == ["mine.csv"]
