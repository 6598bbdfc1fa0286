"""The provider seam: the BatchProvider base class and "provider:model" strings (the batch data
it speaks in, Limits, BatchStatus ..., is in :mod:`polybatch.batches`)."""

from __future__ import annotations

import asyncio
import inspect
import os
import re
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from . import portal
from .batches import META_CHUNK as META_CHUNK
from .batches import META_JOB as META_JOB
from .batches import TERMINAL_STATES as TERMINAL_STATES
from .batches import BatchState as BatchState
from .batches import BatchStatus as BatchStatus
from .batches import Limits as Limits
from .batches import RecentBatch as RecentBatch
from .batches import SubmittedBatch as SubmittedBatch
from .batches import WebhookEvent as WebhookEvent
from .batches import completion_window_problem
from .errors import ConfigError, CredentialsError, UnknownProviderError
from .items import BatchItem, BatchResult
from .scrubbing import scrub_strings, scrub_what_it_reports
from .webhook_hooks import WebhookHooks

if TYPE_CHECKING:
    from starlette.routing import BaseRoute

    from .sandbox.engine import SandboxEngine


class BatchProvider(WebhookHooks, ABC):
    """Base class of every provider adapter. Subclass it in a plugin and register it.

    A provider instance holds credentials and a base URL. The runner drives it: ``encode`` each
    item to a wire line, ``asubmit`` a file of lines, ``apoll`` until terminal, ``aresults`` to
    stream the outcome, ``acancel`` on request. Implement the lifecycle either as coroutines
    (``asubmit``, ``apoll``, ``aresults``, ``acancel``, optionally ``afind_batch``,
    ``acleanup``) on an async client, or as blocking methods (``submit``, ``poll``, ...); the
    other side is derived.

    Whatever a subclass's poll and results methods report passes :meth:`scrub` on the way out
    (the status message, every string of a failed result): the base class wraps them when the
    subclass is defined, so an adapter decodes its vendor's errors and never has to remember to.
    """

    #: the one name used everywhere: entry point, "name:model" prefix, prices, usage rows
    name: ClassVar[str]
    #: environment variables holding credentials (first is the one to tell users about)
    credential_env: ClassVar[tuple[str, ...]] = ()
    limits: ClassVar[Limits]
    #: the item kinds (:data:`polybatch.kinds.ItemKind`) this provider's batches serve; items of
    #: other kinds are refused while planning, naming their line and ``kind`` (see :meth:`serves`)
    kinds: ClassVar[frozenset[str]] = frozenset({"chat"})
    #: the 0.2 spelling of ``"embedding" in kinds`` (still honoured: True adds the kind)
    supports_embeddings: ClassVar[bool] = False
    #: whether the job driver may call this adapter for several chunks at once (submits, polls and
    #: downloads of in-flight chunks overlap on the event loop); an adapter whose client cannot
    #: take concurrent calls says False and its chunks are driven one after another
    concurrent_calls: ClassVar[bool] = True
    #: provider batches a job keeps in flight unless configured (None: the runner's default);
    #: set it to the vendor's concurrent-job quota where it has one
    default_max_in_flight: ClassVar[int | None] = None
    #: whether a *failed* batch may still hold results (rows the provider exported before the
    #: failure): then the runner collects them through ``aresults`` as for any ended batch
    results_after_failure: ClassVar[bool] = False
    #: models the provider serves beyond those its price rows name (optional): an unknown model
    #: (in neither) is warned about before submitting, with the nearest known name
    known_models: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def serves(cls, kind: str) -> bool:
        """Whether batches of this provider can carry items of ``kind``."""
        return kind in cls.kinds or (kind == "embedding" and cls.supports_embeddings)

    def __init__(
        self,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        settings: Mapping[str, Any] | None = None,
    ) -> None:
        self.api_key = api_key
        self.base_url = base_url
        self.settings: dict[str, Any] = dict(settings or {})
        #: every credential handed to a client so far (the environment may change between
        #: clients: one per event loop), masked by :meth:`scrub`
        self._secrets: set[str] = set()

    # -- credentials -----------------------------------------------------------------------
    @classmethod
    def credentials_present(cls, env: Mapping[str, str] | None = None) -> bool:
        """Whether the credential env vars are set (used by ``polybatch providers``)."""
        env = os.environ if env is None else env
        return any(env.get(name) for name in cls.credential_env)

    def require_api_key(self) -> str:
        """The API key from the arguments or the environment, or a CredentialsError."""
        key = self.api_key or next(
            (os.environ[n] for n in self.credential_env if os.environ.get(n)), None
        )
        if not key:
            wanted = " or ".join(self.credential_env) or "an api_key"
            raise CredentialsError(f"{self.name}: no API key; set {wanted}")
        return self.remember_secret(key)

    def remember_secret(self, value: str) -> str:
        """Note a credential a client was given, so that :meth:`scrub` masks it; returns it."""
        if value:
            self._secrets.add(value)
        return value

    def scrub(self, text: str) -> str:
        """``text`` with every credential this provider has used masked (servers and SDKs may
        quote a request's headers back in an error message)."""
        secrets = {self.api_key or "", *self._secrets} - {""}
        for secret in sorted(secrets, key=len, reverse=True):
            text = text.replace(secret, "***")
        return text

    def scrub_status(self, status: BatchStatus) -> BatchStatus:
        """``status`` with its message scrubbed (a batch's ``errors[].message`` is the server's
        words, which may quote the key)."""
        if status.message is None:
            return status
        message = self.scrub(status.message)
        return (
            status if message == status.message else status.model_copy(update={"message": message})
        )

    def scrub_result(self, result: BatchResult) -> BatchResult:
        """``result`` with every string of a failure scrubbed: the error message, and the raw
        response body, which holds the server's error object (successes pass untouched: their
        strings are the model's reply)."""
        if result.ok:
            return result
        update: dict[str, Any] = {}
        if result.error is not None:
            message = self.scrub(result.error.message)
            if message != result.error.message:
                update["error"] = result.error.model_copy(update={"message": message})
        for name in ("response", "text"):
            value = getattr(result, name)
            scrubbed = scrub_strings(value, self.scrub)
            if scrubbed is not value and scrubbed != value:
                update[name] = scrubbed
        return result.model_copy(update=update) if update else result

    @property
    def default_max_tokens(self) -> int:
        """Output tokens assumed for items without ``max_tokens`` (the estimate's upper bound).

        Providers that send a default on the wire override this with that default.
        """
        return int(self.settings.get("default_max_tokens", 4096))

    def preflight(self) -> None:
        """Fail early (CredentialsError) if the provider cannot be used: before any planning."""
        if self.credential_env:
            self.require_api_key()
        window = self.requested_window()
        problem = window and completion_window_problem(window, self.limits.completion_windows)
        if problem:
            raise ConfigError(f"{self.name}: {problem} (--completion-window, or the setting)")

    def requested_window(self) -> str | None:
        """The completion window this provider will ask for, if it asks for one (the
        ``completion_window`` setting); :meth:`preflight` refuses one ``limits`` does not allow."""
        window = self.settings.get("completion_window")
        return str(window) if window is not None else None

    # -- the batch lifecycle ---------------------------------------------------------------
    def validate_item(self, item: BatchItem, model: str) -> None:
        """Reject an item this provider cannot express (raise ItemValidationError)."""

    def wire_custom_id(self, custom_id: str) -> str:
        """The id sent on the wire for ``custom_id``; a pure function of it.

        Providers whose id rules are narrower than polybatch's override this; ``results`` then
        yields wire ids, and the runner maps them back to the user's ids.
        """
        return custom_id

    @abstractmethod
    def encode(self, item: BatchItem, model: str) -> bytes:
        """One wire line (without the newline) for this item; its length counts toward limits."""

    # Every lifecycle call exists twice: ``asubmit`` (async, what the runner awaits) and
    # ``submit`` (blocking). An adapter implements one of each pair and the base class derives
    # the other: async adapters (the built-in ones, on the SDKs' async clients) get the blocking
    # methods through polybatch's portal loop; blocking adapters get the async ones through a
    # worker thread. So the job logic is written once, as coroutines, whatever the adapter.

    async def asubmit(
        self, lines_path: Path, *, model: str, metadata: Mapping[str, str]
    ) -> SubmittedBatch:
        """Create one provider batch from a file of encoded lines."""
        self._require("submit")
        return await asyncio.to_thread(self.submit, lines_path, model=model, metadata=metadata)

    def submit(
        self, lines_path: Path, *, model: str, metadata: Mapping[str, str]
    ) -> SubmittedBatch:
        """Blocking :meth:`asubmit`."""
        self._require("asubmit")
        return portal.run(self.asubmit(lines_path, model=model, metadata=metadata))

    async def apoll(self, batch_id: str) -> BatchStatus:
        """The batch's current state."""
        self._require("poll")
        return await asyncio.to_thread(self.poll, batch_id)

    def poll(self, batch_id: str) -> BatchStatus:
        """Blocking :meth:`apoll`."""
        self._require("apoll")
        return portal.run(self.apoll(batch_id))

    def aresults(self, batch_id: str) -> AsyncIterator[BatchResult]:
        """Stream the results of a terminal batch, successes and failures alike."""
        self._require("results")
        return portal.iterate_in_thread(self.results(batch_id))

    def results(self, batch_id: str) -> Iterator[BatchResult]:
        """Blocking :meth:`aresults`."""
        self._require("aresults")
        return portal.portal.iterate(self.aresults(batch_id))

    async def acancel(self, batch_id: str) -> None:
        """Ask the provider to cancel a batch."""
        self._require("cancel")
        await asyncio.to_thread(self.cancel, batch_id)

    def cancel(self, batch_id: str) -> None:
        """Blocking :meth:`acancel`."""
        self._require("acancel")
        portal.run(self.acancel(batch_id))

    async def afind_batch(self, metadata: Mapping[str, str]) -> str | None:
        """A batch created earlier with this metadata, if the provider can search for one."""
        if not self._overrides("find_batch"):
            return None
        return await asyncio.to_thread(self.find_batch, metadata)

    def find_batch(self, metadata: Mapping[str, str]) -> str | None:
        """Blocking :meth:`afind_batch`."""
        if not self._overrides("afind_batch"):
            return None
        return portal.run(self.afind_batch(metadata))

    @property
    def finds_batches(self) -> bool:
        """Whether :meth:`afind_batch` can find a batch again (by metadata, a name ...)."""
        return self._overrides("find_batch") or self._overrides("afind_batch")

    async def alist_batches_since(self, since: float) -> list[RecentBatch] | None:
        """The batches created since ``since`` (epoch seconds), newest first, for adopting a
        batch whose create answer was lost (:mod:`polybatch.jobs.adopt`); None: cannot list.
        Only providers whose batches :meth:`afind_batch` cannot find need it."""
        return None

    async def acleanup(self, submitted: SubmittedBatch) -> None:
        """Delete what the batch left behind at the provider (uploaded files), if anything."""
        if self._overrides("cleanup"):
            await asyncio.to_thread(self.cleanup, submitted)

    def cleanup(self, submitted: SubmittedBatch) -> None:
        """Blocking :meth:`acleanup`."""
        if self._overrides("acleanup"):
            portal.run(self.acleanup(submitted))

    async def adelete_outputs(self, batch_id: str) -> list[str]:
        """Delete an ended batch's output and error files at the provider, where it keeps them
        as files and lets them be deleted; the ids deleted ([]: nothing the provider allows)."""
        return []

    async def aclose(self) -> None:
        """Release the clients this adapter opened on the running loop (optional)."""

    def use_client(self, client: Any) -> None:
        """Talk through ``client``, the caller's own SDK client (adapters on
        :class:`polybatch.sdk.SDKProvider` take one); others refuse with a ConfigError."""
        raise ConfigError(f"provider {self.name!r} does not take a client of your own")

    def _overrides(self, method: str) -> bool:
        return getattr(type(self), method) is not getattr(BatchProvider, method)

    def _require(self, method: str) -> None:
        # unreachable for classes that passed __init_subclass__; kept as a clear error
        if not self._overrides(method):
            raise NotImplementedError(f"{type(self).__name__} implements neither {method}")

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        scrub_what_it_reports(cls)
        if inspect.isabstract(cls) or "name" not in _class_attrs(cls):
            return
        for sync, async_ in _REQUIRED_PAIRS:
            if getattr(cls, sync) is getattr(BatchProvider, sync) and getattr(
                cls, async_
            ) is getattr(BatchProvider, async_):
                raise TypeError(
                    f"{cls.__name__} must implement {async_} (async) or {sync} (blocking)"
                )

    # -- the sandbox -----------------------------------------------------------------------
    @classmethod
    def sandbox_routes(cls, engine: SandboxEngine) -> list[BaseRoute]:
        """Starlette routes emulating this provider's batch API, mounted at ``sandbox_prefix``."""
        return []

    #: where the routes are mounted in the sandbox server
    sandbox_prefix: ClassVar[str] = ""

    @classmethod
    def sandbox_settings(cls, server_url: str, api_key: str) -> dict[str, Any]:
        """Constructor arguments that point this provider at a sandbox at ``server_url``."""
        return {"api_key": api_key, "base_url": server_url + cls.sandbox_prefix}

    @classmethod
    def sandbox_env(cls, server_url: str, api_key: str) -> dict[str, str]:
        """The environment variables a user sets to point a client at the sandbox."""
        return {}


