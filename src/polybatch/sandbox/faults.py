"""Seeded, reproducible fault injection for the sandbox.

Three layers, all decided by a hash of the seed and a key that does not depend on wall-clock time
or on random ids, so the same seed and the same sequence of requests give the same faults:

- **HTTP faults** (applied by :class:`polybatch.sandbox.middleware.FaultMiddleware` on every
  route of every provider): an error status with
  ``retry-after`` / ``retry-after-ms`` (429, 500, 502, 503 ...), a dropped connection, a slow
  response, an upload rejected, and a batch create whose response is lost after the server made the
  batch (the client cannot tell whether it exists: the case that breeds duplicates). Keyed on
  ``(seed, fault, method, path with ids masked, n-th such request)``. Which faults a route can
  suffer follows the :class:`RouteKind` its provider declared for it (an upload can be rejected, a
  create can lose its answer), never its URL: this module knows no vendor's paths.
- **Batch faults** (decided in :meth:`SandboxEngine.create_batch`, applied by each provider's
  routes): a batch that fails validation as a whole, one that expires or is cancelled from outside
  after running only some of its requests, one whose output (the successes) is missing. Keyed on
  ``(seed, fault, namespace, n-th batch of that namespace)``.
- **Download and item faults**: an output download cut short mid-line (keyed on the batch and the
  download attempt, so fetching again can succeed), per-request errors in the error file or as
  errored results, and structured-output replies that are not valid JSON (both keyed on the
  custom_id and how many batches carried it before).

Spec strings, as ``polybatch sandbox --faults`` takes them::

    seed=3,http=0.1,codes=429/503,drop=0.02,item=0.05,truncate=0.2

Short names and field names are both accepted (see :data:`ALIASES`).

:class:`FaultInjector` makes every decision from ``(seed, fault, key)`` alone; the engine keeps the
counters that make the keys (the n-th request, the n-th download) and the log of what struck.
"""

from __future__ import annotations

import enum
import hashlib
import math
import re
from dataclasses import dataclass, field, fields
from typing import Any

#: short spec names -> Faults field names
ALIASES: dict[str, str] = {
    "seed": "seed",
    "item": "item_error_rate",
    "http": "http_error_rate",
    "codes": "http_error_codes",
    "retry_after": "retry_after",
    "drop": "drop_rate",
    "slow": "slow_rate",
    "slow_s": "slow_seconds",
    "upload": "upload_reject_rate",
    "create_timeout": "create_timeout_rate",
    "fail": "batch_fail_rate",
    "expire": "expire_rate",
    "cancel": "external_cancel_rate",
    "truncate": "truncate_output_rate",
    "missing": "missing_output_rate",
    "invalid_json": "invalid_json_rate",
    "hook_lost": "webhook_lost_rate",
    "hook_dup": "webhook_duplicate_rate",
    "hook_late": "webhook_late_rate",
    "hook_late_s": "webhook_late_seconds",
    "hook_forged": "webhook_forged_rate",
}

#: batch-level fault names stored on ``SandboxBatch.faults``
BATCH_FAIL = "fail"
BATCH_EXPIRE = "expire"
BATCH_CANCEL = "cancel"
BATCH_MISSING_OUTPUT = "missing_output"


