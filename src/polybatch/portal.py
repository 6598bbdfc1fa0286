"""The sync API's event loop: polybatch is async inside, and its blocking calls run here.

Every provider call goes through the SDKs' async clients and the job logic is written once, as
coroutines. The blocking API (``submit``, ``Job.wait``, ``provider.poll`` ...) runs those
coroutines on one event loop in a daemon thread, shared by the process, so it works the same
in a script, in a worker thread and inside a running loop (Jupyter), and async clients keep
their connection pools between calls (a fresh ``asyncio.run`` per call would drop them).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import threading
from collections.abc import AsyncIterator, Coroutine, Iterator
from typing import Any, TypeVar

T = TypeVar("T")

#: items moved per hop between the portal thread and the caller when a stream is iterated
STREAM_BATCH = 512
#: seconds an interrupted call waits for its coroutine to unwind (cancellation runs its cleanups)
CANCEL_GRACE = 10.0


class Portal:
    """An event loop in a daemon thread, started on first use (and again after a fork)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    def _ensure(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None or self._thread is None or not self._thread.is_alive():
                loop = asyncio.new_event_loop()
                ready = threading.Event()

                def serve() -> None:
                    asyncio.set_event_loop(loop)
                    loop.call_soon(ready.set)
                    loop.run_forever()

                thread = threading.Thread(target=serve, name="polybatch-portal", daemon=True)
                thread.start()
                ready.wait()
                self._loop, self._thread = loop, thread
            return self._loop

    def _reset_after_fork(self) -> None:
        # the thread did not survive the fork; its loop must not be reused
        self._lock = threading.Lock()
        self._loop = self._thread = None

    def in_portal(self) -> bool:
        """True when called from the portal's own thread (where blocking on it would deadlock)."""
        return self._thread is not None and threading.current_thread() is self._thread

    def call(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on the portal loop and block until it is done.

        An interrupt (Ctrl-C) cancels the coroutine and waits for it to unwind, so no step is
        left running behind the caller's back.
        """
        if self.in_portal():
            coro.close()
            raise RuntimeError(
                "a blocking polybatch call was made from async code running on polybatch's own "
                "loop; await the async method instead"
            )
        future = asyncio.run_coroutine_threadsafe(coro, self._ensure())
        try:
            return future.result()
        except BaseException:
            if not future.done():
                future.cancel()
                concurrent.futures.wait([future], timeout=CANCEL_GRACE)
            raise

    def iterate(self, stream: AsyncIterator[T], batch: int = STREAM_BATCH) -> Iterator[T]:
        """Iterate an async iterator from blocking code, ``batch`` items per hop."""

        async def take() -> list[T]:
            out: list[T] = []
            async for item in stream:
                out.append(item)
                if len(out) >= batch:
                    break
            return out

        try:
            while chunk := self.call(take()):
                yield from chunk
                if len(chunk) < batch:
                    return
        finally:
            aclose = getattr(stream, "aclose", None)
            if aclose is not None and not self.in_portal():
                self.call(aclose())


#: the process's portal
portal = Portal()
os.register_at_fork(after_in_child=portal._reset_after_fork)


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine of polybatch's from blocking code (see :class:`Portal`)."""
    return portal.call(coro)


async def iterate_in_thread(it: Iterator[T], batch: int = STREAM_BATCH) -> AsyncIterator[T]:
    """An async iterator over a blocking one, ``batch`` items per worker-thread hop."""

    def take() -> list[T]:
        out: list[T] = []
        for item in it:
            out.append(item)
            if len(out) >= batch:
                break
        return out

    while chunk := await asyncio.to_thread(take):
        for item in chunk:
            yield item
        if len(chunk) < batch:
            return
