"""The result store on real SQLite files: round trips, migrations, statistics, retention."""

from __future__ import annotations

import datetime as dt
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from plexichat_desktop.testing import store as store_module
from plexichat_desktop.testing.models import (
    CollectedTest,
    Outcome,
    Priority,
    RunRecord,
    RunStatus,
    TestAttempt,
)
from plexichat_desktop.testing.store import (
    MESSAGE_CAP,
    SCHEMA_VERSION,
    TEXT_CAP,
    ResultStore,
    SchemaVersionError,
    clip_text,
    sanitise_text,
)

T0 = 1_700_000_000.0


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "nested" / "dir" / "results.sqlite3"


@pytest.fixture
def store(db_path: Path) -> Iterator[ResultStore]:
    with ResultStore(db_path) as s:
        yield s


def make_run(store: ResultStore, plugin_id: str = "alpha", *, queued_at: float = T0,
             status: RunStatus = RunStatus.PASSED, finished_at: float | None = None,
             **fields: object) -> RunRecord:
    if finished_at is None and status.finished:
        finished_at = queued_at + 60
    run = RunRecord(plugin_id=plugin_id, queued_at=queued_at, status=status,
                    finished_at=finished_at, **fields)  # type: ignore[arg-type]
    store.create_run(run)
    return run


def att(run: RunRecord, nodeid: str, outcome: Outcome, attempt: int = 1,
        duration: float = 1.0, at: float | None = None, **fields: object) -> TestAttempt:
    assert run.id is not None
    finished = (run.queued_at + 10) if at is None else at
    return TestAttempt(run_id=run.id, plugin_id=run.plugin_id, nodeid=nodeid,
                       outcome=outcome, attempt=attempt, duration=duration,
                       started_at=finished - duration, finished_at=finished,
                       **fields)  # type: ignore[arg-type]


def all_counts(**nonzero: int) -> dict[str, int]:
    counts = {o.value: 0 for o in Outcome}
    counts.update(nonzero)
    return counts


# -- opening, pragmas, migrations ---------------------------------------------------------


def test_fresh_database_gets_schema_pragmas_and_parent_dirs(db_path: Path) -> None:
    with ResultStore(db_path) as store:
        assert db_path.exists()
        assert store.schema_version == SCHEMA_VERSION == len(store_module.MIGRATIONS)
    raw = sqlite3.connect(db_path)
    try:
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        tables = {r[0] for r in raw.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        assert {"runs", "attempts", "collected"} <= tables
        indexes = {r[0] for r in raw.execute("SELECT name FROM sqlite_master WHERE type='index'")}
        assert {"attempts_final_test", "attempts_final_time", "runs_plugin_queued"} <= indexes
    finally:
        raw.close()


def test_reopening_keeps_data_and_does_not_migrate_again(db_path: Path) -> None:
    with ResultStore(db_path) as store:
        run = make_run(store)
    with ResultStore(db_path) as store:
        assert store.schema_version == SCHEMA_VERSION
        assert store.get_run(run.id or 0) == run


def test_newer_schema_version_is_refused_with_a_clear_message(db_path: Path) -> None:
    ResultStore(db_path).close()
    raw = sqlite3.connect(db_path)
    raw.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 3}")
    raw.close()
    with pytest.raises(SchemaVersionError) as info:
        ResultStore(db_path)
    message = str(info.value)
    assert str(db_path) in message
    assert str(SCHEMA_VERSION + 3) in message and str(SCHEMA_VERSION) in message
    assert info.value.found == SCHEMA_VERSION + 3 and info.value.supported == SCHEMA_VERSION


