"""Keeping secrets out of what a provider reports: every string of its statuses and failed
results passes :meth:`BatchProvider.scrub <polybatch.providers.BatchProvider.scrub>` once,
whatever the adapter (the base class wraps each subclass's poll and results methods)."""

from __future__ import annotations

import functools
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .batches import BatchStatus
    from .items import BatchResult
    from .providers import BatchProvider

__all__ = ["scrub_strings", "scrub_what_it_reports"]


def scrub_strings(value: Any, scrub: Callable[[str], str]) -> Any:
    """``value`` (JSON data) with every string scrubbed; the very same object if none changed."""
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, dict):
        items = {k: scrub_strings(v, scrub) for k, v in value.items()}
        same = all(items[k] is v for k, v in value.items())
        return value if same else items
    if isinstance(value, list):
        elements = [scrub_strings(v, scrub) for v in value]
        return value if all(a is b for a, b in zip(elements, value, strict=True)) else elements
    return value


#: set on the lifecycle methods already wrapped by :func:`scrub_what_it_reports`
_SCRUBBING = "__polybatch_scrubbing__"


def scrub_what_it_reports(cls: type[BatchProvider]) -> None:
    """Wrap the poll and results methods ``cls`` defines so that every status message and every
    failed result they report passes :meth:`BatchProvider.scrub`, once, whatever the adapter.

    What a provider's server says about a batch or a request (``errors[].message``, error-file
    lines, errored results) goes to the ledger, the results files and the terminal; a server or
    gateway that quotes the key in it must not put the key there. Each adapter decodes its own
    vendor's shapes; the base class scrubs what comes out of them.
    """
    own = vars(cls)

    def wrap(name: str, make: Callable[[Any], Any]) -> None:
        method = own.get(name)
        if inspect.isfunction(method) and not getattr(method, _SCRUBBING, False):
            wrapped = functools.wraps(method)(make(method))
            setattr(wrapped, _SCRUBBING, True)
            setattr(cls, name, wrapped)

    def apoll(
        method: Callable[[BatchProvider, str], Awaitable[BatchStatus]],
    ) -> Callable[[BatchProvider, str], Awaitable[BatchStatus]]:
        async def scrubbed(self: BatchProvider, batch_id: str) -> BatchStatus:
            return self.scrub_status(await method(self, batch_id))

        return scrubbed

    def poll(
        method: Callable[[BatchProvider, str], BatchStatus],
    ) -> Callable[[BatchProvider, str], BatchStatus]:
        def scrubbed(self: BatchProvider, batch_id: str) -> BatchStatus:
            return self.scrub_status(method(self, batch_id))

        return scrubbed

    def aresults(
        method: Callable[[BatchProvider, str], AsyncIterator[BatchResult]],
    ) -> Callable[[BatchProvider, str], AsyncIterator[BatchResult]]:
        async def scrubbed(self: BatchProvider, batch_id: str) -> AsyncIterator[BatchResult]:
            stream = method(self, batch_id)
            try:
                async for result in stream:
                    yield self.scrub_result(result)
            finally:
                # a consumer that stops early closes this generator: close the adapter's too
                aclose = getattr(stream, "aclose", None)
                if aclose is not None:
                    await aclose()

        return scrubbed

    def results(
        method: Callable[[BatchProvider, str], Iterator[BatchResult]],
    ) -> Callable[[BatchProvider, str], Iterator[BatchResult]]:
        def scrubbed(self: BatchProvider, batch_id: str) -> Iterator[BatchResult]:
            stream = method(self, batch_id)
            try:
                for result in stream:
                    yield self.scrub_result(result)
            finally:
                close = getattr(stream, "close", None)
                if close is not None:
                    close()

        return scrubbed

    wrap("apoll", apoll)
    wrap("poll", poll)
    wrap("aresults", aresults)
    wrap("results", results)
