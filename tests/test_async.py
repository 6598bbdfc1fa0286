"""The async API runs on the SDKs' async clients, on the caller's loop; the blocking API is the
same code on polybatch's portal loop; adapters may be written either way."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, NoReturn

import pytest

import polybatch
from polybatch import portal, sdk
from polybatch.items import BatchItem, BatchResult
from polybatch.providers import (
    LIFECYCLE_PAIRS,
    BatchProvider,
    BatchStatus,
    Limits,
    SubmittedBatch,
)
from polybatch.sandbox import SandboxServer

pytestmark = pytest.mark.usefixtures("polybatch_home")

MODELS = ["openai:gpt-4o-mini", "anthropic:claude-haiku-4-5"]


def _refuse(what: str) -> Callable[..., NoReturn]:
    def refuse(*args: Any, **kwargs: Any) -> NoReturn:
        raise AssertionError(f"{what} was used on the async path")

    return refuse


# An async job awaiting the async clients on the caller's loop (the loop stays free, no blocking
# path): ProviderConformance.test_async_job_takes_no_blocking_path, run for every provider.


@pytest.fixture
def async_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make every blocking way to reach a provider fail: the derived blocking lifecycle methods.

    That the SDKs' blocking clients are not built either is each plugin's part: every
    ProviderConformance subclass names its SDK's blocking seams (``sync_sdk_seams``) and runs an
    async job with them refused (``test_async_job_takes_no_blocking_path``)."""
    for name, _ in LIFECYCLE_PAIRS:
        monkeypatch.setattr(BatchProvider, name, _refuse(f"BatchProvider.{name}"))


@pytest.mark.usefixtures("async_only")
def test_jobs_on_two_providers_run_concurrently_on_one_loop(sandbox_server: SandboxServer) -> None:
    async def main() -> list[list[BatchResult]]:
        return list(
            await asyncio.gather(
                *(
                    polybatch.arun(
                        [f"{model} question {i}?" for i in range(4)],
                        model,
                        sandbox=sandbox_server,
                        chunk_size=2,
                        poll_min=0.01,
                    )
                    for model in MODELS
                )
            )
        )

    by_model = asyncio.run(main())
    for model, results in zip(MODELS, by_model, strict=True):
        assert [r.custom_id for r in results] == [f"item-{i}" for i in range(1, 5)]
        assert all(r.ok for r in results)
        assert {r.provider for r in results} == {model.split(":")[0]}


@pytest.mark.usefixtures("async_only")
def test_async_cancel(make_sandbox: Callable[..., SandboxServer]) -> None:
    server = make_sandbox(rate=0.001)  # a request per 1000 s of sandbox time: nothing finishes

    async def main() -> polybatch.Job:
        job = await polybatch.asubmit(["a?", "b?"], MODELS[0], sandbox=server)
        await job.acancel()
        return await job.await_done(poll_min=0.01, timeout=60)

    job = asyncio.run(main())
    assert job.status().state == "cancelled"
    assert {r.status for r in job.results()} == {"cancelled"}


def test_the_blocking_api_works_inside_a_running_loop(sandbox_server: SandboxServer) -> None:
    async def notebook_cell() -> list[BatchResult]:
        # a notebook runs cells inside a loop: blocking calls must not need that loop
        return polybatch.run(["hi?"], MODELS[1], sandbox=sandbox_server, poll_min=0.01)

    (result,) = asyncio.run(notebook_cell())
    assert result.ok


def test_a_blocking_call_on_the_portal_loop_is_refused(sandbox_server: SandboxServer) -> None:
    async def misuse() -> None:
        polybatch.run(["hi?"], MODELS[0], sandbox=sandbox_server)

    with pytest.raises(RuntimeError, match="await the async method instead"):
        portal.run(misuse())


def test_an_interrupt_cancels_the_running_coroutine() -> None:
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("signals reach the main thread only")
    unwound = threading.Event()

    async def forever() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            unwound.set()

    # Python's own SIGINT handler, whatever an earlier test in this worker left installed (an
    # asyncio runner or a server may swap it): this test is about the portal, not the handler
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    timer = threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            portal.run(forever())
    finally:
        timer.cancel()
        signal.signal(signal.SIGINT, previous)
    assert unwound.is_set(), "the coroutine was cancelled before the call returned"


def test_portal_iterate_streams_in_order_and_closes_early() -> None:
    closed = threading.Event()

    async def numbers(n: int) -> AsyncIterator[int]:
        try:
            for i in range(n):
                yield i
        finally:
            closed.set()

    assert list(portal.portal.iterate(numbers(2000), batch=64)) == list(range(2000))
    closed.clear()
    for i in portal.portal.iterate(numbers(2000), batch=64):
        if i == 100:
            break
    assert closed.is_set(), "leaving the loop early closes the async generator"


# -- adapters written either way ------------------------------------------------------------
class _Blocking(BatchProvider):
    """A third party's adapter on a blocking client: only the blocking lifecycle."""

    name = "blocking-test"
    limits = Limits(max_requests=10, max_bytes=10_000)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.threads: set[str] = set()

    def encode(self, item: BatchItem, model: str) -> bytes:
        return b"{}"

    def submit(
        self, lines_path: Path, *, model: str, metadata: Mapping[str, str]
    ) -> SubmittedBatch:
        self.threads.add(threading.current_thread().name)
        return SubmittedBatch(batch_id="b1")

    def poll(self, batch_id: str) -> BatchStatus:
        return BatchStatus(batch_id=batch_id, state="completed", total=3, completed=3)

    def results(self, batch_id: str) -> Iterator[BatchResult]:
        for i in range(3):
            yield BatchResult(custom_id=f"c{i}", status="succeeded", text="ok")

    def cancel(self, batch_id: str) -> None:
        pass


