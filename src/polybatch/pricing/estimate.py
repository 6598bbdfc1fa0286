"""Cost estimates before submission: a low/high range at batch prices."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal

from ..items import BatchItem, Usage
from ..tokens import prompt_tokens
from .cost import cost_of
from .registry import Mode, PriceRegistry, PriceRow

METHOD = (
    "input tokens estimated with polybatch.tokens.prompt_tokens over each item's message texts "
    "(words and punctuation plus framing; real tokenizers differ), all priced as uncached input; "
    "output from 0 (low) to each item's max_tokens or the default (high); each request priced "
    "on its own at {mode} prices in force on {day}"
)


@dataclass(frozen=True)
class Estimate:
    """A cost range for a set of items, with the token counts behind it and how it was made."""

    low: Decimal
    high: Decimal
    items: int
    input_tokens: int
    max_output_tokens: int
    mode: Mode
    method: str


def estimate_cost(
    items: Iterable[BatchItem],
    provider: str,
    model: str,
    registry: PriceRegistry,
    *,
    default_max_tokens: int,
    on: date | None = None,
    mode: Mode = "batch",
) -> Estimate:
    """Low and high cost of running ``items`` (an item's own ``model`` overrides ``model``).

    Raises PriceNotFoundError when a model has no price: a budget check must not pass on $0.
    """
    if default_max_tokens < 0:
        raise ValueError("default_max_tokens must be >= 0")
    day = on or datetime.now(UTC).date()
    low = high = Decimal(0)
    count = input_total = output_total = 0
    prices: dict[str, PriceRow] = {}
    for item in items:
        name = item.model or model
        price = prices.get(name)
        if price is None:
            price = prices[name] = registry.price(provider, name, mode, day)
        n_in = prompt_tokens(m.text for m in item.messages)
        n_out = item.max_tokens if item.max_tokens is not None else default_max_tokens
        # per item, so a long prompt's tier applies to that request only
        low += cost_of(Usage(input_tokens=n_in), price).total
        high += cost_of(Usage(input_tokens=n_in, output_tokens=n_out), price).total
        count += 1
        input_total += n_in
        output_total += n_out
    return Estimate(
        low=low,
        high=high,
        items=count,
        input_tokens=input_total,
        max_output_tokens=output_total,
        mode=mode,
        method=METHOD.format(mode=mode, day=day.isoformat()),
    )
