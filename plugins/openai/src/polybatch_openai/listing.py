"""Finding a batch again on OpenAI-compatible vendors that keep no metadata (Together, say).

The runner names each chunk's upload ``polybatch-{job}-{chunk}.jsonl``; a batch whose create
answer was lost is then recognised by its input file's name, read back through the Files API
(see :mod:`polybatch.jobs.adopt`). The listing is read with the SDK's own client as raw JSON,
because vendors differ from OpenAI's list shape: Together answers ``GET /batches`` with its
batches [list shape unverified: a bare array or OpenAI's ``{"data": [...]}`` are both read] and
gives ``created_at`` as an ISO 8601 string where OpenAI gives epoch seconds.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import httpx
import openai

from polybatch.errors import ProviderError
from polybatch.providers import META_CHUNK, META_JOB, RecentBatch

#: the upload's name carries the job and the chunk
_NAME = re.compile(r"^polybatch-(?P<job>[A-Za-z0-9_.-]+?)-c(?P<chunk>\d+)\.jsonl$")
#: batches read from the listing at most (newest first), so a busy account stays cheap
MAX_LISTED = 500


def upload_name(metadata: Mapping[str, str], default: str) -> str:
    """The name of a chunk's upload: ``polybatch-{job}-c{chunk}.jsonl`` for the runner's."""
    if META_JOB in metadata and metadata.get(META_CHUNK, "").isdigit():
        return f"polybatch-{metadata[META_JOB]}-c{metadata[META_CHUNK]}.jsonl"
    return default


def metadata_of(filename: str | None) -> dict[str, str]:
    """The job and chunk an upload's name carries ({} for a file polybatch did not name)."""
    m = _NAME.match(filename or "")
    return {META_JOB: m["job"], META_CHUNK: m["chunk"]} if m else {}


def _epoch(value: Any) -> float | None:
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
        except ValueError:
            return None
    return None


async def batches_since(
    client: openai.AsyncOpenAI, since: float, ended_states: frozenset[str]
) -> list[RecentBatch]:
    """The vendor's batches created since ``since``, each with the metadata its upload names."""
    response = await client.get(
        "/batches", cast_to=httpx.Response, options={"params": {"limit": 100}}
    )
    body = response.json()
    rows = body if isinstance(body, list) else body.get("data") if isinstance(body, dict) else None
    if not isinstance(rows, list):
        raise ProviderError(f"listing batches: an answer of unknown shape: {str(body)[:200]}")
    found: list[RecentBatch] = []
    for row in rows[:MAX_LISTED]:
        if not isinstance(row, dict) or not isinstance(row.get("id"), str):
            continue
        created = _epoch(row.get("created_at"))
        if created is None or created < since:
            continue
        meta: dict[str, str] = {}
        file_id = row.get("input_file_id")
        if isinstance(file_id, str):
            try:
                meta = metadata_of((await client.files.retrieve(file_id)).filename)
            except openai.NotFoundError:
                meta = {}  # the upload was deleted: not one polybatch can still be waiting on
        found.append(
            RecentBatch(
                batch_id=row["id"],
                created_at=created,
                ended=str(row.get("status", "")) in ended_states,
                metadata=meta,
            )
        )
    return found