#: the lifecycle's (blocking, async) method pairs: an adapter writes one side of each, and the
#: base class derives the other (find_batch and cleanup have defaults, so either side may be absent)
LIFECYCLE_PAIRS: tuple[tuple[str, str], ...] = (
    ("submit", "asubmit"),
    ("poll", "apoll"),
    ("results", "aresults"),
    ("cancel", "acancel"),
    ("find_batch", "afind_batch"),
    ("cleanup", "acleanup"),
)
#: the pairs with no default: a class that writes neither side is refused when defined
_REQUIRED_PAIRS = LIFECYCLE_PAIRS[:4]


def _class_attrs(cls: type) -> set[str]:
    return {k for klass in cls.__mro__ if klass is not object for k in vars(klass)}


def parse_model(spec: str) -> tuple[str, str]:
    """Split ``"provider:model"`` on the first colon (models may contain colons)."""
    provider, sep, model = spec.partition(":")
    if not sep or not provider or not model:
        raise UnknownProviderError(
            f"model {spec!r} must be written 'provider:model', for example 'openai:gpt-4o-mini'"
        )
    return provider.strip(), model.strip()


_DATE_SUFFIX = re.compile(r"-(?:\d{4}-\d{2}-\d{2}|\d{8})$")


def strip_date_suffix(model: str) -> str:
    """``gpt-4o-mini-2024-07-18`` -> ``gpt-4o-mini``; ``claude-x-20250929`` -> ``claude-x``."""
    return _DATE_SUFFIX.sub("", model)
