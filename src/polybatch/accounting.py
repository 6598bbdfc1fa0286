"""Money for jobs: estimates before submission, costs and usage tables after.

Glue between the runner (jobs, the ledger) and the pricing package (prices, costs, tables).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from . import config as _config
from .errors import BudgetExceededError, PriceNotFoundError, PricingError
from .items import BatchItem
from .plugins import get_registry
from .pricing import (
    Cost,
    Estimate,
    Estimator,
    PriceRegistry,
    UsageRecord,
    cost_of,
    estimate_cost,
    load_price_file,
    render_table,
    usage_rows,
)

if TYPE_CHECKING:
    from .ledger import Ledger
    from .providers import BatchProvider
    from .runner import Job

_registry_cache: dict[
    tuple[int, str | None, str | None, tuple[str, ...] | None], PriceRegistry
] = {}


def price_registry(
    price_file: str | Path | None = None,
    *,
    providers: Iterable[str] | None = None,
    reload: bool = False,
) -> PriceRegistry:
    """Bundled prices of the installed plugins, overridden by the user's config and price file.

    ``providers`` limits the bundled files to those of the plugins providing them.
    """
    cfg, path = _config.load_config()
    wanted = tuple(sorted(providers)) if providers is not None else None
    # the plugin registry is part of the key: tests (and the conformance suite) swap it
    key = (
        id(get_registry()),
        str(path) if path else None,
        str(price_file) if price_file else None,
        wanted,
    )
    if reload:
        _registry_cache.clear()
    if key not in _registry_cache:
        _registry_cache[key] = PriceRegistry.load(
            files=_readable_plugin_price_files(wanted),
            user_file=price_file,
            user_prices=cfg.prices or None,
            base_dir=path.parent if path else None,
        )
    return _registry_cache[key]


def _readable_plugin_price_files(providers: Iterable[str] | None = None) -> list[Path]:
    """The plugins' price files, a broken one skipped with a warning (as a broken plugin is).

    One plugin's bad data must not stop jobs on every other provider; the user's own price
    files, by contrast, raise: they asked for them.
    """
    good = []
    for path in get_registry().price_files(providers):
        try:
            load_price_file(path)
        except PricingError as exc:
            warnings.warn(
                f"polybatch: skipping a plugin's price file: {exc}", RuntimeWarning, stacklevel=3
            )
            continue
        good.append(path)
    return good


def estimator(provider: BatchProvider, *, registry: PriceRegistry | None = None) -> Estimator:
    """An estimator at batch prices for ``provider``'s jobs, to feed item by item."""
    return Estimator(
        provider.name,
        registry or price_registry(providers=[provider.name]),
        default_max_tokens=provider.default_max_tokens,
    )


def estimate_items(
    items: Iterable[BatchItem],
    provider: BatchProvider,
    model: str,
    *,
    registry: PriceRegistry | None = None,
    on: date | None = None,
) -> Estimate:
    """The cost range of ``items`` at batch prices (PriceNotFoundError if a model has no price)."""
    return estimate_cost(
        items,
        provider.name,
        model,
        registry or price_registry(providers=[provider.name]),
        default_max_tokens=provider.default_max_tokens,
        on=on,
    )


def usd(value: Decimal) -> str:
    """Money for people: enough decimals that small jobs do not read as $0."""
    return f"${value:.4f}" if value >= 1 else f"${value:.6f}"


def check_budget(
    estimate: Estimate | None, max_cost: Decimal | None, *, why_missing: str = ""
) -> None:
    """Refuse (BudgetExceededError, exit code 2) a job whose upper estimate exceeds ``max_cost``."""
    if max_cost is None:
        return
    if estimate is None:
        raise BudgetExceededError(
            f"cannot check --max-cost ${max_cost}: {why_missing or 'no estimate'}"
        )
    if estimate.high > max_cost:
        raise BudgetExceededError(
            f"estimated cost up to {usd(estimate.high)} exceeds --max-cost ${max_cost:f} "
            f"(range {usd(estimate.low)} to {usd(estimate.high)}); nothing was submitted"
        )


def describe_estimate(e: Estimate) -> str:
    """One line for the terminal."""
    return (
        f"estimate: {usd(e.low)} to {usd(e.high)} for {e.items:,} requests "
        f"({e.input_tokens:,} input tokens, up to {e.max_output_tokens:,} output)\n"
        f"  method: {e.method}"
    )


def _chunk_dates(ledger: Ledger, job_id: str, fallback: float) -> dict[str, date]:
    """The creation date of each provider batch of a job (prices in force that day apply)."""
    return {
        c.batch_id: datetime.fromtimestamp(c.submitted_at or fallback, UTC).date()
        for c in ledger.chunks(job_id)
        if c.batch_id
    }


def job_records(job: Job) -> Iterator[UsageRecord]:
    """One usage record per result of a finished job, dated by its batch's creation."""
    row = job.ledger.get_job(job.id)
    assert row is not None
    dates = _chunk_dates(job.ledger, job.id, row.created_at)
    created = datetime.fromtimestamp(row.created_at, UTC).date()
    for r in job.results():
        yield UsageRecord.from_result(
            r,
            job.id,
            dates.get(r.batch_id or "", created),
            provider=job.provider_name,
            model=job.model,
        )


def job_cost(
    job: Job, *, mode: Literal["batch", "standard"] = "batch", registry: PriceRegistry | None = None
) -> Cost:
    """What a finished job cost, per bucket, each request priced on its own.

    Raises PriceNotFoundError if a model that used tokens has no price: never a silent $0.
    """
    reg = registry or price_registry(providers=[job.provider_name])
    total = Cost()
    for rec in job_records(job):
        if rec.usage.total_tokens == 0:
            continue
        price = reg.price(
            rec.provider or job.provider_name, rec.model or job.model, mode, rec.created
        )
        total = total + cost_of(rec.usage, price)
    return total


def usage_table(
    jobs: Sequence[Job] | None = None,
    *,
    by: Sequence[str] = ("provider", "model"),
    since: date | None = None,
    fmt: Literal["table", "csv", "json"] = "table",
    digits: int | None = 4,
    registry: PriceRegistry | None = None,
) -> str:
    """A usage and cost table over ``jobs`` (default: every finished job in the ledger)."""
    from .runner import Job, open_ledger

    if jobs is None:
        ledger = open_ledger()
        since_ts = datetime.combine(since, datetime.min.time(), UTC).timestamp() if since else None
        jobs = [
            Job(row, ledger)
            for row in ledger.list_jobs(since=since_ts)
            if row.state in ("completed", "cancelled")
        ]
    records = (rec for job in jobs for rec in job_records(job))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        reg = registry or price_registry(providers={job.provider_name for job in jobs})
        rows = usage_rows(records, reg, by=by)  # type: ignore[arg-type]
    text = render_table(rows, fmt=fmt, digits=digits)
    for w in caught:
        warnings.warn(w.message, w.category, stacklevel=2)
    return text


__all__ = [
    "PriceNotFoundError",
    "check_budget",
    "describe_estimate",
    "estimate_items",
    "job_cost",
    "job_records",
    "price_registry",
    "usage_table",
]
