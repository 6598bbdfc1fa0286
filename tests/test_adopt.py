"""The decision for a chunk whose create answer was lost (polybatch.jobs.adopt), case by case.

The provider here is a stand-in holding a listing and each ended batch's results: the decision is
pure logic over them. The same logic runs over HTTP on the sandbox in test_chaos.py,
test_faults.py (create timeouts) and test_large_jobs.py (SIGKILL right after the create).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from typing import Any

import pytest

from polybatch.items import BatchResult
from polybatch.jobs import adopt
from polybatch.providers import META_CHUNK, META_JOB, RecentBatch

META = {META_JOB: "pb-1", META_CHUNK: "3"}
MINE = {"q-6", "q-7"}


class Listing:
    """A provider's listing and the first result of each ended batch."""

    name = "stand-in"

    def __init__(self, batches: list[RecentBatch], first_ids: Mapping[str, str] = {}) -> None:
        self.batches, self.first_ids = batches, dict(first_ids)
        self.read: list[str] = []
        self.cancelled: list[str] = []

    async def alist_batches_since(self, since: float) -> list[RecentBatch] | None:
        return self.batches

    async def aresults(self, batch_id: str) -> AsyncIterator[BatchResult]:
        self.read.append(batch_id)
        yield BatchResult(custom_id=self.first_ids[batch_id], status="succeeded")

    async def acancel(self, batch_id: str) -> None:
        self.cancelled.append(batch_id)


def b(batch_id: str, t: float = 100.0, n: int | None = 2, **kw: Any) -> RecentBatch:
    return RecentBatch(batch_id=batch_id, created_at=t, request_count=n, **kw)


def decide(
    provider: Listing, *, claimed: frozenset[str] = frozenset(), rivals: int = 0, model: str = "m"
) -> adopt.Decision:
    return asyncio.run(
        adopt.decide(
            provider,  # type: ignore[arg-type]
            provider.batches,
            claimed=claimed,
            metadata=META,
            count=2,
            model=model,
            wire_ids=lambda: MINE,
            rivals=rivals,
        )
    )


def test_nothing_created_means_resubmit() -> None:
    assert decide(Listing([])).action == "resubmit"


def test_the_one_running_candidate_is_adopted_when_no_other_chunk_could_claim_it() -> None:
    assert decide(Listing([b("a")])) == adopt.Decision("adopt", "a")


def test_a_running_candidate_with_rivals_waits_until_results_tell() -> None:
    assert decide(Listing([b("a")]), rivals=1).action == "wait"
    assert decide(Listing([b("a"), b("b")])).action == "wait"


def test_ended_candidates_are_told_apart_by_their_first_result() -> None:
    provider = Listing([b("a", ended=True), b("b", ended=True)], {"a": "q-0", "b": "q-7"})
    assert decide(provider, rivals=3) == adopt.Decision("adopt", "b")
    assert provider.read == ["a", "b"]


def test_several_proven_batches_adopt_the_oldest_and_the_rest_are_orphans() -> None:
    provider = Listing(
        [b("new", t=120, ended=True), b("old", t=110, ended=True)], {"new": "q-6", "old": "q-7"}
    )
    assert decide(provider) == adopt.Decision("adopt", "old", orphans=["new"])


def test_ended_candidates_that_are_someone_elses_mean_resubmit() -> None:
    provider = Listing([b("a", ended=True)], {"a": "q-0"})
    assert decide(provider).action == "resubmit"


def test_claimed_batches_other_counts_and_other_models_are_no_candidates() -> None:
    assert decide(Listing([b("a")]), claimed=frozenset({"a"})).action == "resubmit"
    assert decide(Listing([b("a", n=3)])).action == "resubmit"
    assert decide(Listing([b("a", model="other")])).action == "resubmit"
    assert decide(Listing([b("a", model="m")])).action == "adopt"


def test_batches_named_by_metadata_match_exactly_and_nothing_else_counts() -> None:
    named = Listing(
        [
            b("x", t=130, metadata={}),  # not polybatch's
            b("y", t=120, metadata={**META, META_CHUNK: "4"}),
            b("late", t=115, metadata=dict(META)),
            b("first", t=105, metadata=dict(META)),
        ]
    )
    assert decide(named, rivals=5) == adopt.Decision("adopt", "first", orphans=["late"])
    assert named.read == []  # names need no results
    other = Listing([b("y", metadata={**META, META_CHUNK: "4"}), b("z", metadata={})])
    assert decide(other).action == "resubmit"  # the same count is no match where names exist


def test_orphans_are_cancelled_and_said_so(caplog: pytest.LogCaptureFixture) -> None:
    provider = Listing([])
    asyncio.run(adopt.cancel_orphans(provider, "pb-1", 3, ["o1", "o2"]))  # type: ignore[arg-type]
    assert provider.cancelled == ["o1", "o2"]
    assert "batch o1 duplicated the chunk's batch" in caplog.text


def find_lost(provider: Listing, since: float | None) -> adopt.Decision | None:
    return asyncio.run(
        adopt.find_lost(
            provider,  # type: ignore[arg-type]
            since=since,
            claimed=lambda ids: set(),
            metadata=META,
            count=2,
            model="m",
            wire_ids=lambda: MINE,
            rivals=0,
        )
    )


def test_the_window_starts_at_the_first_create_attempt_less_the_clock_skew() -> None:
    skew = adopt.CLOCK_SKEW_SECONDS
    provider = Listing([b("too-old", t=1000 - skew - 1), b("in", t=1000 - skew + 1)])
    assert find_lost(provider, 1000.0) == adopt.Decision("adopt", "in")


def test_a_provider_that_cannot_list_gets_no_decision() -> None:
    class Unlisted(Listing):
        async def alist_batches_since(self, since: float) -> list[RecentBatch] | None:
            return None

    assert find_lost(Unlisted([]), 0.0) is None
