"""What probes and polled cost APIs spent, per source and UTC day (budgets read it).

Its own module so that every process can hold one (``monitor.shared.SharedState``) without
importing the provider clients: they are loaded only when endpoints or cost APIs are configured.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from datetime import date


class SpendLedger:
    """USD per (source, UTC day), thread-safe."""

    KEEP_DAYS = 62

    def __init__(self) -> None:
        self._days: dict[str, dict[date, float]] = {}
        self._lock = threading.Lock()

    def _prune(self, days: dict[date, float], today: date) -> None:
        for day in [d for d in days if (today - d).days > self.KEEP_DAYS]:
            del days[day]

    def add(self, source: str, usd: float, day: date) -> None:
        with self._lock:
            days = self._days.setdefault(source, {})
            days[day] = days.get(day, 0.0) + usd
            self._prune(days, day)

    def replace(self, source: str, since: date, days: dict[date, float], today: date) -> None:
        """Replace every day from ``since`` on with ``days`` (a restating poll)."""
        with self._lock:
            current = self._days.setdefault(source, {})
            for day in [d for d in current if d >= since]:
                del current[day]
            current.update(days)
            self._prune(current, today)

    def known(self, source: str) -> bool:
        with self._lock:
            return source in self._days

    def spend(self, sources: Iterable[str], today: date) -> dict[str, float]:
        """{"day": spend today, "month": spend this month} over ``sources``."""
        month_start = today.replace(day=1)
        out = {"day": 0.0, "month": 0.0}
        with self._lock:
            for source in sources:
                for day, usd in self._days.get(source, {}).items():
                    if day == today:
                        out["day"] += usd
                    if month_start <= day <= today:
                        out["month"] += usd
        return out
