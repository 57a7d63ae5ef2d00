"""An SLI's history for the SLO rule tests, and the burn alerts the rules must give on it.

A :class:`History` is an error ratio per SLI update, sampled every minute as Prometheus scrapes it:
the SLI's counters (or probe gauge) change only once per SLI interval (10m for the recall probe),
so a window shorter than the interval has no events half the time, as in production.
:func:`expected_burns` replays the rules' logic on it (the windows' ratios, the minimum-events
guard, ``for`` and ``keep_firing_for``) minute by minute, so every expected alert list is computed,
never hard-coded.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from alerts.slo import SLORules, min_events

MINUTE = 60
EVENTS_PER_UPDATE = 10000  # events per SLI update: exact ratios of up to 4 decimals

Ratio = Callable[[int], float | None]  # update minute -> error ratio of that update (None: no update)


@dataclass
class History:
    """An SLI history sampled every minute for ``minutes`` minutes.

    ``step``: minutes between SLI updates; update k (k >= 1) happens at minute k*step with error ratio
    ``ratio(k*step)`` and ``events(k*step)`` events. ``present(m)``: the series exist at minute m.
    """

    step: int
    minutes: int
    ratio: Ratio
    events: Callable[[int], int] = lambda m: EVENTS_PER_UPDATE
    present: Callable[[int], bool] = lambda m: True
    probe: bool = False

    def ratio_at(self, m: int) -> float:
        """The error ratio of the update at minute ``m`` (one of :attr:`updates`)."""
        ratio = self.ratio(m)
        assert ratio is not None, m
        return ratio

    @cached_property
    def updates(self) -> list[int]:
        return [m for m in range(self.step, self.minutes + 1, self.step) if self.ratio(m) is not None]

    @cached_property
    def mask(self) -> list[bool]:
        return [self.present(m) for m in range(self.minutes + 1)]

    @cached_property
    def _present_before(self) -> list[int]:
        """Minutes with series before each minute: ``[k]`` counts minutes ``0 .. k-1``."""
        prefix = [0]
        for ok in self.mask:
            prefix.append(prefix[-1] + ok)
        return prefix

    @cached_property
    def counters(self) -> tuple[list[float], list[float]]:
        """Cumulative (all events, bad events) per minute (counter SLIs)."""
        total, bad = [0.0] * (self.minutes + 1), [0.0] * (self.minutes + 1)
        updates = set(self.updates)
        t = b = 0.0
        for m in range(self.minutes + 1):
            if m in updates:
                n = self.events(m)
                t += n
                b += round(self.ratio_at(m) * n)
            total[m], bad[m] = t, b
        return total, bad

    @cached_property
    def gauge(self) -> list[float]:
        """Probe gauge: good fraction of the latest update (the first one's before it)."""
        updates = set(self.updates)
        values, current = [], (1 - self.ratio_at(min(updates))) if updates else 1.0
        for m in range(self.minutes + 1):
            if m in updates:
                current = 1 - self.ratio_at(m)
            values.append(current)
        return values

    @cached_property
    def _gauge_before(self) -> list[float]:
        """Sum of the present gauge samples before each minute."""
        acc = [0.0]
        for value, ok in zip(self.gauge, self.mask, strict=True):
            acc.append(acc[-1] + (value if ok else 0.0))
        return acc

    def window(self, t: int, w: int) -> tuple[float | None, float]:
        """(error ratio, events) over ``[t-w, t]`` as the rules compute them (None: no ratio)."""
        start = max(0, t - w)
        mask, prefix = self.mask, self._present_before
        count = prefix[t + 1] - prefix[start]
        if self.probe:
            if not count:
                return None, 0.0
            acc = self._gauge_before
            return 1 - (acc[t + 1] - acc[start]) / count, float(count)
        if count < 2:
            return None, 0.0
        total, bad = self.counters
        first = next(m for m in range(start, t + 1) if mask[m])
        last = next(m for m in range(t, start - 1, -1) if mask[m])
        dt, db = total[last] - total[first], bad[last] - bad[first]
        if dt <= 0:
            return None, 0.0
        return db / dt, dt


def expected_burns(rules: SLORules, history: History, times: list[int]) -> dict[int, list[tuple[Any, float]]]:
    """Minute -> [(burn alert, $value)] firing at that minute: each window's condition replayed every
    minute with ``for`` (pending first) and ``keep_firing_for`` (firing holds after the condition ends)."""
    out: dict[int, list[tuple[Any, float]]] = {t: [] for t in times}
    end = max(times)
    for burn in rules.burn_alerts:
        minimum = min_events(rules.slo, burn.factor * rules.slo.error_budget)
        long, short = int(burn.window.long // MINUTE), int(burn.window.short // MINUTE)
        for_, keep = burn.for_ / MINUTE, burn.keep_firing_for / MINUTE
        active_at: int | None = None
        firing_false_since: int | None = None
        firing, value = False, 0.0
        for t in range(end + 1):
            ratio_long, events = history.window(t, long)
            ratio_short, _ = history.window(t, short)
            holds = (ratio_long is not None and ratio_short is not None and ratio_long > burn.threshold
                     and ratio_short > burn.threshold and (not minimum or events >= minimum))
            if holds and ratio_long is not None:
                value = ratio_long
                firing_false_since = None
                if active_at is None:
                    active_at = t
                if t - active_at >= for_:
                    firing = True
            elif firing and keep:
                if firing_false_since is None:
                    firing_false_since = t
                if t - firing_false_since >= keep:
                    firing, active_at, firing_false_since = False, None, None
            else:
                firing, active_at, firing_false_since = False, None, None
            if t in out and firing:
                out[t].append((burn, value))
    return out
