"""Prices and costs: the price registry, per-request costs, usage tables and estimates.

Money is ``decimal.Decimal`` end to end, in the price rows' currency (USD unless a row names
another); rates are per million tokens.
"""

from __future__ import annotations

from .budget import (
    check_budget,
    describe_estimate,
    estimate_items,
    estimator,
    sends_default_max_tokens,
)
from .cost import Cost, cost_of, total_cost
from .estimate import Estimate, Estimator, cache_marks, estimate_cost, request_bounds
from .installed import price_registry
from .known import UnknownModelError, unknown_model
from .money import money_text, show_money, usd
from .registry import (
    DEFAULT_CURRENCY,
    MODES,
    Mode,
    PriceRegistry,
    PriceRow,
    PriceTargetError,
    Rates,
    Tier,
    load_price_file,
    parse_rows,
    strip_date_suffix,
)
from .tables import UnpricedWarning, UsageRecord, UsageRow, render_table, usage_rows

__all__ = [
    "DEFAULT_CURRENCY",
    "MODES",
    "Cost",
    "Estimate",
    "Estimator",
    "Mode",
    "PriceRegistry",
    "PriceRow",
    "PriceTargetError",
    "Rates",
    "Tier",
    "UnknownModelError",
    "UnpricedWarning",
    "UsageRecord",
    "UsageRow",
    "cache_marks",
    "check_budget",
    "cost_of",
    "describe_estimate",
    "estimate_cost",
    "estimate_items",
    "estimator",
    "load_price_file",
    "money_text",
    "parse_rows",
    "price_registry",
    "render_table",
    "request_bounds",
    "sends_default_max_tokens",
    "show_money",
    "strip_date_suffix",
    "total_cost",
    "unknown_model",
    "usage_rows",
    "usd",
]
