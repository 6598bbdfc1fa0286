"""The adapter is async-first: built on the SDK's ``*_async`` methods, one client per event loop."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
from mistral_testlib import (
    MODEL,
    ServerFactory,
    by_id,
    items,
    provider_for,
    sdk_client,
    submit_items,
    wait_terminal,
    write_lines,
)
from mistralai.client import Mistral
from mistralai.client.basesdk import BaseSDK
from mistralai.client.files import Files

from polybatch import portal
from polybatch.errors import ProviderError
from polybatch.items import BatchResult
from polybatch.providers import (
    META_JOB,
    BatchStatus,
    SubmittedBatch,
)
from polybatch.sandbox import Faults, SandboxEngine, SandboxServer
from polybatch_mistral.provider import MistralProvider


class SyncPathUsed(AssertionError):
    """The sync SDK path was taken (nothing in the adapter translates an AssertionError)."""


@pytest.fixture
def no_sync_sdk(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Make the SDK's sync request path raise; the list records every attempt to use it.

    The seam: ``mistralai.client.basesdk.BaseSDK.do_request``. Every sync SDK method
    (``files.upload``, ``batch.jobs.get`` ...) sends through it; the ``*_async`` ones send
    through ``do_request_async`` instead.
    """
    calls: list[str] = []

    def refuse(self: BaseSDK, hook_ctx: Any, request: httpx2.Request, *a: Any, **k: Any) -> Any:
        calls.append(f"{request.method} {request.url.path}")
        raise SyncPathUsed(f"sync SDK request: {request.method} {request.url}")

    monkeypatch.setattr(BaseSDK, "do_request", refuse)
    return calls


async def _client_of(provider: MistralProvider) -> Mistral:
    return provider.client


async def _collect(provider: MistralProvider, batch_id: str) -> list[BatchResult]:
    return [r async for r in provider.aresults(batch_id)]


async def _await_terminal(
    provider: MistralProvider, engine: SandboxEngine, batch_id: str
) -> BatchStatus:
    for _ in range(1000):
        status = await provider.apoll(batch_id)
        if status.terminal:
            return status
        engine.clock.advance(1.0)
    raise AssertionError(f"batch {batch_id} never ended")


def _lines_file(provider: MistralProvider, path: Path, n: int, prefix: str) -> Path:
    batch_items = [i.model_copy(update={"custom_id": f"{prefix}{i.custom_id}"}) for i in items(n)]
    return write_lines(path, [provider.encode(i, MODEL) for i in batch_items])


# -- (a) the class ---------------------------------------------------------------------------
# -- (b) the blocking API runs on the async client -------------------------------------------
def test_blocking_lifecycle_never_uses_the_sync_sdk(
    make_server: ServerFactory, tmp_path: Path, no_sync_sdk: list[str]
) -> None:
    server = make_server(rate=5.0)
    server.engine.clock.freeze()  # requests run only as the test advances the clock: exact counts on any machine
    # the seam bites: a sync SDK call fails (so a sync adapter would fail this test)
    with sdk_client(server) as sync, pytest.raises(SyncPathUsed):
        sync.batch.jobs.get(job_id="job-x")
    assert no_sync_sdk == ["GET /mistral/v1/batch/jobs/job-x"]
    no_sync_sdk.clear()

    provider = provider_for(server)
    done = submit_items(provider, items(3), tmp_path, metadata={META_JOB: "done"}, name="a.jsonl")
    stopped = submit_items(provider, items(50), tmp_path, name="b.jsonl")
    server.engine.clock.advance(1)  # 5 requests of each job have run: all 3 of the first
    assert provider.poll(done.batch_id).state == "completed"
    provider.cancel(stopped.batch_id)
    status = wait_terminal(provider, server.engine, stopped.batch_id, step=1)
    assert status.state == "cancelled"

    first = by_id(list(provider.results(done.batch_id)))
    assert set(first) == {"c0", "c1", "c2"} and all(r.ok for r in first.values())
    second = by_id(list(provider.results(stopped.batch_id)))
    assert len(second) == 50 and status.completed == 5
    assert sum(r.status == "cancelled" for r in second.values()) == 45
    assert provider.find_batch({META_JOB: "done"}) == done.batch_id
    provider.cleanup(done)
    assert done.input_file_id not in server.engine.files
    assert no_sync_sdk == []


