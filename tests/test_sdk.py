"""polybatch.sdk and the error tree, on a tiny fake SDK defined here (no provider SDK imported)."""

from __future__ import annotations

import asyncio
import gc
import itertools
import json
import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest

from polybatch import portal
from polybatch.errors import (
    BatchFailedError,
    PolybatchError,
    ProviderConnectionError,
    ProviderError,
    ProviderHTTPError,
)
from polybatch.items import BatchItem, BatchResult
from polybatch.providers import BatchStatus, Limits, SubmittedBatch
from polybatch.sdk import (
    TRANSPORT_ERRORS,
    SDKProvider,
    connection,
    failure,
    http,
    rule_for,
)

# -- a fake SDK: its exception hierarchy and its client -------------------------------------------


class FakeError(Exception):
    """The SDK's base error."""


class FakeStatusError(FakeError):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"Error code: {status} - {message}")
        self.status_code = status
        self.message = message


class FakeNotFound(FakeStatusError):
    def __init__(self, message: str = "no such thing") -> None:
        super().__init__(404, message)


class FakeConnectionError(FakeError):
    pass


class FakeTimeout(FakeConnectionError):
    pass


class FakeClient:
    made = itertools.count()

    def __init__(self, api_key: str, base_url: str | None) -> None:
        self.api_key = api_key
        self.base_url = base_url
        self.number = next(self.made)
        self.closed = False
        self.deleted: list[str] = []
        #: what the next call raises, if anything
        self.fail: BaseException | None = None

    async def close(self) -> None:
        self.closed = True

    async def delete(self, file_id: str) -> None:
        if self.fail is not None:
            raise self.fail
        self.deleted.append(file_id)


class FakeProvider(SDKProvider[FakeClient]):
    name = "fakesdk"
    limits = Limits(max_requests=10, max_bytes=1000)
    credential_env: ClassVar[tuple[str, ...]] = ("FAKESDK_API_KEY",)
    base_url_env = "FAKESDK_BASE_URL"
    key_patterns = (re.compile(r"\b(fk-)[A-Za-z0-9]{6,}"),)
    errors = {
        FakeStatusError: http(lambda e: e.status_code, lambda e: e.message),
        FakeConnectionError: connection(),
        FakeError: failure(),
    }

    def make_client(self) -> FakeClient:
        return FakeClient(self.require_api_key(), self.resolved_base_url())

    async def sdk_delete_file(self, client: FakeClient, file_id: str) -> None:
        await client.delete(file_id)

    def encode(self, item: BatchItem, model: str) -> bytes:
        return b"{}"

    async def asubmit(self, lines_path: Path, *, model: str, metadata: Any) -> SubmittedBatch:
        return SubmittedBatch(batch_id="b")

    async def apoll(self, batch_id: str) -> BatchStatus:
        with self.sdk_errors(f"polling batch {batch_id}"):
            if self.client.fail is not None:
                raise self.client.fail
        return BatchStatus(batch_id=batch_id, state="completed")

    async def aresults(self, batch_id: str) -> AsyncIterator[BatchResult]:
        for result in ():
            yield result

    async def acancel(self, batch_id: str) -> None:
        pass


class FakeSubProvider(FakeProvider):
    """A subclass's entries are merged over its base's."""

    name = "fakesub"
    errors = {FakeNotFound: failure(lambda e: "gone", retryable=True)}


KEY = "fk-secret0123456789"


def raised(provider: FakeProvider, exc: BaseException) -> ProviderError:
    """What ``provider.poll`` raises when the SDK raises ``exc``."""

    async def main() -> ProviderError:
        provider.client.fail = exc
        try:
            await provider.apoll("b1")
        except ProviderError as err:
            return err
        finally:
            await provider.aclose()
        raise AssertionError("nothing was raised")

    return asyncio.run(main())


@pytest.fixture(autouse=True)
def _no_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("FAKESDK_API_KEY", "FAKESDK_BASE_URL"):
        monkeypatch.delenv(name, raising=False)


# -- the error tree: retryable by class and status ---------------------------------------------


@pytest.mark.parametrize(
    ("error", "retryable"),
    [
        (ProviderConnectionError("reset"), True),
        (ProviderConnectionError("reset", retryable=False), False),
        *((ProviderHTTPError("x", status_code=s), True) for s in (408, 409, 425, 429)),
        *((ProviderHTTPError("x", status_code=s), True) for s in (500, 502, 503, 504, 599)),
        *((ProviderHTTPError("x", status_code=s), False) for s in (400, 401, 403, 404, 410, 422)),
        (ProviderHTTPError("x", status_code=400, retryable=True), True),
        (ProviderHTTPError("x", status_code=503, retryable=False), False),
        (ProviderError("x"), False),
        # a status on a plain ProviderError is information; the class decides
        (ProviderError("x", status_code=503), False),
        (ProviderError("x", retryable=True), True),
        (BatchFailedError("x", batch_id="b"), False),
        (BatchFailedError("x", batch_id="b", retryable=True), True),
    ],
)
def test_retryable_by_class_and_status(error: ProviderError, retryable: bool) -> None:
    assert error.retryable is retryable