@dataclass
class Faults:
    """What goes wrong in the sandbox, and how often. Every rate is a probability in [0, 1].

    All zero (the default) means a well-behaved sandbox. ``seed`` makes a run reproducible.
    """

    seed: int = 0
    #: share of requests inside a batch that end in a retryable server error (error file /
    #: ``errored`` result)
    item_error_rate: float = 0.0
    #: share of HTTP requests (any route) answered with one of ``http_error_codes``
    http_error_rate: float = 0.0
    #: the statuses an HTTP fault picks from (429 gets a rate-limit body, the rest a server error)
    http_error_codes: tuple[int, ...] = (429, 500, 502, 503)
    #: seconds sent as ``retry-after-ms`` (and ``retry-after``, rounded up) with injected errors;
    #: small by default so that tests stay fast while the SDKs still honour it
    retry_after: float = 0.01
    #: share of HTTP requests whose connection is closed before a complete response
    drop_rate: float = 0.0
    #: share of HTTP requests answered only after ``slow_seconds``
    slow_rate: float = 0.0
    slow_seconds: float = 0.05
    #: share of uploads (routes of kind ``UPLOAD``: a file upload, a create with inline requests) rejected
    #: with a 503 that tells the SDK not to retry (``x-should-retry: false``)
    upload_reject_rate: float = 0.0
    #: share of batch creates whose response is lost after the server created the batch
    create_timeout_rate: float = 0.0
    #: share of batches that fail validation as a whole (``failed`` with ``errors``)
    batch_fail_rate: float = 0.0
    #: share of batches that expire after running only some of their requests
    expire_rate: float = 0.0
    #: share of batches cancelled from outside (another client, the console) part way through
    external_cancel_rate: float = 0.0
    #: share of output downloads cut short in the middle of a line (each attempt draws afresh)
    truncate_output_rate: float = 0.0
    #: share of ended batches whose output (the successful results) is missing
    missing_output_rate: float = 0.0
    #: share of structured-output requests (a JSON schema was asked for) whose otherwise
    #: successful reply is broken JSON: the client's validation must catch it
    invalid_json_rate: float = 0.0
    #: share of ended batches whose webhook is never delivered (polling must find them)
    webhook_lost_rate: float = 0.0
    #: share of webhooks delivered twice (same webhook-id: the receiver must act once)
    webhook_duplicate_rate: float = 0.0
    #: share of webhooks delivered only ``webhook_late_seconds`` after the batch ended (signed
    #: when sent, as a sender's retry is): results come late, never twice
    webhook_late_rate: float = 0.0
    webhook_late_seconds: float = 1.0
    #: share of deliveries that come with a forged signature (another key) before the real one
    webhook_forged_rate: float = 0.0

    # -- drawing ---------------------------------------------------------------------------
    def draw(self, *key: Any) -> float:
        """A number in [0, 1) that depends only on the seed and ``key``."""
        h = hashlib.sha256(repr((self.seed, *key)).encode()).digest()
        return int.from_bytes(h[:8], "big") / 2**64

    def hit(self, rate: float, *key: Any) -> bool:
        """Whether the fault with this rate strikes the thing named by ``key``."""
        if rate <= 0:
            return False
        if rate >= 1:
            return True
        return self.draw(*key) < rate

    @property
    def http_active(self) -> bool:
        """Whether any HTTP-level fault can strike (else the middleware is a pass-through)."""
        return any(
            r > 0
            for r in (
                self.http_error_rate,
                self.drop_rate,
                self.slow_rate,
                self.upload_reject_rate,
                self.create_timeout_rate,
            )
        )

    @property
    def active(self) -> bool:
        """Whether any fault at all is switched on."""
        return any(getattr(self, f.name) > 0 for f in fields(self) if f.name.endswith("_rate"))

    # -- spec strings ----------------------------------------------------------------------
    @classmethod
    def parse(cls, spec: str) -> Faults:
        """Faults from ``"seed=3,http=0.1,codes=429/503,drop=0.02"``; ValueError says what is wrong.

        ``all=R`` sets every rate to R (then later keys override it).
        """
        values: dict[str, Any] = {}
        types = {f.name: f.type for f in fields(cls)}
        for part in (p.strip() for p in spec.split(",")):
            if not part:
                continue
            name, sep, raw = part.partition("=")
            name, raw = name.strip(), raw.strip()
            if not sep or not raw:
                raise ValueError(f"{part!r}: expected name=value")
            if name == "all":
                rate = _rate(name, raw)
                values.update({f: rate for f in types if f.endswith("_rate")})
                continue
            key = ALIASES.get(name, name)
            if key not in types:
                known = ", ".join(sorted({*ALIASES, "all"}))
                raise ValueError(f"unknown fault {name!r}; known: {known}")
            if key == "seed":
                try:
                    values[key] = int(raw)
                except ValueError:
                    raise ValueError(f"seed: {raw!r} is not an integer") from None
            elif key == "http_error_codes":
                try:
                    codes = tuple(int(c) for c in re.split(r"[/|; ]+", raw) if c)
                except ValueError:
                    raise ValueError(f"codes: {raw!r} is not a list like 429/503") from None
                if not codes or any(not 400 <= c <= 599 for c in codes):
                    raise ValueError(f"codes: {raw!r}: give HTTP error statuses (400-599)")
                values[key] = codes
            elif key.endswith("_rate"):
                values[key] = _rate(name, raw)
            else:  # seconds
                try:
                    seconds = float(raw)
                except ValueError:
                    raise ValueError(f"{name}: {raw!r} is not a number of seconds") from None
                if not math.isfinite(seconds) or seconds < 0:
                    raise ValueError(f"{name}: {raw!r} must be a non-negative number of seconds")
                values[key] = seconds
        return cls(**values)

    def to_spec(self) -> str:
        """The spec string of the settings that differ from the defaults (parse() reads it back)."""
        short = {v: k for k, v in ALIASES.items()}
        default = Faults()
        parts = []
        for f in fields(self):
            value = getattr(self, f.name)
            if value == getattr(default, f.name) and f.name != "seed":
                continue
            text = "/".join(map(str, value)) if isinstance(value, tuple) else str(value)
            parts.append(f"{short.get(f.name, f.name)}={text}")
        return ",".join(parts)


