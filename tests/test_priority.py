"""lower_priority() against the kernel's rules, without lowering this process: os.nice and
the session check are stood in for; the group file is a stand-in that refuses like the
kernel does (EAGAIN within 100 ms of another session's change, without CAP_SYS_ADMIN)."""

from __future__ import annotations

import errno
import os

import pytest

from plexichat_desktop.testing import priority


class Group:
    """/proc/self/autogroup that refuses ``busy`` writes with EAGAIN, then takes one."""

    def __init__(self, busy: int = 0, error: int = errno.EAGAIN):
        self.busy = busy
        self.error = error
        self.tries = 0
        self.written: list[str] = []

    def exists(self) -> bool:
        return True

    def write_text(self, data: str) -> int:
        self.tries += 1
        if self.tries <= self.busy:
            raise OSError(self.error, os.strerror(self.error))
        self.written.append(data)
        return len(data)


@pytest.fixture
def niced(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []
    monkeypatch.setattr(os, "nice", lambda n: calls.append(n) or n)
    monkeypatch.setattr(os, "getsid", lambda _pid: os.getpid())  # a session leader
    return calls


def test_sessions_started_together_take_turns_for_their_group(niced: list[int]) -> None:
    group = Group(busy=3)
    priority.lower_priority(10, group)
    assert niced == [10] and group.written == ["10"] and group.tries == 4


def test_a_group_change_refused_for_good_leaves_the_process_nice(
        niced: list[int], monkeypatch: pytest.MonkeyPatch) -> None:
    refused = Group(busy=1, error=errno.EACCES)  # a read-only or locked-down /proc
    priority.lower_priority(5, refused)
    assert niced == [5] and refused.written == [] and refused.tries == 1
    monkeypatch.setattr(priority, "GROUP_RETRY_FOR", 0.05)
    busy = Group(busy=10**6)  # busy past the retry time: given up, the session runs on
    priority.lower_priority(5, busy)
    assert busy.written == [] and busy.tries >= 2


def test_nothing_is_lowered_at_zero_or_outside_a_session_of_its_own(
        niced: list[int], monkeypatch: pytest.MonkeyPatch) -> None:
    group = Group()
    priority.lower_priority(0, group)
    assert niced == [] and group.tries == 0
    monkeypatch.setattr(os, "getsid", lambda _pid: os.getpid() + 1)  # the group is shared
    priority.lower_priority(3, group)
    assert niced == [3] and group.tries == 0
