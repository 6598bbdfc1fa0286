"""JSON Lines on the wire: the two helpers every provider codec needs, in one place.

Providers' batch files are JSONL; what they count against size limits is UTF-8 bytes.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Iterator
from typing import Any, TypeVar

from .errors import ProviderConnectionError

T = TypeVar("T")


def dumps(obj: Any) -> bytes:
    """Compact UTF-8 JSON (non-ASCII kept raw: fewer bytes toward a provider's size limit).

    A lone surrogate (possible in a Python str, impossible in UTF-8) falls back to the escaped
    form, which is still valid JSON.
    """
    try:
        return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(obj, separators=(",", ":")).encode("ascii")


class LineSplitter:
    """Splits a byte stream into non-blank lines on ``\\n`` only, chunk by chunk.

    httpx's ``iter_lines`` also splits on U+2028, U+0085 and friends, which JSON may carry raw
    inside strings; splitting bytes on ``\\n`` is the JSONL rule.
    """

    def __init__(self) -> None:
        self._pending = b""

    def feed(self, chunk: bytes) -> list[bytes]:
        """The lines completed by ``chunk``."""
        *lines, self._pending = (self._pending + chunk).split(b"\n")
        return [line.rstrip(b"\r") for line in lines if line.strip()]

    def end(self) -> list[bytes]:
        """The last line, if the stream did not end with a newline."""
        last, self._pending = self._pending, b""
        return [last.rstrip(b"\r")] if last.strip() else []


def iter_jsonl(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """The non-blank lines of a byte stream (see :class:`LineSplitter`)."""
    splitter = LineSplitter()
    for chunk in chunks:
        yield from splitter.feed(chunk)
    yield from splitter.end()


async def aiter_jsonl(chunks: AsyncIterable[bytes]) -> AsyncIterator[bytes]:
    """:func:`iter_jsonl` over an async byte stream (an async SDK's streamed download)."""
    splitter = LineSplitter()
    async for chunk in chunks:
        for line in splitter.feed(chunk):
            yield line
    for line in splitter.end():
        yield line


async def adecode_lines(
    lines: AsyncIterable[bytes], decode: Callable[[bytes], T], *, file: str, provider: str
) -> AsyncIterator[T]:
    """``decode`` each line of a downloaded results file; a line that cannot be decoded (a
    ValueError or TypeError) is a ProviderError naming the file and line: a result that cannot
    be attributed to a request must stop the collection, not vanish."""
    number = 0
    async for line in lines:
        number += 1
        try:
            result = decode(line)
        except (ValueError, TypeError) as exc:
            raise ProviderConnectionError(
                f"file {file} line {number}: {exc}", provider=provider
            ) from exc
        yield result
