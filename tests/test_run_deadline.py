"""The one run-deadline helper (collectors/run_deadline.py): timeouts cut to the time left, and which
cancels end the run. No database: the decisions depend on the clock and the exception only."""

from __future__ import annotations

import time

import psycopg
import pytest

from collectors.recall_budget import PROBE_MIN_STATEMENT_SECONDS, BudgetExhausted
from collectors.run_deadline import MIN_STATEMENT_SECONDS, RunDeadline, RunTimeExhausted


def test_a_statement_gets_its_own_timeout_while_the_run_has_more_time():
    deadline = RunDeadline(60.0)
    assert deadline.statement_timeout(2.0) == "2000ms"
    # its own timeout is its failure, not the end of the run
    assert not deadline.ends_run(psycopg.errors.QueryCanceled("canceling statement due to statement timeout"))
    assert not deadline.spent_by(psycopg.errors.QueryCanceled())


def test_a_timeout_cut_to_the_time_left_ends_the_run_when_it_fires():
    deadline = RunDeadline(5.0)
    timeout = deadline.statement_timeout(30.0)  # more than the run has left: cut
    assert 4000 <= int(timeout.removesuffix("ms")) <= 5000, timeout
    assert deadline.ends_run(psycopg.errors.QueryCanceled())
    assert not deadline.ends_run(psycopg.errors.SyntaxError())  # only a cancel ends the run
    assert not deadline.spent_by(psycopg.errors.QueryCanceled())  # time is still left


def test_no_statement_starts_once_the_time_is_spent():
    started = time.monotonic() - 10.0
    deadline = RunDeadline(10.0 + MIN_STATEMENT_SECONDS / 2, started)
    assert deadline.spent()
    with pytest.raises(RunTimeExhausted, match=r"the run's time \(10.025s\) is spent") as raised:
        deadline.statement_timeout(1.0)
    assert isinstance(raised.value, psycopg.errors.QueryCanceled)  # reported as the run's timeout
    assert deadline.ends_run(raised.value) and deadline.spent_by(psycopg.errors.QueryCanceled())


def test_the_recall_probe_stops_work_early_and_raises_its_own_exhaustion():
    deadline = RunDeadline(30.0, work_seconds=0.1, min_statement=PROBE_MIN_STATEMENT_SECONDS,
                           exhausted=BudgetExhausted)
    assert deadline.end - deadline.deadline > 29.0  # the rest of the run's time finishes what runs
    with pytest.raises(BudgetExhausted):
        deadline.statement_timeout(5.0)  # 0.1 s left is less than the 0.2 s a probe statement needs
