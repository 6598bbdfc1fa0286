"""Usage and cost tables: pure functions from results to rows, and renderers for rows.

``usage_rows`` prices every result on its own (tiers are per request) at the prices in force on
its batch's creation date, in batch mode and, for comparison, in standard mode. A model without a
price is never counted as $0: its cost columns say "unpriced" and a :class:`UnpricedWarning` names
it. Every table, CSV and JSON names the currency (``currency`` column; USD unless the price rows
name another); amounts in one table must share a currency. CSV and JSON hold exact amounts unless
``digits`` asks for rounding; the table for people keeps six significant digits.
"""

from __future__ import annotations

import csv
import io
import json
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, Literal

from ..errors import PricingError
from ..items import BatchResult, Usage
from .cost import Cost, cost_of
from .money import money_text, show_money
from .registry import Mode, PriceRegistry
from .rows import DEFAULT_CURRENCY

GroupKey = Literal["provider", "model", "job_id", "date"]
GROUP_KEYS: tuple[GroupKey, ...] = ("provider", "model", "job_id", "date")
Format = Literal["table", "csv", "json"]
UNPRICED = "unpriced"
COST_COLUMNS = ("batch_cost_usd", "standard_cost_usd", "saving_usd")
COUNT_COLUMNS = (
    "requests_ok",
    "requests_failed",
    "input_tokens",
    "cached_input_tokens",
    "cache_write_tokens",
    "output_tokens",
)
_HEADERS = {
    "provider": "Provider",
    "model": "Model",
    "job_id": "Job",
    "date": "Date",
    "requests_ok": "OK",
    "requests_failed": "Failed",
    "input_tokens": "Input",
    "cached_input_tokens": "Cached",
    "cache_write_tokens": "Cache write",
    "output_tokens": "Output",
    "batch_cost_usd": "Batch $",
    "standard_cost_usd": "Standard $",
    "saving_usd": "Saving $",
    "currency": "Currency",
}
#: significant digits of money in the table for people (CSV and JSON stay exact)
TABLE_SIGNIFICANT = 6


class UnpricedWarning(UserWarning):
    """Usage of a model that has no price: its cost is shown as "unpriced", never as $0."""


@dataclass(frozen=True)
class UsageRecord:
    """What a table needs of one result: who served it, whether it succeeded, its usage, when."""

    provider: str | None
    model: str | None
    ok: bool
    usage: Usage
    job_id: str | None
    #: the creation date of the batch the request ran in (prices in force that day apply)
    created: date

    @classmethod
    def from_result(
        cls,
        result: BatchResult,
        job_id: str | None,
        created: date | datetime,
        *,
        provider: str | None = None,
        model: str | None = None,
    ) -> UsageRecord:
        """A record of a BatchResult; ``provider``/``model`` fill in what the result lacks."""
        return cls(
            provider=result.provider or provider,
            model=result.model or model,
            ok=result.ok,
            usage=result.usage,
            job_id=job_id,
            created=_as_date(created),
        )


RecordLike = UsageRecord | tuple[BatchResult, str | None, date | datetime]


@dataclass
class UsageRow:
    """One line of a usage table (``total`` marks the last, summing line).

    A cost is None when none of the row's usage could be priced ("unpriced"); a cost named in
    ``partial`` is the sum of the priced requests only, some of the row's usage having no price.
    """

    keys: dict[str, str]
    requests_ok: int = 0
    requests_failed: int = 0
    input_tokens: int = 0
    cached_input_tokens: int = 0
    cache_write_tokens: int = 0
    output_tokens: int = 0
    batch_cost: Decimal | None = None
    standard_cost: Decimal | None = None
    saving: Decimal | None = None
    partial: tuple[str, ...] = ()
    total: bool = False
    currency: str = DEFAULT_CURRENCY

    def costs(self) -> dict[str, Decimal | None]:
        """The cost columns by name."""
        return {
            "batch_cost_usd": self.batch_cost,
            "standard_cost_usd": self.standard_cost,
            "saving_usd": self.saving,
        }

    def counts(self) -> dict[str, int]:
        """The count columns by name."""
        return {name: getattr(self, name) for name in COUNT_COLUMNS}


@dataclass
class Money:
    """A sum of costs that remembers whether some parts had no price."""

    amount: Decimal = Decimal(0)
    priced: int = 0
    unpriced: int = 0

    def add(self, value: Decimal | None) -> None:
        if value is None:
            self.unpriced += 1
        else:
            self.amount += value
            self.priced += 1

    def merge(self, other: Money) -> None:
        self.amount += other.amount
        self.priced += other.priced
        self.unpriced += other.unpriced

    @property
    def value(self) -> Decimal | None:
        return None if self.unpriced and not self.priced else self.amount


