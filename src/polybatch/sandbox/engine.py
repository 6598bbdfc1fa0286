"""The sandbox's engine: file and batch stores, a clock, the lifecycle, the synthetic model.

Provider plugins contribute HTTP routes that translate their wire format to and from this engine.
Lifecycles are computed from the clock on every read, not by a background thread: a batch's state is
a pure function of (creation time, request count, processing rate, cancel time, now), which keeps
the emulator deterministic and lets tests move time forward with ``engine.clock.advance()``.
"""

from __future__ import annotations

import itertools
import secrets
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from .faults import (
    BATCH_EXPIRE,
    BATCH_FAIL,
    BatchFaultPlan,
    FaultEvent,
    FaultInjector,
    Faults,
    RouteKind,
    route_key,
)
from .model import SyntheticModel
from .models import ModelCatalog
from .objects import Clock, SandboxBatch, SandboxFile
from .queue import request_tokens

if TYPE_CHECKING:
    from ..providers import BatchState
    from .store import SandboxStore

DAY = 24 * 3600

__all__ = ["DAY", "Clock", "SandboxBatch", "SandboxEngine", "SandboxFile"]


class SandboxEngine:
    """Shared state of the sandbox: what every provider's routes read and write.

    ``rate`` is requests processed per second per batch (None: instantly); ``validation_seconds``,
    ``finalize_seconds`` and ``cancel_seconds`` hold batches in those states for a while so that
    polling and progress are real. ``api_key``, when set, is required on every request.
    ``webhook_url`` and ``webhook_secret``: signed events are sent there when batches end. With a
    ``store``, the files and batches are read from it and written back after every request
    (see :mod:`polybatch.sandbox.store`).
    ``strict_models`` (default) refuses models a provider does not serve, in its own error shape;
    ``models`` adds names per provider (see :mod:`polybatch.sandbox.models`).
    """

    def __init__(
        self,
        *,
        api_key: str | None = None,
        rate: float | None = None,
        validation_seconds: float = 0.0,
        finalize_seconds: float = 0.0,
        cancel_seconds: float = 0.0,
        expiry_seconds: float = DAY,
        faults: Faults | None = None,
        model: SyntheticModel | None = None,
        echo_key_in_errors: bool = False,
        queue_limit_tokens: int | None = None,
        webhook_url: str | None = None,
        webhook_secret: str | None = None,
        store: SandboxStore | None = None,
        strict_models: bool = True,
        models: Mapping[str, Iterable[str]] | None = None,
    ) -> None:
        self.api_key = api_key
        #: quote the key in batch and item error messages, as careless servers and gateways do
        #: (see :meth:`echo_key`): what a client must never pass on to disk or output
        self.echo_key_in_errors = echo_key_in_errors
        self.rate = rate
        self.validation_seconds = validation_seconds
        self.finalize_seconds = finalize_seconds
        self.cancel_seconds = cancel_seconds
        self.expiry_seconds = expiry_seconds
        #: an organisation's enqueued-token limit per model (None: none), see .queue
        self.queue_limit_tokens = queue_limit_tokens
        self.faults = faults or Faults()
        self.model = model or SyntheticModel()
        #: the models each provider serves; unknown ones are refused (see .models)
        self.catalog = ModelCatalog(strict=strict_models, extra=models)
        self.clock = Clock()
        self.lock = threading.RLock()
        self.files: dict[str, SandboxFile] = {}
        self.batches: dict[str, SandboxBatch] = {}
        self._ids = itertools.count(1)
        #: every request the server received, as (method, path): tests assert on it
        self.requests_seen: list[tuple[str, str]] = []
        #: every fault injected, in order: tests assert on it, ``--faults`` runs print it
        self.fault_log: list[FaultEvent] = []
        self._fault_counters: dict[tuple[Any, ...], int] = {}
        #: where ended batches' signed events go (see :mod:`.webhooks`), and the signing secret
        self.webhook_url = webhook_url
        self.webhook_secret = webhook_secret or ""
        #: namespace -> the provider's event for an ended batch (None: it sends none)
        self.webhook_events: dict[str, Callable[[SandboxBatch, BatchState], Any]] = {}
        #: per namespace, custom_id -> how many batches carried it (see ProviderApi.next_attempts)
        self.attempts: dict[str, dict[str, int]] = {}
        self.store = store
        if store is not None:
            store.load(self)

    def persist(self) -> None:
        """Write what changed to the store, if there is one (before a response is sent)."""
        if self.store is not None:
            with self.lock:
                self.store.save(self)

    def counters(self) -> list[tuple[tuple[Any, ...], int]]:
        """The fault and batch-serial counters (what a store keeps of them)."""
        return list(self._fault_counters.items())

    def restore_counters(self, counters: list[tuple[tuple[Any, ...], int]]) -> None:
        self._fault_counters.update(counters)

    def echo_key(self, message: str) -> str:
        """``message`` with the key quoted in it when ``echo_key_in_errors`` is set (providers'
        routes pass their batch and item error messages through here)."""
        if not (self.echo_key_in_errors and self.api_key):
            return message
        return f"{message} (request authorised with key {self.api_key})"

    # -- faults ----------------------------------------------------------------------------
    def _count(self, *key: Any) -> int:
        """How many times ``key`` was counted before (then count it once more)."""
        with self.lock:
            n = self._fault_counters.get(key, 0)
            self._fault_counters[key] = n + 1
            return n

    def note_fault(self, kind: str, where: str, detail: str = "") -> None:
        """Record an injected fault."""
        with self.lock:
            self.fault_log.append(FaultEvent(kind, where, detail))

    @property
    def injector(self) -> FaultInjector:
        """The pure fault decisions for the current ``faults`` spec."""
        return FaultInjector(self.faults)

    def decide_http_fault(
        self, method: str, path: str, kind: RouteKind = RouteKind.OTHER
    ) -> tuple[str | None, int]:
        """The HTTP fault for this request, if any: (kind, status) with kind one of
        ``upload_reject``, ``error``, ``drop``, ``create_timeout``, ``slow`` or None.

        ``kind`` is what the route serving it declared. Keyed on the n-th request to this route
        (ids masked), so a run is reproducible.
        """
        route = route_key(path)
        n = self._count("http", method, route)
        fault, status = self.injector.http(kind, method, route, n)
        if fault is not None:
            self.note_fault(fault, f"{method} {path}", str(status) if status else "")
        return fault, status

    def plan_batch_faults(self, namespace: str, serial: int, n_requests: int) -> BatchFaultPlan:
        """The batch-level faults of the ``serial``-th batch of ``namespace``."""
        return self.injector.batch(namespace, serial, n_requests)

    def download(self, file_key: tuple[Any, ...] | None, data: bytes) -> bytes:
        """``data`` as one download delivers it: cut short mid-line when the truncate fault
        strikes this attempt (keyed on the file's fault key and the attempt number)."""
        if file_key is None or self.faults.truncate_output_rate <= 0 or not data:
            return data
        attempt = self._count("download", *file_key)
        cut = self.injector.truncation(data, file_key, attempt)
        if cut is None:
            return data
        self.note_fault("truncate", "/".join(map(str, file_key)), f"{len(cut)}/{len(data)} bytes")
        return cut

    def new_id(self, prefix: str) -> str:
        """A fresh id, unique in this engine, readable in logs."""
        return f"{prefix}{next(self._ids):06d}{secrets.token_hex(6)}"

    def now(self) -> float:
        """The sandbox's current time."""
        return self.clock.now()

    def check_key(self, presented: str | None) -> bool:
        """Whether a request's key is acceptable."""
        return self.api_key is None or (
            presented is not None and secrets.compare_digest(presented, self.api_key)
        )

    # -- files -----------------------------------------------------------------------------
    def add_file(
        self,
        namespace: str,
        data: bytes,
        *,
        filename: str,
        purpose: str,
        prefix: str = "file-",
        expires_after: int | None = None,
    ) -> SandboxFile:
        """Store a file and return it."""
        with self.lock:
            now = int(self.now())
            f = SandboxFile(
                id=self.new_id(prefix),
                namespace=namespace,
                data=data,
                filename=filename,
                purpose=purpose,
                created_at=now,
                expires_at=now + expires_after if expires_after else None,
            )
            self.files[f.id] = f
            return f

    def get_file(self, namespace: str, file_id: str) -> SandboxFile | None:
        """A file of this namespace, or None."""
        f = self.files.get(file_id)
        return f if f is not None and f.namespace == namespace else None

    # -- batches ---------------------------------------------------------------------------
    def create_batch(
        self,
        namespace: str,
        requests: list[Any],
        handler: Callable[[Any], Any],
        *,
        prefix: str = "batch_",
        metadata: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
        errors: list[dict[str, Any]] | None = None,
        queue_model: str | None = None,
    ) -> SandboxBatch:
        """Create a batch whose requests will be run by ``handler`` as time passes.

        Batch-level faults are decided here (see :meth:`plan_batch_faults`); an injected
        validation failure replaces ``errors`` only when the input itself was valid.
        """
        with self.lock:
            now = self.now()
            serial = self._count("batch", namespace) + 1
            plan = self.plan_batch_faults(namespace, serial, len(requests))
            if BATCH_FAIL in plan.faults and not errors:
                errors = [
                    {
                        "code": "injected_failure",
                        "message": "The batch failed validation (injected fault).",
                        "param": None,
                        "line": None,
                    }
                ]
            if errors and self.echo_key_in_errors:
                errors = [{**e, "message": self.echo_key(str(e.get("message")))} for e in errors]
            b = SandboxBatch(
                id=self.new_id(prefix),
                namespace=namespace,
                requests=requests,
                handler=handler,
                created_at=now,
                started_at=now + self.validation_seconds,
                rate=self.rate,
                expires_at=now + self.expiry_seconds,
                metadata=dict(metadata or {}),
                extra=dict(extra or {}),
                errors=errors,
                cancel_seconds=self.cancel_seconds,
                finalize_seconds=self.finalize_seconds,
                serial=serial,
                faults=plan.faults,
                stop_after=plan.stop_after,
                queue_model=queue_model,
                queue_tokens=sum(request_tokens(r) for r in requests) if queue_model else 0,
            )
            if plan.stop_after is not None:
                # the expiry or the outside cancel comes once stop_after requests have run
                stop_at = b.started_at + (plan.stop_after / b.rate if b.rate else 0.0)
                if BATCH_EXPIRE in plan.faults:
                    b.expires_at = stop_at
                else:
                    b.cancel_requested_at = stop_at
            for kind in sorted(plan.faults):
                self.note_fault(kind, f"{namespace} batch #{serial} {b.id}", str(plan.stop_after))
            self.batches[b.id] = b
            return b

    def get_batch(self, namespace: str, batch_id: str) -> SandboxBatch | None:
        """A live batch of this namespace, or None."""
        b = self.batches.get(batch_id)
        return b if b is not None and b.namespace == namespace and not b.deleted else None

    def list_batches(self, namespace: str) -> list[SandboxBatch]:
        """Live batches of a namespace, oldest first."""
        return [b for b in self.batches.values() if b.namespace == namespace and not b.deleted]

    def forget(self, batch_id: str) -> None:
        """Drop a batch as if it never existed (a provider that lost it, a restarted server, a
        batch deleted by someone else): every route then answers the vendor's 404 for it."""
        with self.lock:
            self.batches.pop(batch_id.removeprefix("batches/"), None)

    def cancel(self, batch: SandboxBatch) -> None:
        """Record a cancel request (idempotent; no effect once the batch has ended)."""
        with self.lock:
            now = self.now()
            if batch.cancel_requested_at is None and batch.ended_at(now) is None:
                batch.cancel_requested_at = now
