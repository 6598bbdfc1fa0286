"""The sandbox's OpenAI API: official JSON schemas, the SDK's strict types, any client's usage."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import httpx2
import jsonschema
import openai
import pytest
from openai.types.chat import ChatCompletion
from openai_testlib import (
    KEY,
    MODEL,
    ServerFactory,
    items,
    nullable_optionals,
    provider_for,
    write_lines,
)
from referencing import Registry, Resource

from polybatch import wire
from polybatch.sandbox import SandboxServer
from polybatch.sandbox.model import SYNTHETIC_MODELS

DATA = Path(__file__).parent / "data"


def _validator(schema_file: str, root: str) -> jsonschema.protocols.Validator:
    doc = nullable_optionals(json.loads((DATA / schema_file).read_text()))
    uri = f"urn:{schema_file}"
    registry: Registry[Any] = Registry().with_resource(uri, Resource.from_contents(doc))
    schema = {"$schema": doc["$schema"], "$ref": f"{uri}#/$defs/{root}"}
    cls = jsonschema.validators.validator_for(doc)
    return cls(schema, registry=registry)


FILES = "openai-openapi.batch-files.schema.json"
LINES = "openai-openapi.batch-jsonl-lines.schema.json"


def check(root: str, instance: Any, schema_file: str = FILES) -> None:
    _validator(schema_file, root).validate(instance)


def strict_client(server: SandboxServer, key: str = KEY) -> openai.OpenAI:
    return openai.OpenAI(
        api_key=key,
        base_url=f"{server.url}/openai/v1",
        max_retries=0,
        _strict_response_validation=True,
    )


def _upload(client: openai.OpenAI, tmp_path: Path, lines: list[bytes]) -> Any:
    with write_lines(tmp_path / "in.jsonl", lines).open("rb") as fh:
        return client.files.with_raw_response.create(file=fh, purpose="batch")


def test_every_response_matches_schema_and_strict_sdk_types(
    make_server: ServerFactory, tmp_path: Path
) -> None:
    server = make_server(rate=4.0, cancel_seconds=10)
    server.engine.clock.freeze()  # the counts below depend on sandbox time alone
    client = strict_client(server)
    provider = provider_for(server)
    lines = [provider.encode(i, MODEL) for i in items(8)]
    for line in lines:
        check("BatchRequestInput", json.loads(line), LINES)

    # files: create / retrieve / list (objects are parsed strictly by .parse())
    raw = _upload(client, tmp_path, lines)
    uploaded = raw.parse()
    check("OpenAIFile", raw.http_response.json())
    assert raw.http_response.headers["x-request-id"]
    raw = client.files.with_raw_response.retrieve(uploaded.id)
    assert raw.parse().id == uploaded.id
    check("OpenAIFile", raw.http_response.json())
    raw = client.files.with_raw_response.list(purpose="batch")
    assert [f.id for f in raw.parse().data] == [uploaded.id]
    check("ListFilesResponse", raw.http_response.json())

    # batches: create / retrieve (in progress) / list / cancel / retrieve (cancelled)
    raw = client.batches.with_raw_response.create(
        input_file_id=uploaded.id,
        endpoint="/v1/chat/completions",
        completion_window="24h",
        metadata={"k": "v"},
    )
    batch = raw.parse()
    check("Batch", raw.http_response.json())
    server.engine.clock.advance(1)
    raw = client.batches.with_raw_response.retrieve(batch.id)
    assert raw.parse().status == "in_progress"
    check("Batch", raw.http_response.json())
    raw = client.batches.with_raw_response.list()
    assert [b.id for b in raw.parse().data] == [batch.id]
    check("ListBatchesResponse", raw.http_response.json())
    raw = client.batches.with_raw_response.cancel(batch.id)
    assert raw.parse().status == "cancelling"
    check("Batch", raw.http_response.json())
    server.engine.clock.advance(11)
    raw = client.batches.with_raw_response.retrieve(batch.id)
    ended = raw.parse()
    body = raw.http_response.json()
    check("Batch", body)
    assert ended.status == "cancelled" and ended.cancelled_at and ended.cancelling_at
    assert ended.request_counts and ended.request_counts.completed == 4
    assert ended.usage and ended.usage.input_tokens > 0 and ended.usage.total_tokens > 0
    assert isinstance(body["created_at"], int) and body["metadata"] == {"k": "v"}

    # output files: content lines match BatchRequestOutput and hold real chat.completion bodies
    assert ended.output_file_id and ended.error_file_id
    for file_id in (ended.output_file_id, ended.error_file_id):
        f = client.files.retrieve(file_id)
        assert f.purpose == "batch_output"
        for out_line in wire.iter_jsonl([client.files.content(file_id).content]):
            obj = json.loads(out_line)
            check("BatchRequestOutput", obj, LINES)
            if obj["response"] is not None:
                ChatCompletion.model_validate(obj["response"]["body"], strict=False)
                assert obj["response"]["body"]["choices"][0]["message"]["refusal"] is None

    # models list, file delete
    models = client.models.list()
    assert [m.id for m in models.data] == list(SYNTHETIC_MODELS)
    raw = client.files.with_raw_response.delete(uploaded.id)
    assert raw.parse().deleted
    check("DeleteFileResponse", raw.http_response.json())


def test_validation_failed_batch_matches_schema(server: SandboxServer, tmp_path: Path) -> None:
    client = strict_client(server)
    bad = [b'{"custom_id":"a","method":"GET","url":"/v1/chat/completions","body":{}}']
    bad.append(b'{"custom_id":"b","method":"POST","url":"/v1/embeddings","body":{}}')
    uploaded = _upload(client, tmp_path, bad).parse()
    raw = client.batches.with_raw_response.create(
        input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    check("Batch", raw.http_response.json())
    batch = client.batches.retrieve(raw.parse().id)
    assert batch.status == "failed" and batch.errors and batch.errors.data
    assert [(e.code, e.line) for e in batch.errors.data] == [
        ("invalid_method", 1),
        ("url_mismatch", 2),
    ]
    assert batch.failed_at is not None and batch.output_file_id is None


def test_errors_have_openai_shape_and_request_id(server: SandboxServer) -> None:
    base = f"{server.url}/openai/v1"
    with httpx2.Client() as http:
        for method, path, headers in (
            ("GET", "/batches", {}),
            ("GET", "/batches", {"authorization": "Bearer sk-nope"}),
            ("GET", "/batches/batch_nope", {"authorization": f"Bearer {KEY}"}),
            ("GET", "/files/file-nope/content", {"authorization": f"Bearer {KEY}"}),
            ("GET", "/batches?limit=0", {"authorization": f"Bearer {KEY}"}),
        ):
            r = http.request(method, base + path, headers=headers)
            assert r.status_code in (400, 401, 404)
            assert r.headers["x-request-id"]
            err = r.json()["error"]
            assert set(err) == {"message", "type", "param", "code"}
            assert "sk-nope" not in r.text
    with pytest.raises(openai.AuthenticationError):
        strict_client(server, key="sk-nope").batches.list()
    with pytest.raises(openai.NotFoundError):
        strict_client(server).batches.retrieve("batch_nope")


def test_any_client_max_tokens_parts_and_json_schema(server: SandboxServer, tmp_path: Path) -> None:
    """A hand-written batch file, as any OpenAI batch client would send it."""
    client = strict_client(server)
    schema = {
        "type": "object",
        "properties": {"answer": {"type": "string"}, "score": {"type": "integer", "minimum": 1}},
        "required": ["answer", "score"],
        "additionalProperties": False,
    }

    def line(cid: str, **body: Any) -> bytes:
        return json.dumps(
            {
                "custom_id": cid,
                "method": "POST",
                "url": "/v1/chat/completions",
                "body": {"model": MODEL, **body},
            }
        ).encode()

    parts = [{"type": "text", "text": "describe"}, {"type": "image_url", "image_url": {"url": "x"}}]
    lines = [
        line("short", messages=[{"role": "user", "content": "tell me a long story"}], max_tokens=2),
        line("parts", messages=[{"role": "user", "content": parts}]),
        line(
            "schema",
            messages=[
                {"role": "developer", "content": "answer in JSON"},
                {"role": "user", "content": "rate this"},
            ],
            response_format={"type": "json_schema", "json_schema": {"name": "r", "schema": schema}},
        ),
        line(
            "object",
            messages=[{"role": "user", "content": "json"}],
            response_format={"type": "json_object"},
        ),
    ]
    uploaded = _upload(client, tmp_path, lines).parse()
    batch = client.batches.create(
        input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
    )
    batch = client.batches.retrieve(batch.id)
    assert batch.status == "completed" and batch.error_file_id is None and batch.output_file_id
    out = {
        o["custom_id"]: o["response"]["body"]
        for o in map(json.loads, client.files.content(batch.output_file_id).text.splitlines())
    }
    short = out["short"]["choices"][0]
    assert short["finish_reason"] == "length" and out["short"]["usage"]["completion_tokens"] == 2
    assert "describe" in out["parts"]["choices"][0]["message"]["content"]
    jsonschema.validate(json.loads(out["schema"]["choices"][0]["message"]["content"]), schema)
    assert isinstance(json.loads(out["object"]["choices"][0]["message"]["content"]), dict)


def test_content_offset_download(server: SandboxServer, tmp_path: Path) -> None:
    client = strict_client(server)
    data = b"".join(provider_for(server).encode(i, MODEL) + b"\n" for i in items(3))
    uploaded = _upload(client, tmp_path, data.splitlines()).parse()
    assert client.files.content(uploaded.id).content == data
    tail = client.files.content(uploaded.id, extra_query={"offset": 17}).content
    assert tail == data[17:]
    assert client.files.content(uploaded.id, extra_query={"offset": len(data) + 5}).content == b""
    with pytest.raises(openai.BadRequestError):
        client.files.content(uploaded.id, extra_query={"offset": -1})


def test_list_pagination(server: SandboxServer, tmp_path: Path) -> None:
    client = strict_client(server)
    uploaded = _upload(client, tmp_path, [provider_for(server).encode(items(1)[0], MODEL)]).parse()
    created = [
        client.batches.create(
            input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
        ).id
        for _ in range(5)
    ]
    first = client.batches.list(limit=2)
    assert first.has_more and [b.id for b in first.data] == created[::-1][:2]
    assert [b.id for b in client.batches.list(limit=2)] == created[::-1]  # auto-paginates
    assert [f.id for f in client.files.list(limit=1, order="asc", purpose="batch")] == [uploaded.id]


def test_upload_options_and_bad_requests(server: SandboxServer, tmp_path: Path) -> None:
    client = strict_client(server)
    path = write_lines(tmp_path / "x.jsonl", [b"{}"])
    with path.open("rb") as fh:
        f = client.files.create(
            file=fh, purpose="batch", expires_after={"anchor": "created_at", "seconds": 3600}
        )
    assert f.expires_at == f.created_at + 3600
    with path.open("rb") as fh, pytest.raises(openai.BadRequestError):
        client.files.create(
            file=fh, purpose="batch", expires_after={"anchor": "created_at", "seconds": 5}
        )
    with pytest.raises(openai.BadRequestError):
        client.batches.create(
            input_file_id=f.id,
            endpoint="/v1/chat/completions",
            completion_window="24h",
            metadata={f"k{i}": "v" for i in range(17)},
        )
    wrong_name = write_lines(tmp_path / "x.csv", [b"{}"])
    with wrong_name.open("rb") as fh, pytest.raises(openai.BadRequestError):
        client.files.create(file=fh, purpose="batch")
    server.engine.clock.advance(3601)  # the file has expired
    with pytest.raises(openai.NotFoundError):
        client.files.retrieve(f.id)


def test_sdk_settings_and_env_point_at_sandbox(server: SandboxServer) -> None:
    from polybatch_openai.provider import OpenAIProvider

    settings = OpenAIProvider.sandbox_settings(server.url, KEY)
    env = OpenAIProvider.sandbox_env(server.url, KEY)
    assert settings["base_url"] == env["OPENAI_BASE_URL"] == f"{server.url}/openai/v1"
    assert env["OPENAI_API_KEY"] == KEY
    # the unchanged document is valid JSON Schema too (sanity check on the copies)
    doc = json.loads((DATA / FILES).read_text())
    jsonschema.validators.validator_for(doc).check_schema(copy.deepcopy(doc))
