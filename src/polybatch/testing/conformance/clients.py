"""The conformance tests of a provider's clients: one side of each lifecycle pair, no sync SDK
path, one client per loop, credentials, connection errors, faults, the runner (see :mod:`.base`)."""

from __future__ import annotations

import asyncio
import inspect
import math
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from ...errors import CredentialsError, ProviderError
from ...items import BatchItem, BatchResult
from ...jobs import submit
from ...providers import (
    LIFECYCLE_PAIRS,
    META_CHUNK,
    META_JOB,
    BatchProvider,
)
from ...sandbox import SandboxServer
from .base import CONFORMANCE_KEY, ConformanceBase


class ClientConformance(ConformanceBase):
    """Client tests (mixed into :class:`~polybatch.testing.conformance.ProviderConformance`)."""

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
        from ...sandbox import Faults

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
