"""JSON Lines on the wire: the helpers every provider codec needs, in one place.

Providers' batch files are JSONL; what they count against size limits is UTF-8 bytes. Besides
reading and writing lines, this module holds what codecs of every shape share: :class:`WireError`
(a line or body that breaks a format, naming the field), :func:`short_hash` (deterministic ids),
:func:`load_object` (one line parsed strictly), :func:`message_text` (the text of a chat message
content), the HTTP statuses worth sending again (:func:`retryable_status`), and for codecs that
translate a neutral item's content into their own shape, :func:`content_parts`,
:func:`image_url` and :func:`invalid_item`. The OpenAI-shaped
chat format that several vendors speak is :mod:`polybatch.formats`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar

from .errors import (
    RETRYABLE_STATUSES,
    ItemValidationError,
    PolybatchError,
    ProviderConnectionError,
)
from .items import BatchItem, Message

T = TypeVar("T")

#: HTTP statuses besides 5xx worth sending again: timeout, conflict, rate limit (the same set as
#: the official SDKs' own retry rule)


class WireError(PolybatchError, ValueError):
    """A line or request body that breaks a wire format, as the vendor's API would report it.

    ``code`` is the API's error code, ``param`` the field at fault (a dotted path such as
    ``messages[0].content``, None for the whole line). A ValueError, so that a result line that
    cannot be decoded is caught as one (see :func:`adecode_lines`).
    """

    def __init__(self, code: str, message: str, *, param: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.param = param


def retryable_status(status: int) -> bool:
    """Whether a request that got this HTTP status may succeed when sent again."""
    return status in RETRYABLE_STATUSES or status >= 500


def short_hash(*parts: Any, length: int = 24) -> str:
    """A stable hex id derived from ``parts`` (deterministic sandbox ids)."""
    return hashlib.sha256(repr(parts).encode()).hexdigest()[:length]


def as_mapping(value: Any) -> Mapping[str, Any]:
    """``value`` if it is a mapping, else an empty one (for lenient decoding of nested fields)."""
    return value if isinstance(value, Mapping) else {}


def load_object(line: bytes | str) -> dict[str, Any]:
    """One JSONL line parsed strictly into a JSON object. Raises WireError ``invalid_json_line``.

    Bytes are decoded as UTF-8 first: ``json.loads(bytes)`` would quietly accept a UTF-8 BOM.
    """
    try:
        obj = json.loads(line.decode("utf-8") if isinstance(line, bytes) else line)
    except ValueError as exc:  # UnicodeDecodeError is a ValueError too
        raise WireError("invalid_json_line", f"line is not valid JSON: {exc}") from exc
    if not isinstance(obj, dict):
        raise WireError("invalid_json_line", "line is not a JSON object")
    return obj


def invalid_item(item: BatchItem, field: str, message: str) -> ItemValidationError:
    """An item a codec cannot express, the message naming the item and the field at fault."""
    return ItemValidationError(f"item {item.custom_id!r}: {message}", field=field)


def content_parts(
    item: BatchItem, index: int, message: Message
) -> Iterator[tuple[str, Any, Mapping[str, Any]]]:
    """``(field, type, part)`` for each part of a list content (message ``index`` of ``item``);
    a ``text`` part whose ``text`` is not a string is refused here (:func:`invalid_item`)."""
    if isinstance(message.content, str):
        return
    for j, part in enumerate(message.content):
        field = f"messages[{index}].content[{j}]"
        kind = part.get("type")
        if kind == "text" and not isinstance(part.get("text"), str):
            raise invalid_item(item, f"{field}.text", "text part needs a string 'text'")
        yield field, kind, part


def image_url(part: Mapping[str, Any]) -> Any:
    """The URL of an ``image_url`` content part: ``{"image_url": {"url": ...}}`` or the short
    ``{"image_url": "..."}``."""
    image = part.get("image_url")
    return image.get("url") if isinstance(image, Mapping) else image


def message_text(content: Any, *, sep: str = "\n") -> str:
    """The text of a chat message content: a string as is, or the ``text`` parts of a list of
    content parts joined by ``sep`` (other parts left out); anything else is ``""``."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return sep.join(
            str(p.get("text", ""))
            for p in content
            if isinstance(p, Mapping) and p.get("type") == "text"
        )
    return ""


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


def first_line(path: Path) -> dict[str, Any] | None:
    """The first non-blank line of a JSONL file as an object, or None (empty, or not a JSON
    object): how an adapter tells a chunk's endpoint, since the planner never mixes item kinds
    in one chunk."""
    with path.open("rb") as fh:
        for raw in fh:
            if raw.strip():
                try:
                    obj = json.loads(raw)
                except ValueError:
                    return None
                return obj if isinstance(obj, dict) else None
    return None
