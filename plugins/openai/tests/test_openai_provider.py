"""The provider driven through the real openai SDK against the sandbox over loopback HTTP."""

from __future__ import annotations

import pathlib
from pathlib import Path

import pytest
from openai_testlib import (
    MODEL,
    ServerFactory,
    by_id,
    inspector,
    items,
    provider_for,
    submit_items,
    wait_terminal,
    write_lines,
)

from polybatch.errors import ItemValidationError, ProviderError
from polybatch.items import BatchItem
from polybatch.sandbox import Faults, SandboxServer
from polybatch.sandbox.engine import DAY
from polybatch.tokens import count_tokens
from polybatch_openai.provider import OpenAIProvider


def test_results_carry_the_chat_completion_and_its_usage(
    make_server: ServerFactory, tmp_path: Path
) -> None:
    # the lifecycle and its progress counts are the conformance suite's; this is the openai part
    provider = provider_for(make_server())
    batch = submit_items(provider, items(5, max_tokens=50), tmp_path)
    results = by_id(list(provider.results(batch.batch_id)))
    assert set(results) == {f"c{i}" for i in range(5)}
    for r in results.values():
        assert r.ok and r.text and r.finish_reason == "stop"
        assert r.provider == "openai" and r.batch_id == batch.batch_id and r.model == MODEL
        # the sandbox counts like polybatch.tokens: output tokens are the reply's tokens
        assert r.usage.output_tokens == count_tokens(r.text) > 0
        assert r.usage.input_tokens > 0 and r.usage.cached_input_tokens == 0
        assert r.response is not None and r.response["object"] == "chat.completion"


def test_failed_lines_land_in_error_file(make_server: ServerFactory, tmp_path: Path) -> None:
    server = make_server(faults=Faults(seed=3, item_error_rate=0.3))
    provider = provider_for(server)
    good = items(30)
    bad = [
        BatchItem(
            custom_id="hot", messages=[{"role": "user", "content": "x"}], extra={"temperature": 5}
        ),
        BatchItem(custom_id="n0", messages=[{"role": "user", "content": "x"}], extra={"n": 0}),
    ]
    lines = [provider.encode(i, MODEL) for i in good + bad]
    # a line no BatchItem can produce: an unknown role, straight on the wire
    lines.append(
        b'{"custom_id":"role","method":"POST","url":"/v1/chat/completions",'
        b'"body":{"model":"gpt-4o-mini","messages":[{"role":"wizard","content":"hi"}]}}'
    )
    sub = provider.submit(write_lines(tmp_path / "in.jsonl", lines), model=MODEL, metadata={})
    status = wait_terminal(provider, server.engine, sub.batch_id)
    results = by_id(list(provider.results(sub.batch_id)))
    assert len(results) == 33
    assert status.completed + status.failed == 33

    for cid, param in (("hot", "temperature"), ("n0", "n"), ("role", "messages[0].role")):
        r = results[cid]
        assert r.status == "errored" and r.error is not None
        assert r.error.status_code == 400 and not r.error.retryable
        assert r.response is not None and r.response["error"]["param"] == param
    server_errors = [r for r in results.values() if r.error and r.error.status_code == 500]
    assert server_errors, "item_error_rate=0.3 over 33 requests should strike"
    assert all(
        r.error and r.error.code == "server_error" and r.error.retryable for r in server_errors
    )
    failed = sum(1 for r in results.values() if not r.ok)
    assert failed == status.failed and status.completed == 33 - failed


def test_cancel_midway_keeps_partial_results(make_server: ServerFactory, tmp_path: Path) -> None:
    server = make_server(rate=5.0, cancel_seconds=30)
    provider = provider_for(server)
    sub = submit_items(provider, items(50), tmp_path)
    server.engine.clock.advance(2)  # 10 of 50 run
    provider.cancel(sub.batch_id)
    assert provider.poll(sub.batch_id).state == "cancelling"
    status = wait_terminal(provider, server.engine, sub.batch_id)
    assert status.state == "cancelled"

    results = by_id(list(provider.results(sub.batch_id)))
    assert len(results) == 50
    done = [r for r in results.values() if r.ok]
    canceled = [r for r in results.values() if r.status == "cancelled"]
    assert len(done) == 10 == status.completed
    assert len(canceled) == 40
    assert all(
        r.error and r.error.code == "batch_cancelled" and r.error.retryable for r in canceled
    )
    provider.cancel(sub.batch_id)  # cancelling an ended batch is harmless


