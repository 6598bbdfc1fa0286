"""Prices and costs: the price registry, per-request costs, usage tables and estimates.

Money is ``decimal.Decimal`` USD end to end; rates are USD per million tokens.
"""

from __future__ import annotations

from .budget import check_budget, describe_estimate, estimate_items, estimator, usd
from .cost import Cost, cost_of, total_cost
from .estimate import Estimate, Estimator, estimate_cost
from .installed import price_registry
from .registry import (
    MODES,
    Mode,
    PriceRegistry,
    PriceRow,
    Rates,
    Tier,
    load_price_file,
    parse_rows,
    strip_date_suffix,
)
from .tables import UnpricedWarning, UsageRecord, UsageRow, render_table, usage_rows

__all__ = [
    "MODES",
    "Cost",
    "Estimate",
    "Estimator",
    "Mode",
    "PriceRegistry",
    "PriceRow",
    "Rates",
    "Tier",
    "UnpricedWarning",
    "UsageRecord",
    "UsageRow",
    "check_budget",
    "cost_of",
    "describe_estimate",
    "estimate_cost",
    "estimate_items",
    "estimator",
    "load_price_file",
    "parse_rows",
    "price_registry",
    "render_table",
    "strip_date_suffix",
    "total_cost",
    "usage_rows",
    "usd",
]