def test_the_tree_and_the_old_constructor() -> None:
    for cls in (ProviderConnectionError, ProviderHTTPError, BatchFailedError):
        assert issubclass(cls, ProviderError) and issubclass(cls, PolybatchError)
    old = ProviderError("upload failed", provider="acme", status_code=401)
    assert str(old) == "acme: upload failed" and old.status_code == 401 and old.provider == "acme"
    http_error = ProviderHTTPError("nope", status_code=404, provider="acme")
    assert http_error.status_code == 404 and str(http_error) == "acme: nope"
    assert BatchFailedError("bad input", batch_id="b1").batch_id == "b1"
    import polybatch.errors

    doc = polybatch.errors.__doc__ or ""
    for name in ("ProviderConnectionError", "ProviderHTTPError", "BatchFailedError"):
        assert name in doc, "the tree stays drawn in the docstring"


# -- the error table ----------------------------------------------------------------------------


def test_the_most_specific_entry_wins_whatever_the_order() -> None:
    rules = {
        FakeError: failure(),
        FakeConnectionError: connection(),
        FakeTimeout: failure(retryable=True),
        FakeStatusError: http(lambda e: e.status_code),
    }
    for order in itertools.permutations(rules):
        table = {klass: rules[klass] for klass in order}
        assert rule_for(table, FakeTimeout()) is rules[FakeTimeout]
        assert rule_for(table, FakeConnectionError()) is rules[FakeConnectionError]
        assert rule_for(table, FakeNotFound()) is rules[FakeStatusError]
        assert rule_for(table, FakeError()) is rules[FakeError]
        assert rule_for(table, ValueError()) is None


def test_subclass_entries_merge_over_the_base_and_the_transport_entries() -> None:
    base, sub = FakeProvider.error_table(), FakeSubProvider.error_table()
    assert set(TRANSPORT_ERRORS) <= set(base) and set(base) <= set(sub)
    assert rule_for(sub, FakeNotFound()) is FakeSubProvider.errors[FakeNotFound]
    assert rule_for(base, FakeNotFound()) is FakeProvider.errors[FakeStatusError]
    assert rule_for(base, TimeoutError()) == connection()


@pytest.mark.parametrize(
    ("exc", "cls", "status", "retryable", "words"),
    [
        (FakeStatusError(503, "overloaded"), ProviderHTTPError, 503, True, "HTTP 503: overloaded"),
        (FakeNotFound(), ProviderHTTPError, 404, False, "HTTP 404: no such thing"),
        (FakeTimeout("timed out"), ProviderConnectionError, None, True, "FakeTimeout: timed out"),
        (FakeError("odd"), ProviderError, None, False, "odd"),
        # the HTTP stack's own errors, which SDKs let through: transient
        (ConnectionResetError("reset by peer"), ProviderConnectionError, None, True, "reset"),
        (
            json.JSONDecodeError("Unterminated string", '{"a', 1),
            ProviderConnectionError,
            None,
            True,
            "Unterminated",
        ),
    ],
)
def test_sdk_exceptions_become_the_right_class(
    exc: BaseException, cls: type[ProviderError], status: int | None, retryable: bool, words: str
) -> None:
    error = raised(FakeProvider(api_key=KEY), exc)
    assert type(error) is cls and error.status_code == status and error.retryable is retryable
    assert str(error).startswith("fakesdk: polling batch b1 failed: ") and words in str(error)
    assert error.__cause__ is exc, "raised from the SDK's exception"


def test_unknown_exceptions_and_polybatch_errors_pass_through() -> None:
    provider = FakeProvider(api_key=KEY)
    with pytest.raises(LookupError), provider.sdk_errors("x"):
        raise LookupError("not the SDK's")
    mine = ProviderConnectionError("already translated")
    with pytest.raises(ProviderConnectionError) as info, provider.sdk_errors("x"):
        raise mine
    assert info.value is mine


def test_401_and_403_name_the_key_variable() -> None:
    for status in (401, 403):
        error = raised(FakeProvider(api_key=KEY), FakeStatusError(status, "bad key"))
        assert "(check FAKESDK_API_KEY)" in str(error) and not error.retryable
    assert "check" not in str(raised(FakeProvider(api_key=KEY), FakeStatusError(400, "bad")))


# -- scrubbing ----------------------------------------------------------------------------------


def test_messages_are_scrubbed_of_keys_bearer_tokens_and_key_shapes() -> None:
    echoed = f"sent {KEY}; Authorization: Bearer tok-abc.def, other fk-OTHERKEY99 here"
    error = raised(FakeProvider(api_key=KEY), FakeStatusError(401, echoed))
    text = str(error)
    assert KEY not in text and "tok-abc.def" not in text and "OTHERKEY99" not in text
    assert "Bearer ***" in text and "fk-***" in text