def _rate(name: str, raw: str) -> float:
    try:
        rate = float(raw)
    except ValueError:
        raise ValueError(f"{name}: {raw!r} is not a number") from None
    if not 0 <= rate <= 1:
        raise ValueError(f"{name}: {raw!r} is not a rate between 0 and 1")
    return rate


@dataclass(frozen=True)
class FaultEvent:
    """One injected fault, as tests and the sandbox's log see it."""

    kind: str
    where: str
    detail: str = ""


@dataclass(frozen=True)
class WebhookFaultPlan:
    """What goes wrong with the webhook of one ended batch."""

    lost: bool = False
    copies: int = 1
    delay: float = 0.0
    forged: bool = False


@dataclass
class BatchFaultPlan:
    """The batch-level faults decided for one new batch."""

    faults: set[str] = field(default_factory=set)
    #: requests run before an injected expiry or cancel stopped the batch
    stop_after: int | None = None


# -- route kinds, keys ----------------------------------------------------------------------
class RouteKind(enum.Flag):
    """What a provider's route does, as far as faults care. Routes declare it (a create that also
    carries the batch's input inline is ``UPLOAD | CREATE``)."""

    OTHER = enum.auto()
    UPLOAD = enum.auto()
    CREATE = enum.auto()
    POLL = enum.auto()
    LIST = enum.auto()
    CANCEL = enum.auto()
    DOWNLOAD = enum.auto()
    DELETE = enum.auto()


_ID_SEGMENT = re.compile(r"^(?=.*\d)[A-Za-z0-9_\-]{10,}$")


def route_key(path: str) -> str:
    """The path with id-like segments masked: ids are random, fault keys must not be."""
    return "/".join("{id}" if _ID_SEGMENT.match(seg) else seg for seg in path.split("/"))


