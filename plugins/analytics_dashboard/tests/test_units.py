"""The statistics, the KPI cards, the exports and the alert state machine on their own."""

from __future__ import annotations

import csv
import io
import time

import pytest
from analytics_dashboard import stats
from analytics_dashboard.automation import (
    AutomationStore,
    RuleIn,
    SubscriptionIn,
    new_state,
    next_run,
    step,
)
from analytics_dashboard.exports import escape_cell, to_csv, to_pdf
from analytics_dashboard.metrics import card
from pydantic import ValidationError

DATES = [f"2026-10-{d:02d}" for d in range(1, 32)]


def test_percent_change_with_no_base_is_none_not_an_error():
    assert stats.percent_change(10, 0) is None
    assert stats.percent_change(0, 0) is None
    assert stats.percent_change(15, 10) == pytest.approx(0.5)
    assert stats.percent_change(5, 10) == pytest.approx(-0.5)


def test_moving_average_and_slope():
    assert stats.moving_average([1, 2, 3, 4, 5], 3) == [None, None, 2.0, 3.0, 4.0]
    assert stats.slope([3, 5, 7, 9]) == pytest.approx(2.0)
    assert stats.slope([4]) == 0.0


def test_an_injected_spike_is_flagged_and_explained():
    values = [20.0, 22, 19, 21, 20, 23, 18, 21, 20, 22, 19, 21, 20, 22, 95, 21, 20]
    found = stats.anomalies(DATES[:len(values)], values, label="messages")
    assert [a.date for a in found] == ["2026-10-15"]
    spike = found[0]
    assert spike.direction == "up" and spike.value == 95 and spike.baseline == 20.5
    assert spike.z > 3.5
    # the sentence gives the day, the value, the usual level and the reason
    assert "Thu 15 Oct 2026: 95 messages" in spike.explanation
    assert "4.6 times the usual 20.5" in spike.explanation
    assert "previous 14 days" in spike.explanation and "±3.5" in spike.explanation


def test_a_flat_or_gently_noisy_series_is_not_flagged():
    assert stats.anomalies(DATES, [5.0] * 31) == []
    assert stats.anomalies(DATES, [0.0] * 31) == []
    wiggle = [10.0 + (i % 3) for i in range(31)]
    assert stats.anomalies(DATES, wiggle) == []


def test_one_of_a_unit_is_singular():
    assert [stats.amount(n, u) for n, u in ((1, "files"), (1, "searches"),
                                            (1, "failed deliveries"), (2, "files"),
                                            (1.5, "active users"))] == \
        ["1 file", "1 search", "1 failed delivery", "2 files", "1.5 active users"]


def test_the_days_before_anything_happened_are_no_history():
    """Audit: a new community's first two weeks were each flagged as a spike against
    the zero-filled days before its first message ("usual 0")."""
    values = [0.0] * 30 + [19, 21, 18, 20, 22, 19, 20, 21, 18, 20, 19, 22, 21, 20, 19]
    dates = [f"d{i}" for i in range(len(values))]
    assert stats.anomalies(dates, values) == []
    values[-1] = 90.0  # a real spike once there is history is still found
    assert [a.date for a in stats.anomalies(dates, values)] == [dates[-1]]


def test_a_drop_is_flagged_only_when_drops_are_asked_for():
    values = [50.0] * 20 + [48, 52, 51, 49, 50, 2, 50]
    dates = DATES[:len(values)]
    drops = stats.anomalies(dates, values, direction="down")
    assert [a.date for a in drops] == ["2026-10-26"]
    assert "96 % below the usual 50" in drops[0].explanation
    assert stats.anomalies(dates, values, direction="up") == []


def test_one_spike_does_not_hide_the_next():
    values = [10.0] * 10 + [80] + [10.0] * 5 + [75] + [10.0] * 3
    found = stats.anomalies(DATES[:len(values)], values)
    assert [a.value for a in found] == [80, 75]


def test_holt_forecast_follows_a_trend_with_a_widening_band():
    values = [10.0 + 2 * i for i in range(30)]
    forecast = stats.holt_forecast(values, 5)
    assert forecast.values[0] == pytest.approx(70, abs=1.0)
    assert forecast.values[4] == pytest.approx(78, abs=2.0)
    noisy = [10.0 + 2 * i + (3 if i % 2 else -3) for i in range(30)]
    band = stats.holt_forecast(noisy, 10)
    widths = [u - lo for u, lo in zip(band.upper, band.lower, strict=True)]
    assert widths[0] > 0 and widths[-1] > widths[0]
    assert all(lo <= v <= u for lo, v, u in zip(band.lower, band.values, band.upper,
                                                 strict=True))
    falling = stats.holt_forecast([30.0 - 3 * i for i in range(10)], 10)
    assert min(falling.lower) == 0.0  # counts are never forecast below zero
    with pytest.raises(ValueError, match="at least 4 days"):
        stats.holt_forecast([1.0, 2.0], 3)


def test_kpi_cards_compare_with_the_previous_period():
    usage = {"users": {"active": 12, "new": 3}, "messages": {"in_period": 150},
             "logins": {"successful": 40, "failed": 6}, "searches": {"in_period": 0},
             "files": {"in_period": 9}, "webhooks": {"delivered": 18, "failed": 2},
             "previous": {"users": {"active": 8, "new": 0}, "messages": {"in_period": 100},
                          "logins": {"successful": 40, "failed": 2},
                          "searches": {"in_period": 0}, "files": {"in_period": 9},
                          "webhooks": {"delivered": 0, "failed": 0}}}
    active = card("active_users", usage)
    assert (active["value"], active["previous"], active["change"]) == (12, 8, 0.5)
    assert active["change_text"] == "+50 %" and active["good"] is True
    new = card("new_users", usage)
    assert new["change"] is None and new["change_text"] == "n/a"
    assert "nothing in the previous period" in new["why"]
    failed = card("failed_logins", usage)
    assert failed["change_text"] == "+200 %" and failed["good"] is False
    assert card("logins", usage)["trend"] == "flat"
    rate = card("webhook_delivery_rate", usage)
    assert rate["value"] == 90.0 and rate["value_text"] == "90.0 %"
    assert rate["change"] is None and "previous period" in rate["why"]


