"""The kit for providers built on an official SDK: :class:`SDKProvider`.

Every adapter on a vendor's async SDK needs the same plumbing, kept here once:

- one SDK client per event loop (:class:`PerLoop`), built on first use, closed by ``aclose``;
- the base URL: constructor argument > the provider's settings (``base_url_setting``) > the
  vendor's environment variable (``base_url_env``) > ``default_base_url`` > the SDK's default
  (configuration beats the SDKs' variables, as :mod:`polybatch.config` documents);
- one table from SDK exception classes to polybatch errors (:data:`ErrorTable`): the entry of the
  most specific class the exception is an instance of wins, whatever the table's order (as
  httpx's ``map_httpcore_exceptions`` does), and the polybatch error is raised ``from`` it; an
  SDK's local refusal of a request (a ValueError) is a permanent error, never retried;
- secret scrubbing: the keys this provider used plus the vendor's key shapes (``key_patterns``);
- the "check ENV_VAR" hint on 401 and 403;
- tolerant file deletion: a 404 means the file is already gone, which is the goal.

A subclass declares its client factory (:meth:`SDKProvider.make_client`), its error table
entries (``errors``), its key patterns and base-URL variable; nothing else of this plumbing::

    class AcmeProvider(SDKProvider[acme.AsyncAcme]):
        name = "acme"
        credential_env = ("ACME_API_KEY",)
        base_url_env = "ACME_BASE_URL"
        key_patterns = (re.compile(r"\\b(acme-)[A-Za-z0-9]{8,}"),)
        errors = {
            acme.APIStatusError: http(lambda e: e.status_code, lambda e: e.message),
            acme.APIConnectionError: connection(),
            acme.AcmeError: failure(),
        }

        def make_client(self) -> acme.AsyncAcme:
            return acme.AsyncAcme(api_key=self.require_api_key(), base_url=self.resolved_base_url())

        async def sdk_delete_file(self, client: acme.AsyncAcme, file_id: str) -> None:
            await client.files.delete(file_id)

and then wraps its SDK calls in ``with self.sdk_errors("polling batch x"):``.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import re
import threading
import weakref
from collections.abc import AsyncIterable, AsyncIterator, Callable, Coroutine, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, ClassVar, Generic, TypeVar

from . import wire
from .errors import ProviderConnectionError, ProviderError, ProviderHTTPError, QueueFullError
from .errortable import (
    BEARER,
    TRANSPORT_ERRORS,
    ErrorRule,
    ErrorTable,
    connection,
    connection_detail,
    default_detail,
    failure,
    http,
    rule_for,
)
from .providers import BatchProvider, SubmittedBatch

T = TypeVar("T")
C = TypeVar("C")

__all__ = [
    "TRANSPORT_ERRORS",
    "ErrorRule",
    "ErrorTable",
    "PerLoop",
    "SDKProvider",
    "connection",
    "failure",
    "http",
    "rule_for",
]


class PerLoop(Generic[T]):
    """One object (an async SDK client) per running event loop, built on first use in that loop.

    Async SDK clients hold connection pools bound to the loop they were first used on, so a
    provider used both from the portal (blocking API) and from a user's loop needs one each.
    With ``close``, :meth:`aclose` closes the running loop's object, and when this PerLoop is
    garbage-collected the objects of loops still running (the portal's) are closed on them: an
    async client cannot close its sockets from another thread, and blocking users never call
    ``aclose``. Objects of loops that have been closed are dropped on the next :meth:`get`.
    ``close`` must not hold the PerLoop's owner (it is kept until the PerLoop is collected).
    """

    def __init__(
        self,
        factory: Callable[[], T],
        close: Callable[[T], Coroutine[Any, Any, Any]] | None = None,
    ) -> None:
        self._factory = factory
        self._close = close
        self._lock = threading.Lock()
        self._by_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, T] = (
            weakref.WeakKeyDictionary()
        )
        if close is not None:
            # not at exit: the portal thread is a daemon and may already be gone
            weakref.finalize(self, _close_on_their_loops, self._by_loop, close).atexit = False

    def get(self) -> T:
        """The object for the running loop (call from async code)."""
        loop = asyncio.get_running_loop()
        with self._lock:
            for done in [other for other in self._by_loop if other.is_closed()]:
                del self._by_loop[done]
            obj = self._by_loop.get(loop)
            if obj is None:
                obj = self._by_loop[loop] = self._factory()
            return obj

    def pop(self) -> T | None:
        """Forget the running loop's object and return it, if one was built."""
        loop = asyncio.get_running_loop()
        with self._lock:
            return self._by_loop.pop(loop, None)

    async def aclose(self) -> None:
        """Close the running loop's object, if one was built; the next :meth:`get` builds anew."""
        obj = self.pop()
        if obj is not None and self._close is not None:
            await self._close(obj)

    def peek(self) -> list[T]:
        """The objects built so far (for scrubbing secrets)."""
        with self._lock:
            return list(self._by_loop.values())


def _close_on_their_loops(
    by_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Any],
    close: Callable[[Any], Coroutine[Any, Any, Any]],
) -> None:
    for loop, obj in list(by_loop.items()):
        if loop.is_running() and not loop.is_closed():
            closing = close(obj)
            try:
                asyncio.run_coroutine_threadsafe(closing, loop)
            except RuntimeError:  # the loop closed in the meantime
                closing.close()