def test_expiry_turns_leftovers_into_expired(make_server: ServerFactory, tmp_path: Path) -> None:
    server = make_server(rate=10 / (2 * DAY))  # 10 requests would need two days
    provider = provider_for(server)
    sub = submit_items(provider, items(10), tmp_path)
    assert provider.poll(sub.batch_id).state == "in_progress"
    with pytest.raises(ProviderError, match="results exist only once"):
        next(provider.results(sub.batch_id))
    server.engine.clock.advance(DAY + 1)
    status = provider.poll(sub.batch_id)
    assert status.state == "expired" and status.terminal

    results = by_id(list(provider.results(sub.batch_id)))
    expired = [r for r in results.values() if r.status == "expired"]
    assert len(results) == 10 and len(expired) == 5 == 10 - status.completed
    assert all(r.error and r.error.code == "batch_expired" and r.error.retryable for r in expired)


def test_validation_failure_fails_the_batch(
    provider: OpenAIProvider, server: SandboxServer, tmp_path: Path
) -> None:
    lines = [provider.encode(i, MODEL) for i in items(3)]
    lines.append(lines[1])  # duplicate custom_id on line 4
    lines.append(b"{not json")
    sub = provider.submit(write_lines(tmp_path / "dup.jsonl", lines), model=MODEL, metadata={})
    status = provider.poll(sub.batch_id)
    assert status.state == "failed" and status.terminal
    assert status.message is not None
    assert "line 4: duplicate_custom_id" in status.message
    assert "line 5: invalid_json_line" in status.message
    assert list(provider.results(sub.batch_id)) == []


def test_empty_file_fails(provider: OpenAIProvider, tmp_path: Path) -> None:
    sub = provider.submit(write_lines(tmp_path / "e.jsonl", []), model=MODEL, metadata={})
    status = provider.poll(sub.batch_id)
    assert status.state == "failed" and status.message and "empty_file" in status.message


def test_wrong_key_is_a_401_provider_error(server: SandboxServer, tmp_path: Path) -> None:
    wrong = "sk-wrong-key-abcdef123456"
    provider = provider_for(server, api_key=wrong)
    with pytest.raises(ProviderError) as info:
        submit_items(provider, items(1), tmp_path)
    assert info.value.status_code == 401 and not info.value.retryable
    assert wrong not in str(info.value) and "OPENAI_API_KEY" in str(info.value)
    assert isinstance(info.value.__cause__, Exception)  # raised from the SDK's error


def test_submit_streams_the_file(
    provider: OpenAIProvider, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lines = [provider.encode(i, MODEL) for i in items(3)]
    path = write_lines(tmp_path / "lines.txt", lines)

    def refuse(self: pathlib.Path) -> bytes:
        raise AssertionError("the lines file must be streamed, not read whole")

    monkeypatch.setattr(pathlib.Path, "read_bytes", refuse)
    sub = provider.submit(path, model=MODEL, metadata={})
    f = inspector(provider).files.retrieve(sub.input_file_id or "")
    assert f.filename == "lines.jsonl" and f.bytes == path.stat().st_size


def test_validate_item_rejects_what_openai_cannot_take(provider: OpenAIProvider) -> None:
    user = [{"role": "user", "content": "hi"}]
    bad = [
        BatchItem(messages=user, extra={"stream": True}),
        BatchItem(messages=user, extra={"model": "other"}),
        BatchItem(messages=user, max_tokens=5, extra={"max_tokens": 6}),
        BatchItem(messages=user, stop=["a", "b", "c", "d", "e"]),
        BatchItem(messages=user, seed=2**70),
        BatchItem(
            messages=user, response_format={"type": "json_schema", "json_schema": {"schema": {}}}
        ),
        BatchItem(
            messages=[
                {"role": "system", "content": [{"type": "image_url", "image_url": {"url": "x"}}]},
                *user,
            ]
        ),
    ]
    for item in bad:
        with pytest.raises(ItemValidationError):
            provider.validate_item(item, MODEL)
    provider.validate_item(
        BatchItem(
            messages=[{"role": "user", "content": [{"type": "text", "text": "hi"}]}],
            stop=["x"],
            response_format={"type": "json_schema", "json_schema": {"name": "out", "schema": {}}},
        ),
        MODEL,
    )
