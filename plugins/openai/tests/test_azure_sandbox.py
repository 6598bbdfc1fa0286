"""The sandbox's Azure API: Azure's schema, the SDK's strict types, auth, api-version and quirks."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import jsonschema
import openai
import pytest
from openai_testlib import KEY, items, nullable_optionals, write_lines
from referencing import Registry, Resource
from starlette.routing import BaseRoute

from polybatch.sandbox import SandboxEngine, SandboxServer
from polybatch_openai.azure import DEFAULT_API_VERSION, AzureProvider
from polybatch_openai.azure_sandbox import azure_routes, model_behind
from polybatch_openai.provider import OpenAIProvider

DATA = Path(__file__).parent / "data"
SCHEMA = "azure-authoring-2024-10-21.batch-files.schema.json"
MODEL = "gpt-4o-mini"
#: Azure's batch endpoint; the SDK types it as a Literal of OpenAI's but sends any string
CHAT: Any = "/chat/completions"


class _PlainAzure(AzureProvider):
    """Azure routes without the quirks the SDK's strict types reject (``pending``, null counts)."""

    @classmethod
    def sandbox_routes(cls, engine: SandboxEngine) -> list[BaseRoute]:
        return azure_routes(engine, quirks=False)


def _serve(azure_cls: type[AzureProvider]) -> Iterator[SandboxServer]:
    engine = SandboxEngine(api_key=KEY, rate=4.0, cancel_seconds=10)
    with SandboxServer(engine, providers={"openai": OpenAIProvider, "azure": azure_cls}) as srv:
        yield srv


@pytest.fixture
def server() -> Iterator[SandboxServer]:
    yield from _serve(AzureProvider)


@pytest.fixture
def plain_server() -> Iterator[SandboxServer]:
    yield from _serve(_PlainAzure)


def check(root: str, instance: Any) -> None:
    doc = nullable_optionals(json.loads((DATA / SCHEMA).read_text()))
    uri = f"urn:{SCHEMA}"
    registry: Registry[Any] = Registry().with_resource(uri, Resource.from_contents(doc))
    cls = jsonschema.validators.validator_for(doc)
    cls({"$schema": doc["$schema"], "$ref": f"{uri}#/$defs/{root}"}, registry=registry).validate(
        instance
    )


def classic_client(server: SandboxServer, key: str = KEY, **kw: Any) -> openai.AzureOpenAI:
    return openai.AzureOpenAI(
        azure_endpoint=f"{server.url}/azure",
        api_version=DEFAULT_API_VERSION,
        api_key=key,
        max_retries=0,
        **kw,
    )


def v1_client(server: SandboxServer, key: str = KEY, **kw: Any) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=f"{server.url}/azure/openai/v1/", api_key=key, max_retries=0, **kw
    )


def _lines(n: int = 6, deployment: str = "gpt-4o-mini-batch") -> list[bytes]:
    p = AzureProvider(api_key="x", settings={"deployments": {MODEL: deployment}})
    return [p.encode(i, MODEL) for i in items(n)]


@pytest.mark.parametrize("style", ["classic", "v1"])
def test_responses_match_azure_schema_and_strict_sdk_types(
    plain_server: SandboxServer, tmp_path: Path, style: str
) -> None:
    server = plain_server
    make = classic_client if style == "classic" else v1_client
    client: openai.OpenAI = make(server, _strict_response_validation=True)
    with write_lines(tmp_path / "in.jsonl", _lines()).open("rb") as fh:
        raw = client.files.with_raw_response.create(file=fh, purpose="batch")
    uploaded = raw.parse()
    check("File", raw.http_response.json())
    batch = client.batches.create(
        input_file_id=uploaded.id,
        endpoint=CHAT,
        completion_window="24h",
        metadata={"k": "v"},
    )
    check("Batch", client.batches.with_raw_response.retrieve(batch.id).http_response.json())
    server.engine.clock.advance(0.6)  # two requests ran
    listed = client.batches.with_raw_response.list(limit=5)
    check("BatchesList", listed.http_response.json())
    assert [b.id for b in listed.parse().data] == [batch.id]
    cancelled = client.batches.cancel(batch.id)
    assert cancelled.status == "cancelling"
    server.engine.clock.advance(30)
    done = client.batches.retrieve(batch.id)
    assert done.status == "cancelled" and done.request_counts is not None
    ran = done.request_counts.completed
    assert 2 <= ran < 6 and done.request_counts.total == 6  # the wall clock moves too
    assert done.output_file_id and done.error_file_id
    out = client.files.content(done.output_file_id).text.splitlines()
    assert len(out) == ran
    for line in out:
        body = json.loads(line)["response"]["body"]
        completion = openai.types.chat.ChatCompletion.model_validate(body, strict=False)
        assert completion.model == MODEL  # the model behind the deployment
    errors = [json.loads(x) for x in client.files.content(done.error_file_id).text.splitlines()]
    assert {e["error"]["code"] for e in errors} == {"batch_cancelled"}
    files = client.files.with_raw_response.list()
    check("FileList", files.http_response.json())
    deleted = client.files.with_raw_response.delete(uploaded.id)
    check("FileDelete", deleted.http_response.json())