class _Async(BatchProvider):
    """An adapter on an async client: only the async lifecycle."""

    name = "async-test"
    limits = Limits(max_requests=10, max_bytes=10_000)

    def encode(self, item: BatchItem, model: str) -> bytes:
        return b"{}"

    async def asubmit(
        self, lines_path: Path, *, model: str, metadata: Mapping[str, str]
    ) -> SubmittedBatch:
        return SubmittedBatch(batch_id=threading.current_thread().name)

    async def apoll(self, batch_id: str) -> BatchStatus:
        return BatchStatus(batch_id=batch_id, state="in_progress")

    async def aresults(self, batch_id: str) -> AsyncIterator[BatchResult]:
        for i in range(1500):  # more than one portal hop
            yield BatchResult(custom_id=f"c{i}", status="succeeded", text="ok")

    async def acancel(self, batch_id: str) -> None:
        pass

    async def afind_batch(self, metadata: Mapping[str, str]) -> str | None:
        return metadata.get("want")


def test_a_blocking_adapter_gets_async_methods_run_in_worker_threads(tmp_path: Path) -> None:
    p = _Blocking()

    async def main() -> tuple[SubmittedBatch, BatchStatus, list[str], str | None]:
        sub = await p.asubmit(tmp_path, model="m", metadata={})
        st = await p.apoll(sub.batch_id)
        ids = [r.custom_id async for r in p.aresults(sub.batch_id)]
        await p.acancel(sub.batch_id)
        await p.acleanup(sub)
        return sub, st, ids, await p.afind_batch({"x": "y"})

    sub, st, ids, found = asyncio.run(main())
    assert sub.batch_id == "b1" and st.terminal and ids == ["c0", "c1", "c2"] and found is None
    assert threading.main_thread().name not in p.threads, "blocking calls ran off the loop"


def test_an_async_adapter_gets_blocking_methods_on_the_portal(tmp_path: Path) -> None:
    p = _Async()
    assert p.submit(tmp_path, model="m", metadata={}).batch_id == "polybatch-portal"
    assert p.poll("b").state == "in_progress"
    assert [r.custom_id for r in p.results("b")] == [f"c{i}" for i in range(1500)]
    p.cancel("b")
    p.cleanup(SubmittedBatch(batch_id="b"))
    assert p.find_batch({"want": "b7"}) == "b7"


def test_an_adapter_with_neither_side_is_refused_when_defined() -> None:
    with pytest.raises(TypeError, match=r"must implement apoll \(async\) or poll \(blocking\)"):

        class _Half(BatchProvider):  # pyright: ignore[reportUnusedClass]
            name = "half"
            limits = Limits(max_requests=1, max_bytes=1)

            def encode(self, item: BatchItem, model: str) -> bytes:
                return b""

            async def asubmit(
                self, lines_path: Path, *, model: str, metadata: Mapping[str, str]
            ) -> SubmittedBatch:
                return SubmittedBatch(batch_id="x")

            async def aresults(self, batch_id: str) -> AsyncIterator[BatchResult]:
                return
                yield

            async def acancel(self, batch_id: str) -> None:
                pass


def test_per_loop_objects_are_kept_per_loop() -> None:
    made: list[object] = []
    per_loop: sdk.PerLoop[object] = sdk.PerLoop(lambda: made.append(object()) or made[-1])

    async def get_twice() -> object:
        first = per_loop.get()
        assert per_loop.get() is first
        return first

    a = asyncio.run(get_twice())
    b = asyncio.run(get_twice())
    c = portal.run(get_twice())
    assert a is not b and c is not a and c is not b and len(made) == 3


class _Resource:
    def __init__(self) -> None:
        self.closed_on: str | None = None
        # as an SDK client's connection pool does: it holds the loop it was made on
        self.loop = asyncio.get_running_loop()

    async def close(self) -> None:
        self.closed_on = threading.current_thread().name


def test_per_loop_closes_what_it_built() -> None:
    built: list[_Resource] = []

    def make() -> _Resource:
        built.append(_Resource())
        return built[-1]

    per_loop: sdk.PerLoop[_Resource] = sdk.PerLoop(make, close=lambda r: r.close())

    async def use_and_close(pl: sdk.PerLoop[_Resource]) -> None:
        pl.get()
        await pl.aclose()
        await pl.aclose()  # nothing left: harmless

    asyncio.run(use_and_close(per_loop))
    assert built[0].closed_on == threading.main_thread().name

    async def use(pl: sdk.PerLoop[_Resource]) -> _Resource:
        return pl.get()

    left_open = asyncio.run(use(per_loop))  # a user loop that never closed its client
    assert per_loop.peek() == [left_open], "its loop is kept alive by its object"
    on_portal = portal.run(use(per_loop))  # the next get() drops what belonged to closed loops
    assert per_loop.peek() == [on_portal]

    del per_loop  # the provider is gone: what lives on the portal loop is closed there
    import gc

    gc.collect()
    portal.run(asyncio.sleep(0.05))  # let the scheduled close run
    assert on_portal.closed_on == "polybatch-portal"
    assert left_open.closed_on is None, "a closed loop's object cannot be closed any more"