def truncate_mid_line(data: bytes, fraction: float) -> bytes:
    """``data`` cut inside one of its lines (chosen by ``fraction``), so the last line is partial."""
    starts = [0] + [i + 1 for i, b in enumerate(data) if b == 0x0A and i + 1 < len(data)]
    lines = [(s, data.find(b"\n", s)) for s in starts]
    lines = [(s, e if e >= 0 else len(data)) for s, e in lines]
    lines = [(s, e) for s, e in lines if e - s >= 2]
    if not lines:
        return data
    start, end = lines[min(int(fraction * len(lines)), len(lines) - 1)]
    # keep at least one byte and drop at least one before the line's end: never a whole line
    return data[: start + max(1, (end - start) // 2)]


# -- decisions -----------------------------------------------------------------------------
class FaultInjector:
    """Every fault decision, from the spec's seed and a key only (no clock, no ids, no counters).

    The caller supplies the counts that make a key reproducible (the n-th request to a route, the
    n-th download of a file, the attempt of a custom_id); the same spec and keys always give the
    same decisions.
    """

    def __init__(self, faults: Faults) -> None:
        self.faults = faults

    def http(self, kind: RouteKind, method: str, route: str, n: int) -> tuple[str | None, int]:
        """The HTTP fault of the ``n``-th ``method`` request to ``route`` (ids masked): (kind,
        status) with kind one of ``upload_reject``, ``error``, ``drop``, ``create_timeout``,
        ``slow`` or None."""
        f = self.faults
        if RouteKind.UPLOAD in kind and f.hit(f.upload_reject_rate, "upload", method, route, n):
            return "upload_reject", 503
        if f.hit(f.http_error_rate, "http", method, route, n):
            codes = f.http_error_codes or (500,)
            pick = min(int(f.draw("code", method, route, n) * len(codes)), len(codes) - 1)
            return "error", codes[pick]
        if f.hit(f.drop_rate, "drop", method, route, n):
            return "drop", 0
        if RouteKind.CREATE in kind and f.hit(f.create_timeout_rate, "create", route, n):
            return "create_timeout", 0
        if f.hit(f.slow_rate, "slow", method, route, n):
            return "slow", 0
        return None, 0

    def batch(self, namespace: str, serial: int, n_requests: int) -> BatchFaultPlan:
        """The batch-level faults of the ``serial``-th batch of ``namespace`` (at most one of
        fail / expire / cancel, plus possibly a missing output)."""
        f = self.faults
        plan = BatchFaultPlan()
        if f.hit(f.batch_fail_rate, "fail", namespace, serial):
            plan.faults.add(BATCH_FAIL)
        elif n_requests and f.hit(f.expire_rate, "expire", namespace, serial):
            plan.faults.add(BATCH_EXPIRE)
        elif n_requests and f.hit(f.external_cancel_rate, "cancel", namespace, serial):
            plan.faults.add(BATCH_CANCEL)
        if plan.faults & {BATCH_EXPIRE, BATCH_CANCEL}:
            # some requests ran, at least one did not: partial results and leftovers
            plan.stop_after = int(f.draw("stop", namespace, serial) * n_requests)
        if f.hit(f.missing_output_rate, "missing", namespace, serial):
            plan.faults.add(BATCH_MISSING_OUTPUT)
        return plan

    def truncation(self, data: bytes, file_key: tuple[Any, ...], attempt: int) -> bytes | None:
        """``data`` cut short mid-line if the truncate fault strikes this download, else None."""
        f = self.faults
        if f.truncate_output_rate <= 0 or not data:
            return None
        if not f.hit(f.truncate_output_rate, "truncate", *file_key, attempt):
            return None
        return truncate_mid_line(data, f.draw("cut", *file_key, attempt))

    def item_error(self, *key: Any) -> bool:
        """Whether the request named by ``key`` (namespace, custom_id, attempt) ends in an
        injected server error."""
        return self.faults.hit(self.faults.item_error_rate, *key)

    def invalid_json(self, *key: Any) -> bool:
        """Whether the structured reply of the request named by ``key`` is broken JSON (its own
        draw: not the same as :meth:`item_error`'s)."""
        return self.faults.hit(self.faults.invalid_json_rate, "invalid_json", *key)

    def webhook(self, namespace: str, serial: int) -> WebhookFaultPlan:
        """The webhook faults of the ``serial``-th batch of ``namespace``."""
        f = self.faults
        return WebhookFaultPlan(
            lost=f.hit(f.webhook_lost_rate, "hook_lost", namespace, serial),
            copies=2 if f.hit(f.webhook_duplicate_rate, "hook_dup", namespace, serial) else 1,
            delay=(
                f.webhook_late_seconds
                if f.hit(f.webhook_late_rate, "hook_late", namespace, serial)
                else 0.0
            ),
            forged=f.hit(f.webhook_forged_rate, "hook_forged", namespace, serial),
        )