# -- (c) the async API on a user's loop ------------------------------------------------------
def test_async_lifecycle_on_a_user_loop_with_its_own_client(
    make_server: ServerFactory, tmp_path: Path, no_sync_sdk: list[str]
) -> None:
    server = make_server(rate=5.0)
    server.engine.clock.freeze()  # requests run only as the test advances the clock: exact counts on any machine
    engine = server.engine
    provider = provider_for(server)
    # the blocking API first: it builds the portal loop's client
    warm = submit_items(provider, items(1), tmp_path, name="warm.jsonl")
    portal_client = portal.run(_client_of(provider))
    path_a = _lines_file(provider, tmp_path / "a.jsonl", 3, "a")
    path_b = _lines_file(provider, tmp_path / "b.jsonl", 50, "b")

    async def main() -> dict[str, Any]:
        out: dict[str, Any] = {"client": provider.client}
        a, b = await asyncio.gather(
            provider.asubmit(path_a, model=MODEL, metadata={META_JOB: "a"}),
            provider.asubmit(path_b, model=MODEL, metadata={META_JOB: "b"}),
        )
        engine.clock.advance(1)  # 5 requests of each job have run: all of a's 3
        # two batches polled at once, on one client and one loop
        status_a, status_b = await asyncio.gather(
            provider.apoll(a.batch_id), provider.apoll(b.batch_id)
        )
        out["states"] = (status_a.batch_id, status_a.state, status_b.batch_id, status_b.state)
        await provider.acancel(b.batch_id)
        out["b_status"] = await _await_terminal(provider, engine, b.batch_id)
        # and both downloads streamed at once
        out["a"], out["b"] = await asyncio.gather(
            _collect(provider, a.batch_id), _collect(provider, b.batch_id)
        )
        out["found"] = await provider.afind_batch({META_JOB: "a"})
        await provider.acleanup(a)
        out["a_sub"], out["b_sub"] = a, b
        assert provider.client is out["client"], "one client per loop, reused"
        await provider.aclose()
        out["rebuilt"] = provider.client  # a later call on the same loop builds another
        await provider.aclose()
        return out

    out = asyncio.run(main())
    a, b = out["a_sub"], out["b_sub"]
    assert isinstance(a, SubmittedBatch) and isinstance(b, SubmittedBatch)
    user_client = out["client"]
    assert isinstance(user_client, Mistral) and isinstance(portal_client, Mistral)
    assert user_client is not portal_client, "the user's loop gets a client of its own"
    assert out["rebuilt"] is not user_client
    for closed in (user_client, out["rebuilt"]):
        http = closed.sdk_configuration.async_client
        assert isinstance(http, httpx2.AsyncClient) and http.is_closed
    portal_http = portal_client.sdk_configuration.async_client
    assert isinstance(portal_http, httpx2.AsyncClient) and not portal_http.is_closed

    assert out["states"] == (a.batch_id, "completed", b.batch_id, "in_progress")
    assert out["b_status"].state == "cancelled"
    results_a, results_b = by_id(out["a"]), by_id(out["b"])
    assert set(results_a) == {"ac0", "ac1", "ac2"} and all(r.ok for r in results_a.values())
    assert all(r.batch_id == b.batch_id for r in results_b.values())
    assert set(results_b) == {f"bc{i}" for i in range(50)}
    assert out["b_status"].completed == 5
    assert sum(r.status == "cancelled" for r in results_b.values()) == 45
    assert out["found"] == a.batch_id
    assert a.input_file_id not in engine.files

    # the portal's client was left alone: the blocking API still works after the user's loop
    assert provider.poll(warm.batch_id).state == "completed"
    assert no_sync_sdk == []


# -- downloads: streamed, closed, and errors mid-stream ----------------------------------------
class Trickle(httpx2.AsyncByteStream):
    """A response body handed on in small pieces, counting what was delivered.

    ``cut``: after this many bytes the connection "drops" (httpx2.RemoteProtocolError).
    """

    def __init__(self, inner: httpx2.AsyncByteStream, piece: int, cut: int | None) -> None:
        self.inner, self.piece, self.cut = inner, piece, cut
        self.delivered = 0
        self.closed = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self.inner:
            for start in range(0, len(chunk), self.piece):
                if self.cut is not None and self.delivered >= self.cut:
                    raise httpx2.RemoteProtocolError(
                        "peer closed connection without sending complete message body"
                    )
                part = chunk[start : start + self.piece]
                self.delivered += len(part)
                yield part

    async def aclose(self) -> None:
        self.closed = True
        await self.inner.aclose()


