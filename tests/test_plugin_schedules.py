"""ctx.schedule: the host's grammar, DST and misfire rules for plugin work, with persisted
last runs, skip-if-running and teardown. Unit tests drive the scheduler with an injected
clock and tick(); the server test uses the real timer on a real app."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from datetime import UTC, datetime, timedelta
from datetime import time as time_of_day

import pytest

from plexichat_desktop.core.settings import Settings
from plexichat_desktop.plugins.scaffold import scaffold_plugin
from plexichat_desktop.plugins.schedules import PluginScheduler

pytestmark = pytest.mark.asyncio
LOG = logging.getLogger("test.schedules")


def ts(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


class Clock:
    """Wall and monotonic time that move together unless a test makes the wall jump."""

    def __init__(self, start: str):
        self.wall = ts(start)
        self.mono = 1000.0

    def advance(self, seconds: float) -> None:
        self.wall += seconds
        self.mono += seconds


def scheduler(tmp_path, clock: Clock, **kw) -> PluginScheduler:
    return PluginScheduler("demo", tmp_path / "demo.json", LOG, clock=lambda: clock.wall,
                           monotonic=lambda: clock.mono, catch_up_spread=0, **kw)


class Work:
    """An async callable that counts its runs and can be held until released."""

    def __init__(self, hold: bool = False, fail: bool = False):
        self.calls = 0
        self.release = asyncio.Event()
        if not hold:
            self.release.set()
        self.fail = fail

    async def __call__(self) -> None:
        self.calls += 1
        await self.release.wait()
        if self.fail:
            raise RuntimeError("the work broke")


async def test_fires_on_time_skips_while_running_and_persists(tmp_path):
    clock = Clock("2026-05-04T10:00:00+00:00")
    sched = scheduler(tmp_path, clock)
    work = Work(hold=True)
    record = sched.add("every_15_minutes", work, "sync", start=False)
    assert record.next_fire_at == ts("2026-05-04T10:15:00+00:00")  # anchored at creation
    assert await sched.tick() == []
    clock.advance(15 * 60)
    assert await sched.tick() == ["sync"]
    await asyncio.sleep(0)
    assert work.calls == 1 and record.last_status == "running"
    clock.advance(15 * 60)                       # the first run still holds
    assert await sched.tick() == []
    assert (record.skipped, record.last_status) == (1, "skipped")
    work.release.set()
    await sched.wait_idle()
    assert record.last_status == "succeeded" and record.runs == 1
    assert record.next_fire_at == ts("2026-05-04T10:45:00+00:00")
    await sched.close()

    saved = json.loads((tmp_path / "demo.json").read_text())["schedules"]["sync"]
    assert saved["last_fire_at"] == ts("2026-05-04T10:30:00+00:00")
    assert (saved["runs"], saved["skipped"]) == (1, 1)
    # A new process: the same schedule keeps its grid, counters and last fire.
    again = scheduler(tmp_path, clock).add("every_15_minutes", Work(), "sync", start=False)
    assert (again.runs, again.skipped, again.next_fire_at) == (
        1, 1, ts("2026-05-04T10:45:00+00:00"))
    assert again.catch_up is None


async def test_a_pause_gives_one_catch_up_and_counts_older_misses(tmp_path):
    clock = Clock("2026-05-01T00:00:00+00:00")
    first = scheduler(tmp_path, clock)
    first.add("daily", Work(), "report", timezone="UTC", start=False)
    clock.advance(1)
    await first.close()
    clock.advance(3 * 86400 + 6 * 3600)          # closed until May 4th, 06:00
    work = Work()
    sched = scheduler(tmp_path, clock)
    record = sched.add("daily", work, "report", timezone="UTC", start=False)
    assert record.missed == 2                    # May 2nd and 3rd
    assert record.catch_up == (clock.wall, ts("2026-05-04T00:00:00+00:00"))
    assert await sched.tick() == ["report"]
    await sched.wait_idle()
    assert work.calls == 1 and record.last_fire_at == ts("2026-05-04T00:00:00+00:00")
    assert record.next_fire_at == ts("2026-05-05T00:00:00+00:00")
    await sched.close()


async def test_a_miss_older_than_the_grace_is_not_run(tmp_path):
    clock = Clock("2026-05-01T00:30:00+00:00")
    first = scheduler(tmp_path, clock)
    first.add("daily", Work(), "report", timezone="UTC", grace=timedelta(hours=1),
              start=False)
    await first.close()
    clock.advance(30 * 3600)                      # May 2nd, 06:30: 6.5 h after the slot
    sched = scheduler(tmp_path, clock)
    record = sched.add("daily", Work(), "report", timezone="UTC", grace=timedelta(hours=1),
                       start=False)
    assert record.catch_up is None and record.missed == 1
    assert record.last_status == "missed"
    assert await sched.tick() == []


async def test_dst_rules_are_the_hosts(tmp_path):
    # Spring forward in Berlin: 02:30 does not exist on 2026-03-29; it runs at 03:00 CEST.
    clock = Clock("2026-03-28T12:00:00+00:00")
    sched = scheduler(tmp_path, clock, at=time_of_day(2, 30))
    record = sched.add("daily", Work(), "spring", timezone="Europe/Berlin", start=False)
    assert record.next_fire_at == ts("2026-03-29T01:00:00+00:00")
    # Fall back: 02:30 happens twice on 2026-10-25; it runs once, at the first.
    clock = Clock("2026-10-24T12:00:00+00:00")
    sched = scheduler(tmp_path / "b", clock, at=time_of_day(2, 30))
    record = sched.add("daily", Work(), "fall", timezone="Europe/Berlin", start=False)
    assert record.next_fire_at == ts("2026-10-25T00:30:00+00:00")
    clock.wall = record.next_fire_at
    assert await sched.tick() == ["fall"]
    assert record.next_fire_at == ts("2026-10-26T01:30:00+00:00")
    await sched.close()


async def test_a_clock_jump_replans(tmp_path):
    clock = Clock("2026-05-04T10:00:00+00:00")
    sched = scheduler(tmp_path, clock)
    work = Work()
    record = sched.add("hourly", work, "beat", timezone="UTC", start=False)
    await sched.tick()
    clock.wall += 3 * 3600 + 600                 # suspended: the monotonic clock stood still
    assert await sched.tick() == ["beat"]        # one run for the three missed hours
    await sched.wait_idle()
    assert work.calls == 1 and record.last_fire_at == ts("2026-05-04T13:00:00+00:00")
    await sched.close()


async def test_failures_bad_input_and_close(tmp_path):
    clock = Clock("2026-05-04T10:00:00+00:00")
    sched = scheduler(tmp_path, clock)
    broken = sched.add("every_1_minutes", Work(fail=True), "broken", start=False)
    held = sched.add("every_1_minutes", Work(hold=True), "held", start=False)
    clock.advance(60)
    assert sorted(await sched.tick()) == ["broken", "held"]
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert broken.last_status == "failed"
    assert broken.last_error == "RuntimeError: the work broke"
    with pytest.raises(ValueError, match=r"plugin 'demo': schedule 'bad'.*every_N_minutes"):
        sched.add("every_minute_or_so", Work(), "bad")
    with pytest.raises(ValueError, match="already has a schedule 'held'"):
        sched.add("hourly", Work(), "held")
    with pytest.raises(ValueError, match="schedule name"):
        sched.add("hourly", Work(), "../x")
    await sched.close()                          # cancels the held run
    assert held.last_status == "cancelled" and not held.running
    saved = json.loads((tmp_path / "demo.json").read_text())["schedules"]
    assert saved["held"]["last_status"] == "cancelled"
    with pytest.raises(RuntimeError, match="stopping"):
        sched.add("hourly", Work(), "late")


PLUGIN = '''
import asyncio

from plexichat_desktop.plugins.api import Plugin

RUNS = []


class BeaterPlugin(Plugin):
    def setup(self, ctx):
        async def beat():
            RUNS.append("beat")

        ctx.schedule("every_1_minutes", beat, "beat")
'''


async def test_catch_up_on_a_real_app_listed_and_cancelled_at_teardown(start_core, tmp_path,
                                                                       home):
    root = scaffold_plugin("beater", tmp_path / "plugins")
    (root / "beater" / "__init__.py").write_text(PLUGIN)
    now = time.time()
    last = now - now % 60 - 60                   # the slot before the last one was run
    state = home.plugin_data_root / ".schedules" / "beater.json"
    state.parent.mkdir(parents=True)
    state.write_text(json.dumps({"schedules": {"beat": {
        "expression": "every_1_minutes", "timezone": None, "anchor": 0, "armed_at": now - 3600,
        "last_fire_at": last, "last_status": "succeeded", "runs": 7, "skipped": 0,
        "missed": 0}}}))
    settings = Settings()
    settings.tests.catch_up_spread = 0
    core = await start_core(tmp_path / "plugins", settings=settings)
    import beater

    for _ in range(1000):                         # the catch-up runs at once
        listed = (await core.client.get("/plugins/beater/api/_host/schedules")).json()
        beat = listed["schedules"][0]
        if beat["runs"] >= 8 and beat["last_status"] == "succeeded":
            break
        await asyncio.sleep(0.01)
    assert beat["name"] == "beat" and beat["expression"] == "every_1_minutes"
    assert beat["runs"] >= 8 and beat["last_fire_at"] > last and beat["next_fire_at"] > now
    assert "beat" in beater.RUNS
    await core.runtime.plugins.disable("beater")
    saved = json.loads(state.read_text())["schedules"]["beat"]
    assert saved["runs"] == beat["runs"]
    assert (await core.client.get("/plugins/beater/api/_host/schedules")).status_code == 503


async def test_a_bad_expression_fails_the_plugin_naming_it(start_core, tmp_path):
    root = scaffold_plugin("misdated", tmp_path)
    (root / "misdated" / "__init__.py").write_text(
        "from plexichat_desktop.plugins.api import Plugin\n\n\n"
        "class MisdatedPlugin(Plugin):\n"
        "    def setup(self, ctx):\n"
        "        async def work():\n            pass\n"
        "        ctx.schedule('every_tuesday', work, 'weekly report')\n")
    core = await start_core(tmp_path)
    rec = (await core.client.get("/api/plugins/misdated")).json()
    assert rec["state"] == "failed"
    assert "plugin 'misdated': schedule 'weekly report'" in rec["reason"]


async def test_the_listing_gives_utc_instants(tmp_path):
    clock = Clock("2026-05-04T10:00:00+00:00")
    sched = scheduler(tmp_path, clock)
    listed = sched.add("hourly", Work(), "x", timezone="UTC", start=False).to_dict()
    assert datetime.fromisoformat(listed["next_fire_iso"]) == datetime(2026, 5, 4, 11,
                                                                       tzinfo=UTC)
