"""Thresholds and alerts: a pure state machine fed with values, no psutil, no clock.

An alert on a metric starts when the value is above its threshold for ``sustain``
consecutive samples, and ends when it is at or below the threshold for ``sustain``
consecutive samples. Debouncing both edges keeps a single spike from alerting and a
single dip from ending an alert, so a metric hovering near its threshold does not flap.
"""

from __future__ import annotations

import itertools
import json
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from performance_monitor.metrics import METRIC_LABELS

METRICS = tuple(METRIC_LABELS)
RECENT_ALERTS = 100


class Thresholds(BaseModel):
    """Alert thresholds in percent; a value above its threshold counts as a crossing.

    A threshold of 100 therefore never alerts, which is how to switch one metric off.
    """

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    cpu: float = Field(80.0, gt=0, le=100)
    memory: float = Field(85.0, gt=0, le=100)
    disk: float = Field(90.0, gt=0, le=100)
    swap: float = Field(80.0, gt=0, le=100)


class ThresholdsUpdate(BaseModel):
    """The body of ``PUT /thresholds``: any subset of the thresholds to change."""

    model_config = ConfigDict(extra="forbid", strict=True)

    cpu: float | None = Field(None, gt=0, le=100)
    memory: float | None = Field(None, gt=0, le=100)
    disk: float | None = Field(None, gt=0, le=100)
    swap: float | None = Field(None, gt=0, le=100)


class ThresholdError(ValueError):
    """A rejected thresholds update; ``errors`` maps each bad field to a message that
    names it (the message is shown next to the field, and joined as the text)."""

    def __init__(self, errors: dict[str, str]):
        self.errors = errors
        super().__init__("; ".join(errors.values()))


def parse_thresholds_update(body: bytes | str | Mapping[str, Any], current: Thresholds
                            ) -> Thresholds:
    """Apply a JSON update to ``current``; raises :class:`ThresholdError` naming each field.

    Messages are rewritten from pydantic's ("Input should be greater than 0") into ones
    that name the field and the allowed range, because the page shows them next to the
    field and other clients show them as they are.
    """
    try:
        if isinstance(body, Mapping):
            update = ThresholdsUpdate.model_validate(dict(body))
        else:
            data = json.loads(body or b"null")
            if not isinstance(data, dict):
                raise ThresholdError({"body": "body must be a JSON object such as {\"cpu\": 75}"})
            update = ThresholdsUpdate.model_validate(data)
        given = dict(body) if isinstance(body, Mapping) else data
        nulls = [name for name, value in given.items() if value is None and name in METRICS]
        if nulls:  # a null was taken as "not given" and the field silently kept
            raise ThresholdError({name: f"{name} must be a number greater than 0 and at "
                                        "most 100, got null" for name in nulls})
    except json.JSONDecodeError as exc:
        raise ThresholdError({"body": f"body is not valid JSON ({exc.msg})"}) from None
    except ValidationError as exc:
        errors: dict[str, str] = {}
        for error in exc.errors():
            name = str(error["loc"][0]) if error["loc"] else "body"
            if error["type"] == "extra_forbidden":
                errors[name] = f"{name} is not a threshold; use {', '.join(METRICS)}"
            else:
                errors[name] = (f"{name} must be a number greater than 0 and at most 100, "
                                f"got {json.dumps(error.get('input'))}")
        raise ThresholdError(errors) from None
    changes = update.model_dump(exclude_none=True)
    if not changes:
        raise ThresholdError({"body": f"body must give at least one of {', '.join(METRICS)}"})
    return current.model_copy(update=changes)


@dataclass
class Alert:
    """One alert: when it started and ended, and how high the metric went."""

    id: int
    metric: str
    threshold: float
    started_at: float
    peak: float
    peak_at: float
    last_value: float
    ended_at: float | None = None
    suggestions: list[str] = field(default_factory=list)
    # The threshold it ends under when the thresholds changed while it was active (the
    # one it crossed stays in ``threshold``: rewriting it gave "Disk > 100 %, peak 45 %").
    judged_by: float | None = None

    @property
    def ends_under(self) -> float:
        """The threshold the metric must stay under for the alert to end."""
        return self.threshold if self.judged_by is None else self.judged_by

    @property
    def active(self) -> bool:
        """True until the metric has been back under the threshold long enough."""
        return self.ended_at is None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, with the metric's display label."""
        return {
            "id": self.id, "metric": self.metric, "label": METRIC_LABELS.get(self.metric,
                                                                              self.metric),
            "threshold": self.threshold, "judged_by": self.ends_under,
            "started_at": self.started_at,
            "ended_at": self.ended_at, "active": self.active, "peak": self.peak,
            "peak_at": self.peak_at, "last_value": self.last_value,
            "suggestions": list(self.suggestions),
        }


