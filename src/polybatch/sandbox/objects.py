"""The sandbox's stored objects: files, batches (whose lifecycle is a pure function of time) and
the clock they are read against."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..providers import BatchState


class Clock:
    """Wall-clock time plus an offset tests can move forward; frozen, only the offset moves.

    A test that counts how many requests have run at a given moment freezes the clock, so that a
    slow machine (the time between two of the test's calls) cannot run one more.
    """

    def __init__(self) -> None:
        self.offset = 0.0
        self._frozen_at: float | None = None

    def now(self) -> float:
        """Seconds since the epoch, as the sandbox sees them."""
        base = time.time() if self._frozen_at is None else self._frozen_at
        return base + self.offset

    def advance(self, seconds: float) -> None:
        """Move the sandbox's time forward."""
        self.offset += seconds

    def freeze(self) -> None:
        """Stop following wall time: from now on only :meth:`advance` moves the clock."""
        if self._frozen_at is None:
            self._frozen_at = time.time()


@dataclass
class SandboxFile:
    """An uploaded or generated file."""

    id: str
    namespace: str
    data: bytes
    filename: str
    purpose: str
    created_at: int
    expires_at: int | None = None
    #: set on batch output files: what download faults are keyed on (ids are random, this is not)
    fault_key: tuple[Any, ...] | None = None


@dataclass
class SandboxBatch:
    """One provider batch. ``requests`` are provider-parsed payloads, opaque to the engine."""

    id: str
    namespace: str
    requests: list[Any]
    handler: Callable[[Any], Any]
    created_at: float
    started_at: float
    rate: float | None
    expires_at: float
    metadata: dict[str, str] = field(default_factory=dict)
    #: provider-specific fields (endpoint, input file id, ...)
    extra: dict[str, Any] = field(default_factory=dict)
    #: set when the batch failed validation as a whole
    errors: list[dict[str, Any]] | None = None
    cancel_requested_at: float | None = None
    cancel_seconds: float = 0.0
    finalize_seconds: float = 0.0
    deleted: bool = False
    _outcomes: dict[int, Any] = field(default_factory=dict)
    #: what the provider routes computed once at the end (output files, ...)
    output: dict[str, Any] | None = None
    #: n-th batch of its namespace (from 1): batch faults are keyed on it, not on the random id
    serial: int = 0
    #: injected batch-level faults (see :mod:`polybatch.sandbox.faults`)
    faults: set[str] = field(default_factory=set)
    #: requests run before an injected expiry or outside cancel stopped the batch
    stop_after: int | None = None
    #: what the batch holds of its model's queue (see :mod:`polybatch.sandbox.queue`)
    queue_model: str | None = None
    queue_tokens: int = 0

    # -- time ------------------------------------------------------------------------------
    def _done_processing_at(self) -> float:
        if self.stop_after is not None:
            # stalled after stop_after requests: only the (injected) expiry or cancel ends it
            return math.inf
        if not self.rate:
            return self.started_at
        return self.started_at + len(self.requests) / self.rate

    def processed(self, now: float) -> int:
        """How many requests have been run by ``now`` (frozen at cancel or expiry)."""
        stop = now
        if self.cancel_requested_at is not None:
            stop = min(stop, self.cancel_requested_at)
        stop = min(stop, self.expires_at)
        if self.errors is not None or stop < self.started_at:
            return 0
        cap = len(self.requests) if self.stop_after is None else self.stop_after
        if not self.rate:
            return cap
        return min(cap, math.floor((stop - self.started_at) * self.rate + 1e-9))

    def state(self, now: float) -> BatchState:
        """The neutral (OpenAI-style) state names; other providers map them onto their own."""
        if self.errors is not None:
            return "validating" if now < self.started_at else "failed"
        if now < self.started_at and self.cancel_requested_at is None:
            return "validating"
        done_at = self._done_processing_at()
        if self.cancel_requested_at is not None and self.cancel_requested_at < done_at:
            return "cancelled" if now >= self.cancelled_at() else "cancelling"
        if done_at >= self.expires_at:
            return "expired" if now >= self.expires_at else "in_progress"
        if now < done_at:
            return "in_progress"
        if now < done_at + self.finalize_seconds:
            return "finalizing"
        return "completed"

    def timestamps(self, now: float) -> dict[str, float | None]:
        """When each state was entered (None if not yet)."""
        state = self.state(now)
        done_at = self._done_processing_at()
        ts: dict[str, float | None] = {
            "in_progress_at": self.started_at
            if now >= self.started_at and self.errors is None
            else None,
            "finalizing_at": None,
            "completed_at": None,
            "failed_at": self.started_at if state == "failed" else None,
            "expired_at": self.expires_at if state == "expired" else None,
            "cancelling_at": self.cancel_requested_at,
            "cancelled_at": self.cancelled_at() if state == "cancelled" else None,
        }
        if state in ("finalizing", "completed"):
            ts["finalizing_at"] = done_at
        if state == "completed":
            ts["completed_at"] = done_at + self.finalize_seconds
        if ts["in_progress_at"] is not None and ts["cancelling_at"] is not None:
            ts["in_progress_at"] = min(ts["in_progress_at"], ts["cancelling_at"])
        return ts

    def cancelled_at(self) -> float:
        """When a cancel request turns into the cancelled state."""
        assert self.cancel_requested_at is not None
        return self.cancel_requested_at + self.cancel_seconds

    def ended_at(self, now: float) -> float | None:
        """When the batch reached a terminal state, or None."""
        ts = self.timestamps(now)
        for key in ("completed_at", "failed_at", "expired_at", "cancelled_at"):
            if ts[key] is not None:
                return ts[key]
        return None

    # -- results ---------------------------------------------------------------------------
    def outcome(self, index: int) -> Any:
        """The handler's (cached) outcome for request ``index``."""
        if index not in self._outcomes:
            self._outcomes[index] = self.handler(self.requests[index])
        return self._outcomes[index]
