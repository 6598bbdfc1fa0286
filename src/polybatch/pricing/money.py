"""Money for people and for machines: exact Decimal amounts, shown with enough digits.

Amounts are never floats. Machine formats (CSV, JSON) get the exact amount unless a number of
decimals is asked for; people get :func:`show_money`, which keeps at least ``significant``
significant digits so that a $0.000047 job never reads as ``0.0000``.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

from .rows import DEFAULT_CURRENCY

#: significant digits kept by default when showing money to a person
SIGNIFICANT = 4
_SYMBOLS = {"USD": "$"}


def round_money(value: Decimal, digits: int) -> Decimal:
    """``value`` rounded half-up to ``digits`` decimals."""
    return value.quantize(Decimal(1).scaleb(-digits), rounding=ROUND_HALF_UP)


def show_money(value: Decimal, *, significant: int = SIGNIFICANT, min_decimals: int = 2) -> str:
    """``value`` with at least ``significant`` significant digits and ``min_decimals`` decimals.

    Whole digits are never rounded away: 1234.5678 -> ``1234.57``, 0.0307125 -> ``0.03071``,
    0.000047 -> ``0.000047``, 0 -> ``0.00``. Trailing zeros past ``min_decimals`` are dropped.
    """
    if value == 0:
        return format(Decimal(0).quantize(Decimal(1).scaleb(-min_decimals)), "f")
    exponent = value.copy_abs().adjusted()  # 0.000047 -> -5, 12.3 -> 1
    decimals = max(min_decimals, significant - 1 - exponent)
    text = format(round_money(value, decimals), "f")
    if "." in text:
        whole, frac = text.split(".")
        frac = frac.rstrip("0").ljust(min_decimals, "0")
        text = f"{whole}.{frac}" if frac else whole
    return text


def money_text(value: Decimal, digits: int | None = None) -> str:
    """An amount for CSV/JSON: exact (``digits`` None) or rounded half-up to ``digits``."""
    return format(value if digits is None else round_money(value, digits), "f")


def usd(value: Decimal, currency: str = DEFAULT_CURRENCY) -> str:
    """Money for the terminal: ``$0.000047``, ``$0.03071``, ``$12.35``; other currencies by code.

    At least 6 decimals below one unit (as before), and :data:`SIGNIFICANT` significant digits.
    """
    decimals = 4 if value.copy_abs() >= 1 else 6
    text = show_money(value, min_decimals=decimals)
    symbol = _SYMBOLS.get(currency)
    return f"{symbol}{text}" if symbol else f"{text} {currency}"
