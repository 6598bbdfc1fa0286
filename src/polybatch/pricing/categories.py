"""A usage table by token category: prompt, cached, cache write, completion, reasoning, total.

The view behind ``polybatch usage --by category`` and ``usage_table(by=("category",))``: one row
per token category (per group of the other keys given, ``--by model,category``), with the tokens
and what they cost in batch and in standard mode. Records are priced as in
:func:`~polybatch.pricing.tables.usage_rows` (each request on its own, unpriced never $0).

``prompt`` is uncached input, ``cached`` cache reads, ``cache write`` cache writes (shown where
present), ``completion`` all output. ``reasoning`` (shown where present) is the part of the
completion spent reasoning, and its share of the completion's cost: it is already counted in
``completion``, so ``total`` does not add it again.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from .cost import Cost
from .registry import Mode, PriceRegistry
from .rows import DEFAULT_CURRENCY
from .tables import (
    Format,
    GroupKey,
    Money,
    Pricer,
    RecordLike,
    UsageRecord,
    as_record,
    check_keys,
    money_cell,
    record_keys,
    render_flat,
)

#: category -> (its tokens in a record, its cost in a record's Cost)
_CATEGORIES: dict[str, tuple[Callable[[UsageRecord], int], Callable[[UsageRecord, Cost], Decimal]]]
_CATEGORIES = {
    "prompt": (lambda r: r.usage.input_tokens, lambda r, c: c.input),
    "cached": (lambda r: r.usage.cached_input_tokens, lambda r, c: c.cached_input),
    "cache write": (
        lambda r: r.usage.cache_write_5m_tokens + r.usage.cache_write_1h_tokens,
        lambda r, c: c.cache_write,
    ),
    "completion": (lambda r: r.usage.output_tokens, lambda r, c: c.output),
    "reasoning": (
        lambda r: r.usage.reasoning_tokens,
        # output is priced per token at one rate per request: reasoning's share is exact
        lambda r, c: (
            c.output * r.usage.reasoning_tokens / r.usage.output_tokens
            if r.usage.output_tokens
            else Decimal(0)
        ),
    ),
    "total": (lambda r: r.usage.total_tokens, lambda r, c: c.total),
}
#: categories shown only where some request used them
_WHERE_PRESENT = frozenset({"cache write", "reasoning"})
CATEGORY_COLUMNS = ("category", "tokens", "batch_cost_usd", "standard_cost_usd", "currency")
_HEADERS = {"category": "Category", "tokens": "Tokens"}


@dataclass
class CategoryRow:
    """One category of one group: its tokens and their cost per mode (None: unpriced; a mode in
    ``partial`` sums the priced requests only)."""

    keys: dict[str, str]
    category: str
    tokens: int = 0
    batch: Money = field(default_factory=Money)
    standard: Money = field(default_factory=Money)
    currency: str = DEFAULT_CURRENCY

    def cells(self, digits: int | None, human: bool) -> dict[str, Any]:
        """The row's columns as printed (money as text)."""
        out: dict[str, Any] = {**self.keys, "category": self.category, "tokens": self.tokens}
        for name, money in (("batch_cost_usd", self.batch), ("standard_cost_usd", self.standard)):
            partial = bool(money.unpriced and money.priced)
            out[name] = money_cell(money.value, partial, digits, human)
        out["currency"] = self.currency
        return out


def category_rows(
    records: Iterable[RecordLike], registry: PriceRegistry, by: Sequence[GroupKey] = ()
) -> list[CategoryRow]:
    """The rows of each group of ``by`` (sorted; none: the whole usage), category by category."""
    check_keys(by)
    pricer = Pricer(registry)
    groups: dict[tuple[str, ...], dict[str, CategoryRow]] = {}
    for record in map(as_record, records):
        values = record_keys(record, registry)
        key = tuple(values[k] for k in by)
        group = groups.get(key)
        if group is None:
            shown: dict[str, str] = {k: values[k] for k in by}
            group = groups[key] = {name: CategoryRow(dict(shown), name) for name in _CATEGORIES}
        costs: dict[Mode, Cost | None] = pricer.costs(record)
        for name, (tokens, cost) in _CATEGORIES.items():
            row = group[name]
            row.tokens += tokens(record)
            modes: tuple[tuple[Mode, Money], ...] = (
                ("batch", row.batch),
                ("standard", row.standard),
            )
            for mode, money in modes:
                mode_cost = costs[mode]
                money.add(None if mode_cost is None else cost(record, mode_cost))
    currency = pricer.currency()
    present = {
        name
        for group in groups.values()
        for name, row in group.items()
        if name not in _WHERE_PRESENT or row.tokens
    }
    rows: list[CategoryRow] = []
    for key in sorted(groups):
        for name, row in groups[key].items():
            if name in present:
                row.currency = currency
                rows.append(row)
    return rows


def render_categories(
    rows: Sequence[CategoryRow], fmt: Format = "table", digits: int | None = None
) -> str:
    """Category rows as a table, CSV or JSON (money as exact strings unless ``digits``)."""
    keys = list(rows[0].keys) if rows else []
    flat = [r.cells(digits, human=fmt == "table") for r in rows]
    # a rule after each group's total
    rules = [r.category == "total" and i + 1 < len(rows) for i, r in enumerate(rows)]
    return render_flat(
        [*keys, *CATEGORY_COLUMNS], flat, fmt, counts=("tokens",), rules=rules, headers=_HEADERS
    )
