"""``polybatch prices`` (the price rows in force, as a table, CSV or JSON) and the table of
``estimate --compare``."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import click
from prettytable import PrettyTable

from ..compare import Comparison
from ..errors import ConfigError
from ..plugins import get_registry
from ..pricing import PriceRow, price_registry, show_money, usd
from ..pricing.rows import RATE_KEYS
from .formats import FORMAT_OPTION

#: the columns of ``polybatch prices``: rates are per million tokens in the row's currency
PRICE_COLUMNS: tuple[str, ...] = (
    "provider",
    "model",
    "mode",
    "effective",
    "currency",
    "unit",
    *RATE_KEYS,
    "tiers",
    "derived",
    "source",
    "checked_on",
    "origin",
    "in_force",
)
UNIT = "per 1M tokens"


def price_record(row: PriceRow, bundled: set[str], in_force: bool = True) -> dict[str, Any]:
    """One price row as a flat record (rates as exact decimal strings, "" where none)."""
    rates = row.rates
    return {
        "provider": row.provider,
        "model": row.model,
        "mode": row.mode,
        "effective": "" if row.effective == date.min else row.effective.isoformat(),
        "currency": row.currency,
        "unit": UNIT,
        **{
            k: "" if getattr(rates, k) is None else format(getattr(rates, k), "f")
            for k in RATE_KEYS
        },
        "tiers": "; ".join(
            f">{t.above_input_tokens}: "
            + " ".join(
                f"{k}={format(getattr(t.rates, k), 'f')}"
                for k in RATE_KEYS
                if getattr(t.rates, k) is not None
            )
            for t in row.tiers
        ),
        "derived": row.derived,
        "source": row.source,
        "checked_on": row.checked_on.isoformat() if row.checked_on else "",
        "origin": ("bundled " if row.origin in bundled and not row.user else "user ") + row.origin,
        "in_force": in_force,
    }


@click.command()
@click.argument("model", required=False)
@click.option("--provider", help="Only this provider's prices.")
@click.option(
    "--at",
    "at",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    help="The rows in force on this date (default: today).",
)
@click.option(
    "--all", "show_all", is_flag=True, help="Every row of every period, not only those in force."
)
@FORMAT_OPTION
def prices(model: str | None, provider: str | None, at: Any, show_all: bool, fmt: str) -> None:
    """Show the price rows in force (bundled, overridden by your config), per 1M tokens.

    Each row says where it came from (a plugin's bundled file or your file), its source and
    when it was checked, and whether its rates were derived by the 50% batch rule rather than
    read from a published batch price table.

    \b
    Example: polybatch prices gpt-4o-mini --provider openai --format json
    Exit codes: 0 shown, 2 no price for that model.
    """
    reg = price_registry()
    day = at.date() if at else datetime.now(UTC).date()
    candidates = reg.rows() if show_all else reg.in_force(day)
    rows = [
        r
        for r in candidates
        if (provider is None or r.provider == provider)
        and (model is None or r.model == (reg.resolve_model(r.provider, model) or model))
    ]
    if model and not rows:
        raise ConfigError(
            f"no price for model {model!r}"
            + (f" of {provider}" if provider else "")
            + ("" if show_all else f" on {day.isoformat()}")
        )
    bundled = {str(p) for p in get_registry().price_files()}
    current = {id(r) for r in reg.in_force(day)}
    records = [price_record(r, bundled, id(r) in current) for r in rows]
    if fmt == "json":
        click.echo(json.dumps(records, indent=2))
        return
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=PRICE_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(
            {**r, "derived": str(r["derived"]).lower(), "in_force": str(r["in_force"]).lower()}
            for r in records
        )
        click.echo(buffer.getvalue(), nl=False)
        return
    hidden = {"unit", "source"} | (set() if show_all else {"in_force"})
    shown = [c for c in PRICE_COLUMNS if c not in hidden]
    headers = {k: k.replace("_", " ") for k in shown}
    headers.update({k: f"{k.replace('_', ' ')} $/1M" for k in RATE_KEYS})
    t = PrettyTable([headers[c] for c in shown])
    for rec in records:
        # the table names a bundled file by its package; CSV and JSON keep the full path
        kind, _, path = rec["origin"].partition(" ")
        short = "/".join(Path(path).parts[-2:]) if kind == "bundled" else path
        cells = {**rec, "origin": f"{kind} {short}"}
        t.add_row(
            ["yes" if cells[c] is True else "" if cells[c] is False else cells[c] for c in shown]
        )
    in_force = "every period" if show_all else f"in force on {day.isoformat()}"
    click.echo(
        f"prices {in_force}; rates in USD ($) per 1M tokens unless the currency says otherwise"
    )
    click.echo(t.get_string())
    sources = sorted({rec["source"] for rec in records if rec["source"]})
    if sources:
        click.echo("sources: " + " | ".join(sources))


def render_comparison(rows: list[Comparison]) -> str:
    """The ``estimate --compare`` table, cheapest first, and the refused items under it."""
    t = PrettyTable(
        [
            "provider:model",
            "requests",
            "chunks",
            "refused",
            "batch cost",
            "synchronous cost",
            "saving",
            "currency",
        ]
    )
    for name in ("requests", "chunks", "refused"):
        t.align[name] = "r"
    for row in rows:
        cur = row.currency or ""

        def span(low: Any, high: Any) -> str:
            return f"{show_money(low)} - {show_money(high)}"

        batch = span(row.batch.low, row.batch.high) if row.batch else "unpriced"
        sync = span(row.standard.low, row.standard.high) if row.standard else "unpriced"
        saving = row.saving
        t.add_row(
            [
                row.spec + (f" (profile {row.profile})" if row.profile else ""),
                f"{row.requests:,}",
                f"{row.chunks:,}",
                f"{len(row.refused):,}",
                batch,
                sync,
                span(*saving) if saving else "",
                cur,
            ]
        )
    lines = [t.get_string()]
    for row in rows:
        if row.unpriced:
            lines.append(f"{row.spec}: unpriced: {row.unpriced.split(' [')[0]}")
        for refusal in row.refused[:5]:
            lines.append(f"{row.spec} refuses {refusal.custom_id}: {refusal.reason}")
        if len(row.refused) > 5:
            lines.append(f"{row.spec} refuses {len(row.refused) - 5} more item(s)")
        if row.blocked:
            lines.append(f"{row.spec}: a job would be refused: {row.blocked}")
        if row.over_budget and row.batch is not None:
            lines.append(
                f"{row.spec}: up to {usd(row.batch.high, row.batch.currency)} exceeds "
                f"--max-cost ${row.max_cost}: a job would be refused"
            )
    cheapest = next((r for r in rows if r.batch and not r.blocked), None)
    if cheapest and cheapest.batch:
        lines.append(
            f"cheapest: {cheapest.spec}, up to {usd(cheapest.batch.high, cheapest.batch.currency)} "
            "at batch prices; nothing was submitted"
        )
    return "\n".join(lines)