def test_keys_of_every_loops_client_are_scrubbed(monkeypatch: pytest.MonkeyPatch) -> None:
    provider = FakeProvider()

    async def build() -> FakeClient:
        return provider.client

    monkeypatch.setenv("FAKESDK_API_KEY", "portal-key-0123456789")
    portal.run(build())
    monkeypatch.setenv("FAKESDK_API_KEY", "user-key-0123456789")
    asyncio.run(build())
    assert provider.scrub("portal-key-0123456789 user-key-0123456789") == "*** ***"


# -- clients per loop ---------------------------------------------------------------------------


def test_one_client_per_loop_closed_by_aclose() -> None:
    provider = FakeProvider(api_key=KEY)

    async def twice() -> FakeClient:
        first = provider.client
        assert provider.client is first
        return first

    async def use_and_close() -> tuple[FakeClient, FakeClient]:
        first = provider.client
        await provider.aclose()
        return first, provider.client

    on_portal = portal.run(twice())
    closed, rebuilt = asyncio.run(use_and_close())
    assert closed.closed and not rebuilt.closed and closed is not rebuilt
    assert on_portal is not closed and portal.run(twice()) is on_portal and not on_portal.closed


def test_a_dropped_provider_closes_its_clients_on_their_loops() -> None:
    async def build(provider: FakeProvider) -> FakeClient:
        return provider.client

    provider = FakeProvider(api_key=KEY)
    client = portal.run(build(provider))
    del provider  # the PerLoop's finalizer must not keep the provider alive
    gc.collect()
    portal.run(asyncio.sleep(0.05))
    assert client.closed


def test_no_client_no_key_needed() -> None:
    provider = FakeProvider()
    assert provider._clients.peek() == []
    with pytest.raises(PolybatchError, match="FAKESDK_API_KEY"):
        portal.run(provider.apoll("b"))


# -- the base URL -------------------------------------------------------------------------------


class DefaultedProvider(FakeProvider):
    name = "fakedefault"
    default_base_url = "https://built-in.example/v1"
    base_url_setting = "endpoint"


@pytest.mark.parametrize(
    ("argument", "setting", "env", "expected"),
    [
        ("https://arg", "https://setting", "https://env", "https://arg"),
        (None, "https://setting", "https://env", "https://setting"),
        (None, None, "https://env", "https://env"),
        (None, None, None, "https://built-in.example/v1"),
    ],
)
def test_base_url_precedence(
    argument: str | None,
    setting: str | None,
    env: str | None,
    expected: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if env:
        monkeypatch.setenv("FAKESDK_BASE_URL", env)
    settings = {"endpoint": setting} if setting else {}
    provider = DefaultedProvider(api_key=KEY, base_url=argument, settings=settings)
    assert provider.resolved_base_url() == expected

    async def built() -> str | None:
        return provider.client.base_url

    assert asyncio.run(built()) == expected, "the client gets the resolved URL"


def test_no_base_url_means_the_sdks_default() -> None:
    assert FakeProvider(api_key=KEY).resolved_base_url() is None


def test_sandbox_env_has_the_key_and_the_base_url() -> None:
    env = FakeProvider.sandbox_env("http://127.0.0.1:9", "sandbox-key")
    assert env == {"FAKESDK_BASE_URL": "http://127.0.0.1:9", "FAKESDK_API_KEY": "sandbox-key"}


# -- tolerant file deletion ---------------------------------------------------------------------


@pytest.fixture
def deleting() -> Iterator[Any]:
    def delete(fail: BaseException | None, *, quiet: bool = False) -> list[str]:
        provider = FakeProvider(api_key=KEY)

        async def main() -> list[str]:
            provider.client.fail = fail
            try:
                await provider.acleanup(SubmittedBatch(batch_id="b", input_file_id="file-1"))
                await provider.delete_file("file-2", quiet=quiet)
                return provider.client.deleted
            finally:
                await provider.aclose()

        return asyncio.run(main())

    yield delete


def test_file_deletion_tolerates_what_is_already_gone(deleting: Any) -> None:
    assert deleting(None) == ["file-1", "file-2"]
    assert deleting(FakeNotFound()) == [], "404: already gone is the goal reached"
    with pytest.raises(ProviderHTTPError) as info:
        deleting(FakeStatusError(500, "down"))
    assert info.value.status_code == 500 and "deleting file file-1" in str(info.value)
    with pytest.raises(ProviderConnectionError):
        deleting(FakeConnectionError("refused"))


def test_quiet_deletion_swallows_every_provider_error() -> None:
    provider = FakeProvider(api_key=KEY)

    async def main() -> None:
        provider.client.fail = FakeStatusError(500, "down")
        await provider.delete_file("file-3", quiet=True)
        await provider.aclose()

    asyncio.run(main())