@dataclass(frozen=True)
class AlertChange:
    """An alert that started or ended with the sample just fed."""

    kind: Literal["start", "end"]
    alert: Alert


@dataclass
class _Run:
    """A metric's streak of samples on one side of its threshold."""

    over: int = 0
    over_start: float = 0.0
    peak: float = 0.0
    peak_at: float = 0.0
    under: int = 0
    under_start: float = 0.0
    alert: Alert | None = None


class AlertMonitor:
    """Turns a stream of metric values into alerts; keeps the last :data:`RECENT_ALERTS`.

    Feed it with :meth:`update` once per sample. It never reads the clock or the system:
    the timestamps come with the values, so tests drive it sample by sample.
    """

    def __init__(self, thresholds: Thresholds | None = None, sustain_samples: int = 3,
                 keep: int = RECENT_ALERTS):
        if sustain_samples < 1:
            raise ValueError(f"sustain_samples must be at least 1, got {sustain_samples}")
        self._runs = {metric: _Run() for metric in METRICS}
        self.thresholds = thresholds or Thresholds()
        self.sustain = sustain_samples
        self._alerts: deque[Alert] = deque(maxlen=keep)
        self._ids = itertools.count(1)

    @property
    def thresholds(self) -> Thresholds:
        """The thresholds; set new ones (``PUT /thresholds``) and an active alert is
        judged by the new one from then on (it ends once under it long enough), keeping
        the one it crossed as its ``threshold``."""
        return self._thresholds

    @thresholds.setter
    def thresholds(self, value: Thresholds) -> None:
        self._thresholds = value
        for run in self._runs.values():
            if run.alert is not None:
                now = getattr(value, run.alert.metric)
                run.alert.judged_by = None if now == run.alert.threshold else now

    def update(self, values: Mapping[str, float | None], timestamp: float
               ) -> list[AlertChange]:
        """Take one sample's values; returns the alerts that started or ended with it.

        Metrics missing from ``values`` or given as ``None`` are skipped and keep their
        state: a reading that is unknown says nothing either way.
        """
        changes: list[AlertChange] = []
        for metric in METRICS:
            value = values.get(metric)
            if value is None:
                continue
            change = self._update_one(metric, float(value), timestamp)
            if change is not None:
                changes.append(change)
        return changes

    def _update_one(self, metric: str, value: float, ts: float) -> AlertChange | None:
        run = self._runs[metric]
        threshold = getattr(self.thresholds, metric)
        alert = run.alert
        if value > threshold:
            run.under = 0
            if alert is not None:
                alert.last_value = value
                if value > alert.peak:
                    alert.peak, alert.peak_at = value, ts
                return None
            if run.over == 0 or value > run.peak:
                run.peak, run.peak_at = value, ts
            if run.over == 0:
                run.over_start = ts
            run.over += 1
            if run.over < self.sustain:
                return None
            alert = Alert(id=next(self._ids), metric=metric, threshold=threshold,
                          started_at=run.over_start, peak=run.peak, peak_at=run.peak_at,
                          last_value=value)
            run.alert = alert
            self._alerts.append(alert)
            return AlertChange("start", alert)
        run.over = 0
        if alert is None:
            return None
        alert.last_value = value
        if run.under == 0:
            run.under_start = ts
        run.under += 1
        if run.under < self.sustain:
            return None
        # The alert ends when the metric went back under, not when we became sure of it.
        alert.ended_at = run.under_start
        self._runs[metric] = _Run()
        return AlertChange("end", alert)

    def pending(self) -> dict[str, int]:
        """Metrics above their threshold but not yet for long enough: samples so far."""
        return {metric: run.over for metric, run in self._runs.items()
                if run.alert is None and run.over > 0}

    @property
    def active(self) -> list[Alert]:
        """Alerts that have not ended, oldest first."""
        alerts = [run.alert for run in self._runs.values() if run.alert is not None]
        return sorted(alerts, key=lambda alert: alert.started_at)

    @property
    def recent(self) -> list[Alert]:
        """Ended alerts still remembered, newest first."""
        return [alert for alert in reversed(self._alerts) if not alert.active]

    @property
    def all(self) -> list[Alert]:
        """Every remembered alert (at most ``keep``), newest first."""
        return list(reversed(self._alerts))
