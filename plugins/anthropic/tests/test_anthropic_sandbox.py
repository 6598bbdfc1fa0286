"""The sandbox's Message Batches API, driven by the real anthropic SDK over loopback HTTP."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import anthropic
import jsonschema  # type: ignore[import-untyped]
import pytest
from anthropic_support import KEY, MODEL, strict_client

from polybatch.sandbox import SandboxServer
from polybatch_anthropic.provider import AnthropicProvider

Sandbox = Callable[..., AbstractContextManager[SandboxServer]]
# copied from /work/shared/specs (see the file's $comment): the 2024-11 published schema
SCHEMA = json.loads(
    (Path(__file__).parent / "data" / "anthropic-2024-11.message-batch.schema.json").read_text()
)


def schema_check(obj: Any, name: str) -> None:
    jsonschema.validate(obj, {"$ref": f"#/$defs/{name}", "$defs": SCHEMA["$defs"]})


def req(cid: str, **params: Any) -> Any:
    body = {
        "model": MODEL,
        "max_tokens": 64,
        "messages": [{"role": "user", "content": f"hi {cid}"}],
    }
    body.update(params)
    body = {k: v for k, v in body.items() if v is not None}  # None: leave the field out
    return {"custom_id": cid, "params": body}


def raw(
    srv: SandboxServer, method: str, path: str, headers: dict[str, str], body: Any = None
) -> tuple[int, dict[str, str], Any]:
    data = json.dumps(body).encode() if body is not None else None
    r = urllib.request.Request(
        srv.url + "/anthropic" + path,
        data=data,
        method=method,
        headers={"content-type": "application/json", **headers},
    )
    try:
        with urllib.request.urlopen(r) as resp:
            return resp.status, dict(resp.headers), json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), json.loads(exc.read())


def test_lifecycle_in_strict_mode(sandbox: Sandbox) -> None:
    with sandbox(rate=10) as srv:
        srv.engine.clock.freeze()  # the counts below depend on sandbox time alone
        client = strict_client(srv)
        batch = client.messages.batches.create(requests=[req(f"r{i}") for i in range(20)])
        assert batch.processing_status == "in_progress"
        assert batch.results_url is None and batch.ended_at is None
        assert batch.request_counts.processing == 20
        srv.engine.clock.advance(1)  # half done: counts still all "processing"
        mid = client.messages.batches.retrieve(batch.id)
        assert mid.processing_status == "in_progress"
        assert mid.request_counts.model_dump() == {
            "processing": 20,
            "succeeded": 0,
            "errored": 0,
            "canceled": 0,
            "expired": 0,
        }
        with pytest.raises(anthropic.AnthropicError, match="results_url"):
            list(client.messages.batches.results(batch.id))
        srv.engine.clock.advance(5)
        done = client.messages.batches.retrieve(batch.id)
        assert done.processing_status == "ended" and done.ended_at is not None
        assert done.request_counts.succeeded == 20 and done.request_counts.processing == 0
        assert done.results_url is not None
        assert done.results_url.startswith(srv.url + "/anthropic/v1/messages/batches/")
        assert "api.anthropic.com" not in done.results_url
        results = list(client.messages.batches.results(batch.id))
        assert sorted(r.custom_id for r in results) == sorted(f"r{i}" for i in range(20))
        first = results[0].result
        assert first.type == "succeeded"
        assert first.message.usage.service_tier == "batch"
        assert first.message.content[0].type == "text"
        listed = client.messages.batches.list()
        assert [b.id for b in listed.data] == [batch.id]
        with pytest.raises(anthropic.BadRequestError, match="invalid_request_error"):
            client.messages.batches.cancel(batch.id)  # refused once ended, as the API does
        unchanged = client.messages.batches.retrieve(batch.id)
        assert unchanged.processing_status == "ended" and unchanged.cancel_initiated_at is None
        deleted = client.messages.batches.delete(batch.id)
        assert (deleted.id, deleted.type) == (batch.id, "message_batch_deleted")
        with pytest.raises(anthropic.NotFoundError):
            client.messages.batches.retrieve(batch.id)


def test_objects_match_the_published_schema(server: SandboxServer) -> None:
    headers = {"x-api-key": KEY}
    status, _, batch = raw(
        server, "POST", "/v1/messages/batches", headers, {"requests": [req("a")]}
    )
    assert status == 200
    schema_check(batch, "BetaMessageBatch")
    status, _, page = raw(server, "GET", "/v1/messages/batches?limit=5", headers)
    schema_check(page, "BetaListResponse_MessageBatch_")
    status, _, err = raw(server, "GET", "/v1/messages/batches/nope", headers)
    assert status == 404
    schema_check(err, "BetaErrorResponse")
    assert batch["created_at"].endswith("Z") and "T" in batch["created_at"]


def test_cancel_goes_through_canceling(sandbox: Sandbox) -> None:
    with sandbox(rate=5, cancel_seconds=3) as srv:
        client = strict_client(srv)
        batch = client.messages.batches.create(requests=[req(f"r{i}") for i in range(50)])
        srv.engine.clock.advance(2)  # 10 of 50 processed
        canceling = client.messages.batches.cancel(batch.id)
        assert canceling.processing_status == "canceling"
        assert canceling.cancel_initiated_at is not None
        with pytest.raises(anthropic.BadRequestError):
            client.messages.batches.delete(batch.id)  # not ended yet
        srv.engine.clock.advance(5)
        ended = client.messages.batches.retrieve(batch.id)
        assert ended.processing_status == "ended"
        counts = ended.request_counts
        assert (counts.succeeded, counts.canceled, counts.processing) == (10, 40, 0)
        kinds = [r.result.type for r in client.messages.batches.results(batch.id)]
        assert kinds.count("canceled") == 40 and kinds.count("succeeded") == 10


def test_expiry(sandbox: Sandbox) -> None:
    with sandbox(rate=0.0001) as srv:
        client = strict_client(srv)
        batch = client.messages.batches.create(requests=[req(f"r{i}") for i in range(50)])
        srv.engine.clock.advance(25 * 3600)
        ended = client.messages.batches.retrieve(batch.id)
        assert ended.processing_status == "ended"
        assert ended.request_counts.succeeded == 8  # 86400 s x 0.0001/s
        assert ended.request_counts.expired == 42
        kinds = [r.result.type for r in client.messages.batches.results(batch.id)]
        assert kinds.count("expired") == 42


def test_invalid_params_become_errored_results(server: SandboxServer) -> None:
    client = strict_client(server)
    batch = client.messages.batches.create(
        requests=[
            req("ok"),
            req("no-max", max_tokens=None),
            req("hot", temperature=1.5),
            req("unknown", seed=3),
            req("asst", messages=[{"role": "assistant", "content": "x"}]),
        ]
    )
    assert batch.request_counts.errored == 4
    by_id = {r.custom_id: r.result for r in client.messages.batches.results(batch.id)}
    assert by_id["ok"].type == "succeeded"
    for cid, words in [
        ("no-max", "max_tokens"),
        ("hot", "temperature"),
        ("unknown", "seed"),
        ("asst", "user"),
    ]:
        result = by_id[cid]
        assert result.type == "errored"
        assert result.error.error.type == "invalid_request_error"
        assert words in result.error.error.message


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"requests": []}, "requests"),
        ({}, "requests"),
        ({"requests": [req("bad id")]}, "custom_id"),
        ({"requests": [req("x" * 65)]}, "custom_id"),
        ({"requests": [req("dup"), req("dup")]}, "duplicate"),
        ({"requests": [{"custom_id": "a"}]}, "params"),
    ],
)
def test_create_rejects_bad_shapes(server: SandboxServer, body: dict[str, Any], words: str) -> None:
    status, headers, err = raw(server, "POST", "/v1/messages/batches", {"x-api-key": KEY}, body)
    assert status == 400
    assert err["type"] == "error" and err["error"]["type"] == "invalid_request_error"
    assert words in err["error"]["message"]
    assert headers["request-id"] == err["request_id"]


def test_create_rejects_over_100k_requests(server: SandboxServer) -> None:
    body: dict[str, Any] = {
        "requests": [{}] * 100_001
    }  # the count is checked before each entry's shape
    status, _, err = raw(server, "POST", "/v1/messages/batches", {"x-api-key": KEY}, body)
    assert status == 400 and "100000" in err["error"]["message"]


def test_auth_both_header_styles_and_401(server: SandboxServer) -> None:
    status, headers, _ = raw(server, "GET", "/v1/messages/batches", {"x-api-key": KEY})
    assert status == 200 and headers["request-id"].startswith("req_")
    status, _, _ = raw(server, "GET", "/v1/messages/batches", {"authorization": f"Bearer {KEY}"})
    assert status == 200
    for headers in ({"x-api-key": "wrong"}, {"authorization": "Bearer wrong"}, {}):
        status, _, err = raw(server, "GET", "/v1/messages/batches", headers)
        assert status == 401
        assert err["type"] == "error" and err["error"]["type"] == "authentication_error"
        assert err["request_id"].startswith("req_")
    with pytest.raises(anthropic.AuthenticationError):
        strict_client(server, key="wrong").messages.batches.list()
    strict_client(server).messages.batches.list()  # the SDK sends Bearer


def test_list_pagination(server: SandboxServer) -> None:
    client = strict_client(server)
    ids = [client.messages.batches.create(requests=[req("a")]).id for _ in range(5)]
    newest_first = ids[::-1]
    page = client.messages.batches.list(limit=2)
    assert [b.id for b in page.data] == newest_first[:2]
    assert page.has_more and page.first_id == newest_first[0] and page.last_id == newest_first[1]
    nxt = client.messages.batches.list(limit=2, after_id=page.last_id or "")
    assert [b.id for b in nxt.data] == newest_first[2:4] and nxt.has_more
    last = client.messages.batches.list(limit=2, after_id=nxt.last_id or "")
    assert [b.id for b in last.data] == newest_first[4:] and not last.has_more
    back = client.messages.batches.list(limit=2, before_id=newest_first[4])
    assert [b.id for b in back.data] == newest_first[2:4] and back.has_more
    top = client.messages.batches.list(limit=2, before_id=newest_first[2])
    assert [b.id for b in top.data] == newest_first[:2] and not top.has_more
    # the SDK's auto-pagination walks every page in order, both ways
    assert [b.id for b in client.messages.batches.list(limit=2)] == newest_first
    assert len(list(client.messages.batches.list(limit=1, before_id=newest_first[4]))) == 4
    assert [b.id for b in client.messages.batches.list()] == newest_first  # default limit 20
    with pytest.raises(anthropic.BadRequestError):
        client.messages.batches.list(limit=1001)
    with pytest.raises(anthropic.BadRequestError):
        client.messages.batches.list(limit=0)


def test_results_and_delete_of_unknown_batch(server: SandboxServer) -> None:
    client = strict_client(server)
    with pytest.raises(anthropic.NotFoundError):
        client.messages.batches.delete("msgbatch_nope")
    with pytest.raises(anthropic.NotFoundError):
        client.messages.batches.cancel("msgbatch_nope")


def test_sandbox_env_points_a_plain_client(
    server: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = AnthropicProvider.sandbox_env(server.url, KEY)
    assert env == {"ANTHROPIC_BASE_URL": server.url + "/anthropic", "ANTHROPIC_API_KEY": KEY}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert anthropic.Anthropic(_strict_response_validation=True).messages.batches.list().data == []
