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

import asyncio
import inspect
import math
import re
import uuid
import warnings
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar, Literal, NoReturn

import pytest

from .. import portal
from ..errors import ConfigError, CredentialsError, InputError, ItemValidationError, ProviderError
from ..hookspecs import hookimpl
from ..items import BatchItem, BatchResult, ItemError, Message
from ..jobs import submit
from ..plugins import PluginRegistry, get_registry, reset_registry
from ..providers import (
    LIFECYCLE_PAIRS,
    META_CHUNK,
    META_JOB,
    BatchProvider,
    BatchStatus,
    Limits,
    SubmittedBatch,
)
from ..sandbox import SandboxEngine, SandboxServer
from ..sandbox.engine import DAY
from ..tokens import count_tokens, prompt_tokens

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


class _OneProvider:
    """A plugin object registering one provider class (how the suite feeds the real runner)."""

    def __init__(self, cls: type[BatchProvider]) -> None:
        self.cls = cls

    @hookimpl
    def register_providers(self, register: Callable[[type[Any]], None]) -> None:
        """Register the class under test."""
        register(self.cls)


class ProviderConformance:
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
        registry.add_plugin(_OneProvider(cls), name=f"conformance-{cls.name}")
        reset_registry(registry)
        try:
            with warnings.catch_warnings():
                # no price files are registered here (other plugins' files are not this suite's
                # business), so the runner's cost estimate warns: not what this suite checks
                warnings.filterwarnings("ignore", message="no estimate", category=UserWarning)
                yield
        finally:
            reset_registry(previous)

    # -- the class itself ----------------------------------------------------------------------
    def test_class_attributes(self) -> None:
        """What ``polybatch providers`` and the "name:model" syntax rely on."""
        cls = self.provider_class
        assert issubclass(cls, BatchProvider)
        assert not inspect.isabstract(cls), "every abstract method is implemented"
        assert isinstance(cls.name, str)
        assert re.fullmatch(r"[a-z][a-z0-9_-]*", cls.name), (
            f"provider name {cls.name!r}: lower-case letters, digits, '-' or '_' (no ':')"
        )
        assert isinstance(cls.credential_env, tuple)
        assert all(isinstance(v, str) and v for v in cls.credential_env)
        assert isinstance(cls.limits, Limits)
        assert isinstance(self.model, str) and self.model

    def test_limits_are_sane(self) -> None:
        """Positive sizes, at least one completion window, a compilable id pattern."""
        limits = self.provider_class.limits
        assert limits.max_requests > 0
        assert limits.max_bytes > 0
        assert limits.completion_windows and all(limits.completion_windows)
        if limits.custom_id_pattern is not None:
            re.compile(limits.custom_id_pattern)

    def test_sandbox_hooks(self) -> None:
        """Routes exist, settings are constructor arguments, env vars are strings."""
        cls = self.provider_class
        assert cls.sandbox_routes(SandboxEngine()), "the provider contributes sandbox routes"
        assert cls.sandbox_prefix == "" or cls.sandbox_prefix.startswith("/")
        url = "http://127.0.0.1:9"
        settings = cls.sandbox_settings(url, CONFORMANCE_KEY)
        extra = set(settings) - CONSTRUCTOR_KWARGS
        assert not extra, f"sandbox_settings returns non-constructor arguments: {sorted(extra)}"
        assert settings.get("api_key") == CONFORMANCE_KEY
        cls(**settings)  # builds without network access
        env = cls.sandbox_env(url, CONFORMANCE_KEY)
        assert all(isinstance(k, str) and isinstance(v, str) for k, v in env.items())

    def test_wire_custom_id_is_pure_and_fits_the_pattern(self) -> None:
        """Same id in, same wire id out (any instance); distinct ids stay distinct and valid."""
        cls = self.provider_class
        first = cls(api_key="one", settings=dict(self.provider_settings))
        second = cls(api_key="two", settings=dict(self.provider_settings))
        pattern = cls.limits.custom_id_pattern
        wires = [first.wire_custom_id(cid) for cid in AWKWARD_IDS]
        assert wires == [second.wire_custom_id(cid) for cid in AWKWARD_IDS]
        assert wires == [first.wire_custom_id(cid) for cid in AWKWARD_IDS]
        assert len(set(wires)) == len(wires), "wire ids collide"
        for cid, wire in zip(AWKWARD_IDS, wires, strict=True):
            assert isinstance(wire, str) and wire
            if pattern is not None:
                assert re.fullmatch(pattern, wire), f"{cid!r} -> {wire!r} breaks {pattern}"

    def test_preflight_without_a_key(self) -> None:
        """No key anywhere: preflight fails early with CredentialsError, before any planning."""
        if not self.provider_class.credential_env:
            pytest.skip("the provider needs no credentials")
        with pytest.raises(ConfigError):
            self.provider_class(settings=dict(self.provider_settings)).preflight()

    # -- the lifecycle against the sandbox -----------------------------------------------------
    def test_submit_poll_results(self, tmp_path: Path) -> None:
        """All succeed: every id exactly once, with text, counts, repeatable results, cleanup."""
        items = self.make_items(self.batch_size)
        with self.serve() as server:
            provider = self.connect(server)
            submitted = self.submit_items(provider, items, tmp_path)
            assert isinstance(submitted, SubmittedBatch) and submitted.batch_id
            status = self.wait_terminal(provider, server.engine, submitted.batch_id)
            assert status.state == "completed", status
            assert status.total in (0, len(items))
            assert status.completed == len(items) and status.failed == 0, status
            results = self.collect(provider, submitted.batch_id, items)
            for r in results.values():
                assert r.status == "succeeded" and r.ok, r
                assert isinstance(r.text, str) and r.text
                assert r.error is None
                assert r.model, "the model is reported (pricing keys on it)"
            again = self.collect(provider, submitted.batch_id, items)
            assert {k: r.status for k, r in again.items()} == {
                k: r.status for k, r in results.items()
            }, "results can be downloaded again (the runner does after a crash)"
            provider.cleanup(submitted)

    def test_usage_mapping(self, tmp_path: Path) -> None:
        """Disjoint, non-negative buckets adding up to what the synthetic model counted."""
        items = self.make_items(self.batch_size)
        with self.serve() as server:
            provider = self.connect(server)
            submitted = self.submit_items(provider, items, tmp_path)
            self.wait_terminal(provider, server.engine, submitted.batch_id)
            results = self.collect(provider, submitted.batch_id, items)
        for item in items:
            r = results[item.custom_id or ""]
            assert r.ok, r
            u = r.usage
            for name in type(u).model_fields:
                assert getattr(u, name) >= 0, f"{name} is negative: {u}"
            expected_input = prompt_tokens(m.text for m in item.messages)
            assert u.total_input_tokens == expected_input, (
                f"{item.custom_id}: input buckets add to {u.total_input_tokens}, "
                f"the sandbox counted {expected_input}: {u}"
            )
            assert r.text is not None
            assert u.output_tokens == count_tokens(r.text) > 0, u
            assert u.reasoning_tokens <= u.output_tokens
            assert u.total_tokens == u.total_input_tokens + u.output_tokens

    def test_item_errors(self, tmp_path: Path) -> None:
        """Per-request server errors are ``errored`` results with a retryable ItemError."""
        from ..sandbox import Faults

        items = self.make_items(self.batch_size)
        with self.serve(faults=Faults(item_error_rate=1.0)) as server:
            provider = self.connect(server)
            submitted = self.submit_items(provider, items, tmp_path)
            status = self.wait_terminal(provider, server.engine, submitted.batch_id)
            assert status.state == "completed", "item errors do not fail the batch as a whole"
            results = self.collect(provider, submitted.batch_id, items)
        for r in results.values():
            assert r.status == "errored" and not r.ok, r
            assert isinstance(r.error, ItemError)
            assert r.error.code and r.error.message
            assert r.error.retryable, "a server error is worth retrying"

    def test_async_lifecycle(self, tmp_path: Path) -> None:
        """The async side (what the runner awaits) on a user's event loop: two batches at once,
        polled concurrently, results streamed, one cancelled, found again by metadata."""
        items = self.make_items(self.batch_size)
        job = f"pb-async-{uuid.uuid4().hex[:8]}"

        async def lifecycle(provider: BatchProvider, engine: SandboxEngine) -> str:
            paths = []
            for n in range(2):
                path = tmp_path / f"async-{n}.jsonl"
                path.write_bytes(
                    b"".join(provider.encode(i, i.model or self.model) + b"\n" for i in items)
                )
                paths.append(path)
            first, second = await asyncio.gather(
                *(
                    provider.asubmit(
                        path, model=self.model, metadata={META_JOB: job, META_CHUNK: str(n)}
                    )
                    for n, path in enumerate(paths)
                )
            )
            if self.supports_find_batch:
                assert await provider.afind_batch({META_JOB: job, META_CHUNK: "1"}) == (
                    second.batch_id
                )
            if self.supports_cancel:
                await provider.acancel(second.batch_id)
            for _ in range(500):
                states = await asyncio.gather(
                    provider.apoll(first.batch_id), provider.apoll(second.batch_id)
                )
                if all(st.terminal for st in states):
                    break
                engine.clock.advance(60.0)
            else:
                raise AssertionError("the batches never ended")
            assert states[0].state == "completed", states[0]
            wire_ids = {provider.wire_custom_id(i.custom_id or "") for i in items}
            got = [r async for r in provider.aresults(first.batch_id)]
            assert sorted(r.custom_id for r in got) == sorted(wire_ids)
            assert all(r.ok and r.text for r in got), got
            if self.supports_cancel:
                assert states[1].state in ("cancelled", "completed"), states[1]
                cancelled = [r async for r in provider.aresults(second.batch_id)]
                assert sorted(r.custom_id for r in cancelled) == sorted(wire_ids)
            await provider.acleanup(first)
            await provider.aclose()
            return first.batch_id

        with self.serve() as server:
            provider = self.connect(server)
            first_id = asyncio.run(lifecycle(provider, server.engine))
            # the same provider object serves the blocking API afterwards, on another loop
            assert provider.poll(first_id).state == "completed"

    def test_cancel_midway(self, tmp_path: Path) -> None:
        """Cancel after one request ran: the batch ends cancelled, the rest are ``cancelled``."""
        if not self.supports_cancel:
            pytest.skip("the provider cannot cancel a batch")
        items = self.make_items(self.batch_size)
        # one request per 100 s of sandbox time: real time spent in the test does not matter
        with self.serve(rate=0.01) as server:
            engine = server.engine
            provider = self.connect(server)
            submitted = self.submit_items(provider, items, tmp_path)
            assert not provider.poll(submitted.batch_id).terminal
            engine.clock.advance(150)  # the first request has run
            provider.cancel(submitted.batch_id)
            status = self.wait_terminal(provider, engine, submitted.batch_id, step=1.0)
            assert status.state == "cancelled", status
            results = self.collect(provider, submitted.batch_id, items)
            provider.cancel(submitted.batch_id)  # cancelling an ended batch is harmless
        statuses = Counter(r.status for r in results.values())
        assert set(statuses) <= {"succeeded", "cancelled"}, statuses
        assert statuses["cancelled"] >= len(items) - 1, statuses
        for r in results.values():
            if r.status == "cancelled":
                assert r.error is None or isinstance(r.error, ItemError)
            else:
                assert r.text

    def test_expiry(self, tmp_path: Path) -> None:
        """Past the completion window: the batch ends expired, unrun requests are ``expired``."""
        if not self.supports_expiry:
            pytest.skip("the provider's sandbox does not expire batches")
        items = self.make_items(self.batch_size)
        # 1.5 requests per day: one has run when the 24 h window closes
        with self.serve(rate=1.5 / DAY, expiry_seconds=DAY) as server:
            engine = server.engine
            provider = self.connect(server)
            submitted = self.submit_items(provider, items, tmp_path)
            assert not provider.poll(submitted.batch_id).terminal
            engine.clock.advance(DAY + 60)
            status = self.wait_terminal(provider, engine, submitted.batch_id)
            assert status.state == "expired", status
            results = self.collect(provider, submitted.batch_id, items)
        statuses = Counter(r.status for r in results.values())
        assert set(statuses) <= {"succeeded", "expired"}, statuses
        assert statuses["expired"] >= len(items) - 1, statuses

    def test_awkward_ids_round_trip(self, tmp_path: Path) -> None:
        """Ids outside the provider's id rules come back, through wire_custom_id, as sent."""
        results = self.round_trip_ids(AWKWARD_IDS, tmp_path)
        assert set(results) == set(AWKWARD_IDS)
        assert all(r.ok for r in results.values())

    def test_wrong_key_is_rejected(self, tmp_path: Path) -> None:
        """The sandbox refuses a wrong key; the provider says so with a polybatch error."""
        with self.serve() as server:
            provider = self.connect(server, api_key="sk-wrong-key-000000")
            with pytest.raises((ProviderError, ConfigError)) as caught:
                self.submit_items(provider, self.make_items(1), tmp_path)
            assert "sk-wrong-key-000000" not in str(caught.value), "keys never show in errors"
            assert not server.engine.batches

    def test_unknown_batch_is_a_provider_error(self) -> None:
        """SDK exceptions are translated at the adapter boundary, never leaked."""
        with self.serve() as server:
            provider = self.connect(server)
            with pytest.raises(ProviderError):
                provider.poll("batch-that-does-not-exist")

    def test_listing_finds_a_lost_batch_again(self, tmp_path: Path) -> None:
        """Where batches carry no metadata, the listing (``alist_batches_since``) shows each
        batch since a time, newest first, with what :mod:`polybatch.jobs.adopt` matches on."""
        job = f"pb-conformance-{uuid.uuid4().hex[:8]}"
        with self.serve() as server:
            provider = self.connect(server)
            if portal.run(provider.alist_batches_since(0.0)) is None:
                pytest.skip("the provider does not list batches (it finds them by metadata)")
            since = server.engine.now() - 1
            two = self.submit_items(
                provider,
                self.make_items(2, "a"),
                tmp_path,
                metadata={META_JOB: job, META_CHUNK: "0"},
            )
            three = self.submit_items(
                provider,
                self.make_items(3, "b"),
                tmp_path,
                metadata={META_JOB: job, META_CHUNK: "1"},
            )
            listed = portal.run(provider.alist_batches_since(since)) or []
            assert [b.batch_id for b in listed] == [three.batch_id, two.batch_id], "newest first"
            for b, n, chunk in zip(listed, (3, 2), ("1", "0"), strict=True):
                assert b.created_at >= since
                if b.metadata is not None:  # derived (an upload's name): it must name the chunk
                    assert b.metadata == {META_JOB: job, META_CHUNK: chunk}
                else:  # matched by count and, once ended, results
                    assert b.request_count == n
            assert portal.run(provider.alist_batches_since(server.engine.now() + 3600)) == []

    def test_find_batch(self, tmp_path: Path) -> None:
        """A batch submitted with metadata is found again by it (crash recovery)."""
        if not self.supports_find_batch:
            pytest.skip("the provider cannot search batches by metadata")
        job = f"pb-conformance-{uuid.uuid4().hex[:8]}"
        with self.serve() as server:
            provider = self.connect(server)
            first = self.submit_items(
                provider,
                self.make_items(2, "a"),
                tmp_path,
                metadata={META_JOB: job, META_CHUNK: "0"},
            )
            second = self.submit_items(
                provider,
                self.make_items(2, "b"),
                tmp_path,
                metadata={META_JOB: job, META_CHUNK: "1"},
            )
            assert provider.find_batch({META_JOB: job, META_CHUNK: "0"}) == first.batch_id
            assert provider.find_batch({META_JOB: job, META_CHUNK: "1"}) == second.batch_id
            assert provider.find_batch({META_JOB: "pb-never-submitted", META_CHUNK: "0"}) is None
            assert provider.find_batch({META_JOB: job}) == second.batch_id, "newest first"
            if first.input_file_id is not None and self.uploads_in_engine_files:
                assert first.input_file_id in server.engine.files
                provider.cleanup(first)
                assert first.input_file_id not in server.engine.files
            provider.cleanup(first)  # already gone is fine

    def test_bad_item_is_rejected(self, tmp_path: Path) -> None:
        """``bad_item`` fails validation, and the runner then submits nothing at all."""
        if self.bad_item is None:
            pytest.skip("no bad_item given")
        bad = self.bad_item.model_copy(update={"custom_id": self.bad_item.custom_id or "bad"})
        provider = self.provider_class(api_key="unused", settings=dict(self.provider_settings))
        with pytest.raises(ItemValidationError):
            provider.validate_item(bad, bad.model or self.model)
        with self.serve() as server, self.registered():
            with pytest.raises(InputError):
                submit(
                    [*self.make_items(2), bad],
                    f"{self.provider_class.name}:{self.model}",
                    sandbox=server,
                    provider_settings=self.provider_settings,
                )
            assert not server.engine.batches, "nothing is submitted when one item is invalid"

    def test_one_side_of_each_lifecycle_pair_is_written(self) -> None:
        """The adapter writes one side of every pair (``lifecycle``), the base derives the other."""
        if self.lifecycle is None:
            pytest.skip("lifecycle not declared")
        cls = self.provider_class
        for sync, async_ in LIFECYCLE_PAIRS:
            written, derived = (async_, sync) if self.lifecycle == "async" else (sync, async_)
            assert getattr(cls, derived) is getattr(BatchProvider, derived), (
                f"{derived} must be the base class's (derived from {written}), not an override"
            )
            if sync in self.lifecycle_defaults:
                continue  # left to a default (BatchProvider's or a shared base's)
            assert getattr(cls, written) is not getattr(BatchProvider, written), written
            if self.lifecycle == "async":
                check = (
                    inspect.isasyncgenfunction
                    if async_ == "aresults"
                    else (inspect.iscoroutinefunction)
                )
                assert check(getattr(cls, async_)), async_
        if self.lifecycle == "async":
            assert cls.aclose is not BatchProvider.aclose, "an async adapter closes its clients"

    def test_blocking_lifecycle_never_uses_the_sync_sdk(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The blocking API, with the SDK's blocking path refused: it runs on the async client."""
        items = self.make_items(3)
        job = f"pb-blocking-{uuid.uuid4().hex[:8]}"
        self.refuse_sync_sdk(monkeypatch)
        with self.serve() as server:
            provider = self.connect(server)
            submitted = self.submit_items(
                provider, items, tmp_path, metadata={META_JOB: job, META_CHUNK: "0"}
            )
            status = self.wait_terminal(provider, server.engine, submitted.batch_id)
            assert status.state == "completed", status
            results = self.collect(provider, submitted.batch_id, items)
            assert all(r.ok for r in results.values())
            if self.supports_find_batch:
                assert provider.find_batch({META_JOB: job, META_CHUNK: "0"}) == submitted.batch_id
            if self.supports_cancel:
                provider.cancel(submitted.batch_id)  # an ended batch: harmless
            provider.cleanup(submitted)

    def test_async_job_takes_no_blocking_path(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """``polybatch.asubmit`` on the caller's loop: no derived blocking method, no blocking SDK
        client, and the loop stays free while the job runs."""
        import polybatch

        async def main(server: SandboxServer) -> tuple[Sequence[BatchResult], int]:
            ticks = 0

            async def tick() -> None:
                nonlocal ticks
                while True:
                    ticks += 1
                    await asyncio.sleep(0)

            ticker = asyncio.create_task(tick())
            job = await polybatch.asubmit(
                ["one?", "two?", "three?"],
                f"{self.provider_class.name}:{self.model}",
                sandbox=server,
                chunk_size=2,
                provider_settings=self.provider_settings,
            )
            results = await job.await_results(poll_min=0.01, timeout=60)
            ticker.cancel()
            return results, ticks

        with self.serve() as server, self.registered():
            self.refuse_sync_sdk(monkeypatch, blocking_api=True)
            results, ticks = asyncio.run(main(server))
        assert [r.custom_id for r in results] == ["item-1", "item-2", "item-3"]
        assert all(r.ok and r.text for r in results), results
        assert ticks > 0, "the loop stayed free while the job ran"

    def test_one_client_per_event_loop(self) -> None:
        """Each loop gets its own SDK client (a connection pool is bound to its loop), reused on
        that loop; after ``aclose`` a new one is built, and works."""
        attribute = self.client_attribute
        if attribute is None:
            pytest.skip("client_attribute not given")

        with self.serve() as server:
            provider = self.connect(server)

            async def client_used() -> Any:
                await asyncio.sleep(0)
                client = getattr(provider, attribute)
                assert getattr(provider, attribute) is client, "the same loop reuses its client"
                return client

            first, second = asyncio.run(client_used()), asyncio.run(client_used())
            assert first is not second, "another loop, another client"
            if self.client_class is not None:
                assert isinstance(first, self.client_class), type(first)

            async def close_and_rebuild() -> None:
                await provider.aclose()  # nothing built on this loop yet: nothing to do
                client = getattr(provider, attribute)
                await provider.aclose()
                assert getattr(provider, attribute) is not client, (
                    "a closed client is not handed out again"
                )
                with pytest.raises(ProviderError) as info:
                    await provider.apoll(self.missing_batch_id)
                assert info.value.status_code == 404, info.value
                await provider.aclose()
                await provider.aclose()  # twice: harmless

            asyncio.run(close_and_rebuild())

    def test_missing_key_is_a_credentials_error(self) -> None:
        """No key anywhere: the first call names the variable to set."""
        if not self.provider_class.credential_env:
            pytest.skip("the provider needs no credentials")
        kwargs = dict(self.provider_class.sandbox_settings("http://127.0.0.1:9", "unused"))
        kwargs.pop("api_key", None)
        settings = {**dict(kwargs.pop("settings", None) or {}), **self.provider_settings}
        cls = self.provider_class
        provider = cls(**kwargs, settings=settings)
        provider.encode(self.make_items(1)[0], self.model)  # encoding needs no key
        with pytest.raises(CredentialsError, match=cls.credential_env[0]):
            provider.poll(self.missing_batch_id)
        assert not cls.credentials_present({})
        assert cls.credentials_present({cls.credential_env[0]: "k"})

    def test_connection_error_is_retryable(self) -> None:
        """Nothing listening: a retryable ProviderError with no status, and no key in it."""
        provider = self.connect_to("http://127.0.0.1:9", CONFORMANCE_KEY)
        with pytest.raises(ProviderError) as info:
            provider.poll(self.missing_batch_id)
        assert info.value.status_code is None, info.value
        if self.connection_errors_retryable:
            assert info.value.retryable, info.value
        assert isinstance(info.value.__cause__, Exception), "raised from the SDK's error"
        assert CONFORMANCE_KEY not in str(info.value)

    def test_key_and_base_url_from_the_environment(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """``sandbox_env`` alone points a provider built with no arguments at the sandbox."""
        with self.serve() as server:
            env = self.provider_class.sandbox_env(server.url, CONFORMANCE_KEY)
            if not env:
                pytest.skip("the provider has no sandbox_env")
            for name, value in env.items():
                monkeypatch.setenv(name, value)
            from_env = self.base_url_from_env
            if from_env is None:
                from_env = any(v.startswith(server.url) for v in env.values())
            base_url = None
            if not from_env:
                base_url = self.provider_class.sandbox_settings(server.url, "unused")["base_url"]
            provider = self.provider_class(base_url=base_url, settings=dict(self.provider_settings))
            with pytest.raises(ProviderError) as info:
                provider.poll(self.missing_batch_id)
            assert info.value.status_code == 404, info.value

    def test_results_split_lines_on_newline_only(self, tmp_path: Path) -> None:
        """U+2028 and U+0085 are line breaks to str.splitlines (and httpx's iter_lines), not to
        JSONL: ids holding them come back whole."""
        weird = ["a\u2028b", "c\x85d", "ünï"]
        assert sorted(self.round_trip_ids(weird, tmp_path)) == sorted(weird)

    def test_faults_are_reproducible_and_retries_redraw(self, tmp_path: Path) -> None:
        """Same seed, same requests: same failures; resubmitting the failures is a new draw."""
        from ..sandbox import Faults

        def failed_ids(server: SandboxServer, items: Sequence[BatchItem]) -> set[str]:
            provider = self.connect(server)
            submitted = self.submit_items(provider, items, tmp_path)
            self.wait_terminal(provider, server.engine, submitted.batch_id)
            results = self.collect(provider, submitted.batch_id, items)
            return {cid for cid, r in results.items() if not r.ok}

        items = self.make_items(40)
        with (
            self.serve(faults=Faults(seed=11, item_error_rate=0.5)) as first,
            self.serve(faults=Faults(seed=11, item_error_rate=0.5)) as second,
        ):
            failed = failed_ids(first, items)
            assert failed
            if self.faults_reproducible:
                assert failed == failed_ids(second, items)
            # resubmitting the failures is a new attempt: some of them get through this time
            retry = [i for i in items if i.custom_id in failed]
            assert failed_ids(first, retry) < failed

    # -- through the real runner ---------------------------------------------------------------
    def test_split_through_the_runner(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """chunk_size k over n items: ceil(n/k) provider batches, every result in input order;
        the blocking runner too goes without the SDK's blocking path."""
        self.refuse_sync_sdk(monkeypatch)
        n, k = 7, 3
        items = self.make_items(n)
        # awkward ids too: the runner maps wire ids back to the user's
        items[1] = items[1].model_copy(update={"custom_id": "needs mapping / é"})
        with self.serve() as server, self.registered():
            job = submit(
                items,
                f"{self.provider_class.name}:{self.model}",
                sandbox=server,
                chunk_size=k,
                provider_settings=self.provider_settings,
            )
            job.wait(poll_min=0.02, timeout=60)
            assert len(server.engine.batches) == math.ceil(n / k)
            results = list(job.results())
        assert [r.custom_id for r in results] == [i.custom_id for i in items]
        assert all(r.ok and r.text for r in results), [r.error for r in results if not r.ok]
        assert all(r.model for r in results), "the model is reported (pricing keys on it)"
        assert job.status().state == "completed"
