"""How the commands print: ``--format table|csv|json`` for the tables, ``--json`` for the commands
that show one thing (a job, the job list, the providers, an estimate), and the JSON they write."""

from __future__ import annotations

import json
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import click

#: ``--format table|csv|json`` of the commands that print tables (``usage``, ``prices``)
FORMAT_OPTION = click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "csv", "json"]),
    default="table",
    show_default=True,
    help="How to print the table: aligned text, CSV, or JSON (money as exact strings).",
)

#: ``--json`` of status, list, providers and estimate
JSON_OPTION = click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print JSON instead of text (parseable; money as exact decimal strings).",
)


def _plain(value: Any) -> Any:
    """JSON for what json cannot write: Decimal money as its exact string, dates as ISO."""
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON: {type(value).__name__}")


def echo_json(data: Any) -> None:
    """Print ``data`` as indented JSON on stdout."""
    click.echo(json.dumps(data, indent=2, default=_plain))