@pytest.mark.parametrize("cell", ["=1+2", "+41", "-2+3", "@SUM(A1)", "\tx", "\rx",
                                  "=HYPERLINK(\"http://x\")"])
def test_csv_formula_injection_is_escaped(cell):
    text = to_csv(["name", "n"], [[cell, 1]])
    row = list(csv.reader(io.StringIO(text)))[1]
    assert row[0] == "'" + cell and row[1] == "1"


def test_csv_keeps_numbers_and_plain_text():
    assert escape_cell(-5) == -5 and escape_cell(3.5) == 3.5 and escape_cell(None) is None
    assert escape_cell("ann") == "ann" and escape_cell("a=b") == "a=b"
    rows = list(csv.reader(io.StringIO(to_csv(["d", "n"], [["2026-12-01", -3]]))))
    assert rows == [["d", "n"], ["2026-12-01", "-3"]]


def test_pdf_has_the_title_table_and_any_name():
    pdf = to_pdf("Top users", "Last 30 days", ["username", "messages_sent"],
                 [["łukasz", 12], ["-x", 3]], {"users": 2})
    assert pdf.startswith(b"%PDF-") and pdf.rstrip().endswith(b"%%EOF")
    assert b"/Title" in pdf and len(pdf) > 2000
    empty = to_pdf("Files", "Last 7 days", ["file_type", "count"], [], {})
    assert empty.startswith(b"%PDF-")


def test_alert_fires_once_resolves_and_cooldown_holds():
    record = {"cooldown_minutes": 60, "state": new_state()}
    t0 = 1_000_000.0
    first = step(record, True, t0)
    assert (first.event, first.send) == ("fired", True)
    assert step(record, True, t0 + 60).event is None          # still breached: silent
    resolved = step(record, False, t0 + 120)
    assert (resolved.event, resolved.send) == ("resolved", True)
    assert step(record, False, t0 + 180).event is None
    again = step(record, True, t0 + 600)                       # within the hour
    assert (again.event, again.send) == ("fired", False) and "cooling down" in again.note
    quiet = step(record, False, t0 + 700)                      # its fire was not sent
    assert (quiet.event, quiet.send) == ("resolved", False)
    later = step(record, True, t0 + 3700)                      # after the cooldown
    assert (later.event, later.send) == ("fired", True)


def test_rule_and_subscription_validation_names_the_field():
    with pytest.raises(ValidationError, match="value: a threshold rule needs a value"):
        RuleIn(name="x", metric="messages", kind="threshold")
    with pytest.raises(ValidationError, match="metric: webhook_delivery_rate has no daily"):
        RuleIn(name="x", metric="webhook_delivery_rate", kind="anomaly")
    with pytest.raises(ValidationError, match="webhook_url: the webhook channel needs"):
        RuleIn(name="x", metric="messages", value=3, channel="webhook")
    with pytest.raises(ValidationError, match="webhook_url: must be an absolute"):
        RuleIn(name="x", metric="messages", value=3, channel="webhook",
               webhook_url="ftp://example.org/")
    with pytest.raises(ValidationError, match="window_days"):
        RuleIn(name="x", metric="messages", value=3, window_days=366)
    with pytest.raises(ValidationError) as info:
        SubscriptionIn(name="x", report="activity", schedule="every tuesday")
    assert info.value.errors()[0]["loc"] == ("schedule",)
    rule = RuleIn(name="Many failures", metric="failed_logins", value=20)
    assert rule.describe() == "failed logins over today (UTC) > 20"


def test_next_run_is_after_now():
    now = time.time()
    assert now < next_run("every_6_hours", now) <= now + 6 * 3600
    assert now < next_run("daily", now) <= now + 86400 + 3600


def test_quiet_weekends_are_not_anomalies_but_a_quiet_weekday_is():
    # five busy weekdays and two quiet weekend days, for eight weeks; judged from the
    # fourth week on (the dashboard fetches four weeks before the period for this)
    week = [120.0, 118, 125, 122, 119, 50, 45]
    values = week * 8
    dates = [f"d{i}" for i in range(len(values))]
    assert stats.anomalies(dates, values, start=21) == []
    without_weekly = stats.anomalies(dates, values, start=21, weekly=False)
    assert without_weekly and all(a.direction == "down" for a in without_weekly)
    values[-4] = 48.0  # a Thursday as quiet as a Sunday
    found = stats.anomalies(dates, values, start=21)
    assert [a.date for a in found] == [dates[-4]]
    assert "The previous 7 same weekdays agree: usually 122." in found[0].explanation


def test_an_unreadable_rules_file_is_kept_and_said(tmp_path):
    """The rules file that cannot be read is moved aside and the store starts empty, its
    event log naming where the file went; a second bad file in the same second no longer
    replaces the first one kept."""
    path = tmp_path / "automation.json"
    said = []
    for text in ("{not json", "[1, 2"):
        path.write_text(text)
        store = AutomationStore(path)
        assert store.rules == {} and store.subscriptions == {}
        said.append(store.events[-1]["message"])
    kept = sorted(tmp_path.glob("automation.json.broken-*"))
    assert sorted(p.read_text() for p in kept) == ["[1, 2", "{not json"]
    assert all(any(p.name in message for p in kept) for message in said), said
