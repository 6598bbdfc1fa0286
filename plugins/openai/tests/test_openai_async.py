"""The OpenAI family (openai, azure, groq, compatible) is built on the SDK's async clients."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any, NoReturn

import openai
import pytest
from openai_testlib import MODEL, ServerFactory, items, provider_for, wait_terminal, write_lines

from polybatch.providers import LIFECYCLE_PAIRS, BatchProvider
from polybatch.sandbox import SandboxServer
from polybatch_openai.azure import AzureProvider
from polybatch_openai.compatible import GroqProvider
from polybatch_openai.provider import OpenAIProvider


@pytest.mark.parametrize("cls", [OpenAIProvider, AzureProvider, GroqProvider])
def test_only_the_async_lifecycle_is_written(cls: type[BatchProvider]) -> None:
    for sync, async_ in LIFECYCLE_PAIRS:
        assert getattr(cls, sync) is getattr(BatchProvider, sync), f"{sync} is derived"
        assert getattr(cls, async_) is not getattr(BatchProvider, async_), async_


def test_the_blocking_api_never_builds_a_sync_client(
    server: SandboxServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(*args: Any, **kwargs: Any) -> NoReturn:
        raise AssertionError("a sync openai.OpenAI client was built")

    monkeypatch.setattr(openai.OpenAI, "__init__", refuse)
    provider = provider_for(server)
    lines = write_lines(tmp_path / "l.jsonl", [provider.encode(i, MODEL) for i in items(3)])
    sub = provider.submit(lines, model=MODEL, metadata={"polybatch_job": "pb-x"})
    assert wait_terminal(provider, server.engine, sub.batch_id).state == "completed"
    assert sorted(r.custom_id for r in provider.results(sub.batch_id)) == ["c0", "c1", "c2"]
    assert provider.find_batch({"polybatch_job": "pb-x"}) == sub.batch_id
    provider.cancel(sub.batch_id)
    provider.cleanup(sub)


def test_one_async_client_per_event_loop(server: SandboxServer) -> None:
    provider = provider_for(server)

    async def client_used() -> openai.AsyncOpenAI:
        await asyncio.sleep(0)
        client = provider.client
        assert provider.client is client, "the same loop reuses its client"
        return client

    first = asyncio.run(client_used())
    second = asyncio.run(client_used())
    assert isinstance(first, openai.AsyncOpenAI) and first is not second


def test_aclose_closes_the_loops_client(server: SandboxServer) -> None:
    provider = provider_for(server)

    async def main() -> openai.AsyncOpenAI:
        client = provider.client
        await provider.aclose()
        assert provider.client is not client, "a closed client is not handed out again"
        await provider.aclose()
        return client

    assert asyncio.run(main()).is_closed()


def test_an_entra_token_provider_is_called_off_the_loop() -> None:
    calls: list[str] = []

    def get_token() -> str:
        calls.append(threading.current_thread().name)
        return "entra-token"

    provider = AzureProvider(settings={"endpoint": "https://res.openai.azure.com", "style": "v1"})
    provider.credential = lambda: ("provider", get_token)  # type: ignore[method-assign]

    async def main() -> str:
        client = provider.make_client()
        assert callable(client._api_key_provider)
        token: str = await client._api_key_provider()
        return token

    assert asyncio.run(main()) == "entra-token"
    assert calls and calls[0] != threading.main_thread().name


def test_an_async_job_leaves_no_client_open_on_the_callers_loop(
    server: SandboxServer, tmp_path: Path
) -> None:
    import polybatch

    (tmp_path / "home").mkdir()

    async def main() -> polybatch.Job:
        job = await polybatch.asubmit(["hi?"], f"openai:{MODEL}", sandbox=server, home=tmp_path)
        await job.await_done(poll_min=0.01, timeout=60)
        return job

    job = asyncio.run(main())
    provider = job.provider
    assert isinstance(provider, OpenAIProvider)
    assert provider._clients.peek() == [], "the loop's client was closed when the wait ended"


def test_a_finished_blocking_job_closes_its_portal_client(
    make_server: ServerFactory, tmp_path: Path
) -> None:
    import polybatch

    server = make_server(rate=0.01)  # a request per 100 s of sandbox time
    job = polybatch.submit(["hi?"], f"openai:{MODEL}", sandbox=server, home=tmp_path)
    provider = job.provider
    assert isinstance(provider, OpenAIProvider)
    assert len(provider._clients.peek()) == 1, "the portal's client, used by the first step"
    server.engine.clock.advance(1000)
    job.wait(poll_min=0.01, timeout=60)
    assert provider._clients.peek() == [], "closed when the job ended"
