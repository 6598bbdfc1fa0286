"""The default poll schedule keeps status calls within budget: at most 60 per batch-hour for a
10-minute batch (issue #14), whatever progress the provider reports between polls."""

from __future__ import annotations

import pytest

from polybatch.jobs.waiting import POLL_MAX, POLL_MIN, next_interval

BUDGET_PER_BATCH_HOUR = 60


def polls_until_collected(duration: float) -> tuple[int, float]:
    """Status calls for one batch of ``duration`` seconds under the default schedule (the
    create's own poll at t=0 included), and when the poll that sees it ended comes."""
    t, calls, interval = 0.0, 1, POLL_MIN  # the step that creates the batch polls it once
    changed = True  # a chunk was just submitted
    while True:
        interval = next_interval(interval, changed, POLL_MIN, POLL_MAX)
        changed = False  # the batch's own progress does not count as a change
        t += interval
        calls += 1
        if t >= duration:
            return calls, t


def test_a_ten_minute_batch_costs_at_most_60_status_calls_per_batch_hour() -> None:
    calls, seen_at = polls_until_collected(600)
    per_batch_hour = calls * 3600 / 600
    assert per_batch_hour <= BUDGET_PER_BATCH_HOUR, (calls, per_batch_hour)
    assert per_batch_hour == 48  # the figure the README states
    assert seen_at - 600 <= POLL_MAX


@pytest.mark.parametrize("hours", [1, 6, 24])
def test_long_batches_stay_within_budget_too(hours: int) -> None:
    calls, _ = polls_until_collected(hours * 3600)
    assert calls / hours <= BUDGET_PER_BATCH_HOUR


def test_a_state_change_looks_again_soon() -> None:
    assert next_interval(200.0, True, POLL_MIN, POLL_MAX) == POLL_MIN
    assert next_interval(200.0, False, POLL_MIN, POLL_MAX) == POLL_MAX
