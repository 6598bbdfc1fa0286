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
from .money import usd
from .registry import Mode, PriceRegistry


def sends_default_max_tokens(provider: BatchProvider) -> bool:
    """Whether ``provider`` sends its ``default_max_tokens`` for items without ``max_tokens``.

    Providers that do override :attr:`BatchProvider.default_max_tokens` (its docstring says so);
    for the others an item without ``max_tokens`` may run up to the model's output limit.
    """
    return type(provider).default_max_tokens is not BatchProvider.default_max_tokens


def estimator(
    provider: BatchProvider,
    *,
    registry: PriceRegistry | None = None,
    mode: Mode = "batch",
    on: date | None = None,
) -> Estimator:
    """An estimator at ``mode`` prices for ``provider``'s jobs, to feed item by item."""
    return Estimator(
        provider.name,
        registry or price_registry(providers=[provider.name]),
        default_max_tokens=provider.default_max_tokens,
        sends_default=sends_default_max_tokens(provider),
        mode=mode,
        on=on,
        known_models=provider.known_models,
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
        sends_default=sends_default_max_tokens(provider),
    )


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
        high, low = usd(estimate.high, estimate.currency), usd(estimate.low, estimate.currency)
        raise BudgetExceededError(
            f"estimated cost up to {high} exceeds --max-cost ${max_cost:f} "
            f"(range {low} to {high}); nothing was submitted"
        )


def describe_estimate(e: Estimate) -> str:
    """One line for the terminal."""
    return (
        f"estimate: {usd(e.low, e.currency)} to {usd(e.high, e.currency)} {e.currency} "
        f"for {e.items:,} requests "
        f"({e.input_tokens:,} input tokens, up to {e.max_output_tokens:,} output)\n"
        f"  method: {e.method}"
    )
