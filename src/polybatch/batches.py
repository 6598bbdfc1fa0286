"""What a provider batch is in neutral terms: its states, limits, status, and listing rows.

The data the :class:`~polybatch.providers.BatchProvider` seam speaks in (re-exported there).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Literal

from pydantic import BaseModel, ConfigDict

#: the neutral lifecycle of one provider batch; providers map their own states onto it
BatchState = Literal[
    "validating",
    "in_progress",
    "finalizing",
    "cancelling",
    "completed",
    "failed",
    "expired",
    "cancelled",
]
TERMINAL_STATES: frozenset[str] = frozenset({"completed", "failed", "expired", "cancelled"})

#: metadata keys polybatch tags every provider batch with, so a batch can be found again
META_JOB = "polybatch_job"
META_CHUNK = "polybatch_chunk"


class Limits(BaseModel):
    """What one provider batch may hold."""

    model_config = ConfigDict(frozen=True)

    max_requests: int
    max_bytes: int
    completion_windows: tuple[str, ...] = ("24h",)
    #: ids the provider accepts; ids outside it are mapped to safe ones by the adapter
    custom_id_pattern: str | None = None
    #: embedding inputs one batch may hold (None: only max_requests); one item is one input
    max_embedding_inputs: int | None = None
    #: the fewest requests one batch may hold (a vendor's minimum job size): planning refuses a
    #: job that would make a smaller batch, before anything is recorded or uploaded; it is never
    #: padded with filler requests (they would be billed)
    min_requests: int = 1


#: what a completion window looks like: a whole number of hours or days (``24h``, ``7d``)
WINDOW_FORM = re.compile(r"^[1-9][0-9]*[hd]$")


def completion_window_problem(window: str, allowed: Sequence[str]) -> str | None:
    """Why ``window`` is refused by an API whose windows are ``allowed``, or None.

    The one rule both sides use: polybatch checks ``--completion-window`` with it before
    submitting, and the sandbox refuses a create with it (each in its own words around it).
    """
    if window in allowed:
        return None
    shown = ", ".join(repr(w) for w in allowed)
    form = "" if WINDOW_FORM.match(window) else "; a window is hours or days, such as '24h'"
    return f"completion window {window!r} is not one of {shown}{form}"


class BatchStatus(BaseModel):
    """A snapshot of one provider batch, in neutral terms."""

    batch_id: str
    state: BatchState
    total: int = 0
    completed: int = 0
    failed: int = 0
    #: why a batch failed as a whole (validation errors), if it did
    message: str | None = None
    #: seconds the provider asked us to wait before the next poll (Retry-After), if it said
    retry_after: float | None = None
    #: the provider's files holding the results and the failed requests' lines, where its batches
    #: write files and it has named them (OpenAI-style batches, Mistral), else None
    output_file_id: str | None = None
    error_file_id: str | None = None

    @property
    def terminal(self) -> bool:
        """True once the batch will not change any more."""
        return self.state in TERMINAL_STATES


class SubmittedBatch(BaseModel):
    """What a provider returns after creating a batch."""

    batch_id: str
    input_file_id: str | None = None


class RecentBatch(BaseModel):
    """A batch as a provider's listing shows it, for adopting one whose create answer was lost.

    ``metadata`` is what the provider kept that names the job and chunk (None when it keeps
    nothing: then the batch is matched by its request count, time and, once ended, its ids).
    """

    batch_id: str
    created_at: float
    request_count: int | None = None
    model: str | None = None
    ended: bool = False
    metadata: dict[str, str] | None = None


class WebhookEvent(BaseModel):
    """A verified provider webhook about one batch, in neutral terms (see
    :meth:`~polybatch.providers.BatchProvider.verify_webhook`)."""

    model_config = ConfigDict(frozen=True)

    #: the delivery's ``webhook-id`` (Standard Webhooks): the same event redelivered keeps it
    webhook_id: str
    #: the provider's event type (``batch.completed``, ``batch.succeeded`` ...)
    type: str
    batch_id: str
    #: the neutral state the event announces (None when the type does not say)
    state: BatchState | None = None
