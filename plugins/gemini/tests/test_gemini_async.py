"""GeminiProvider is built on the SDK's async client: the blocking API is derived from it.

The sandbox's clock only moves when a test advances it, so nothing here races the wall clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import httpx2
import pytest
from gemini_support import KEY, MODEL, item, provider_for, sdk_client, write_lines
from google.genai import _api_client, files
from google.genai.client import AsyncClient

from polybatch import portal
from polybatch.errors import ProviderError
from polybatch.items import BatchResult
from polybatch.sandbox import Faults, SandboxServer
from polybatch_gemini import provider as provider_module
from polybatch_gemini.provider import GeminiProvider, stream_download

Sandbox = Callable[..., AbstractContextManager[SandboxServer]]
META = {"polybatch_job": "job-a", "polybatch_chunk": "0"}
META_B = {"polybatch_job": "job-b", "polybatch_chunk": "0"}

#: the methods of google.genai's BaseApiClient that send requests on the blocking path:
#: ``request``/``request_streamed`` -> ``_request`` -> ``_request_once`` (the one that sends,
#: through the sync httpx2 client), and the file transfers ``upload_file`` and ``download_file``
SYNC_REQUEST_METHODS = ("request", "request_streamed", "_request", "_request_once")
SYNC_FILE_METHODS = ("upload_file", "download_file")


class SyncSdkUsed(AssertionError):
    """The adapter reached the SDK's blocking request path."""


