"""What an item's values must be to be sent as JSON: finite numbers, real text, bounded nesting.

Used by :mod:`polybatch.items` (a field validator on every value of an item) and by the input
readers, which report a problem with its file, line and field.
"""

from __future__ import annotations

import math
import re
from typing import Any

#: how deep objects and arrays may nest in an item's values (a request, the record holding it
#: included): far above any real request (strict structured-output schemas stop at 10 levels),
#: far below Python's recursion limit, which JSON parsers and encoders would hit instead
MAX_JSON_DEPTH = 64
#: the largest ``max_tokens`` an item may ask for: above every model's output limit (the
#: largest are 128k tokens today), far below what a provider's integer field overflows at
MAX_OUTPUT_TOKENS = 1_000_000
#: a UTF-16 surrogate code point: a Python str may hold one alone (JSON's "\ud800" escape, or
#: ``surrogateescape`` argv), UTF-8 cannot encode it, so no API can receive it
_SURROGATE = re.compile(r"[\ud800-\udfff]")


def _float_name(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    return "Infinity" if value > 0 else "-Infinity"


def json_problem(
    value: Any, *, max_depth: int = MAX_JSON_DEPTH
) -> tuple[tuple[str | int, ...], str] | None:
    """Why ``value`` cannot be sent as JSON, and where: ``(location, reason)``, or None.

    Refused: NaN and infinite floats (JSON has no such numbers: ``json`` writes ``NaN``, which no
    API parses, and the SDKs refuse it locally), strings or keys holding a lone surrogate (no
    UTF-8 encoder takes one), and objects or arrays nested deeper than ``max_depth`` (the value
    itself counts as one level). The location is the path of keys and list indexes to the bad
    value; for a key, the object holding it; for nesting, the outermost member holding it (the
    full path would be as long as the nesting is deep). Problems are found in document order,
    without recursion (a deep value cannot exhaust the stack).
    """
    stack: list[tuple[Any, tuple[str | int, ...], int]] = [(value, (), 1)]
    while stack:
        node, loc, depth = stack.pop()
        if isinstance(node, str):
            if not node.isascii() and _SURROGATE.search(node):
                return loc, "holds a lone surrogate (\\ud800-\\udfff), which is not text"
        elif isinstance(node, float):
            if not math.isfinite(node):
                return loc, f"{_float_name(node)} is not a JSON number"
        elif isinstance(node, dict):
            if depth > max_depth:
                return loc[:1], f"nested deeper than {max_depth} levels"
            children: list[tuple[Any, tuple[str | int, ...], int]] = []
            for key, child in node.items():
                if isinstance(key, str) and not key.isascii() and _SURROGATE.search(key):
                    return loc, "a key holds a lone surrogate (\\ud800-\\udfff)"
                children.append((child, (*loc, str(key)), depth + 1))
            stack.extend(reversed(children))
        elif isinstance(node, (list, tuple)):
            if depth > max_depth:
                return loc[:1], f"nested deeper than {max_depth} levels"
            stack.extend(
                (child, (*loc, i), depth + 1) for i, child in reversed(list(enumerate(node)))
            )
    return None


def json_path(loc: tuple[str | int, ...]) -> str:
    """A location as a field path: ``messages[0].content``, ``extra.logit_bias.50256``."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


def json_safe(value: Any) -> Any:
    """A field validator: ``value`` if it can be sent as JSON (see :func:`json_problem`)."""
    problem = json_problem(value)
    if problem is not None:
        loc, reason = problem
        raise ValueError(f"{json_path(loc)}: {reason}" if loc else reason)
    return value
