"""JSON Lines on the wire: the two helpers every provider codec needs, in one place.

Providers' batch files are JSONL; what they count against size limits is UTF-8 bytes.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any


def dumps(obj: Any) -> bytes:
    """Compact UTF-8 JSON (non-ASCII kept raw: fewer bytes toward a provider's size limit).

    A lone surrogate (possible in a Python str, impossible in UTF-8) falls back to the escaped
    form, which is still valid JSON.
    """
    try:
        return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(obj, separators=(",", ":")).encode("ascii")


def iter_jsonl(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """Split a byte stream into non-blank lines on ``\\n`` only.

    httpx's ``iter_lines`` also splits on U+2028, U+0085 and friends, which JSON may carry raw
    inside strings; splitting bytes on ``\\n`` is the JSONL rule.
    """
    pending = b""
    for chunk in chunks:
        pending += chunk
        *lines, pending = pending.split(b"\n")
        for line in lines:
            if line.strip():
                yield line.rstrip(b"\r")
    if pending.strip():
        yield pending.rstrip(b"\r")
