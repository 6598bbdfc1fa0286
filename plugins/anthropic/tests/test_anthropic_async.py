"""AnthropicProvider is async-first: built on ``anthropic.AsyncAnthropic``, one client per loop.

The blocking lifecycle (what a sync user and the CLI call) is the base class's, run on polybatch's
portal loop, so no ``anthropic.Anthropic`` is ever built; the async lifecycle runs on the caller's
own loop with a client of its own.
"""

from __future__ import annotations

import asyncio
import gc
import inspect
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import anthropic
import httpx2
import pytest
from anthropic_support import KEY, MODEL, item, provider_for, write_lines

from polybatch import portal
from polybatch.errors import ProviderError
from polybatch.items import BatchResult
from polybatch.providers import LIFECYCLE_PAIRS
from polybatch.sandbox import Faults, SandboxServer
from polybatch_anthropic.provider import AnthropicProvider

Sandbox = Callable[..., AbstractContextManager[SandboxServer]]

#: requests per batch; at this sandbox rate (requests per second) a batch takes 1000 s of
#: sandbox time, so it stays in progress until the test moves the sandbox clock
N = 10
SLOW = 0.01
LONG = 10 * N / SLOW

#: the pairs AnthropicProvider writes the async side of (it uploads no files: nothing to clean up)
PAIRS = [pair for pair in LIFECYCLE_PAIRS if pair[0] != "cleanup"]


