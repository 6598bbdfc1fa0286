"""The provider conformance suite: one pytest base class every provider plugin's tests subclass.

A plugin proves it honours the :class:`~polybatch.providers.BatchProvider` contract by running the
same checks as every other plugin, against its own sandbox routes, over real HTTP on 127.0.0.1::

    from polybatch.testing import ProviderConformance

    class TestMyProviderConformance(ProviderConformance):
        provider_class = MyProvider          # a BatchProvider subclass
        model = "my-model"                   # a model name the sandbox answers
        # optional:
        bad_item = None                      # an item validate_item must reject
        supports_cancel = True
        supports_find_batch = False          # True if find_batch(metadata) finds a batch again

Each test starts its own sandbox serving only this provider, moves the sandbox clock instead of
sleeping, and runs in an isolated ``POLYBATCH_HOME`` (the ``polybatch_home`` fixture) with the
provider's credential variables cleared, so a developer's real keys are never used.

What the sandbox's synthetic model guarantees, and the suite therefore checks: input usage is
:func:`polybatch.tokens.prompt_tokens` over the request's message texts (system prompt included),
output usage is :func:`polybatch.tokens.count_tokens` of the reply text.
"""

from __future__ import annotations

import uuid
import warnings
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar, Literal, NoReturn

import pytest

from ...items import BatchItem, BatchResult, Message
from ...plugins import PluginRegistry, get_registry, reset_registry
from ...provider_plugin import ProviderPlugin
from ...providers import (
    LIFECYCLE_PAIRS,
    BatchProvider,
    BatchStatus,
    SubmittedBatch,
)
from ...sandbox import SandboxEngine, SandboxServer

#: the key every conformance sandbox requires
CONFORMANCE_KEY = "sk-polybatch-conformance-0123456789"
#: the keyword arguments a provider constructor takes (what ``sandbox_settings`` may return)
CONSTRUCTOR_KWARGS = frozenset({"api_key", "base_url", "settings"})
#: ids a user may pick that a provider's wire rules may not allow (all valid BatchItem ids)
AWKWARD_IDS: tuple[str, ...] = (
    "plain-id_1",
    "with space",
    "slash/and:colon",
    "dots.and,commas",
    "unicode-é-ü-中文",
    "emoji-🙂",
    "pb-looks-mapped",
    "x" * 100,
    "X" * 100,
    "line\nbreak",
)


