"""The cost of usage at a price row, in exact Decimal dollars."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, fields
from decimal import Decimal

from ..items import Usage
from .registry import PriceRow
from .rows import Rates

_MILLION = Decimal(1_000_000)
_ZERO = Decimal(0)


@dataclass(frozen=True)
class Cost:
    """USD per usage bucket. ``cache_write`` holds 5-minute and 1-hour writes together."""

    input: Decimal = _ZERO
    cached_input: Decimal = _ZERO
    cache_write: Decimal = _ZERO
    output: Decimal = _ZERO

    @property
    def total(self) -> Decimal:
        """All buckets together."""
        return self.input + self.cached_input + self.cache_write + self.output

    def __add__(self, other: Cost) -> Cost:
        if not isinstance(other, Cost):
            return NotImplemented
        return Cost(
            **{f.name: getattr(self, f.name) + getattr(other, f.name) for f in fields(Cost)}
        )

    def __radd__(self, other: object) -> Cost:
        # lets sum() start from 0
        if other == 0:
            return self
        return NotImplemented


def _usd(tokens: int, rate: Decimal) -> Decimal:
    # tokens x (USD per million tokens); exact in Decimal's 28 digits for any realistic count
    return Decimal(tokens) * rate / _MILLION


def cost_of(usage: Usage, price: PriceRow) -> Cost:
    """The cost of ONE request's usage: its total input picks the tier, then each bucket is priced.

    Reasoning tokens are part of ``output_tokens`` and are not priced again.
    """
    return cost_at(usage, price.rates_for(usage.total_input_tokens))


def cost_at(usage: Usage, rates: Rates) -> Cost:
    """The cost of ``usage`` at ``rates`` (one tier of a row): linear, so the usages of many
    requests at the same rates can be added up first and priced once."""
    return Cost(
        input=_usd(usage.input_tokens, rates.input),
        cached_input=_usd(usage.cached_input_tokens, rates.cached_input_rate),
        cache_write=_usd(usage.cache_write_5m_tokens, rates.cache_write_5m_rate)
        + _usd(usage.cache_write_1h_tokens, rates.cache_write_1h_rate),
        output=_usd(usage.output_tokens, rates.output),
    )


def total_cost(usages: Iterable[Usage], price: PriceRow) -> Cost:
    """The cost of many requests at one price, each priced on its own (tiers are per request)."""
    return sum((cost_of(u, price) for u in usages), Cost())
