"""The conformance tests of a provider's batch lifecycle over the sandbox: submit, poll,
results, usage, item errors, cancel, expiry, ids, keys, lookups (see :mod:`.base`)."""

from __future__ import annotations

import asyncio
import inspect
import re
import uuid
from collections import Counter
from pathlib import Path

import pytest

from ... import portal
from ...errors import (
    ConfigError,
    InputError,
    ItemValidationError,
    ProviderError,
    QueueFullError,
)
from ...items import ItemError
from ...jobs import submit
from ...pricing.estimate import input_tokens
from ...providers import (
    META_CHUNK,
    META_JOB,
    BatchProvider,
    Limits,
    SubmittedBatch,
)
from ...sandbox import SandboxEngine
from ...sandbox.engine import DAY
from ...tokens import count_tokens, prompt_tokens
from .base import AWKWARD_IDS, CONFORMANCE_KEY, CONSTRUCTOR_KWARGS, ConformanceBase


class LifecycleConformance(ConformanceBase):
    """Lifecycle tests (mixed into :class:`~polybatch.testing.conformance.ProviderConformance`)."""

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

    def test_progress_while_running(self, tmp_path: Path) -> None:
        """Queued, then ``in_progress`` with partial counts, then completed (``reports_progress``)."""
        if not self.reports_progress:
            pytest.skip("the provider reports no progress counts while a batch runs")
        items = self.make_items(25)
        with self.serve(rate=20.0, validation_seconds=3, finalize_seconds=4) as server:
            provider = self.connect(server)
            submitted = self.submit_items(provider, items, tmp_path)
            assert provider.poll(submitted.batch_id).state == "validating"
            server.engine.clock.advance(4)
            mid = provider.poll(submitted.batch_id)
            assert mid.state == "in_progress" and 0 < mid.completed < len(items), mid
            assert mid.total == len(items), mid
            status = self.wait_terminal(provider, server.engine, submitted.batch_id, step=1)
            assert (status.state, status.completed, status.failed) == ("completed", 25, 0)

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
        from ...sandbox import Faults

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

    def test_a_create_over_the_queue_limit_is_queue_full(self, tmp_path: Path) -> None:
        """Refused at create for a full queue: QueueFullError (the chunk waits, never fails),
        no batch made; under the limit the same create is accepted."""
        if self.queue_full_at_create is None:
            pytest.skip("the provider does not refuse a full queue at create")
        items = self.make_items(3)
        one = input_tokens(items[0])  # the sandbox counts each vendor's shape near this
        with self.serve(queue_limit_tokens=int(2.5 * one)) as server:
            provider = self.connect(server)
            with pytest.raises(QueueFullError) as info:
                self.submit_items(provider, items, tmp_path)
            assert info.value.status_code == 429
            assert self.queue_full_at_create in str(info.value)
            assert not server.engine.batches, "refused at create: no batch was made"
            self.submit_items(provider, items[:2], tmp_path)  # within the limit: accepted

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