def test_both_styles_see_one_resource_and_openai_is_apart(
    server: SandboxServer, tmp_path: Path
) -> None:
    classic, v1 = classic_client(server), v1_client(server)
    with write_lines(tmp_path / "in.jsonl", _lines(2)).open("rb") as fh:
        f = classic.files.create(file=fh, purpose="batch")
    batch = v1.batches.create(
        input_file_id=f.id,
        endpoint=CHAT,
        completion_window="24h",
    )
    assert classic.batches.retrieve(batch.id).id == batch.id
    plain_openai = openai.OpenAI(base_url=f"{server.url}/openai/v1", api_key=KEY, max_retries=0)
    with pytest.raises(openai.NotFoundError):
        plain_openai.batches.retrieve(batch.id)
    assert plain_openai.batches.list().data == []


def test_quirks_201_pending_empty_file_ids_filters(server: SandboxServer, tmp_path: Path) -> None:
    client = classic_client(server)
    with write_lines(tmp_path / "in.jsonl", _lines(2)).open("rb") as fh:
        raw = client.files.with_raw_response.create(file=fh, purpose="batch")
    assert raw.http_response.status_code == 201
    uploaded = raw.parse()
    assert uploaded.status == "pending"  # type: ignore[comparison-overlap]
    assert client.files.retrieve(uploaded.id).status == "processed"
    batch = client.batches.create(
        input_file_id=uploaded.id,
        endpoint=CHAT,
        completion_window="24h",
    )
    assert batch.output_file_id == "" and batch.error_file_id == ""
    assert "usage" not in client.batches.with_raw_response.retrieve(batch.id).http_response.json()
    server.engine.clock.advance(10)
    done = client.batches.retrieve(batch.id)
    assert done.status == "completed" and done.output_file_id and done.error_file_id == ""
    body = json.loads(client.files.content(done.output_file_id).text.splitlines()[0])
    response = body["response"]["body"]
    assert (
        response["prompt_filter_results"][0]["content_filter_results"]["hate"]["filtered"] is False
    )
    assert "content_filter_results" in response["choices"][0]


def test_strict_sdk_rejects_pending_which_is_why_the_adapter_parses_loosely(
    server: SandboxServer, tmp_path: Path
) -> None:
    client = classic_client(server, _strict_response_validation=True)
    with (
        write_lines(tmp_path / "in.jsonl", _lines(1)).open("rb") as fh,
        pytest.raises(openai.APIResponseValidationError),
    ):
        client.files.create(file=fh, purpose="batch")


@pytest.mark.parametrize("style", ["classic", "v1"])
@pytest.mark.parametrize("key", ["wrong-key-0123456789", None])
def test_wrong_or_missing_key_is_401(server: SandboxServer, style: str, key: str | None) -> None:
    base = f"{server.url}/azure/openai" + ("/v1" if style == "v1" else "")
    headers = {"api-key": key} if key else {}
    r = httpx2.get(f"{base}/batches", params={"api-version": DEFAULT_API_VERSION}, headers=headers)
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "401"
    assert "Access denied" in r.json()["error"]["message"]
    assert key is None or key not in r.text


def test_key_as_api_key_header_or_bearer_on_both_styles(server: SandboxServer) -> None:
    for path in ("/azure/openai/batches", "/azure/openai/v1/batches"):
        for headers in ({"api-key": KEY}, {"Authorization": f"Bearer {KEY}"}):
            r = httpx2.get(server.url + path, params={"api-version": "2024-10-21"}, headers=headers)
            assert r.status_code == 200, (path, headers, r.text)


def test_classic_needs_an_api_version_v1_does_not(server: SandboxServer) -> None:
    h = {"api-key": KEY}
    assert httpx2.get(f"{server.url}/azure/openai/batches", headers=h).status_code == 404
    bad = httpx2.get(
        f"{server.url}/azure/openai/batches", params={"api-version": "yesterday"}, headers=h
    )
    assert bad.status_code == 400
    assert httpx2.get(f"{server.url}/azure/openai/v1/batches", headers=h).status_code == 200
    # files and batches are never deployment-scoped
    r = httpx2.get(
        f"{server.url}/azure/openai/deployments/d/batches",
        params={"api-version": "2024-10-21"},
        headers=h,
    )
    assert r.status_code == 404


def test_completion_window_must_be_24h(server: SandboxServer, tmp_path: Path) -> None:
    client = classic_client(server)
    with write_lines(tmp_path / "in.jsonl", _lines(1)).open("rb") as fh:
        f = client.files.create(file=fh, purpose="batch")
    with pytest.raises(openai.BadRequestError, match="completion_window"):
        client.batches.create(
            input_file_id=f.id,
            endpoint=CHAT,
            completion_window="48h",  # type: ignore[arg-type]
        )


def test_file_expiry_bounds_are_azures(server: SandboxServer, tmp_path: Path) -> None:
    client = classic_client(server)

    def upload(seconds: int) -> openai.types.FileObject:
        with write_lines(tmp_path / "in.jsonl", _lines(1)).open("rb") as fh:
            return client.files.create(
                file=fh, purpose="batch", expires_after={"anchor": "created_at", "seconds": seconds}
            )

    assert upload(1_209_600).expires_at is not None
    for seconds in (3600, 2_592_001):
        with pytest.raises(openai.BadRequestError):
            upload(seconds)


def test_model_behind_a_deployment() -> None:
    assert model_behind("gpt-4o-mini-globalbatch") == "gpt-4o-mini"
    assert model_behind("prod-gpt-4.1-batch") == "gpt-4.1"
    assert model_behind("custom-name") == "custom-name"