def test_each_migration_runs_in_its_own_transaction(db_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    ResultStore(db_path).close()

    def good(conn: sqlite3.Connection) -> None:
        conn.execute("CREATE TABLE extra_good (x)")

    def bad(conn: sqlite3.Connection) -> None:
        conn.execute("CREATE TABLE extra_bad (x)")
        raise RuntimeError("migration bug")

    monkeypatch.setattr(store_module, "MIGRATIONS", [*store_module.MIGRATIONS, good, bad])
    with pytest.raises(RuntimeError, match="migration bug"):
        ResultStore(db_path)
    raw = sqlite3.connect(db_path)
    try:
        assert raw.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION + 1
        tables = {r[0] for r in raw.execute("SELECT name FROM sqlite_master")}
        assert "extra_good" in tables and "extra_bad" not in tables
    finally:
        raw.close()


def test_close_is_idempotent_and_final(db_path: Path) -> None:
    store = ResultStore(db_path)
    store.close()
    store.close()
    # Reads and writes say it the same way.
    for call in (store.count_runs, lambda: store.create_run(RunRecord(plugin_id="a"))):
        with pytest.raises(RuntimeError, match="is closed"):
            call()


# -- runs ---------------------------------------------------------------------------------


def test_run_round_trip_and_update(store: ResultStore) -> None:
    run = RunRecord(plugin_id="alpha", selection=["tests/test_a.py::test_x"],
                    trigger="schedule", priority=Priority.HIGH, queued_at=T0,
                    schedule_id="nightly")
    run_id = store.create_run(run)
    assert run.id == run_id and isinstance(run_id, int)
    assert store.get_run(run_id) == run

    run.status = RunStatus.FAILED
    run.started_at, run.finished_at, run.exit_code = T0 + 1, T0 + 9.5, 1
    run.counts = {"passed": 3, "failed": 1}
    run.error = "boom"
    store.update_run(run)
    loaded = store.get_run(run_id)
    assert loaded == run
    assert loaded is not None and loaded.priority is Priority.HIGH
    assert loaded.status is RunStatus.FAILED and loaded.duration == pytest.approx(8.5)
    assert store.get_run(run_id + 100) is None

    with pytest.raises(ValueError):
        store.create_run(run)
    with pytest.raises(KeyError):
        store.update_run(RunRecord(plugin_id="alpha", id=run_id + 100))


def test_list_runs_is_newest_first_with_filters_and_paging(store: ResultStore) -> None:
    runs = [make_run(store, "alpha" if i % 2 == 0 else "beta", queued_at=T0 + i,
                     status=RunStatus.FAILED if i == 4 else RunStatus.PASSED)
            for i in range(6)]
    assert [r.id for r in store.list_runs()] == [r.id for r in reversed(runs)]
    assert [r.queued_at for r in store.list_runs("alpha")] == [T0 + 4, T0 + 2, T0]
    assert [r.queued_at for r in store.list_runs(limit=2, offset=1)] == [T0 + 4, T0 + 3]
    assert [r.id for r in store.list_runs(status=RunStatus.FAILED)] == [runs[4].id]
    assert store.list_runs("beta", status=RunStatus.FAILED) == []
    assert store.count_runs() == 6 and store.count_runs("beta") == 3
    assert store.count_runs("nobody") == 0


def test_mark_interrupted_keeps_stored_attempts(store: ResultStore) -> None:
    running = make_run(store, status=RunStatus.RUNNING, started_at=T0)
    queued = make_run(store, status=RunStatus.QUEUED, queued_at=T0 + 1)
    done = make_run(store, status=RunStatus.PASSED, queued_at=T0 + 2)
    store.add_attempts([att(running, "t::a", Outcome.PASSED), att(running, "t::b", Outcome.FAILED)])

    before = time.time()
    assert store.mark_interrupted() == 2
    for run in (running, queued):
        loaded = store.get_run(run.id or 0)
        assert loaded is not None
        assert loaded.status is RunStatus.INTERRUPTED
        assert loaded.finished_at is not None and loaded.finished_at >= before
        assert loaded.error == "the app stopped while this run was going"
    assert store.get_run(done.id or 0) == done
    assert [a.nodeid for a in store.attempts_for_run(running.id or 0)] == ["t::a", "t::b"]
    assert store.mark_interrupted("again") == 0


# -- attempts -----------------------------------------------------------------------------


def test_attempt_round_trip_and_history_newest_first(store: ResultStore) -> None:
    first = make_run(store, queued_at=T0)
    second = make_run(store, queued_at=T0 + 100)
    a1 = att(first, "t::x", Outcome.FAILED, phase="call", message="assert 1 == 2",
             longrepr="Traceback...", stdout="out", stderr="err", log="INFO hi")
    a2 = att(first, "t::x", Outcome.PASSED, attempt=2, at=T0 + 20)
    a3 = att(second, "t::x", Outcome.PASSED, at=T0 + 110)
    other = att(second, "t::y", Outcome.SKIPPED, at=T0 + 111)
    store.add_attempts([a1, a2])
    store.add_attempts([a3, other])

    assert store.attempts_for_run(first.id or 0) == [a1, a2]
    assert store.attempts_for_run(second.id or 0) == [a3, other]
    assert store.test_history("alpha", "t::x") == [a3, a2, a1]
    assert store.test_history("alpha", "t::x", limit=2) == [a3, a2]
    assert store.test_history("alpha", "t::nothing") == []
    store.add_attempts([])


def test_attempts_need_an_existing_run(store: ResultStore) -> None:
    ghost = RunRecord(plugin_id="alpha", id=999)
    with pytest.raises(sqlite3.IntegrityError):
        store.add_attempts([att(ghost, "t::x", Outcome.PASSED)])


def test_long_text_is_truncated_with_a_marker(store: ResultStore) -> None:
    run = make_run(store)
    big = "x" * (TEXT_CAP + 5000)
    store.add_attempts([att(run, "t::x", Outcome.FAILED, longrepr=big, stdout="é" * TEXT_CAP,
                            stderr="short", log=big, message="m" * (MESSAGE_CAP * 2))])
    [loaded] = store.attempts_for_run(run.id or 0)
    for text, original in ((loaded.longrepr, big), (loaded.log, big),
                           (loaded.stdout, "é" * TEXT_CAP)):
        assert len(text.encode()) <= TEXT_CAP
        head, marker = text.rsplit("\n... [truncated ", 1)
        dropped = int(marker.removesuffix(" bytes]"))
        assert original.startswith(head)
        assert len(head.encode()) + dropped == len(original.encode())
    assert loaded.stderr == "short"
    assert len(loaded.message.encode()) <= MESSAGE_CAP
    assert loaded.message.endswith(" bytes]")


def test_clip_text_never_splits_a_character() -> None:
    clipped = clip_text("€" * 100, cap=50)
    assert len(clipped.encode()) <= 50
    head = clipped.split("\n")[0]
    assert set(head) == {"€"}
    assert clipped.endswith(f"[truncated {300 - len(head.encode())} bytes]")
    assert clip_text("fits", cap=50) == "fits"


def test_surrogates_and_nul_bytes_are_sanitised_not_fatal(store: ResultStore) -> None:
    run = make_run(store)
    nasty = "a\x00b\udcff c \ud83d\ude00 d\ud800"
    store.add_attempts([att(run, "t::x", Outcome.FAILED, message=nasty, longrepr=nasty,
                            stdout=nasty, stderr=nasty, log=nasty)])
    [loaded] = store.attempts_for_run(run.id or 0)
    expected = "a\ufffdb\ufffd c \U0001F600 d\ufffd"
    assert sanitise_text(nasty) == expected
    assert loaded.message == loaded.longrepr == loaded.stdout == loaded.stderr == expected
    assert loaded.log == expected
    run.error = nasty
    run.selection = ["t::\udcff"]
    store.update_run(run)
    reloaded = store.get_run(run.id or 0)
    assert reloaded is not None and reloaded.error == expected
    assert reloaded.selection == ["t::\udcff"]  # JSON escapes it, so it round-trips as is


def test_last_results_pick_the_final_attempt_of_the_latest_run(store: ResultStore) -> None:
    old = make_run(store, queued_at=T0)
    new = make_run(store, queued_at=T0 + 100)
    other_plugin = make_run(store, "beta", queued_at=T0 + 200)
    store.add_attempts([
        att(old, "t::a", Outcome.FAILED), att(old, "t::b", Outcome.PASSED),
        att(old, "t::c", Outcome.PASSED),
        att(new, "t::a", Outcome.FAILED, attempt=1), att(new, "t::a", Outcome.FAILED, attempt=2),
        att(other_plugin, "t::a", Outcome.SKIPPED),
    ])
    # Attempts of one test may arrive late and out of order.
    store.add_attempts([att(new, "t::a", Outcome.PASSED, attempt=3, duration=7.0)])
    store.add_attempts([att(new, "t::b", Outcome.ERROR, attempt=2),
                        att(new, "t::d", Outcome.PASSED, attempt=2)])
    store.add_attempts([att(new, "t::b", Outcome.FAILED), att(new, "t::d", Outcome.FAILED)])

    results = store.last_results("alpha")
    assert set(results) == {"t::a", "t::b", "t::c", "t::d"}
    assert (results["t::d"].attempt, results["t::d"].outcome) == (2, Outcome.PASSED)
    assert (results["t::a"].run_id, results["t::a"].attempt) == (new.id, 3)
    assert results["t::a"].outcome is Outcome.PASSED and results["t::a"].duration == 7.0
    assert (results["t::b"].run_id, results["t::b"].outcome) == (new.id, Outcome.ERROR)
    assert (results["t::c"].run_id, results["t::c"].outcome) == (old.id, Outcome.PASSED)
    assert store.last_results("beta")["t::a"].outcome is Outcome.SKIPPED
    assert store.last_results("nobody") == {}
    # The late attempt 3 turned a failing test into a flaky pass.
    assert store.statistics("alpha", "t::a")["flaky_rate"] == pytest.approx(1 / 2)
    # ... and so did attempt 1 of t::d, failing after its passing retry was stored.
    assert store.statistics("alpha", "t::d")["flaky_rate"] == 1.0
    assert store.statistics("alpha", "t::b")["counts"]["error"] == 1


def test_replace_collected_keeps_first_seen_and_order(store: ResultStore) -> None:
    def ct(nodeid: str, line: int | None = 1, plugin: str = "alpha") -> CollectedTest:
        return CollectedTest(plugin_id=plugin, nodeid=nodeid, file=nodeid.split("::")[0],
                             line=line, name=nodeid.split("::")[-1],
                             cls="TestK" if "TestK" in nodeid else None)

    store.replace_collected("alpha", [ct("b.py::t2"), ct("a.py::t1"), ct("a.py::TestK::t3")])
    store.replace_collected("beta", [ct("z.py::t", plugin="beta")])
    seen_before = store.collected_seen("alpha")
    time.sleep(0.01)
    store.replace_collected("alpha", [ct("a.py::t1", line=None), ct("c.py::t4"),
                                      ct("a.py::TestK::t3")])
    assert [t.nodeid for t in store.collected("alpha")] == [
        "a.py::t1", "c.py::t4", "a.py::TestK::t3"]
    assert store.collected("alpha")[0].line is None
    assert store.collected("alpha")[2].cls == "TestK"
    seen = store.collected_seen("alpha")
    assert seen["a.py::t1"][0] == seen_before["a.py::t1"][0]
    assert seen["a.py::t1"][1] > seen_before["a.py::t1"][1]
    assert seen["c.py::t4"][0] > seen_before["a.py::t1"][0]
    assert [t.plugin_id for t in store.collected()] == ["alpha"] * 3 + ["beta"]
    store.replace_collected("alpha", [])
    assert store.collected("alpha") == []
    with pytest.raises(ValueError):
        store.replace_collected("alpha", [ct("x.py::t", plugin="beta")])


# -- statistics ---------------------------------------------------------------------------


@pytest.fixture
def dataset(store: ResultStore) -> tuple[RunRecord, RunRecord]:
    """Two runs of plugin alpha (and a noise run of beta); hand-computed figures below."""
    run1 = make_run(store, queued_at=T0, status=RunStatus.FAILED, finished_at=T0 + 50)
    run2 = make_run(store, queued_at=T0 + 1000, status=RunStatus.PASSED,
                    finished_at=T0 + 1050)
    beta = make_run(store, "beta", queued_at=T0, status=RunStatus.PASSED)
    store.add_attempts([
        att(run1, "t::a", Outcome.PASSED, duration=1.0),
        att(run1, "t::b", Outcome.FAILED, duration=2.0),
        att(run1, "t::b", Outcome.PASSED, attempt=2, duration=3.0, at=T0 + 20),
        att(run1, "t::c", Outcome.SKIPPED, duration=0.0),
        att(run1, "t::d", Outcome.XFAILED, duration=0.5),
        att(run2, "t::a", Outcome.PASSED, duration=4.0),
        att(run2, "t::b", Outcome.ERROR, duration=0.1),
        att(run2, "t::b", Outcome.ERROR, attempt=2, duration=0.2),
        att(run2, "t::c", Outcome.XPASSED, duration=5.0),
        att(run2, "t::d", Outcome.NOT_RUN, duration=0.0),
        att(run2, "t::e", Outcome.TIMED_OUT, duration=10.0),
        att(beta, "t::a", Outcome.CRASHED, duration=99.0),
    ])
    return run1, run2


def test_statistics_for_a_plugin_match_hand_computed_values(
        store: ResultStore, dataset: tuple[RunRecord, RunRecord]) -> None:
    _, run2 = dataset
    stats = store.statistics("alpha")
    # Final results: run1 a=passed b=passed(flaky) c=skipped d=xfailed;
    #                run2 a=passed b=error c=xpassed d=not_run e=timed_out.
    assert stats["total"] == 9
    assert stats["counts"] == all_counts(passed=3, skipped=1, xfailed=1, error=1, xpassed=1,
                                         not_run=1, timed_out=1)
    # successes (3 passed + xfailed + xpassed) / (9 - skipped - not_run)
    assert stats["success_rate"] == pytest.approx(5 / 7)
    # durations of the 8 results that ran: 1, 3, 0, .5, 4, .2, 5, 10
    assert stats["mean_duration"] == pytest.approx(23.7 / 8)
    assert stats["p95_duration"] == 10.0  # rank ceil(0.95 * 8) = 8
    assert stats["flaky_rate"] == pytest.approx(1 / 9)
    assert stats["last_green"] == run2.finished_at
    assert stats["runs"] == 2

    recent = store.statistics("alpha", since=T0 + 500)
    assert recent["total"] == 5 and recent["runs"] == 1
    assert recent["success_rate"] == pytest.approx(2 / 4)
    assert recent["flaky_rate"] == 0.0
    assert recent["last_green"] == run2.finished_at  # not limited by since

    everything = store.statistics()
    assert everything["total"] == 10 and everything["runs"] == 3
    assert everything["counts"]["crashed"] == 1


def test_statistics_for_one_test(store: ResultStore,
                                 dataset: tuple[RunRecord, RunRecord]) -> None:
    stats = store.statistics("alpha", "t::b")
    assert stats["total"] == 2 and stats["runs"] == 2
    assert stats["counts"] == all_counts(passed=1, error=1)
    assert stats["success_rate"] == 0.5
    assert stats["flaky_rate"] == 0.5
    assert stats["mean_duration"] == pytest.approx((3.0 + 0.2) / 2)
    assert stats["last_green"] == T0 + 20  # when its final result last succeeded

    never = store.statistics("alpha", "t::e")
    assert never["last_green"] is None and never["success_rate"] == 0.0


def test_statistics_of_an_empty_scope(store: ResultStore) -> None:
    stats = store.statistics("nobody")
    assert stats == {"total": 0, "counts": all_counts(), "success_rate": None,
                     "mean_duration": None, "p95_duration": None, "flaky_rate": None,
                     "last_green": None, "runs": 0}
    run = make_run(store)
    store.add_attempts([att(run, "t::s", Outcome.SKIPPED), att(run, "t::n", Outcome.NOT_RUN)])
    only_skips = store.statistics("alpha")
    assert only_skips["total"] == 2 and only_skips["success_rate"] is None


def test_p95_uses_nearest_rank(store: ResultStore) -> None:
    run = make_run(store)
    store.add_attempts([att(run, f"t::{i}", Outcome.PASSED, duration=float(i))
                        for i in range(1, 21)])
    # n = 20: rank ceil(19.0) = 19 -> 19.0 (interpolation would say 19.05)
    assert store.statistics("alpha")["p95_duration"] == 19.0
    store.add_attempts([att(run, "t::21", Outcome.FAILED, duration=21.0)])
    # n = 21: rank ceil(19.95) = 20 -> 20.0
    assert store.statistics("alpha")["p95_duration"] == 20.0


def test_daily_trend_groups_by_local_day(store: ResultStore) -> None:
    today = dt.date(2024, 3, 20)
    noon = [time.mktime((d.year, d.month, d.day, 12, 0, 0, 0, 0, -1))
            for d in (today - dt.timedelta(days=1), today)]
    late = time.mktime((today.year, today.month, today.day - 1, 23, 59, 0, 0, 0, -1))
    run = make_run(store, queued_at=noon[0] - 100)
    store.add_attempts([
        att(run, "t::a", Outcome.PASSED, duration=1.0, at=noon[0]),
        att(run, "t::b", Outcome.FAILED, duration=3.0, at=late),
        att(run, "t::c", Outcome.SKIPPED, duration=0.0, at=noon[0]),
        att(run, "t::d", Outcome.TIMED_OUT, duration=2.0, at=noon[1]),
        att(run, "t::e", Outcome.XFAILED, duration=4.0, at=noon[1]),
        att(run, "t::f", Outcome.NOT_RUN, duration=0.0, at=noon[1]),
        att(run, "t::old", Outcome.PASSED, at=noon[0] - 10 * 86400),  # outside the window
    ])
    trend = store.daily_trend("alpha", days=3, now=noon[1] + 3600)
    assert [row["day"] for row in trend] == ["2024-03-18", "2024-03-19", "2024-03-20"]
    assert trend[0] == {"day": "2024-03-18", "total": 0, "passed": 0, "failed": 0,
                        "skipped": 0, "success_rate": None, "mean_duration": None}
    assert trend[1] == {"day": "2024-03-19", "total": 3, "passed": 1, "failed": 1,
                        "skipped": 1, "success_rate": 0.5,
                        "mean_duration": pytest.approx(4.0 / 3)}
    assert trend[2] == {"day": "2024-03-20", "total": 3, "passed": 1, "failed": 1,
                        "skipped": 1, "success_rate": 0.5,
                        "mean_duration": pytest.approx(3.0)}
    one_test = store.daily_trend("alpha", "t::b", days=2, now=noon[1])
    assert [(r["day"], r["failed"]) for r in one_test] == [("2024-03-19", 1), ("2024-03-20", 0)]
    assert sum(r["total"] for r in store.daily_trend(days=3, now=noon[1])) == 6
    assert store.daily_trend(days=0) == []


@pytest.fixture
def berlin(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    if not hasattr(time, "tzset"):
        pytest.skip("time.tzset is POSIX only")
    monkeypatch.setenv("TZ", "Europe/Berlin")
    time.tzset()
    try:
        yield
    finally:
        monkeypatch.undo()
        time.tzset()


@pytest.mark.usefixtures("berlin")
def test_daily_trend_uses_the_local_zone_across_dst(store: ResultStore) -> None:
    # 2024-03-31 is 23 hours long in Berlin (clocks go 02:00 -> 03:00).
    utc = dt.UTC
    just_after_midnight = dt.datetime(2024, 3, 30, 23, 30, tzinfo=utc).timestamp()  # 00:30
    late_that_day = dt.datetime(2024, 3, 31, 21, 30, tzinfo=utc).timestamp()  # 23:30 CEST
    day_before = dt.datetime(2024, 3, 30, 22, 59, tzinfo=utc).timestamp()  # 23:59 CET
    run = make_run(store, queued_at=day_before - 60)
    store.add_attempts([att(run, "t::a", Outcome.PASSED, at=just_after_midnight),
                        att(run, "t::b", Outcome.FAILED, at=late_that_day),
                        att(run, "t::c", Outcome.PASSED, at=day_before)])
    trend = store.daily_trend("alpha", days=2, now=late_that_day)
    assert [(r["day"], r["passed"], r["failed"]) for r in trend] == [
        ("2024-03-30", 1, 0), ("2024-03-31", 1, 1)]


def test_flip_rate(store: ResultStore) -> None:
    sequence = [Outcome.PASSED, Outcome.FAILED, Outcome.XPASSED, Outcome.PASSED,
                Outcome.SKIPPED, Outcome.ERROR]
    for i, outcome in enumerate(sequence):
        run = make_run(store, queued_at=T0 + 100 * i)
        store.add_attempts([att(run, "t::x", outcome)])
    # skipped left out: P F P P E -> 3 switches over 4 pairs
    assert store.flip_rate("alpha", "t::x") == pytest.approx(3 / 4)
    # newest three that count: P P E -> 1 switch over 2 pairs
    assert store.flip_rate("alpha", "t::x", window=3) == pytest.approx(1 / 2)
    assert store.flip_rate("alpha", "t::x", window=1) is None
    assert store.flip_rate("alpha", "t::unknown") is None


# -- retention ----------------------------------------------------------------------------


def test_retention_by_age_never_deletes_unfinished_runs(store: ResultStore) -> None:
    now = T0 + 30 * 86400
    old = make_run(store, queued_at=now - 10 * 86400)
    older = make_run(store, queued_at=now - 5 * 86400, parent_run_id=old.id)
    young = make_run(store, queued_at=now - 86400, parent_run_id=older.id)
    stuck = make_run(store, queued_at=now - 20 * 86400, status=RunStatus.RUNNING)
    waiting = make_run(store, queued_at=now - 20 * 86400, status=RunStatus.QUEUED)
    for run in (old, young, stuck):
        store.add_attempts([att(run, "t::a", Outcome.PASSED), att(run, "t::b", Outcome.FAILED)])

    assert store.enforce_retention(max_age_days=3, max_runs_per_plugin=None, now=now) == 2
    remaining = {r.id for r in store.list_runs()}
    assert remaining == {young.id, stuck.id, waiting.id}
    assert store.attempts_for_run(old.id or 0) == []  # cascaded
    assert len(store.attempts_for_run(stuck.id or 0)) == 2
    kept = store.get_run(young.id or 0)
    assert kept is not None and kept.parent_run_id is None  # parent gone, link cleared
    assert store.enforce_retention(None, None) == 0


def test_retention_by_count_per_plugin_in_batches(store: ResultStore) -> None:
    store.retention_batch = 7  # several batches without creating thousands of runs
    for i in range(30):
        make_run(store, "alpha", queued_at=T0 + i)
    running = make_run(store, "alpha", queued_at=T0 - 1, status=RunStatus.RUNNING)
    for i in range(3):
        make_run(store, "beta", queued_at=T0 + i)

    assert store.enforce_retention(None, max_runs_per_plugin=5) == 25
    alpha = store.list_runs("alpha")
    assert [r.queued_at for r in alpha] == [T0 + i for i in range(29, 24, -1)] + [T0 - 1]
    assert alpha[-1].id == running.id
    assert store.count_runs("beta") == 3
    assert store.enforce_retention(None, max_runs_per_plugin=5) == 0


# -- threads ------------------------------------------------------------------------------


def test_concurrent_writers_and_a_reader(store: ResultStore) -> None:
    errors: list[BaseException] = []
    writers_done = threading.Event()
    stats_seen: list[int] = []

    def writer(n: int) -> None:
        try:
            for r in range(10):
                run = make_run(store, f"plugin{n}", queued_at=T0 + r,
                               status=RunStatus.RUNNING)
                store.add_attempts([att(run, f"t::{i}", Outcome.PASSED if i % 3 else Outcome.FAILED)
                                    for i in range(20)])
                run.status, run.finished_at = RunStatus.FAILED, T0 + r + 1
                store.update_run(run)
        except BaseException as exc:
            errors.append(exc)

    def reader() -> None:
        try:
            while not writers_done.is_set():
                stats_seen.append(store.statistics()["total"])
                store.daily_trend(days=2)
                store.list_runs(limit=5)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    watcher = threading.Thread(target=reader)
    watcher.start()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    writers_done.set()
    watcher.join()

    assert errors == []
    assert stats_seen == sorted(stats_seen)  # each read saw a consistent, growing total
    assert store.statistics()["total"] == 4 * 10 * 20
    assert store.count_runs() == 40
    assert store.statistics("plugin2")["counts"]["failed"] == 10 * 7


def test_an_owner_is_running_only_while_its_process_is() -> None:
    """Review findings: a process that had ended but was not yet reaped (a zombie) still
    counted as running, so its runs were never marked interrupted; and the start time
    compared was psutil's, which a step of the wall clock moves (the running app looked
    gone): on Linux it is the start in ticks since boot now."""
    import subprocess
    import sys

    import psutil

    from plexichat_desktop.core.owner import _started, is_running, this_process

    assert is_running(this_process())
    pid, _, started = this_process().partition("@")
    if sys.platform.startswith("linux"):
        assert started.startswith("t")  # no wall-clock time in it
        assert not is_running(f"{pid}@t{int(started[1:]) + 1}")  # another process, same id
    else:
        assert is_running(f"{pid}@{float(started) + 2:.2f}")  # a clock step since
        assert not is_running(f"{pid}@{float(started) - 3600:.2f}")
    for junk in (None, "", "x@y", "12@", "-1@5", f"{pid}@", f"{pid}@tx"):
        assert not is_running(junk), junk
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    try:
        owner = f"{child.pid}@{_started(child.pid)}"
        deadline = time.monotonic() + 30
        while psutil.Process(child.pid).status() != psutil.STATUS_ZOMBIE:
            assert time.monotonic() < deadline, "the child never ended"
            time.sleep(0.02)
        assert not is_running(owner)  # ended, not yet reaped
    finally:
        child.wait()
    assert not is_running(owner)


def test_statistics_count_the_runs_that_ended(store: ResultStore) -> None:
    """The cards say "final results of N runs": a run still queued or going has none
    yet and was counted (an audit saw "2 runs" over the results of one)."""
    done = make_run(store, status=RunStatus.PASSED, queued_at=T0)
    store.add_attempts([att(done, "t::a", Outcome.PASSED)])
    make_run(store, status=RunStatus.RUNNING, queued_at=T0 + 1)
    make_run(store, status=RunStatus.QUEUED, queued_at=T0 + 2)
    assert store.statistics("alpha")["runs"] == 1
