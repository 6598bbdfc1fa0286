"""Estimates for a provider's items before anything is sent, and the ``max_cost`` budget check."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date
from decimal import Decimal

from ..errors import BudgetExceededError
from ..items import BatchItem
from ..providers import BatchProvider
from .estimate import Estimate, Estimator, estimate_cost
from .installed import price_registry
from .registry import PriceRegistry


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
