"""Streaming a google-genai download: the SDK's async ``files.download`` writes chunks into a
destination and awaits an async ``write``, so the chunks go through a small bounded queue and are
read as they arrive (moved out of :mod:`.provider`, unchanged)."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncGenerator, Awaitable, Callable

#: chunks of a results download held between the network and the reader; the SDK reads 1 MiB
#: chunks, so a few MiB at most, whatever the file's size
DOWNLOAD_BUFFER = 4


class _ChunkSink(io.IOBase):
    """A download ``destination`` whose ``write`` is a coroutine handing chunks to a reader.

    google-genai's async download awaits an awaitable ``write`` (3.0 through at least 3.4), so a
    full buffer holds the download back.
    """

    def __init__(self, put: Callable[[bytes], Awaitable[None]]) -> None:
        super().__init__()
        self._put = put

    def writable(self) -> bool:
        """Yes."""
        return True

    async def write(self, chunk: bytes) -> int:
        """Hand one chunk over, waiting while the buffer is full."""
        await self._put(bytes(chunk))
        return len(chunk)


async def stream_download(
    download: Callable[[io.IOBase], Awaitable[object]], *, buffer: int = DOWNLOAD_BUFFER
) -> AsyncGenerator[bytes, None]:
    """The chunks of a download as they arrive, with at most ``buffer`` chunks held.

    ``download(sink)`` runs the SDK's download into ``sink``: the SDK streams its response to a
    destination but has no async byte iterator, so it runs as a task feeding a bounded queue.
    Its error, if any, is raised after the chunks that came before it. Closing the stream early
    cancels the download (the SDK then closes its response).
    """
    queue: asyncio.Queue[bytes] = asyncio.Queue(maxsize=buffer)
    task = asyncio.ensure_future(download(_ChunkSink(queue.put)))
    getter: asyncio.Future[bytes] | None = None
    try:
        while True:
            getter = asyncio.ensure_future(queue.get())
            # the task ending (done or failed) wakes us as well as a chunk does
            await asyncio.wait({getter, task}, return_when=asyncio.FIRST_COMPLETED)
            if not getter.done():
                getter.cancel()  # it has taken nothing: a cancelled get loses no chunk
                # the download ended: drain what it left, then report how it ended
                while not queue.empty():
                    yield queue.get_nowait()
                await task
                return
            yield getter.result()
    finally:
        # closed early, cancelled, or failed: stop the download and the pending get
        if getter is not None and not getter.done():
            getter.cancel()
        if not task.done():
            task.cancel()
            await asyncio.wait({task})
        if task.done() and not task.cancelled():
            task.exception()  # seen: no "exception was never retrieved" warning
