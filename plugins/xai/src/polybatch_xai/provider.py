"""Provider ``xai``: xAI's Batch API, a batch container filled with requests in pages.

Why not xAI's own SDK: ``xai-sdk`` (1.21.0, "the official Python SDK for the xAI API") covers
batches, but over gRPC only (``xai_sdk.aio.batch.Client`` calls ``BatchService`` stubs on a
``grpc.aio`` channel). polybatch's sandbox is an HTTP/1.1 ASGI app (starlette on uvicorn), which
cannot serve gRPC (HTTP/2 with trailers), so a provider on that SDK could not be tested offline.
xAI documents the same service as REST (``/v1/batches``, JSON, bearer key), and its REST API is
OpenAI-compatible, so this provider talks to it through the ``openai`` SDK's HTTP client
(``AsyncOpenAI.get``/``post``): the SDK's auth, retries, timeouts and error classes, and the
kit's error table for them. Field names follow the SDK's protobuf (see :mod:`.codec`).

The lifecycle: create an empty batch named after the chunk's metadata and size, add the requests
in pages (each call within 25 MB and a page size, at most 100 calls per 30 s), poll the counters,
read the results page by page, cancel with ``:cancel``. xAI has no upload file, so nothing is
left to clean up.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import json
import re
import time
from collections import deque
from collections.abc import AsyncIterator, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import openai

from polybatch import formats, wire
from polybatch.items import BatchItem, BatchResult
from polybatch.providers import BatchStatus, Limits, SubmittedBatch
from polybatch.sdk import PerLoop, SDKProvider, connection, failure, http

from . import codec

if TYPE_CHECKING:
    from starlette.routing import BaseRoute

    from polybatch.sandbox import SandboxEngine

#: xAI's cap on one add-requests payload [docs: docs.x.ai/docs/guides/batch-api], with room for
#: the envelope; counted in decimal megabytes to stay under either reading of "MB"
ADD_MAX_BYTES = 25_000_000 - 1024
#: xAI's rate limit on add-requests calls: 100 per 30 s [docs: same page]
ADD_CALLS, ADD_WINDOW = 100, 30.0
#: requests per add call (polybatch's choice: xAI states no count limit, only the size)
ADD_PAGE_REQUESTS = 1000
#: results and batches per listed page (polybatch's choice; the SDK leaves it to the server)
PAGE_LIMIT = 100
#: pages of the batch listing searched for a batch by its name (the newest 1,000 batches)
FIND_PAGES = 10

Json = dict[str, Any]


def _read_lines(path: Path) -> list[bytes]:
    return [line for line in path.read_bytes().splitlines() if line.strip()]


class CallPacer:
    """At most ``calls`` calls in any ``window`` seconds (a sliding window; waits, never fails)."""

    def __init__(self, calls: int, window: float) -> None:
        self.calls, self.window = calls, window
        self._times: deque[float] = deque()
        self._lock = asyncio.Lock()

    async def wait(self) -> None:
        """Return once one more call fits in the window (and count it)."""
        async with self._lock:
            while True:
                now = time.monotonic()
                while self._times and now - self._times[0] >= self.window:
                    self._times.popleft()
                if len(self._times) < self.calls:
                    self._times.append(now)
                    return
                await asyncio.sleep(self.window - (now - self._times[0]))


def pages(lines: list[bytes], *, max_bytes: int, max_requests: int) -> Iterator[list[bytes]]:
    """``lines`` cut into runs within ``max_bytes`` (their sizes plus separators) and
    ``max_requests``; a line bigger than ``max_bytes`` goes alone (the API will refuse it)."""
    page: list[bytes] = []
    size = 0
    for line in lines:
        if page and (size + len(line) + 1 > max_bytes or len(page) >= max_requests):
            yield page
            page, size = [], 0
        page.append(line)
        size += len(line) + 1
    if page:
        yield page


class XAIProvider(SDKProvider[openai.AsyncOpenAI]):
    """xAI's Batch API (settings: ``base_url``, ``add_page_requests``, ``add_calls_per_30s``,
    ``find_batch_pages``)."""

    name = "xai"
    credential_env = ("XAI_API_KEY",)
    # xAI states no per-batch cap; "more than 100k requests may be throttled" [docs], so chunks
    # stay at 100,000 requests. Bytes: polybatch's bound (the pages keep each call within 25 MB).
    limits = Limits(max_requests=100_000, max_bytes=200 * 1024 * 1024)
    base_url_env = "XAI_BASE_URL"
    default_base_url = "https://api.x.ai/v1"
    key_patterns = (re.compile(r"\b(xai-)[A-Za-z0-9]{8,}"),)
    errors = {
        openai.APIStatusError: http(lambda e: e.status_code, lambda e: str(e.message)),
        openai.APIConnectionError: connection(),
        openai.OpenAIError: failure(),
    }
    sandbox_prefix = "/xai/v1"

    @functools.cached_property
    def pacers(self) -> PerLoop[CallPacer]:
        """The add calls' pacer, one per event loop (an asyncio lock is bound to its loop)."""
        calls = int(self.settings.get("add_calls_per_30s", ADD_CALLS))
        return PerLoop(lambda: CallPacer(calls, ADD_WINDOW))

    def make_client(self) -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(api_key=self.require_api_key(), base_url=self.resolved_base_url())

    # -- requests ----------------------------------------------------------------------------
    def validate_item(self, item: BatchItem, model: str) -> None:
        """Refuse what xAI would refuse, by the rules its sandbox answers with."""
        try:
            codec.check_body(codec.chat_body(item, model))
        except wire.WireError as exc:
            raise formats.item_error(exc, item) from None

    def encode(self, item: BatchItem, model: str) -> bytes:
        if not item.custom_id:
            raise ValueError("an item needs a custom_id before it is encoded")
        return codec.request_line(codec.chat_body(item, model), item.custom_id)

    # -- the lifecycle -------------------------------------------------------------------------
    async def asubmit(
        self, lines_path: Path, *, model: str, metadata: Mapping[str, str]
    ) -> SubmittedBatch:
        """Create the batch (or take up the one a lost answer left), then add what it lacks.

        The create is never retried by the SDK (a lost answer would make a second batch): the
        runner retries, after :meth:`afind_batch` found no complete batch; this call then finds
        the incomplete one by its name and adds only the requests it does not hold yet.
        """
        client = self.client  # first: a missing key fails before the file is read
        # reading up to 200 MB would stall every other call on the loop
        lines = await asyncio.to_thread(_read_lines, lines_path)
        found = await self._named(metadata) if metadata else None
        if found is None:
            name = codec.batch_name(metadata, len(lines))
            with self.sdk_errors("creating the batch"):
                created = await client.with_options(max_retries=0).post(
                    "/batches", body={"name": name}, cast_to=Json
                )
            batch_id, held = str(created["batch_id"]), set[str]()
        else:
            batch_id = str(found["batch_id"])
            held = await self._held_ids(batch_id)
        todo = (
            [ln for ln in lines if wire.load_object(ln)["batch_request_id"] not in held]
            if held
            else lines
        )
        per_page = int(self.settings.get("add_page_requests", ADD_PAGE_REQUESTS))
        for page in pages(todo, max_bytes=ADD_MAX_BYTES, max_requests=per_page):
            await self.pacers.get().wait()
            body = {"batch_requests": [json.loads(line) for line in page]}
            # not retried by the SDK either: a lost answer to an add is taken up as above
            with self.sdk_errors(f"adding {len(page)} requests to batch {batch_id}"):
                await client.with_options(max_retries=0).post(
                    f"/batches/{batch_id}/requests", body=body, cast_to=Json
                )
        return SubmittedBatch(batch_id=batch_id)

    async def apoll(self, batch_id: str) -> BatchStatus:
        with self.sdk_errors(f"polling batch {batch_id}"):
            batch = await self.client.get(f"/batches/{batch_id}", cast_to=Json)
        n = codec.counts(batch)
        named = codec.parse_name(str(batch.get("name") or ""))
        state = codec.batch_state(batch)
        if named is not None and n["num_requests"] < named[1] and state == "completed":
            state = "validating"  # still being filled (a submit cut short, taken up later)
        return BatchStatus(
            batch_id=str(batch.get("batch_id") or batch_id),
            state=state,
            total=n["num_requests"],
            completed=n["num_success"],
            failed=n["num_error"],
        )

    async def aresults(self, batch_id: str) -> AsyncIterator[BatchResult]:
        """Every row of the results listing, page by page (the listing can be read before the
        batch ends: it then holds the requests finished so far [inferred, see the docs])."""
        async for row in self._listing(f"/batches/{batch_id}/results", "results", batch_id):
            yield codec.decode_result(row, provider=self.name, batch_id=batch_id)

    async def acancel(self, batch_id: str) -> None:
        with self.sdk_errors(f"cancelling batch {batch_id}"):
            await self.client.post(f"/batches/{batch_id}:cancel", cast_to=Json)

    async def afind_batch(self, metadata: Mapping[str, str]) -> str | None:
        """The batch made for ``metadata`` once all its requests were added (one still being
        filled is taken up by :meth:`asubmit` instead)."""
        found = await self._named(metadata)
        if found is None:
            return None
        named = codec.parse_name(str(found.get("name")))
        assert named is not None
        return str(found["batch_id"]) if codec.counts(found)["num_requests"] >= named[1] else None

    # -- listings ------------------------------------------------------------------------------
    async def _listing(
        self, path: str, key: str, what: str, *, max_pages: int | None = None
    ) -> AsyncIterator[Json]:
        """The rows under ``key`` of every page of ``path`` (``limit``/``pagination_token``),
        or of the first ``max_pages``."""
        token: str | None = None
        for _ in itertools.count() if max_pages is None else range(max_pages):
            params: dict[str, Any] = {"limit": PAGE_LIMIT}
            if token:
                params["pagination_token"] = token
            with self.sdk_errors(f"listing {key} of {what}"):
                page = await self.client.get(path, cast_to=Json, options={"params": params})
            for row in page.get(key) or []:
                yield row
            token = page.get("pagination_token") or None
            if token is None:
                return

    async def _named(self, metadata: Mapping[str, str]) -> Json | None:
        """The newest batch whose name carries all of ``metadata``, if there is one among the
        ``find_batch_pages`` first pages of the listing (xAI lists the newest first [inferred])."""
        pages_ = int(self.settings.get("find_batch_pages", FIND_PAGES))
        async for batch in self._listing("/batches", "batches", "batches", max_pages=pages_):
            named = codec.parse_name(str(batch.get("name") or ""))
            if named is not None and metadata.items() <= named[0].items():
                return batch
        return None

    async def _held_ids(self, batch_id: str) -> set[str]:
        """The batch_request_ids already added to a batch."""
        path = f"/batches/{batch_id}/requests"
        rows = self._listing(path, "batch_request_metadata", batch_id)
        return {str(row.get("batch_request_id")) async for row in rows}

    # -- the sandbox ---------------------------------------------------------------------------
    @classmethod
    def sandbox_routes(cls, engine: SandboxEngine) -> list[BaseRoute]:
        from .sandbox import XAIApi  # starlette is imported only when a sandbox starts

        return XAIApi(engine).routes()
