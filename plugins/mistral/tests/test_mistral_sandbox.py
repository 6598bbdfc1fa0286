"""The sandbox's Mistral API: the SDK's own pydantic models accept every response shape."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, get_args

import httpx2
import pytest
from mistral_testlib import KEY, MODEL, ServerFactory, items, provider_for, write_lines
from mistralai.client import Mistral, models

from polybatch.sandbox import SandboxServer
from polybatch_mistral import codec

STATUSES = set(get_args(get_args(models.BatchJobStatus)[0]))


def client_for(server: SandboxServer, key: str = KEY) -> Mistral:
    return Mistral(api_key=key, server_url=f"{server.url}/mistral")


def raw(server: SandboxServer, method: str, path: str, **kwargs: Any) -> httpx2.Response:
    headers = {"Authorization": f"Bearer {KEY}", **kwargs.pop("headers", {})}
    return httpx2.request(method, f"{server.url}/mistral{path}", headers=headers, **kwargs)


def strict(model: type[models.BaseModel], data: Any) -> Any:
    """Validate like the SDK does, and also refuse fields the model does not know."""
    parsed = model.model_validate(data)
    known = {f.alias or name for name, f in model.model_fields.items()}
    unknown = set(data) - known
    assert not unknown, f"{model.__name__} has no fields {sorted(unknown)}"
    return parsed


def test_paths_the_sdk_calls(make_server: ServerFactory, tmp_path: Path) -> None:
    server = make_server(rate=2.0)
    provider = provider_for(server)
    lines = [provider.encode(i, MODEL) for i in items(4)]
    sub = provider.submit(write_lines(tmp_path / "in.jsonl", lines), model=MODEL, metadata={})
    provider.poll(sub.batch_id)
    provider.cancel(sub.batch_id)
    server.engine.clock.advance(60)
    list(provider.results(sub.batch_id))
    provider.find_batch({"k": "v"})
    provider.cleanup(sub)
    seen = {(m, p.replace(sub.batch_id, "{job}")) for m, p in server.engine.requests_seen}
    seen = {
        (m, p if sub.input_file_id is None else p.replace(sub.input_file_id, "{in}"))
        for m, p in seen
    }
    assert {
        ("POST", "/mistral/v1/files"),
        ("POST", "/mistral/v1/batch/jobs"),
        ("GET", "/mistral/v1/batch/jobs/{job}"),
        ("POST", "/mistral/v1/batch/jobs/{job}/cancel"),
        ("GET", "/mistral/v1/batch/jobs"),
        ("GET", "/mistral/v1/files/{in}/content"),
        ("DELETE", "/mistral/v1/files/{in}"),
    } <= seen


def test_every_response_parses_with_the_sdk_models(
    make_server: ServerFactory, tmp_path: Path
) -> None:
    server = make_server(rate=4.0, cancel_seconds=10)
    server.engine.clock.freeze()  # requests run only as the test advances the clock: exact counts on any machine
    client = client_for(server)
    provider = provider_for(server)
    path = write_lines(tmp_path / "in.jsonl", [provider.encode(i, MODEL) for i in items(8)])

    with path.open("rb") as fh:
        res = raw(
            server, "POST", "/v1/files", files={"file": ("in.jsonl", fh)}, data={"purpose": "batch"}
        )
    assert res.status_code == 200
    uploaded = strict(models.CreateFileResponse, res.json())
    assert uploaded.purpose == "batch" and uploaded.sample_type == "batch_request"
    assert uploaded.num_lines == 8 and uploaded.size_bytes == path.stat().st_size
    strict(models.GetFileResponse, raw(server, "GET", f"/v1/files/{uploaded.id}").json())
    listing = strict(models.ListFilesResponse, raw(server, "GET", "/v1/files").json())
    assert [f.id for f in listing.data] == [uploaded.id] and listing.total == 1

    body = {
        "endpoint": "/v1/chat/completions",
        "input_files": [uploaded.id],
        "model": MODEL,
        "metadata": {"a": "b"},
    }
    created = raw(server, "POST", "/v1/batch/jobs", json=body).json()
    job = strict(models.BatchJob, created)
    assert job.status == "QUEUED" or job.status == "RUNNING"
    server.engine.clock.advance(1)  # 4 of 8 ran
    running = strict(models.BatchJob, raw(server, "GET", f"/v1/batch/jobs/{job.id}").json())
    assert running.status == "RUNNING" and running.completed_requests == 4
    assert running.started_at is not None and running.completed_at is None
    cancelling = strict(
        models.BatchJob, raw(server, "POST", f"/v1/batch/jobs/{job.id}/cancel").json()
    )
    assert cancelling.status == "CANCELLATION_REQUESTED"
    server.engine.clock.advance(11)
    done = strict(models.BatchJob, raw(server, "GET", f"/v1/batch/jobs/{job.id}").json())
    assert done.status == "CANCELLED" and done.output_file and done.error_file is None
    assert done.succeeded_requests == 4 and done.total_requests == 8
    assert done.status in STATUSES

    jobs = strict(models.ListBatchJobsResponse, raw(server, "GET", "/v1/batch/jobs").json())
    assert jobs.total == 1 and jobs.data and jobs.data[0].id == job.id

    content = raw(server, "GET", f"/v1/files/{done.output_file}/content")
    assert content.headers["content-type"] == "application/octet-stream"
    out_lines = [json.loads(line) for line in content.content.splitlines()]
    assert len(out_lines) == 4
    for line in out_lines:
        assert set(line) == {"id", "custom_id", "response", "error"}
        assert line["response"]["status_code"] == 200
        strict(models.ChatCompletionResponse, line["response"]["body"])
    out_file = strict(
        models.GetFileResponse, raw(server, "GET", f"/v1/files/{done.output_file}").json()
    )
    assert out_file.sample_type == "batch_result" and out_file.source == "mistral"

    deleted = strict(
        models.DeleteFileResponse, raw(server, "DELETE", f"/v1/files/{uploaded.id}").json()
    )
    assert deleted.deleted
    gone = strict(
        models.DeleteBatchJobResponse, raw(server, "DELETE", f"/v1/batch/jobs/{job.id}").json()
    )
    assert gone.deleted
    # and the SDK itself parses them (it would raise ResponseValidationError otherwise)
    assert client.batch.jobs.list().total == 0
    assert client.files.list().total == 1  # the output file remains


def test_error_lines_carry_mistral_error_bodies(make_server: ServerFactory, tmp_path: Path) -> None:
    from polybatch.sandbox import Faults

    server = make_server(faults=Faults(item_error_rate=1.0))
    client = client_for(server)
    provider = provider_for(server)
    path = write_lines(tmp_path / "in.jsonl", [provider.encode(i, MODEL) for i in items(2)])
    sub = provider.submit(path, model=MODEL, metadata={})
    job = client.batch.jobs.get(job_id=sub.batch_id)
    assert job.status == "SUCCESS" and job.failed_requests == 2 and job.output_file is None
    assert job.error_file
    data = client.files.download(file_id=job.error_file).read()
    for raw_line in data.splitlines():
        line = json.loads(raw_line)
        assert line["response"]["status_code"] == 500
        assert set(line["response"]["body"]) == {"object", "message", "type", "param", "code"}


def test_inline_requests_and_job_model(server: SandboxServer) -> None:
    client = client_for(server)
    job = client.batch.jobs.create(
        endpoint="/v1/chat/completions",
        model=MODEL,
        requests=[{"custom_id": "i0", "body": {"messages": [{"role": "user", "content": "hi"}]}}],
    )
    job = client.batch.jobs.get(job_id=job.id)
    assert job.status == "SUCCESS" and job.succeeded_requests == 1 and job.input_files == []
    assert job.output_file
    line = json.loads(client.files.download(file_id=job.output_file).read())
    assert line["custom_id"] == "i0" and line["response"]["body"]["model"] == MODEL


def test_requests_need_the_bearer_key(server: SandboxServer) -> None:
    for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": f"Basic {KEY}"}):
        res = httpx2.get(f"{server.url}/mistral/v1/batch/jobs", headers=headers)
        assert res.status_code == 401 and "nope" not in res.text
    assert raw(server, "GET", "/v1/batch/jobs").status_code == 200


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"endpoint": "/v1/nope", "input_files": ["x"]}, 422),
        ({"endpoint": "/v1/ocr", "input_files": ["x"]}, 400),  # a batch endpoint not emulated
        ({"endpoint": "/v1/chat/completions"}, 422),
        ({"endpoint": "/v1/chat/completions", "input_files": ["missing"]}, 404),
        ({"endpoint": "/v1/chat/completions", "input_files": ["x"], "timeout_hours": 0}, 422),
        ({"endpoint": "/v1/chat/completions", "input_files": ["x"], "metadata": {"a": 1}}, 422),
    ],
)
def test_job_creation_is_validated(
    server: SandboxServer, body: dict[str, Any], status: int
) -> None:
    res = raw(server, "POST", "/v1/batch/jobs", json=body)
    assert res.status_code == status
    assert res.json()["object"] == "error" and res.json()["message"]


def test_unknown_ids_are_404(server: SandboxServer) -> None:
    for method, path in (
        ("GET", "/v1/batch/jobs/nope"),
        ("POST", "/v1/batch/jobs/nope/cancel"),
        ("GET", "/v1/files/nope"),
        ("GET", "/v1/files/nope/content"),
        ("DELETE", "/v1/files/nope"),
    ):
        assert raw(server, method, path).status_code == 404, (method, path)


def test_codec_sandbox_validation_errors() -> None:
    ok = codec.parse_chat_body({"messages": [{"role": "user", "content": "x"}]}, job_model="m")
    assert ok.model == "m" and ok.n == 1
    for body, param in (
        ({"messages": [{"role": "user", "content": "x"}]}, "model"),
        ({"model": "m", "messages": []}, "messages"),
        ({"model": "m", "messages": [{"role": "user", "content": "x"}], "stream": True}, "stream"),
        ({"model": "m", "messages": [{"role": "user", "content": "x"}], "top_p": 2}, "top_p"),
        (
            {"model": "m", "messages": [{"role": "user", "content": "x"}], "random_seed": -1},
            "random_seed",
        ),
        ({"model": "m", "messages": [{"role": "user", "content": "x"}], "stop": [1]}, "stop"),
        (
            {"model": "m", "messages": [{"role": "system", "content": [{"type": "image_url"}]}]},
            "messages[0].content[0]",
        ),
        (
            {
                "model": "m",
                "messages": [{"role": "user", "content": "x"}],
                "response_format": {"type": "json_schema", "json_schema": {"name": "n"}},
            },
            "response_format.json_schema.schema",
        ),
    ):
        with pytest.raises(codec.WireError) as info:
            codec.parse_chat_body(body, job_model=None)
        assert info.value.param == param, body
