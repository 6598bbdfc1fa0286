"""Cost estimates before submission: a low/high range at batch (or standard) prices.

The range is meant to hold: the high end is what the request can cost at most, the low end the
least. Per request:

- input tokens are counted with :func:`polybatch.tokens.prompt_tokens` over the message texts
  (an embedding's input with :func:`~polybatch.tokens.count_tokens`); real tokenizers differ;
- **high** prices all input at the dearest rate it can be billed at: the cache-write rate where
  the request sets ``cache_control`` (the 1-hour rate for ``"ttl": "1h"``, else the 5-minute
  one) or where the model's provider writes the cache by itself (``caching = "automatic"`` and a
  cache-write rate in the price row), else the input rate; plus output up to ``max_tokens``, or,
  when the item sets none, the default the provider sends (Anthropic) or else the model's output
  limit (``max_output_tokens`` in the price row; the provider's ``default_max_tokens`` when the
  row gives none). Reasoning tokens are billed inside output and bounded by ``max_tokens``; a
  thinking budget set outside it (Gemini's ``thinkingBudget``) is added;
- **low** prices no output, and input at the cache-read rate where a cache hit is possible (a
  prompt of at least :data:`MIN_CACHEABLE_TOKENS` tokens with ``cache_control`` or on a model
  whose provider caches by itself, or any prompt reading an explicit cache such as Gemini's
  ``cachedContent``), else at the input rate;
- each request is priced on its own, so a long-context tier applies to that request only (the
  estimator adds up the tokens of the requests at the same tier's rates and prices them once:
  the cost is linear in tokens, and exact in ``Decimal``).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from ..errors import PriceNotFoundError, PricingError
from ..items import BatchItem, Usage
from ..kinds import input_texts
from ..tokens import count_tokens, prompt_tokens
from .cost import cost_at
from .known import unknown_model
from .registry import Mode, PriceRegistry, PriceRow
from .rows import DEFAULT_CURRENCY, Rates

#: the shortest prompt any provider caches (OpenAI and Anthropic: 1,024 tokens)
MIN_CACHEABLE_TOKENS = 1024
#: keys of a thinking budget that is spent outside max_tokens (Gemini's thinkingConfig)
_THINKING_BUDGET_KEYS = ("thinkingBudget", "thinking_budget")
#: keys naming an explicit cache to read from (Gemini's cached content): a hit at any length
_CACHED_CONTENT_KEYS = ("cachedContent", "cached_content")

METHOD = (
    "input tokens estimated with polybatch.tokens.prompt_tokens over each item's message texts "
    "(words and punctuation plus framing; real tokenizers differ); low: no output and input at "
    "the cache-read rate where a cache hit is possible, else uncached; high: input at the "
    "cache-write rate where cache_control is set (1h rate for 1h writes) or the provider caches "
    "automatically, output up to each item's max_tokens, else the default sent or the model's "
    "output limit, reasoning included; each request priced on its own at {mode} prices in force "
    "on {day}"
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
    currency: str = DEFAULT_CURRENCY


def cache_marks(item: BatchItem) -> set[str]:
    """How an item asks for caching: the TTLs of its ``cache_control`` markers (``"5m"``,
    ``"1h"``) anywhere in its message parts or ``extra``, and ``"read"`` where ``extra`` names an
    explicit cache to read from (Gemini's ``cachedContent``)."""
    found: set[str] = set()
    for node in _walk([*(m.content for m in item.messages), item.extra]):
        mark = node.get("cache_control")
        if isinstance(mark, Mapping):
            found.add("1h" if mark.get("ttl") == "1h" else "5m")
        elif mark is not None:
            found.add("5m")
    if any(node.get(key) for node in _walk([item.extra]) for key in _CACHED_CONTENT_KEYS):
        found.add("read")
    return found


def thinking_budget(item: BatchItem) -> int:
    """Tokens of a thinking budget the item sets outside ``max_tokens`` (0 when none)."""
    budget = 0
    for node in _walk([item.extra]):
        for key in _THINKING_BUDGET_KEYS:
            value = node.get(key)
            if isinstance(value, int) and not isinstance(value, bool) and value > 0:
                budget = max(budget, value)
    return budget


def _walk(values: Iterable[Any]) -> Iterator[Mapping[str, Any]]:
    stack = list(values)
    while stack:
        value = stack.pop()
        if isinstance(value, Mapping):
            yield value
            stack.extend(value.values())
        elif isinstance(value, list | tuple):
            stack.extend(value)


@dataclass(frozen=True)
class Bounds:
    """The token counts and usages behind one request's low and high cost."""

    input_tokens: int
    output_tokens: int
    low: Usage
    high: Usage


def input_tokens(item: BatchItem) -> int:
    """The prompt tokens ``item`` sends, as estimated offline (an embedding's or a moderation's
    input, with no chat framing; a response's instructions and input; a completion's prompt).
    The planner sums them per chunk for queue admission."""
    if item.kind in ("embedding", "moderation"):
        return sum(count_tokens(t) for t in input_texts(item.input))
    if item.kind == "chat":
        return prompt_tokens(m.text for m in item.messages)
    fields = (item.instructions, item.input, item.prompt)
    return prompt_tokens(t for value in fields for t in input_texts(value))


@dataclass(frozen=True)
class _Split:
    """One request's bounds as token counts, the tier's rates, and the bucket its input lands in
    at the low and the high end (output is only ever counted at the high end)."""

    n_in: int
    n_out: int
    rates: Rates
    low_bucket: str
    high_bucket: str


def _split(
    item: BatchItem, price: PriceRow, *, default_max_tokens: int, sends_default: bool
) -> _Split:
    n_in = input_tokens(item)
    if item.kind in ("embedding", "moderation"):  # neither produces output tokens
        return _Split(n_in, 0, price.rates_for(n_in), "input_tokens", "input_tokens")
    if item.max_tokens is not None:
        n_out = item.max_tokens
    elif sends_default or price.max_output_tokens is None:
        n_out = default_max_tokens
    else:
        n_out = price.max_output_tokens
    n_out += thinking_budget(item)
    marks = cache_marks(item)
    automatic = price.caching == "automatic"
    rates = price.rates_for(n_in)
    # the dearest bucket all input could land in (ties stay plain input)
    high, dearest = "input_tokens", rates.input
    if ("5m" in marks or automatic) and rates.cache_write_5m_rate > dearest:
        high, dearest = "cache_write_5m_tokens", rates.cache_write_5m_rate
    if "1h" in marks and rates.cache_write_1h_rate > dearest:
        high = "cache_write_1h_tokens"
    low = "input_tokens"
    cacheable = "read" in marks or ((marks or automatic) and n_in >= MIN_CACHEABLE_TOKENS)
    if cacheable and rates.cached_input_rate < rates.input:
        low = "cached_input_tokens"
    return _Split(n_in, n_out, rates, low, high)


def request_bounds(
    item: BatchItem, price: PriceRow, *, default_max_tokens: int, sends_default: bool = True
) -> Bounds:
    """The least and most usage ``item`` can be billed for at ``price`` (see the module doc)."""
    sp = _split(item, price, default_max_tokens=default_max_tokens, sends_default=sends_default)
    low = Usage.model_validate({sp.low_bucket: sp.n_in})
    high = Usage.model_validate({sp.high_bucket: sp.n_in, "output_tokens": sp.n_out})
    return Bounds(sp.n_in, sp.n_out, low, high)


class _Sums:
    """Token totals per bucket of the requests priced at one set of rates, low and high end."""

    __slots__ = ("high", "low", "rates")

    def __init__(self, rates: Rates) -> None:
        self.rates = rates
        self.low: dict[str, int] = {}
        self.high: dict[str, int] = {}

    def add(self, sp: _Split) -> None:
        self.low[sp.low_bucket] = self.low.get(sp.low_bucket, 0) + sp.n_in
        self.high[sp.high_bucket] = self.high.get(sp.high_bucket, 0) + sp.n_in
        self.high["output_tokens"] = self.high.get("output_tokens", 0) + sp.n_out

    def cost(self, end: Mapping[str, int]) -> Decimal:
        return cost_at(Usage.model_validate(end), self.rates).total


class Estimator:
    """Accumulates an estimate one item at a time (so planning can feed it as it streams).

    A missing price raises PriceNotFoundError at the first item of that model: a budget check
    must not pass on $0. ``sends_default``: the provider sends ``default_max_tokens`` for items
    without ``max_tokens`` (so that is their bound); otherwise the model's output limit is.
    """

    def __init__(
        self,
        provider: str,
        registry: PriceRegistry,
        *,
        default_max_tokens: int,
        on: date | None = None,
        mode: Mode = "batch",
        sends_default: bool = True,
        known_models: Iterable[str] = (),
    ) -> None:
        if default_max_tokens < 0:
            raise ValueError("default_max_tokens must be >= 0")
        self.provider = provider
        self.registry = registry
        self.default_max_tokens = default_max_tokens
        self.sends_default = sends_default
        self.day = on or datetime.now(UTC).date()
        self.mode: Mode = mode
        self.count = self.input_total = self.output_total = 0
        self.currency: str | None = None
        self._prices: dict[str, PriceRow] = {}
        self._sums: dict[int, _Sums] = {}
        #: the provider's own model list: a model in neither it nor the registry is a typo
        self.known_models = tuple(known_models)

    def price_of(self, model: str) -> PriceRow:
        """The price row ``model``'s items are estimated at (PriceNotFoundError if none)."""
        price = self._prices.get(model)
        if price is None:
            try:
                price = self.registry.price(self.provider, model, self.mode, self.day)
            except PriceNotFoundError:
                unknown = unknown_model(self.registry, self.provider, model, self.known_models)
                if unknown is not None:
                    raise unknown from None
                raise
            self._prices[model] = price
        return price

    def add(self, item: BatchItem, model: str) -> None:
        """Count one item, to be run on ``model``."""
        price = self.price_of(model)
        if self.currency is None:
            self.currency = price.currency
        elif price.currency != self.currency:
            raise PricingError(
                f"cannot add up {self.currency} and {price.currency} prices in one estimate "
                f"({price.provider}:{price.model})"
            )
        sp = _split(
            item,
            price,
            default_max_tokens=self.default_max_tokens,
            sends_default=self.sends_default,
        )
        # cost is linear within one tier's rates: add up tokens per rates, price them once
        sums = self._sums.get(id(sp.rates))
        if sums is None:
            sums = self._sums[id(sp.rates)] = _Sums(sp.rates)
        sums.add(sp)
        self.count += 1
        self.input_total += sp.n_in
        self.output_total += sp.n_out

    @property
    def low(self) -> Decimal:
        """The low end of everything added so far."""
        return sum((s.cost(s.low) for s in self._sums.values()), Decimal(0))

    @property
    def high(self) -> Decimal:
        """The high end of everything added so far."""
        return sum((s.cost(s.high) for s in self._sums.values()), Decimal(0))

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
            currency=self.currency or DEFAULT_CURRENCY,
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
    sends_default: bool = True,
) -> Estimate:
    """Low and high cost of running ``items`` (an item's own ``model`` overrides ``model``).

    Raises PriceNotFoundError when a model has no price: a budget check must not pass on $0.
    """
    est = Estimator(
        provider,
        registry,
        default_max_tokens=default_max_tokens,
        on=on,
        mode=mode,
        sends_default=sends_default,
    )
    for item in items:
        est.add(item, item.model or model)
    return est.result()