@dataclass
class _Group:
    row: UsageRow
    batch: Money = field(default_factory=Money)
    standard: Money = field(default_factory=Money)
    saving: Money = field(default_factory=Money)

    def merge(self, other: _Group) -> None:
        for name in COUNT_COLUMNS:
            setattr(self.row, name, getattr(self.row, name) + getattr(other.row, name))
        self.batch.merge(other.batch)
        self.standard.merge(other.standard)
        self.saving.merge(other.saving)

    def finish(self) -> UsageRow:
        self.row.batch_cost = self.batch.value
        self.row.standard_cost = self.standard.value
        self.row.saving = self.saving.value
        self.row.partial = tuple(
            name
            for name, money in zip(
                COST_COLUMNS, (self.batch, self.standard, self.saving), strict=True
            )
            if money.unpriced and money.priced
        )
        return self.row


def _as_date(value: date | datetime) -> date:
    if isinstance(value, datetime):
        return (value.astimezone(UTC) if value.tzinfo else value).date()
    return value


def as_record(item: RecordLike) -> UsageRecord:
    """``item`` as a UsageRecord (a ``(result, job_id, created)`` tuple is converted)."""
    if isinstance(item, UsageRecord):
        return item
    result, job_id, created = item
    return UsageRecord.from_result(result, job_id, created)


def record_keys(record: UsageRecord, registry: PriceRegistry) -> dict[str, str]:
    """The values a table groups ``record`` by (models under the name the registry prices them
    by: dated snapshots merge)."""
    model = record.model or "?"
    if record.provider and record.model:
        model = registry.resolve_model(record.provider, record.model) or record.model
    return {
        "provider": record.provider or "?",
        "model": model,
        "job_id": record.job_id or "?",
        "date": record.created.isoformat(),
    }


class Pricer:
    """Prices records one by one in batch and standard mode, remembering what had no price (one
    :class:`UnpricedWarning` per model and mode, at :meth:`currency`) and the currencies seen."""

    def __init__(self, registry: PriceRegistry) -> None:
        self.registry = registry
        self.missing: dict[tuple[str, str, Mode], date] = {}
        self.currencies: dict[str, str] = {}  # currency -> the first row priced in it

    def costs(self, record: UsageRecord) -> dict[Mode, Cost | None]:
        """The record's cost per mode, by bucket; None where its model has no price."""
        costs: dict[Mode, Cost | None] = {}
        mode: Mode
        for mode in ("batch", "standard"):
            if record.usage.total_tokens == 0:
                costs[mode] = Cost()  # nothing used, nothing owed, whatever the price
                continue
            price = None
            if record.provider and record.model:
                price = self.registry.find(record.provider, record.model, mode, record.created)
            if price is None:
                key = (record.provider or "?", record.model or "?", mode)
                self.missing.setdefault(key, record.created)
                costs[mode] = None
            else:
                self.currencies.setdefault(price.currency, f"{price.provider}:{price.model}")
                costs[mode] = cost_of(record.usage, price)
        return costs

    def currency(self) -> str:
        """The one currency of everything priced (PricingError if several), after warning once
        for each model and mode without a price."""
        for (provider, model, mode), day in sorted(self.missing.items()):
            warnings.warn(
                f"polybatch: no {mode} price for {provider}:{model} (on {day.isoformat()}); "
                f"its {mode} cost is shown as '{UNPRICED}', not $0. Add a row to the [prices] "
                f"table of your config.",
                UnpricedWarning,
                stacklevel=3,
            )
        if len(self.currencies) > 1:
            shown = ", ".join(f"{c} ({first})" for c, first in sorted(self.currencies.items()))
            raise PricingError(f"cannot add up costs in different currencies: {shown}")
        return next(iter(self.currencies), DEFAULT_CURRENCY)


def check_keys(by: Sequence[str]) -> None:
    """ValueError for a grouping key tables do not know."""
    for key in by:
        if key not in GROUP_KEYS:
            raise ValueError(f"cannot group by {key!r}; choose from {', '.join(GROUP_KEYS)}")


