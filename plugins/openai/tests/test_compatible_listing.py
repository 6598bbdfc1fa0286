"""A vendor that keeps no metadata (Together): its batches are found again by the upload's name."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest

from polybatch.providers import META_CHUNK, META_JOB
from polybatch.sandbox import SandboxServer
from polybatch.testing import SANDBOX_KEY
from polybatch_openai import listing
from polybatch_openai.compatible import PRESETS, preset_provider


def test_upload_names_carry_the_job_and_chunk_and_read_back() -> None:
    meta = {META_JOB: "pb-0a1b2c", META_CHUNK: "12"}
    name = listing.upload_name(meta, "chunk.jsonl")
    assert name == "polybatch-pb-0a1b2c-c12.jsonl"
    assert listing.metadata_of(name) == meta
    assert listing.upload_name({}, "chunk.jsonl") == "chunk.jsonl"  # not the runner's
    assert listing.metadata_of("chunk.jsonl") == {} and listing.metadata_of(None) == {}


def test_created_at_reads_as_epoch_seconds_or_iso_8601() -> None:
    assert listing._epoch(1700000000) == 1700000000.0
    assert listing._epoch("2024-01-15T14:30:00Z") == 1705329000.0
    assert listing._epoch("yesterday") is None and listing._epoch(None) is None


def test_together_lists_its_batches_with_the_job_and_chunk_of_each(
    sandbox_server: SandboxServer, tmp_path: Path
) -> None:
    cls = preset_provider("together", PRESETS["together"])
    provider = cls(**cls.sandbox_settings(sandbox_server.url, SANDBOX_KEY))
    lines = tmp_path / "chunk.jsonl"
    lines.write_text(
        '{"custom_id": "a", "body": {"model": "m", "messages": [{"role": "user", "content": "hi"}]}}\n'
    )
    meta = {META_JOB: "pb-feed", META_CHUNK: "4"}

    async def scenario() -> tuple[str, list[object]]:
        submitted = await provider.asubmit(lines, model="m", metadata=meta)
        found = await provider.alist_batches_since(0.0)
        await provider.aclose()
        return submitted.batch_id, list(found or [])

    batch_id, found = asyncio.run(scenario())
    (only,) = found
    assert only.batch_id == batch_id and only.metadata == meta  # type: ignore[attr-defined]


def test_a_listing_of_unknown_shape_means_nothing_to_adopt(
    make_sandbox: Callable[..., SandboxServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A vendor whose ``GET /batches`` is not what the preset expects (Together's is unverified):
    the runner gets None (resubmit, with a warning), not an error that would stop the job."""
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response

    from polybatch_openai.sandbox import OpenAIApi

    async def odd(self: OpenAIApi, request: Request) -> Response:
        return JSONResponse({"jobs": "elsewhere"})

    monkeypatch.setattr(OpenAIApi, "list_batches", odd)
    server = make_sandbox()
    cls = preset_provider("together", PRESETS["together"])
    provider = cls(**cls.sandbox_settings(server.url, SANDBOX_KEY))

    async def listed() -> object:
        try:
            return await provider.alist_batches_since(0.0)
        finally:
            await provider.aclose()

    assert asyncio.run(listed()) is None
