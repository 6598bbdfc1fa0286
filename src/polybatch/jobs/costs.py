"""Usage and cost of jobs, from the ledger and the jobs' result files (never the handle).

Anything with a job ``id`` and its ``ledger`` will do (a :class:`~polybatch.jobs.handle.Job`
is one), so the cost tables need no live provider and import no job-running code.
"""

from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Literal, Protocol

from ..errors import ConfigError
from ..pricing import Cost, PriceRegistry, UsageRecord, cost_of, price_registry, render_table
from ..pricing import usage_rows as _usage_rows
from ..pricing.categories import category_rows, render_categories
from ..pricing.tables import GROUP_KEYS, GroupKey, record_keys
from .files import JobFiles, ensure_final
from .ledger import FINAL_STATES, JobRow, Ledger, open_ledger
from .tally import final_tally


class JobRef(Protocol):
    """A job as the cost tables need it: its id and the ledger holding it."""

    @property
    def id(self) -> str: ...

    @property
    def ledger(self) -> Ledger: ...


@dataclass(frozen=True)
class _Ref:
    id: str
    ledger: Ledger


def _row(job: JobRef) -> JobRow:
    row = job.ledger.get_job(job.id)
    assert row is not None
    return row


def _chunk_dates(ledger: Ledger, job_id: str, fallback: float) -> dict[str, date]:
    """The creation date of each provider batch of a job (prices in force that day apply)."""
    return {
        c.batch_id: datetime.fromtimestamp(c.submitted_at or fallback, UTC).date()
        for c in ledger.chunks(job_id)
        if c.batch_id
    }


def job_records(job: JobRef) -> Iterator[UsageRecord]:
    """One usage record per result of a finished job, dated by its batch's creation."""
    row = _row(job)
    ensure_final(row)
    dates = _chunk_dates(job.ledger, job.id, row.created_at)
    created = datetime.fromtimestamp(row.created_at, UTC).date()
    for r in JobFiles.of(job.ledger, row).results():
        yield UsageRecord.from_result(
            r,
            job.id,
            dates.get(r.batch_id or "", created),
            provider=row.provider,
            model=row.model,
        )


def _flat(registry: PriceRegistry, record: UsageRecord) -> bool:
    """True when pricing a bucket's summed usage equals pricing each of its requests: the
    model's prices have no tiers (a tier applies per request, by that request's input)."""
    if not (record.provider and record.model):
        return True
    for mode in ("batch", "standard"):
        price = registry.find(record.provider, record.model, mode, record.created)
        if price is not None and price.tiers:
            return False
    return True


def weighted_records(job: JobRef, registry: PriceRegistry) -> Iterator[tuple[int, UsageRecord]]:
    """A finished job's usage as (requests, record) pairs, in constant memory and time.

    Each bucket of the job's tally (kept in the ledger as results were written) is one record
    holding its requests' usage summed; a job with a model priced in tiers is read request by
    request from its results file instead (weight 1), so each request is priced on its own.
    """
    row = _row(job)
    buckets = list(final_tally(job.ledger, row).records(job.id))  # one per bucket, not per item
    if all(_flat(registry, record) for _, record in buckets):
        yield from buckets
    else:
        for record in job_records(job):
            yield 1, record


def job_cost(
    job: JobRef,
    *,
    mode: Literal["batch", "standard"] = "batch",
    registry: PriceRegistry | None = None,
) -> Cost:
    """What a finished job cost, per bucket, each request priced on its own.

    Raises PriceNotFoundError if a model that used tokens has no price: never a silent $0.
    """
    row = _row(job)
    reg = registry or price_registry(providers=[row.provider])
    total = Cost()
    for _, rec in weighted_records(job, reg):
        if rec.usage.total_tokens == 0:
            continue
        price = reg.price(rec.provider or row.provider, rec.model or row.model, mode, rec.created)
        total = total + cost_of(rec.usage, price)
    return total


def _group_key(record: UsageRecord, registry: PriceRegistry, by: Sequence[str]) -> tuple[str, ...]:
    """The row of a usage table ``record`` falls in (as :func:`~polybatch.pricing.usage_rows`
    groups it)."""
    values = record_keys(record, registry)
    return tuple(values.get(k, "") for k in by)


#: what ``by`` may name: a grouping key, or ``category`` (the table by token category)
ViewKey = GroupKey | Literal["category"]
#: the names ``by`` accepts, as the CLI's ``--by`` spells them, and the key each one stands for
GROUP_NAMES: dict[str, ViewKey] = {
    **{("job" if key == "job_id" else key): key for key in GROUP_KEYS},
    "category": "category",
}


def group_keys(by: Sequence[str] | str) -> list[ViewKey]:
    """``by`` (names or one comma-separated string: ``"provider,job"``) as the table's keys.

    ``job`` (the CLI's name) and ``job_id`` are the same key. Anything else is a ConfigError
    naming the choices. No key at all is the totals alone."""
    names = [n.strip() for n in (by.split(",") if isinstance(by, str) else by) if n.strip()]
    aliases: dict[str, ViewKey] = {**GROUP_NAMES, "job_id": "job_id"}
    unknown = [n for n in names if n not in aliases]
    if unknown:
        shown = ", ".join(repr(n) for n in unknown)
        raise ConfigError(f"cannot group by {shown}; choose from {', '.join(GROUP_NAMES)}")
    return [aliases[n] for n in names]


def usage_table(
    jobs: Sequence[JobRef] | None = None,
    *,
    by: Sequence[str] = ("provider", "model"),
    since: date | None = None,
    fmt: Literal["table", "csv", "json"] = "table",
    digits: int | None = 4,
    registry: PriceRegistry | None = None,
) -> str:
    """A usage and cost table over ``jobs`` (default: every finished job in the ledger).

    Built from the jobs' tallies in the ledger (see :func:`weighted_records`): its time and
    memory do not grow with the number of results. ``by``: any of provider, model, job, date;
    with ``category``, the table by token category instead (prompt, cached, completion,
    reasoning, total, each with its cost: :mod:`polybatch.pricing.categories`), per group of
    the other keys.
    """
    keys = group_keys(by)
    groups: list[GroupKey] = [k for k in keys if k != "category"]
    if jobs is None:
        ledger = open_ledger()
        since_ts = datetime.combine(since, datetime.min.time(), UTC).timestamp() if since else None
        jobs = [
            _Ref(row.id, ledger)
            for row in ledger.list_jobs(since=since_ts)
            if row.state in FINAL_STATES
        ]
    ok: Counter[tuple[str, ...]] = Counter()
    failed: Counter[tuple[str, ...]] = Counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        reg = registry or price_registry(providers={_row(job).provider for job in jobs})

        def records() -> Iterator[UsageRecord]:
            # one record per bucket; usage_rows counts it as one request, so the requests of
            # each row are counted here and set on the rows after
            for job in jobs:
                for n, record in weighted_records(job, reg):
                    (ok if record.ok else failed)[_group_key(record, reg, groups)] += n
                    yield record

        if "category" in keys:
            text = render_categories(
                category_rows(records(), reg, by=groups), fmt=fmt, digits=digits
            )
        else:
            rows = _usage_rows(records(), reg, by=groups)
    for w in caught:
        warnings.warn(w.message, w.category, stacklevel=2)
    if "category" in keys:
        return text
    for row in rows:
        if row.total:
            row.requests_ok, row.requests_failed = ok.total(), failed.total()
        else:
            key = tuple(row.keys[k] for k in groups)
            row.requests_ok, row.requests_failed = ok[key], failed[key]
    return render_table(rows, fmt=fmt, digits=digits)