# -- the provider base -------------------------------------------------------------------------


class SDKProvider(BatchProvider, Generic[C]):
    """A BatchProvider on an official SDK's async client ``C`` (see the module docstring)."""

    #: SDK exception class -> rule; merged along the MRO, a subclass's entries over its base's.
    #: The kit's own entry: a ValueError is the SDK refusing a request locally (a body it cannot
    #: serialise: NaN, a lone surrogate; an argument it checks), which sending again cannot
    #: change; its more specific transport cousins (a cut JSON line) stay transient.
    errors: ClassVar[ErrorTable] = {ValueError: failure()}
    #: the vendor's key shapes, masked in error messages; a first group is kept (``sk-***``)
    key_patterns: ClassVar[tuple[re.Pattern[str], ...]] = ()
    #: the vendor's environment variable naming the API base URL (None: none)
    base_url_env: ClassVar[str | None] = None
    #: the settings key holding a base URL
    base_url_setting: ClassVar[str] = "base_url"
    #: where the API lives when nothing else says (None: the SDK's own default)
    default_base_url: ClassVar[str | None] = None

    def __init__(
        self,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        settings: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(api_key=api_key, base_url=base_url, settings=settings)
        # one async client per event loop (their connection pools are bound to it), built on
        # first use so that listing providers needs no key. The close function is the class's,
        # not bound to self: the PerLoop's finalizer must not keep this provider alive.
        self._clients: PerLoop[C] = PerLoop(self.make_client, close=type(self).close_client)

    # -- the client ----------------------------------------------------------------------------
    def make_client(self) -> C:
        """Build the SDK's async client for the running loop (use :meth:`require_api_key` and
        :meth:`resolved_base_url`)."""
        raise NotImplementedError(f"{type(self).__name__} must implement make_client")

    @staticmethod
    async def close_client(client: C) -> None:
        """Close one client: its ``aclose()`` or ``close()``, awaited if it is a coroutine."""
        close = getattr(client, "aclose", None) or getattr(client, "close", None)
        if close is not None:
            result = close()
            if inspect.isawaitable(result):
                await result

    @property
    def client(self) -> C:
        """The running loop's SDK client, built on first use (call from async code)."""
        with self.sdk_errors("setting up the client"):
            return self._clients.get()

    async def aclose(self) -> None:
        """Close the running loop's client, if one was built (a later call builds another)."""
        await self._clients.aclose()

    def use_client(self, client: Any) -> None:
        """Talk through the caller's own SDK client instead of building one (``Job.load(...,
        client=...)``): it serves every event loop and is never closed here (the caller owns it,
        so its proxies, timeouts and credentials are the caller's). Async clients are bound to the
        loop they are first used on: use the job from one loop (blocking calls, or your own)."""
        self._clients = PerLoop(lambda: client)

    # -- the base URL --------------------------------------------------------------------------
    def configured_base_url(self) -> str | None:
        """Argument > ``settings[base_url_setting]`` > ``base_url_env`` > ``default_base_url``."""
        env = os.environ.get(self.base_url_env) if self.base_url_env else None
        setting = self.settings.get(self.base_url_setting)
        url = self.base_url or setting or env or self.default_base_url
        return str(url) if url else None

    def resolved_base_url(self) -> str | None:
        """The base URL handed to the SDK (None: the SDK's default)."""
        return self.configured_base_url()

    # -- errors --------------------------------------------------------------------------------
    @classmethod
    def error_table(cls) -> ErrorTable:
        """Transport errors, then every class's ``errors`` from the base down."""
        table: dict[type[BaseException], ErrorRule] = dict(TRANSPORT_ERRORS)
        for klass in reversed(cls.__mro__):
            table.update(vars(klass).get("errors", {}))
        return table

    def scrub(self, text: str) -> str:
        """``text`` with the keys this provider used, bearer tokens and the vendor's key
        shapes masked."""
        text = super().scrub(text)
        for pattern in (BEARER, *self.key_patterns):
            text = pattern.sub(lambda m: (m.group(1) if m.re.groups else "") + "***", text)
        return text

    @property
    def key_env(self) -> str | None:
        """The variable a user fixes when the key is refused (named in 401/403 messages)."""
        return self.credential_env[0] if self.credential_env else None

    def translate(
        self, action: str, exc: BaseException, *, create: bool = False
    ) -> ProviderError | None:
        """The polybatch error for an SDK exception raised while doing ``action``, or None
        when the table does not know the exception. ``create``: the action created a batch,
        so a rule's ``queue_full`` refusal becomes a :class:`QueueFullError`."""
        rule = rule_for(self.error_table(), exc)
        if rule is None:
            return None
        status = rule.status(exc) if rule.status is not None else None
        kind = rule.kind
        if create and rule.queue_full is not None and rule.queue_full(exc):
            detail = (rule.detail or default_detail)(exc)
            message = self.scrub(f"{action} refused, the queue is full: {detail}")
            return QueueFullError(message, provider=self.name, status_code=status)
        if kind is ProviderHTTPError and status is None:
            kind = ProviderError
        read = rule.detail or (connection_detail if kind is ProviderConnectionError else None)
        detail = (read or default_detail)(exc)
        if issubclass(kind, ProviderHTTPError):
            assert status is not None
            hint = f" (check {self.key_env})" if status in (401, 403) and self.key_env else ""
            message = self.scrub(f"{action} failed: HTTP {status}: {detail}{hint}")
            return kind(message, provider=self.name, status_code=status, retryable=rule.retryable)
        message = self.scrub(f"{action} failed: {detail}")
        return kind(message, provider=self.name, status_code=status, retryable=rule.retryable)

    @contextmanager
    def sdk_errors(self, action: str, *, create: bool = False) -> Iterator[None]:
        """Translate the SDK exceptions raised in the block, once, ``from`` the original.

        A plain context manager: it wraps ``await`` and ``async for`` in coroutines alike.
        polybatch's own errors pass through untouched. ``create``: the block creates a batch
        (a queue-full refusal is then a :class:`QueueFullError`, see :meth:`translate`).
        """
        try:
            yield
        except Exception as exc:
            if isinstance(exc, ProviderError):
                raise
            error = self.translate(action, exc, create=create)
            if error is None:
                raise
            raise error from exc

    # -- results -------------------------------------------------------------------------------
    async def decode_results(
        self, chunks: AsyncIterable[bytes], decode: Callable[[bytes], T], *, file: str
    ) -> AsyncIterator[T]:
        """``decode`` each line of a JSONL results file downloaded as ``chunks`` (an SDK's byte
        stream); a line that does not decode is an error naming ``file`` and the line, never a
        result that vanishes (:func:`polybatch.wire.adecode_lines`)."""
        lines = wire.aiter_jsonl(chunks)
        async for result in wire.adecode_lines(lines, decode, file=file, provider=self.name):
            yield result

    # -- files ---------------------------------------------------------------------------------
    async def sdk_delete_file(self, client: C, file_id: str) -> None:
        """Delete one uploaded file through the SDK (providers that upload files implement it)."""
        raise NotImplementedError(f"{type(self).__name__} uploads no files")

    async def drop_refused_upload(self, exc: ProviderError, file_id: str) -> None:
        """After a failed create: delete its upload only when the create was refused outright
        (an HTTP status below 500). After a lost answer (a dropped connection, a timeout, a 5xx)
        the batch may exist and read the file, and the runner will find it again."""
        if isinstance(exc, ProviderHTTPError) and exc.status_code < 500:
            await self.delete_file(file_id, quiet=True)

    async def delete_file(self, file_id: str, *, quiet: bool = False) -> None:
        """Delete an uploaded file; one already gone (404) is the goal reached. ``quiet``: any
        failure is swallowed (cleaning up on a path that already reports an error)."""
        try:
            with self.sdk_errors(f"deleting file {file_id}"):
                await self.sdk_delete_file(self.client, file_id)
        except ProviderError as exc:
            if quiet or (isinstance(exc, ProviderHTTPError) and exc.status_code == 404):
                return
            raise

    async def acleanup(self, submitted: SubmittedBatch) -> None:
        """Delete the batch's uploaded input file, if it had one."""
        if submitted.input_file_id:
            await self.delete_file(submitted.input_file_id)

    async def output_file_ids(self, batch_id: str) -> list[str]:
        """The ids of an ended batch's output and error files (providers that keep results as
        deletable files implement it; []: none)."""
        return []

    async def adelete_outputs(self, batch_id: str) -> list[str]:
        """Delete each of :meth:`output_file_ids` (one already gone is fine)."""
        ids = await self.output_file_ids(batch_id)
        for file_id in ids:
            await self.delete_file(file_id)
        return ids

    # -- the sandbox ---------------------------------------------------------------------------
    @classmethod
    def sandbox_env(cls, server_url: str, api_key: str) -> dict[str, str]:
        """The base-URL variable and the key variable, pointing this provider at a sandbox."""
        env: dict[str, str] = {}
        base_url = cls.sandbox_settings(server_url, api_key).get("base_url")
        if cls.base_url_env and base_url:
            env[cls.base_url_env] = str(base_url)
        if cls.credential_env:
            env[cls.credential_env[0]] = api_key
        return env