@pytest.fixture
def no_sync_sdk(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make every blocking request of the SDK fail, whoever makes it."""

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise SyncSdkUsed("the SDK's blocking request path was used")

    for method in SYNC_REQUEST_METHODS + SYNC_FILE_METHODS:
        monkeypatch.setattr(_api_client.BaseApiClient, method, refuse)


# -- (a) the class implements the async side only ---------------------------------------------


def test_no_client_and_no_key_needed_until_a_request() -> None:
    p = GeminiProvider()  # no key anywhere (conftest clears the environment)

    async def main() -> None:
        await p.aclose()  # closing what was never built needs no key either
        assert p._clients.peek() == []  # no SDK client was built

    asyncio.run(main())


# -- (b) the blocking API with the SDK's blocking path switched off -----------------------------


def test_the_refused_seam_is_the_one_the_blocking_sdk_uses(
    server: SandboxServer, no_sync_sdk: None
) -> None:
    # the control: without it, (b) would pass even if the patch missed the SDK's request path
    client = sdk_client(server)
    with pytest.raises(SyncSdkUsed):
        client.batches.list()
    with pytest.raises(SyncSdkUsed):
        client.files.download(file="files/x")


@pytest.mark.parametrize("mode", ["inline", "file"])
def test_blocking_lifecycle_runs_on_the_async_client(
    sandbox: Sandbox, tmp_path: Path, no_sync_sdk: None, mode: str
) -> None:
    settings: dict[str, Any] = {"inline_max_bytes": 0} if mode == "file" else {}
    with sandbox(rate=5) as srv:
        srv.engine.clock.freeze()  # "5 of 10 processed" depends on sandbox time alone
        p = provider_for(srv, **settings)
        items = [item(f"i{n}") for n in range(10)]
        sub = p.submit(write_lines(tmp_path / "a.jsonl", p, items), model=MODEL, metadata=META)
        assert (sub.input_file_id is not None) == (mode == "file")
        assert p.poll(sub.batch_id).state == "in_progress"
        assert p.find_batch(META) == sub.batch_id
        srv.engine.clock.advance(1)  # 5 of 10 processed
        p.cancel(sub.batch_id)
        status = p.poll(sub.batch_id)
        assert status.state == "cancelled" and status.terminal
        results = list(p.results(sub.batch_id))
        assert sorted(r.custom_id for r in results) == sorted(f"i{n}" for n in range(10))
        assert [r.status for r in results].count("succeeded") == 5
        assert [r.status for r in results].count("cancelled") == 5
        p.cleanup(sub)
        p.delete(sub.batch_id)
        with pytest.raises(ProviderError) as err:
            p.poll(sub.batch_id)
        assert err.value.status_code == 404
        seen = srv.engine.requests_seen
        assert any(path.endswith(":download") for _, path in seen) == (mode == "file")
    # everything ran on one client: the portal loop's
    assert len(p._clients.peek()) == 1


# -- (c) the async API on a user's loop ------------------------------------------------------


async def _collect(stream: AsyncIterator[BatchResult]) -> list[BatchResult]:
    return [r async for r in stream]


async def _client_of(p: GeminiProvider) -> AsyncClient:
    return p.client


@pytest.mark.parametrize("mode", ["inline", "file"])
def test_async_lifecycle_on_a_user_loop(
    sandbox: Sandbox, tmp_path: Path, no_sync_sdk: None, mode: str
) -> None:
    settings: dict[str, Any] = {"inline_max_bytes": 0} if mode == "file" else {}
    with sandbox(rate=5) as srv:
        p = provider_for(srv, **settings)
        first = p.submit(
            write_lines(tmp_path / "0.jsonl", p, [item("x")]), model=MODEL, metadata={}
        )
        portal_client = portal.run(_client_of(p))
        lines_a = write_lines(tmp_path / "a.jsonl", p, [item(f"a{n}") for n in range(5)])
        lines_b = write_lines(tmp_path / "b.jsonl", p, [item(f"b{n}") for n in range(10)])

        async def main() -> AsyncClient:
            user_client = p.client
            assert user_client is not portal_client  # one client per loop
            a, b = await asyncio.gather(
                p.asubmit(lines_a, model=MODEL, metadata=META),
                p.asubmit(lines_b, model=MODEL, metadata=META_B),
            )
            states = await asyncio.gather(p.apoll(a.batch_id), p.apoll(b.batch_id))
            assert [s.state for s in states] == ["in_progress", "in_progress"]
            srv.engine.clock.advance(1)  # 5 requests a second per batch: all of a, half of b
            await p.acancel(b.batch_id)
            sa, sb = await asyncio.gather(p.apoll(a.batch_id), p.apoll(b.batch_id))
            assert (sa.state, sa.completed) == ("completed", 5)
            assert sb.state == "cancelled"
            ra, rb = await asyncio.gather(
                _collect(p.aresults(a.batch_id)), _collect(p.aresults(b.batch_id))
            )
            assert sorted(r.custom_id for r in ra) == [f"a{n}" for n in range(5)]
            assert all(r.ok for r in ra)
            assert [r.status for r in rb].count("succeeded") == 5
            assert [r.status for r in rb].count("cancelled") == 5
            found = await asyncio.gather(p.afind_batch(META), p.afind_batch(META_B))
            assert list(found) == [a.batch_id, b.batch_id]
            await asyncio.gather(p.acleanup(a), p.acleanup(b))
            if mode == "file":
                assert a.input_file_id and b.input_file_id
                assert srv.engine.get_file("gemini", a.input_file_id.removeprefix("files/")) is None
            assert p.client is user_client  # the same client all along on this loop
            await p.aclose()
            assert p.client is not user_client  # closed, and rebuilt on the next use
            assert (await p.apoll(a.batch_id)).state == "completed"
            await p.aclose()
            return user_client

        user_client = asyncio.run(main())
        # the portal's client was neither used nor disturbed by the user's loop
        assert portal.run(_client_of(p)) is portal_client
        assert p.poll(first.batch_id).state == "completed"
    held = p._clients.peek()  # without building any
    assert portal_client in held and user_client not in held


# -- retries ------------------------------------------------------------------------------------


def test_batch_creation_is_never_retried_by_the_sdk(
    sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a retried create after a lost answer would make a second job; the runner retries instead,
    # after find_batch. Other calls keep max_retries (the control). No backoff, for speed: the
    # SDK reads these when a client is built, which here is on first use.
    for name in ("_RETRY_INITIAL_DELAY", "_RETRY_MAX_DELAY", "_RETRY_JITTER"):
        monkeypatch.setattr(_api_client, name, 0.0)
    with sandbox(faults=Faults(http_error_rate=1.0, http_error_codes=(503,))) as srv:
        p = provider_for(srv, max_retries=2)
        lines = write_lines(tmp_path / "r.jsonl", p, [item("a")])
        with pytest.raises(ProviderError) as err:
            p.submit(lines, model=MODEL, metadata=META)
        assert err.value.status_code == 503 and err.value.retryable
        with pytest.raises(ProviderError):
            p.poll("batches/nope")
        seen = list(srv.engine.requests_seen)
    assert sum(path.endswith(":batchGenerateContent") for _, path in seen) == 1
    assert sum(path.endswith("/batches/nope") for _, path in seen) == 3


# -- streaming the responses file ------------------------------------------------------------


def test_results_stream_while_the_file_downloads(
    server: SandboxServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # small chunks from the SDK: the file is many chunks, so how far ahead the download runs of
    # the reader is visible
    chunk_size = 256
    original = _api_client.BaseApiClient.async_download_file
    monkeypatch.setattr(
        _api_client.BaseApiClient,
        "async_download_file",
        functools.partialmethod(original, chunk_size=chunk_size),
    )
    writes: list[int] = []
    original_write = provider_module._ChunkSink.write

    async def counting_write(self: provider_module._ChunkSink, chunk: bytes) -> int:
        written = await original_write(self, chunk)
        writes.append(written)
        return written

    monkeypatch.setattr(provider_module._ChunkSink, "write", counting_write)
    p = provider_for(server, inline_max_bytes=0)
    items = [item(f"s{n}", "Tell me a story about foxes") for n in range(200)]
    sub = p.submit(write_lines(tmp_path / "s.jsonl", p, items), model=MODEL, metadata={})
    out = next(f for f in server.engine.files.values() if f.filename.startswith("batch-"))
    total_chunks = -(-len(out.data) // chunk_size)
    assert total_chunks > 10 * provider_module.DOWNLOAD_BUFFER

    async def first_results() -> tuple[int, int]:
        stream = p.aresults(sub.batch_id)
        assert isinstance(stream, AsyncIterator)
        first = await anext(stream)
        assert first.custom_id == "s0"
        for _ in range(50):  # give the download every chance to run ahead
            await asyncio.sleep(0)
        ahead = len(writes)
        rest = [r async for r in stream]
        await p.aclose()  # this loop ends here: its client goes with it
        return ahead, 1 + len(rest)

    ahead, count = asyncio.run(first_results())
    assert count == 200 and len(writes) == total_chunks
    # held back by the reader: the first line's chunks plus a full buffer, not the whole file
    first_line_chunks = -(-(out.data.index(b"\n") + 1) // chunk_size)
    assert ahead <= first_line_chunks + provider_module.DOWNLOAD_BUFFER + 1


def test_a_download_cut_midway_is_a_transient_error(
    server: SandboxServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    p = provider_for(server, inline_max_bytes=0)
    sub = p.submit(
        write_lines(tmp_path / "c.jsonl", p, [item("a"), item("b")]), model=MODEL, metadata={}
    )
    out = next(f for f in server.engine.files.values() if f.filename.startswith("batch-"))
    first_line = out.data[: out.data.index(b"\n") + 1]

    async def cut_download(self: files.AsyncFiles, *, file: str, destination: Any) -> None:
        await destination.write(first_line)
        raise httpx2.RemoteProtocolError("peer closed connection without sending complete body")

    monkeypatch.setattr(files.AsyncFiles, "download", cut_download)

    async def main() -> list[BatchResult]:
        got: list[BatchResult] = []
        with pytest.raises(ProviderError) as err:
            async for result in p.aresults(sub.batch_id):
                got.append(result)
        assert err.value.retryable and err.value.status_code is None
        assert isinstance(err.value.__cause__, httpx2.RemoteProtocolError)
        assert "download results of" in str(err.value)
        await p.aclose()
        return got

    # what came before the cut was delivered
    assert [r.custom_id for r in asyncio.run(main())] == ["a"]
    with pytest.raises(ProviderError) as err:  # the same through the blocking API
        list(p.results(sub.batch_id))
    assert err.value.retryable


# -- stream_download on its own ------------------------------------------------------------------


def test_stream_download_holds_the_download_back() -> None:
    done: list[int] = []

    async def download(sink: Any) -> None:
        for n in range(20):
            await sink.write(b"%d\n" % n)
            done.append(n)

    async def main() -> list[bytes]:
        stream = stream_download(download, buffer=2)
        got = [await anext(stream)]
        for _ in range(50):
            await asyncio.sleep(0)
        assert len(done) <= len(got) + 2  # an unbounded buffer would have taken all 20
        got += [chunk async for chunk in stream]
        return got

    assert asyncio.run(main()) == [b"%d\n" % n for n in range(20)]


def test_stream_download_raises_after_the_chunks_before_the_error() -> None:
    async def download(sink: Any) -> None:
        await sink.write(b"one\n")
        await sink.write(b"two\n")
        raise httpx2.ReadError("cut")

    async def main() -> list[bytes]:
        got: list[bytes] = []
        with pytest.raises(httpx2.ReadError):
            async for chunk in stream_download(download, buffer=4):
                got.append(chunk)
        return got

    assert asyncio.run(main()) == [b"one\n", b"two\n"]


def test_closing_the_stream_cancels_the_download() -> None:
    ended: list[str] = []

    async def download(sink: Any) -> None:
        try:
            for _ in range(1000):  # bounded: a stream that failed to hold it back ends, not hangs
                await sink.write(b"x\n")
        except asyncio.CancelledError:
            ended.append("cancelled")
            raise

    async def main() -> None:
        stream = stream_download(download, buffer=1)
        assert await anext(stream) == b"x\n"
        await stream.aclose()
        assert ended == ["cancelled"]
        # nothing left running on the loop
        assert {t for t in asyncio.all_tasks() if t is not asyncio.current_task()} == set()

    asyncio.run(main())


def test_cancelling_the_reader_cancels_the_download() -> None:
    # what an interrupt does to a results collection (the portal cancels the coroutine)
    ended: list[str] = []

    async def download(sink: Any) -> None:
        await sink.write(b"x\n")
        try:
            await asyncio.Event().wait()  # a download that stalls
        except asyncio.CancelledError:
            ended.append("cancelled")
            raise

    got: list[bytes] = []

    async def read() -> None:
        async with contextlib.aclosing(stream_download(download)) as stream:
            async for chunk in stream:
                got.append(chunk)

    async def main() -> None:
        reader = asyncio.ensure_future(read())
        while not got:
            await asyncio.sleep(0)
        for _ in range(10):  # the reader goes back to waiting for the next chunk
            await asyncio.sleep(0)
        reader.cancel()
        with pytest.raises(asyncio.CancelledError):
            await reader
        assert ended == ["cancelled"]
        assert {t for t in asyncio.all_tasks() if t is not asyncio.current_task()} == set()

    asyncio.run(main())


# -- secrets ------------------------------------------------------------------------------------


def test_scrubbing_covers_the_keys_of_every_loops_client(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    p = GeminiProvider(base_url="http://127.0.0.1:9/gemini")
    loops = [asyncio.new_event_loop() for _ in range(2)]
    try:
        # a client is built per loop, with the key of the moment; both loops stay alive, as the
        # loop whose client raised an error is while that error is translated
        for loop, key in zip(
            loops, ("env-key-one-0123456789", "env-key-two-0123456789"), strict=True
        ):
            monkeypatch.setenv("GEMINI_API_KEY", key)
            loop.run_until_complete(_client_of(p))
        text = p.scrub("sent env-key-one-0123456789 and env-key-two-0123456789 and " + KEY)
        assert "env-key" not in text and text.count("***") == 2 and KEY in text
    finally:
        for loop in loops:
            loop.close()