@pytest.fixture
def trickle(monkeypatch: pytest.MonkeyPatch) -> Any:
    """``trickle(cut=None)``: every SDK download after this goes through a :class:`Trickle`."""
    streams: list[Trickle] = []
    real = Files.download_async

    def install(cut: int | None = None) -> list[Trickle]:
        async def download_async(self: Files, **kwargs: Any) -> httpx2.Response:
            response = await real(self, **kwargs)
            assert isinstance(response.stream, httpx2.AsyncByteStream)
            stream = Trickle(response.stream, piece=64, cut=cut)
            response.stream = stream
            streams.append(stream)
            return response

        monkeypatch.setattr(Files, "download_async", download_async)
        return streams

    return install


def test_results_stream_and_an_early_stop_closes_the_download(
    provider: MistralProvider, tmp_path: Path, trickle: Any
) -> None:
    sub = submit_items(provider, items(20), tmp_path)
    streams: list[Trickle] = trickle()

    async def main() -> tuple[int, int, bool, int, bool]:
        results = provider.aresults(sub.batch_id)
        assert isinstance(results, AsyncGenerator)
        await anext(results)
        at_first = streams[0].delivered
        await anext(results)
        await results.aclose()
        stopped = streams[0].closed
        await _collect(provider, sub.batch_id)  # a full read, for the file's size
        await provider.aclose()  # the loop ends here: its client's connections with it
        return at_first, streams[1].delivered, stopped, len(streams), streams[1].closed

    at_first, total, stopped, downloads, closed_at_end = asyncio.run(main())
    # the first result came out after a few 64-byte pieces, not after the whole file
    assert 0 < at_first < total / 4, (at_first, total)
    assert stopped, "stopping early closes the response (connection back to the pool)"
    assert downloads == 2 and closed_at_end


def test_a_download_cut_mid_stream_is_a_transient_provider_error(
    provider: MistralProvider, tmp_path: Path, trickle: Any
) -> None:
    sub = submit_items(provider, items(20), tmp_path)
    streams: list[Trickle] = trickle(cut=1000)
    # the blocking API: translated on the portal loop, raised in the caller's thread
    with pytest.raises(ProviderError) as info:
        list(provider.results(sub.batch_id))
    assert isinstance(info.value.__cause__, httpx2.RemoteProtocolError)
    assert info.value.status_code is None and info.value.retryable
    assert len(streams) == 1 and streams[0].closed

    async def main() -> tuple[list[BatchResult], ProviderError]:
        got: list[BatchResult] = []
        try:
            async for r in provider.aresults(sub.batch_id):
                got.append(r)
        except ProviderError as exc:
            return got, exc
        finally:
            await provider.aclose()
        raise AssertionError("the cut download ended without an error")

    got, error = asyncio.run(main())
    assert 0 < len(got) < 20, "what arrived before the cut was handed on"
    assert error.retryable and isinstance(error.__cause__, httpx2.RemoteProtocolError)
    assert len(streams) == 2 and streams[1].closed


def test_a_truncated_download_is_a_transient_provider_error(
    make_server: ServerFactory, tmp_path: Path
) -> None:
    server = make_server(faults=Faults(seed=2, truncate_output_rate=1.0))
    provider = provider_for(server)
    sub = submit_items(provider, items(10), tmp_path)
    with pytest.raises(ProviderError, match="line") as info:
        list(provider.results(sub.batch_id))
    assert info.value.status_code is None and info.value.retryable


def test_keys_of_every_loops_client_are_scrubbed(
    server: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # keys from the environment, which changed between the two loops' clients
    portal_key = "mistral-env-key-portal-0123456789"
    user_key = "mistral-env-key-user-0123456789"
    provider = MistralProvider(base_url=f"{server.url}/mistral", settings={"retries": False})
    monkeypatch.setenv("MISTRAL_API_KEY", portal_key)
    portal.run(_client_of(provider))
    monkeypatch.setenv("MISTRAL_API_KEY", user_key)

    async def main() -> str:
        await _client_of(provider)
        try:
            return provider.scrub(f"sent {portal_key}, then Bearer {user_key}")
        finally:
            await provider.aclose()

    assert asyncio.run(main()) == "sent ***, then Bearer ***"
