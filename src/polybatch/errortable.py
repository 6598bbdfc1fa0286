"""The SDK error table: how each SDK exception class becomes a polybatch error (the most
specific class wins, as httpx's ``map_httpcore_exceptions`` does), and the transport errors of
the installed HTTP stacks that every :class:`~polybatch.sdk.SDKProvider` maps first."""

from __future__ import annotations

import importlib
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .errors import ProviderConnectionError, ProviderError, ProviderHTTPError, api_error_message

# -- the error table ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ErrorRule:
    """How one SDK exception class becomes a polybatch error.

    ``kind`` is the polybatch class; ``status`` reads the HTTP status off the exception (a
    :class:`ProviderHTTPError` whose status reads None becomes a plain ProviderError); ``detail``
    reads the words worth showing (default: the exception's ``message`` or text); ``retryable``
    overrides the class's own decision. ``queue_full`` says whether the exception, raised by a
    batch create, is the provider's refusal for a full queue (a :class:`QueueFullError` then).
    """

    kind: type[ProviderError]
    status: Callable[[Any], int | None] | None = None
    detail: Callable[[Any], str] | None = None
    retryable: bool | None = None
    queue_full: Callable[[Any], bool] | None = None


#: SDK exception class -> rule; see :func:`rule_for` for which entry wins
ErrorTable = Mapping[type[BaseException], ErrorRule]


def http(
    status: Callable[[Any], int | None],
    detail: Callable[[Any], str] | None = None,
    *,
    queue_full: Callable[[Any], bool] | None = None,
) -> ErrorRule:
    """An error status from the API: ProviderHTTPError, retryable by status (``queue_full``:
    see :class:`ErrorRule`)."""
    return ErrorRule(ProviderHTTPError, status=status, detail=detail, queue_full=queue_full)


def connection(detail: Callable[[Any], str] | None = None) -> ErrorRule:
    """No (complete) answer: ProviderConnectionError, retryable."""
    return ErrorRule(ProviderConnectionError, detail=detail)


def failure(detail: Callable[[Any], str] | None = None, *, retryable: bool = False) -> ErrorRule:
    """Anything else the SDK raises: a plain ProviderError, retryable only if said so."""
    return ErrorRule(ProviderError, detail=detail, retryable=retryable)


def rule_for(table: ErrorTable, exc: BaseException) -> ErrorRule | None:
    """The rule of the most specific class in ``table`` that ``exc`` is an instance of.

    The exception's own MRO decides, so the table's order never matters: for an
    ``openai.APITimeoutError`` an entry for it beats one for ``APIConnectionError``, which beats
    one for ``OpenAIError``.
    """
    for klass in type(exc).__mro__:
        found = table.get(klass)
        if found is not None:
            return found
    return None


def _transport_table() -> dict[type[BaseException], ErrorRule]:
    """The HTTP stacks' own errors, which SDKs let through (a download cut mid-body, say).

    None of these stacks is a dependency of the core: each is mapped if it is installed.
    """
    table: dict[type[BaseException], ErrorRule] = {
        # asyncio and aiohttp time out with the builtin; sockets fail with OSErrors
        TimeoutError: connection(),
        ConnectionError: connection(),
        # a results stream cut inside a line (or a character): it does not parse; fetch it again
        json.JSONDecodeError: connection(),
        UnicodeDecodeError: connection(),
    }
    for module_name in ("httpx2", "httpx"):
        try:
            httpx: Any = importlib.import_module(module_name)
        except ImportError:
            continue
        table[httpx.HTTPError] = connection()
        table[httpx.HTTPStatusError] = http(lambda e: e.response.status_code)
    try:
        aiohttp: Any = importlib.import_module("aiohttp")
    except ImportError:
        pass
    else:
        table[aiohttp.ClientError] = connection()
        table[aiohttp.ClientResponseError] = http(lambda e: e.status, lambda e: e.message)
    return table


#: what every SDKProvider maps before its own table: transport errors of the installed stacks
TRANSPORT_ERRORS: ErrorTable = _transport_table()

#: a bearer token echoed back in an error body, whatever the vendor
BEARER = re.compile(r"(?i)(bearer\s+)[^\s\"',]+")


def default_detail(exc: BaseException) -> str:
    """The error's message: the body's own words when the SDK gives a parsed body, so the user
    reads ``authentication_error: invalid x-api-key``, not the SDK's repr of a dict."""
    from_body = api_error_message(getattr(exc, "body", None))
    if from_body:
        return from_body
    message = getattr(exc, "message", None)
    return str(message or exc) or type(exc).__name__


def connection_detail(exc: BaseException) -> str:
    text = str(getattr(exc, "message", None) or exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
