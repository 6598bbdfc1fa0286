"""The OpenAI family (openai, azure, groq, compatible) is built on the SDK's async clients."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import openai
from openai_testlib import MODEL, ServerFactory, provider_for

from polybatch.sandbox import SandboxServer
from polybatch_openai.azure import AzureProvider
from polybatch_openai.provider import OpenAIProvider


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
