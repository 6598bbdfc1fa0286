"""The price data model: a model's rates in one mode and period (:class:`PriceRow`).

Rows come from price files (:mod:`polybatch.pricing.files`, the format and its loader) and are
looked up by :class:`polybatch.pricing.registry.PriceRegistry`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Literal

Mode = Literal["batch", "standard"]
MODES: tuple[Mode, ...] = ("batch", "standard")

#: the rate keys of a row or tier, in display order; the first and last are required
RATE_KEYS: tuple[str, ...] = ("input", "cached_input", "cache_write_5m", "cache_write_1h", "output")
#: rows without ``effective`` apply from the start of time
ALWAYS = date.min
#: the currency of rows that name none
DEFAULT_CURRENCY = "USD"
Caching = Literal["marked", "automatic"]


@dataclass(frozen=True)
class Rates:
    """USD per million tokens for each usage bucket.

    A missing optional rate is billed at ``input``: a cache read or write the price data does not
    discount is still input, and pricing it at zero would hide cost.
    """

    input: Decimal
    output: Decimal
    cached_input: Decimal | None = None
    cache_write_5m: Decimal | None = None
    cache_write_1h: Decimal | None = None

    @property
    def cached_input_rate(self) -> Decimal:
        """The rate applied to cache reads."""
        return self.input if self.cached_input is None else self.cached_input

    @property
    def cache_write_5m_rate(self) -> Decimal:
        """The rate applied to 5-minute (default) cache writes."""
        return self.input if self.cache_write_5m is None else self.cache_write_5m

    @property
    def cache_write_1h_rate(self) -> Decimal:
        """The rate applied to 1-hour cache writes."""
        return self.input if self.cache_write_1h is None else self.cache_write_1h


@dataclass(frozen=True)
class Tier:
    """Rates that replace a row's base rates for requests whose total input is above a threshold."""

    above_input_tokens: int
    rates: Rates


@dataclass(frozen=True)
class PriceRow:
    """One price period of one model in one mode."""

    provider: str
    model: str
    mode: Mode
    rates: Rates
    effective: date = ALWAYS
    aliases: tuple[str, ...] = ()
    tiers: tuple[Tier, ...] = ()
    source: str = ""
    checked_on: date | None = None
    #: where the row came from (a file path, or the config file's path and ``[prices]``)
    origin: str = ""
    #: the rates were derived by a rule (the 50% batch discount), not read from a batch table
    derived: bool = False
    #: ISO 4217 code of the rates
    currency: str = DEFAULT_CURRENCY
    #: the model's output limit, when known (the estimate's bound for items without max_tokens)
    max_output_tokens: int | None = None
    #: a reasoning model (reasoning tokens are billed inside output)
    reasoning: bool = False
    #: "marked": cache reads and writes only where cache_control is set; "automatic": the
    #: provider caches long prompts by itself (OpenAI, Gemini)
    caching: Caching = "marked"
    #: where in its file the row is (``model[3]``, ``price[2]``), for messages naming a key
    entry: str = ""
    #: a user's row (config or user price file), not a plugin's bundled one
    user: bool = False

    @property
    def key(self) -> tuple[str, str, Mode, date]:
        """What identifies the row: a later row with the same key replaces it."""
        return (self.provider, self.model, self.mode, self.effective)

    def rates_for(self, total_input_tokens: int) -> Rates:
        """The rates of one request with this much input (the highest tier it is above, or base)."""
        chosen = self.rates
        for tier in self.tiers:  # sorted ascending by threshold
            if total_input_tokens > tier.above_input_tokens:
                chosen = tier.rates
        return chosen