class ConformanceBase:
    """Base class of a provider's conformance tests; subclass it as ``Test...`` in a plugin.

    Not collected itself (its name does not start with ``Test``); every subclass inherits all the
    ``test_*`` methods. Override :meth:`make_items` if the provider needs other requests.
    """

    # -- what a subclass sets ----------------------------------------------------------------
    #: the provider under test
    provider_class: ClassVar[type[BatchProvider]]
    #: a model name the provider's sandbox answers
    model: ClassVar[str]
    #: an item ``validate_item`` must reject with ItemValidationError (None: that test skips)
    bad_item: ClassVar[BatchItem | None] = None
    #: whether ``cancel`` stops a running batch (False: the cancel test skips)
    supports_cancel: ClassVar[bool] = True
    #: whether ``find_batch(metadata)`` finds a batch created with that metadata
    supports_find_batch: ClassVar[bool] = False
    #: whether uploads are stored as the engine's files (``engine.files``), so the suite can see
    #: ``cleanup`` delete them; a provider whose uploads go to an emulated object store (Vertex's
    #: Cloud Storage) says False and checks its clean-up in its own tests
    uploads_in_engine_files: ClassVar[bool] = True
    #: whether the sandbox lets batches expire (False: the expiry test skips)
    supports_expiry: ClassVar[bool] = True
    #: the provider's poll shows a queued batch, then ``in_progress`` with partial counts
    reports_progress: ClassVar[bool] = False
    #: extra provider settings for every provider the suite builds (e.g. ``{"max_retries": 0}``)
    provider_settings: ClassVar[Mapping[str, Any]] = {}
    #: requests per batch in the lifecycle tests
    batch_size: ClassVar[int] = 5
    #: which side of the lifecycle the adapter writes: "async" (the other is derived through
    #: the portal loop) or "blocking" (derived through worker threads); None: not checked
    lifecycle: ClassVar[Literal["async", "blocking"] | None] = None
    #: blocking names of the pairs the adapter leaves to a default (BatchProvider's or a shared
    #: base's such as SDKProvider's), e.g. ``("cleanup",)`` for a provider that uploads no files
    lifecycle_defaults: ClassVar[tuple[str, ...]] = ()
    #: the SDK's blocking path as (owner, attribute) pairs, e.g. ``((openai.OpenAI, "__init__"),)``:
    #: the suite makes them raise while it drives the provider, so an adapter that reaches them
    #: (instead of its async client) fails; empty: those checks run without the seams
    sync_sdk_seams: ClassVar[tuple[tuple[Any, str], ...]] = ()
    #: whether the provider reads its base URL from ``sandbox_env`` too (False: the test passes
    #: the base URL as an argument); None: True if ``sandbox_env`` names a URL of the sandbox
    base_url_from_env: ClassVar[bool | None] = None
    #: whether the sandbox draws item faults from the seed and the request sequence only, so two
    #: sandboxes fail the same requests (True: checked); a sandbox keying them by its random
    #: batch ids cannot; the redraw on resubmission is checked either way
    faults_reproducible: ClassVar[bool] = False
    #: whether a transport error must be retryable (True for every built-in plugin; a third
    #: party opts in: its error mapping may not be there yet)
    connection_errors_retryable: ClassVar[bool] = False
    #: the attribute handing out the SDK client of the running event loop (e.g. ``"client"``);
    #: None: the per-loop client test skips
    client_attribute: ClassVar[str | None] = None
    #: the class that client is (checked when given)
    client_class: ClassVar[type[Any] | None] = None
    #: a batch id of the provider's shape that the sandbox does not hold
    missing_batch_id: ClassVar[str] = "batch-that-does-not-exist"
    #: words the provider's refusal of a create over the queue limit carries, where it refuses
    #: at create (Anthropic ``rate_limit_error``, Gemini ``RESOURCE_EXHAUSTED``); None: it does
    #: not (OpenAI accepts the batch and fails it in validation) and the test skips
    queue_full_at_create: ClassVar[str | None] = None

    # -- fixtures ----------------------------------------------------------------------------
    @pytest.fixture(autouse=True)
    def _conformance_isolation(self, polybatch_home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
        """An isolated home, and none of the developer's credentials for this provider."""
        for name in self.provider_class.credential_env:
            monkeypatch.delenv(name, raising=False)
        return polybatch_home

    # -- helpers a subclass may use or override ----------------------------------------------
    def make_items(self, n: int, prefix: str = "conf") -> list[BatchItem]:
        """``n`` two-turn text requests (system + user) with ids ``{prefix}-{i}``."""
        return [
            BatchItem(
                custom_id=f"{prefix}-{i}",
                messages=[
                    Message(role="system", content="You answer briefly."),
                    Message(role="user", content=f"Question {i}: name a colour, please."),
                ],
            )
            for i in range(n)
        ]

    @contextmanager
    def serve(self, **engine_options: Any) -> Iterator[SandboxServer]:
        """A sandbox requiring :data:`CONFORMANCE_KEY`, serving only the provider under test."""
        cls = self.provider_class
        engine = SandboxEngine(api_key=CONFORMANCE_KEY, **engine_options)
        with SandboxServer(engine, providers={cls.name: cls}) as server:
            yield server

    def connect(self, server: SandboxServer, api_key: str = CONFORMANCE_KEY) -> BatchProvider:
        """The provider pointed at ``server``, built from its own ``sandbox_settings``."""
        return self.connect_to(server.url, api_key)

    def connect_to(self, url: str, api_key: str = CONFORMANCE_KEY) -> BatchProvider:
        """The provider pointed at a sandbox (or nothing) at ``url``, with the suite's settings."""
        kwargs = dict(self.provider_class.sandbox_settings(url, api_key))
        settings = {**dict(kwargs.pop("settings", None) or {}), **self.provider_settings}
        return self.provider_class(**kwargs, settings=settings)

    def submit_items(
        self,
        provider: BatchProvider,
        items: Sequence[BatchItem],
        tmp_path: Path,
        *,
        metadata: Mapping[str, str] | None = None,
    ) -> SubmittedBatch:
        """encode -> a lines file -> submit, as the runner does."""
        path = tmp_path / f"lines-{uuid.uuid4().hex[:8]}.jsonl"
        with path.open("wb") as out:
            for item in items:
                out.write(provider.encode(item, item.model or self.model) + b"\n")
        return provider.submit(path, model=self.model, metadata=dict(metadata or {}))

    def wait_terminal(
        self, provider: BatchProvider, engine: SandboxEngine, batch_id: str, *, step: float = 60.0
    ) -> BatchStatus:
        """Poll until terminal, moving the sandbox clock by ``step`` instead of sleeping."""
        for _ in range(500):
            status = provider.poll(batch_id)
            assert isinstance(status, BatchStatus)
            assert status.batch_id == batch_id
            if status.terminal:
                return status
            engine.clock.advance(step)
        raise AssertionError(f"batch {batch_id} never reached a terminal state")

    def collect(
        self, provider: BatchProvider, batch_id: str, items: Sequence[BatchItem]
    ) -> dict[str, BatchResult]:
        """The batch's results by *user* id, checking every item came back exactly once."""
        wire_to_user = {provider.wire_custom_id(i.custom_id or ""): i.custom_id for i in items}
        results = list(provider.results(batch_id))
        counts = Counter(r.custom_id for r in results)
        twice = sorted(cid for cid, n in counts.items() if n > 1)
        assert not twice, f"results repeat custom ids: {twice}"
        unknown = sorted(set(counts) - set(wire_to_user))
        assert not unknown, f"results carry ids that were never sent: {unknown}"
        missing = sorted(set(wire_to_user) - set(counts))
        assert not missing, f"no result for wire ids: {missing}"
        out: dict[str, BatchResult] = {}
        for r in results:
            assert isinstance(r, BatchResult)
            assert r.provider == provider.name, "BatchResult.provider names the provider"
            assert r.batch_id == batch_id, "BatchResult.batch_id names the provider batch"
            user_id = wire_to_user[r.custom_id]
            assert user_id is not None
            out[user_id] = r
        return out

    def round_trip_ids(self, ids: Sequence[str], tmp_path: Path) -> dict[str, BatchResult]:
        """One batch of items with these ids, through a sandbox: the results by user id."""
        items = [
            item.model_copy(update={"custom_id": cid})
            for item, cid in zip(self.make_items(len(ids)), ids, strict=True)
        ]
        with self.serve() as server:
            provider = self.connect(server)
            submitted = self.submit_items(provider, items, tmp_path)
            self.wait_terminal(provider, server.engine, submitted.batch_id)
            return self.collect(provider, submitted.batch_id, items)

    def refuse_sync_sdk(
        self, monkeypatch: pytest.MonkeyPatch, *, blocking_api: bool = False
    ) -> None:
        """Make :attr:`sync_sdk_seams` raise; with ``blocking_api``, the base class's derived
        blocking lifecycle methods too (what an async job must never call)."""

        def refuse(what: str) -> Callable[..., NoReturn]:
            def refused(*args: Any, **kwargs: Any) -> NoReturn:
                raise AssertionError(f"{what} was used: the blocking path")

            return refused

        for owner, attribute in self.sync_sdk_seams:
            monkeypatch.setattr(owner, attribute, refuse(f"{owner.__name__}.{attribute}"))
        if blocking_api:
            for name, _ in LIFECYCLE_PAIRS:
                monkeypatch.setattr(BatchProvider, name, refuse(f"BatchProvider.{name}"))

    @contextmanager
    def registered(self) -> Iterator[None]:
        """Make the process-wide registry hold exactly the class under test, for the runner."""
        cls = self.provider_class
        previous = get_registry()
        registry = PluginRegistry(load_entry_points=False)
        registry.add_plugin(ProviderPlugin(cls), name=f"conformance-{cls.name}")
        reset_registry(registry)
        try:
            with warnings.catch_warnings():
                # no price files are registered here (other plugins' files are not this suite's
                # business), so the runner's cost estimate warns: not what this suite checks
                warnings.filterwarnings("ignore", message="no estimate", category=UserWarning)
                warnings.filterwarnings("ignore", message="model '", category=UserWarning)
                yield
        finally:
            reset_registry(previous)

    # -- the class itself ----------------------------------------------------------------------