def usage_rows(
    records: Iterable[RecordLike],
    registry: PriceRegistry,
    by: Sequence[GroupKey] = ("provider", "model"),
) -> list[UsageRow]:
    """Rows of requests, tokens and costs grouped by ``by``, sorted, then a total row.

    ``records`` are :class:`UsageRecord` or ``(BatchResult, job_id, batch created date)`` tuples.
    Models are grouped under the name the registry prices them by (dated snapshots merge). Every
    request is priced on its own; a request with no usage costs zero, priced or not.
    """
    check_keys(by)
    groups: dict[tuple[str, ...], _Group] = {}
    pricer = Pricer(registry)
    for record in map(as_record, records):
        values = record_keys(record, registry)
        group_key = tuple(values[k] for k in by)
        group = groups.get(group_key)
        if group is None:
            group = groups[group_key] = _Group(UsageRow(keys={k: values[k] for k in by}))
        row, usage = group.row, record.usage
        if record.ok:
            row.requests_ok += 1
        else:
            row.requests_failed += 1
        row.input_tokens += usage.input_tokens
        row.cached_input_tokens += usage.cached_input_tokens
        row.cache_write_tokens += usage.cache_write_5m_tokens + usage.cache_write_1h_tokens
        row.output_tokens += usage.output_tokens

        costs = pricer.costs(record)
        batch = None if (c := costs["batch"]) is None else c.total
        standard = None if (c := costs["standard"]) is None else c.total
        group.batch.add(batch)
        group.standard.add(standard)
        group.saving.add(None if batch is None or standard is None else standard - batch)

    currency = pricer.currency()
    for group in groups.values():
        group.row.currency = currency
    rows: list[UsageRow] = []
    total = _Group(UsageRow(keys={k: "" for k in by}, total=True, currency=currency))
    if by:
        total.row.keys[by[0]] = "TOTAL"
    for group_key in sorted(groups):
        total.merge(groups[group_key])
        rows.append(groups[group_key].finish())
    rows.append(total.finish())
    return rows


# -- rendering -------------------------------------------------------------------------------


def money_cell(value: Decimal | None, partial: bool, digits: int | None, human: bool) -> str:
    """A cost as printed: "unpriced", or the amount (six significant digits for people unless
    ``digits`` rounds it), "+ unpriced" when part of it had no price."""
    if value is None:
        return UNPRICED
    if human and digits is None:
        text = show_money(value, significant=TABLE_SIGNIFICANT)
    else:
        text = money_text(value, digits)
    return f"{text} + {UNPRICED}" if partial else text


def _columns(rows: Sequence[UsageRow]) -> list[str]:
    keys = list(rows[0].keys) if rows else []
    return [*keys, *COUNT_COLUMNS, *COST_COLUMNS, "currency"]


def _flat(row: UsageRow, digits: int | None, human: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = dict(row.keys)
    out.update(row.counts())
    for name, value in row.costs().items():
        out[name] = money_cell(value, name in row.partial, digits, human)
    out["currency"] = row.currency
    return out


def render_table(rows: Sequence[UsageRow], fmt: Format = "table", digits: int | None = None) -> str:
    """Rows as a prettytable table, CSV, or JSON (money as strings), with a currency column.

    ``digits`` rounds money half-up to that many decimals. Without it, CSV and JSON hold the
    exact amounts and the table keeps six significant digits ($0.000047 stays ``0.000047``).
    """
    flat = [_flat(r, digits, human=fmt == "table") for r in rows]
    # a rule above the total row
    rules = [i + 2 == len(flat) and rows[-1].total for i in range(len(flat))]
    return render_flat(_columns(rows), flat, fmt, counts=COUNT_COLUMNS, rules=rules)


def render_flat(
    columns: Sequence[str],
    flat: Sequence[dict[str, Any]],
    fmt: Format,
    *,
    counts: Sequence[str],
    rules: Sequence[bool],
    headers: dict[str, str] | None = None,
) -> str:
    """Rows of printed cells as JSON, CSV or a table (``counts`` right-aligned with thousands
    separators, money right-aligned, a rule below each row ``rules`` marks)."""
    if fmt == "json":
        return json.dumps(list(flat), indent=2)
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=list(columns), lineterminator="\n")
        writer.writeheader()
        writer.writerows(flat)
        return buffer.getvalue()
    if fmt == "table":
        from prettytable import PrettyTable

        names = {**_HEADERS, **(headers or {})}
        table = PrettyTable([names[c] for c in columns])
        for c in columns:
            table.align[names[c]] = "r" if c in counts or c in COST_COLUMNS else "l"
        for values, rule in zip(flat, rules, strict=True):
            table.add_row(
                [f"{values[c]:,}" if c in counts else values[c] for c in columns], divider=rule
            )
        return str(table.get_string())
    raise ValueError(f"unknown format {fmt!r}; choose table, csv or json")