@pytest.fixture
def no_sync_client(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make building the blocking SDK client an error."""

    def refuse(self: anthropic.Anthropic, *args: Any, **kwargs: Any) -> None:
        raise AssertionError("anthropic.Anthropic was built: the adapter must use AsyncAnthropic")

    monkeypatch.setattr(anthropic.Anthropic, "__init__", refuse)


@pytest.fixture
def built(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[tuple[Any, asyncio.AbstractEventLoop]]]:
    """Every AsyncAnthropic built from scratch, with the loop it was built on.

    Copies (``with_options``) share their parent's connection pool and are left out.
    """
    record: list[tuple[Any, asyncio.AbstractEventLoop]] = []
    original = anthropic.AsyncAnthropic.__init__

    def recording(self: anthropic.AsyncAnthropic, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        if kwargs.get("http_client") is None:
            record.append((self, asyncio.get_running_loop()))

    monkeypatch.setattr(anthropic.AsyncAnthropic, "__init__", recording)
    yield record


async def _client_of(provider: AnthropicProvider) -> anthropic.AsyncAnthropic:
    """The provider's client for the running loop."""
    return provider.client


async def _running_loop() -> asyncio.AbstractEventLoop:
    return asyncio.get_running_loop()


async def _collect(provider: AnthropicProvider, batch_id: str) -> list[BatchResult]:
    return [r async for r in provider.aresults(batch_id)]


def test_adelete_is_a_coroutine() -> None:
    # the lifecycle pairs themselves: ProviderConformance (lifecycle = "async")
    assert inspect.iscoroutinefunction(AnthropicProvider.adelete)


def test_blocking_lifecycle_never_builds_a_sync_client(
    sandbox: Sandbox,
    tmp_path: Path,
    no_sync_client: None,
    built: list[tuple[Any, asyncio.AbstractEventLoop]],
) -> None:
    with sandbox(rate=SLOW) as srv:
        p = provider_for(srv)
        done = p.submit(
            write_lines(tmp_path / "a.jsonl", p, [item(f"a{n}") for n in range(N)]),
            model=MODEL,
            metadata={"polybatch_job": "j"},
        )
        stopped = p.submit(
            write_lines(tmp_path / "b.jsonl", p, [item(f"b{n}") for n in range(N)]),
            model=MODEL,
            metadata={},
        )
        assert p.poll(done.batch_id).state == "in_progress"
        p.cancel(stopped.batch_id)
        srv.engine.clock.advance(LONG)
        status = p.poll(done.batch_id)
        assert (status.state, status.completed, status.total) == ("completed", N, N)
        assert p.poll(stopped.batch_id).state == "cancelled"
        results = list(p.results(done.batch_id))
        assert sorted(r.custom_id for r in results) == sorted(f"a{n}" for n in range(N))
        assert all(r.ok and r.text and r.batch_id == done.batch_id for r in results)
        canceled = list(p.results(stopped.batch_id))
        assert len(canceled) == N and {r.status for r in canceled} == {"cancelled"}
        assert p.find_batch({"polybatch_job": "j"}) is None
        p.delete(stopped.batch_id)
        with pytest.raises(ProviderError) as exc:  # errors are translated on this path too
            p.poll(stopped.batch_id)
        assert exc.value.status_code == 404

    # all of it went through one async client, built on (and kept by) the portal loop
    assert [(c, loop) for c, loop in built] == [
        (portal.run(_client_of(p)), portal.run(_running_loop()))
    ]
    assert isinstance(built[0][0], anthropic.AsyncAnthropic)


def test_async_lifecycle_on_a_user_loop_has_its_own_client(
    sandbox: Sandbox,
    tmp_path: Path,
    no_sync_client: None,
    built: list[tuple[Any, asyncio.AbstractEventLoop]],
) -> None:
    with sandbox(rate=SLOW) as srv:
        p = provider_for(srv)
        # the same provider object, used first through the blocking API (the portal loop)
        before = p.submit(
            write_lines(tmp_path / "0.jsonl", p, [item("z")]), model=MODEL, metadata={}
        )
        assert p.poll(before.batch_id).state == "in_progress"
        portal_client = portal.run(_client_of(p))
        paths = [
            write_lines(tmp_path / f"{b}.jsonl", p, [item(f"{b}{n}") for n in range(N)])
            for b in "ab"
        ]

        async def lifecycle() -> tuple[anthropic.AsyncAnthropic, asyncio.AbstractEventLoop]:
            client = p.client
            assert client is not portal_client, "a client per loop"
            assert p.client is client, "built once per loop"
            a, b = await asyncio.gather(
                *(p.asubmit(path, model=MODEL, metadata={}) for path in paths)
            )
            states = await asyncio.gather(p.apoll(a.batch_id), p.apoll(b.batch_id))
            assert [s.state for s in states] == ["in_progress", "in_progress"]
            await p.acancel(b.batch_id)
            srv.engine.clock.advance(LONG)
            sa, sb = await asyncio.gather(p.apoll(a.batch_id), p.apoll(b.batch_id))
            assert (sa.state, sa.completed, sb.state) == ("completed", N, "cancelled")
            ra, rb = await asyncio.gather(_collect(p, a.batch_id), _collect(p, b.batch_id))
            assert sorted(r.custom_id for r in ra) == sorted(f"a{n}" for n in range(N))
            assert all(r.ok for r in ra)
            assert len(rb) == N and {r.status for r in rb} == {"cancelled"}
            assert await p.afind_batch({}) is None
            with pytest.raises(ProviderError) as exc:
                await p.apoll("msgbatch_unknown")
            assert exc.value.status_code == 404 and not exc.value.retryable
            assert p.client is client, "the same client all along"
            await p.aclose()
            assert client.is_closed()
            return client, asyncio.get_running_loop()

        user_client, user_loop = asyncio.run(lifecycle())
        # the portal's client is untouched by the user's loop and its closing
        assert portal.run(_client_of(p)) is portal_client and not portal_client.is_closed()
        after = p.submit(
            write_lines(tmp_path / "1.jsonl", p, [item("y")]), model=MODEL, metadata={}
        )
        assert p.poll(after.batch_id).state == "in_progress"

    portal_loop = portal.run(_running_loop())
    assert [(c, loop) for c, loop in built] == [
        (portal_client, portal_loop),
        (user_client, user_loop),
    ]


def test_aclose_then_use_builds_a_new_client(server: SandboxServer) -> None:
    p = provider_for(server)

    async def main() -> None:
        await p.aclose()  # nothing built yet: nothing to do
        first = p.client
        await p.aclose()
        assert first.is_closed()
        second = p.client
        assert second is not first and not second.is_closed()
        with pytest.raises(ProviderError) as exc:
            await p.apoll("msgbatch_unknown")
        assert exc.value.status_code == 404
        await p.aclose()

    asyncio.run(main())


def test_a_collected_provider_closes_its_portal_client(server: SandboxServer) -> None:
    p = provider_for(server)
    with pytest.raises(ProviderError):
        p.poll("msgbatch_unknown")  # builds the portal's client and opens a connection
    client = portal.run(_client_of(p))
    assert not client.is_closed()
    del p
    gc.collect()
    # the close was handed to the portal loop; give it a few of the loop's steps (closing the
    # connection pool may take more than one), with a generous bound
    for _ in range(200):
        portal.run(asyncio.sleep(0.01))
        if client.is_closed():
            break
    assert client.is_closed()


def test_errors_on_the_async_path(server: SandboxServer) -> None:
    secret = "sk-ant-wrong-secret-456"
    wrong = AnthropicProvider(api_key=secret, base_url=server.url + "/anthropic")
    unreachable = AnthropicProvider(
        api_key=KEY, base_url="http://127.0.0.1:9", settings={"max_retries": 0}
    )

    async def main() -> None:
        with pytest.raises(ProviderError) as exc:
            await wrong.apoll("msgbatch_x")
        assert exc.value.status_code == 401 and secret not in str(exc.value)
        with pytest.raises(ProviderError) as exc:
            await unreachable.acancel("msgbatch_x")
        assert exc.value.status_code is None and exc.value.retryable
        with pytest.raises(ProviderError) as exc:
            await _collect(wrong, "msgbatch_x")
        assert exc.value.status_code == 401
        await wrong.aclose()
        await unreachable.aclose()

    asyncio.run(main())


def test_a_results_stream_cut_mid_line_is_transient(sandbox: Sandbox, tmp_path: Path) -> None:
    with sandbox(faults=Faults(seed=1, truncate_output_rate=1.0)) as srv:
        p = provider_for(srv)
        items = [item(f"i{n}", "a longer prompt " * 20) for n in range(20)]
        sub = p.submit(write_lines(tmp_path / "a.jsonl", p, items), model=MODEL, metadata={})
        assert p.poll(sub.batch_id).state == "completed"

        async def main() -> list[BatchResult]:
            got: list[BatchResult] = []
            with pytest.raises(ProviderError) as exc:
                async for r in p.aresults(sub.batch_id):
                    got.append(r)
            assert exc.value.status_code is None and exc.value.retryable
            assert isinstance(exc.value.__cause__, ValueError)  # the cut line's JSON error
            await p.aclose()
            return got

        got = asyncio.run(main())
        assert len(got) < len(items)  # what came before the cut was streamed
        with pytest.raises(ProviderError) as exc:  # the same through the blocking API
            list(p.results(sub.batch_id))
        assert exc.value.status_code is None


def test_stopping_early_releases_the_download(
    sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    responses: list[httpx2.Response] = []
    send = httpx2.AsyncClient.send

    async def recording(self: httpx2.AsyncClient, *args: Any, **kwargs: Any) -> httpx2.Response:
        response = await send(self, *args, **kwargs)
        responses.append(response)
        return response

    monkeypatch.setattr(httpx2.AsyncClient, "send", recording)
    with sandbox() as srv:
        p = provider_for(srv)
        sub = p.submit(
            write_lines(tmp_path / "a.jsonl", p, [item(f"i{n}") for n in range(N)]),
            model=MODEL,
            metadata={},
        )

        async def main() -> None:
            stream = p.aresults(sub.batch_id)
            first = await anext(stream)
            assert first.ok
            download = responses[-1]
            assert download.url.path.endswith("/results") and not download.is_closed
            await stream.aclose()  # type: ignore[attr-defined]
            assert download.is_closed, "a consumer that stops early releases the connection"
            assert len(await _collect(p, sub.batch_id)) == N
            await p.aclose()

        asyncio.run(main())
