"""Cost estimates before submission: a low/high range at batch prices."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal

from ..items import BatchItem, Usage
from ..tokens import count_tokens, prompt_tokens
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


class Estimator:
    """Accumulates an estimate one item at a time (so planning can feed it as it streams).

    A missing price raises PriceNotFoundError at the first item of that model: a budget check
    must not pass on $0.
    """

    def __init__(
        self,
        provider: str,
        registry: PriceRegistry,
        *,
        default_max_tokens: int,
        on: date | None = None,
        mode: Mode = "batch",
    ) -> None:
        if default_max_tokens < 0:
            raise ValueError("default_max_tokens must be >= 0")
        self.provider = provider
        self.registry = registry
        self.default_max_tokens = default_max_tokens
        self.day = on or datetime.now(UTC).date()
        self.mode: Mode = mode
        self.low = self.high = Decimal(0)
        self.count = self.input_total = self.output_total = 0
        self._prices: dict[str, PriceRow] = {}

    def add(self, item: BatchItem, model: str) -> None:
        """Count one item, to be run on ``model``."""
        price = self._prices.get(model)
        if price is None:
            price = self._prices[model] = self.registry.price(
                self.provider, model, self.mode, self.day
            )
        if item.kind == "embedding":
            # the input string's tokens, no chat framing; embeddings produce no output tokens
            n_in, n_out = count_tokens(item.input or ""), 0
        else:
            n_in = prompt_tokens(m.text for m in item.messages)
            n_out = item.max_tokens if item.max_tokens is not None else self.default_max_tokens
        # per item, so a long prompt's tier applies to that request only
        self.low += cost_of(Usage(input_tokens=n_in), price).total
        self.high += cost_of(Usage(input_tokens=n_in, output_tokens=n_out), price).total
        self.count += 1
        self.input_total += n_in
        self.output_total += n_out

    def result(self) -> Estimate:
        """The estimate of everything added so far."""
        return Estimate(
            low=self.low,
            high=self.high,
            items=self.count,
            input_tokens=self.input_total,
            max_output_tokens=self.output_total,
            mode=self.mode,
            method=METHOD.format(mode=self.mode, day=self.day.isoformat()),
        )


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
    est = Estimator(provider, registry, default_max_tokens=default_max_tokens, on=on, mode=mode)
    for item in items:
        est.add(item, item.model or model)
    return est.result()
