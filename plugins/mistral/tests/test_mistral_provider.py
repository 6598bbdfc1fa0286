"""The provider driven through the real mistralai SDK against the sandbox over loopback HTTP."""

from __future__ import annotations

import pathlib
from pathlib import Path
from typing import Any

import pytest
from mistral_testlib import (
    KEY,
    MODEL,
    ServerFactory,
    by_id,
    items,
    provider_for,
    sdk_client,
    submit_items,
    wait_terminal,
    write_lines,
)
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

import polybatch
from polybatch.errors import ItemValidationError, ProviderError
from polybatch.items import BatchItem
from polybatch.providers import META_JOB
from polybatch.sandbox import Faults, SandboxServer
from polybatch.sandbox.engine import DAY
from polybatch.tokens import count_tokens, prompt_tokens
from polybatch_mistral import sandbox as mistral_sandbox
from polybatch_mistral.provider import MistralProvider


def test_results_carry_the_chat_completion(make_server: ServerFactory, tmp_path: Path) -> None:
    # the lifecycle and its progress counts are the conformance suite's; this is the mistral part
    provider = provider_for(make_server())
    batch = submit_items(provider, items(5, max_tokens=50), tmp_path)
    results = by_id(list(provider.results(batch.batch_id)))
    assert set(results) == {f"c{i}" for i in range(5)}
    for r in results.values():
        assert r.ok and r.text and r.finish_reason == "stop"
        assert r.provider == "mistral" and r.batch_id == batch.batch_id and r.model == MODEL
        assert r.response is not None and r.response["object"] == "chat.completion"


def test_usage_maps_to_disjoint_buckets(provider: MistralProvider, tmp_path: Path) -> None:
    batch_items = [
        BatchItem(
            custom_id="u",
            messages=[
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "Name three colours, please."},
            ],
        )
    ]
    sub = submit_items(provider, batch_items, tmp_path)
    (r,) = provider.results(sub.batch_id)
    assert r.ok and r.text
    assert r.usage.input_tokens == prompt_tokens(["Be brief.", "Name three colours, please."])
    assert r.usage.cached_input_tokens == 0 and r.usage.cache_write_tokens == 0
    assert r.usage.output_tokens == count_tokens(r.text) > 0
    assert r.response is not None
    assert r.response["usage"]["total_tokens"] == r.usage.total_tokens


def test_max_tokens_reaches_the_model(provider: MistralProvider, tmp_path: Path) -> None:
    sub = submit_items(provider, items(3, max_tokens=2), tmp_path)
    for r in provider.results(sub.batch_id):
        assert r.finish_reason == "length" and r.usage.output_tokens <= 2


def test_per_item_errors_land_in_error_file(make_server: ServerFactory, tmp_path: Path) -> None:
    server = make_server(faults=Faults(seed=3, item_error_rate=0.3))
    provider = provider_for(server)
    bad = [
        BatchItem(
            custom_id="neg",
            messages=[{"role": "user", "content": "x"}],
            max_tokens=None,
            extra={"max_tokens": -1},
        ),
        BatchItem(custom_id="n0", messages=[{"role": "user", "content": "x"}], extra={"n": 0}),
    ]
    lines = [provider.encode(i, MODEL) for i in items(30) + bad]
    # a line no BatchItem can produce: an unknown role, straight on the wire
    lines.append(b'{"custom_id":"role","body":{"messages":[{"role":"wizard","content":"hi"}]}}')
    sub = provider.submit(write_lines(tmp_path / "in.jsonl", lines), model=MODEL, metadata={})
    status = wait_terminal(provider, server.engine, sub.batch_id)
    assert status.state == "completed"
    results = by_id(list(provider.results(sub.batch_id)))
    assert len(results) == 33 and status.completed + status.failed == 33

    for cid, param in (("neg", "max_tokens"), ("n0", "n"), ("role", "messages[0].role")):
        r = results[cid]
        assert r.status == "errored" and r.error is not None
        assert r.error.status_code == 400 and not r.error.retryable
        assert r.response is not None and r.response["param"] == param
    server_errors = [r for r in results.values() if r.error and r.error.status_code == 500]
    assert server_errors, "item_error_rate=0.3 over 33 requests should strike"
    assert all(r.error and r.error.retryable for r in server_errors)
    assert sum(1 for r in results.values() if not r.ok) == status.failed


def test_cancel_midway_reports_unrun_requests_as_canceled(
    make_server: ServerFactory, tmp_path: Path
) -> None:
    server = make_server(rate=5.0, cancel_seconds=30)
    provider = provider_for(server)
    sub = submit_items(provider, items(50), tmp_path)
    server.engine.clock.advance(2)  # 10 of 50 have run
    provider.cancel(sub.batch_id)
    assert provider.poll(sub.batch_id).state == "cancelling"  # CANCELLATION_REQUESTED
    status = wait_terminal(provider, server.engine, sub.batch_id)
    assert status.state == "cancelled"

    results = by_id(list(provider.results(sub.batch_id)))
    assert len(results) == 50
    done = [r for r in results.values() if r.ok]
    canceled = [r for r in results.values() if r.status == "cancelled"]
    assert len(done) == 10 == status.completed and len(canceled) == 40
    assert all(
        r.error and r.error.code == "batch_cancelled" and r.error.retryable for r in canceled
    )
    provider.cancel(sub.batch_id)  # cancelling an ended job is harmless


def test_timeout_turns_leftovers_into_expired(make_server: ServerFactory, tmp_path: Path) -> None:
    server = make_server(rate=10 / (2 * DAY))  # 10 requests would need two days
    provider = provider_for(server)
    sub = submit_items(provider, items(10), tmp_path)
    assert provider.poll(sub.batch_id).state == "in_progress"
    with pytest.raises(ProviderError, match="results exist only once"):
        next(provider.results(sub.batch_id))
    server.engine.clock.advance(DAY + 1)  # the default timeout_hours is 24
    status = provider.poll(sub.batch_id)
    assert status.state == "expired" and status.terminal  # TIMEOUT_EXCEEDED

    results = by_id(list(provider.results(sub.batch_id)))
    expired = [r for r in results.values() if r.status == "expired"]
    assert len(results) == 10 and len(expired) == 5 == 10 - status.completed
    assert all(r.error and r.error.code == "batch_expired" and r.error.retryable for r in expired)


def test_timeout_hours_setting_shortens_the_job(server: SandboxServer, tmp_path: Path) -> None:
    server.engine.rate = 1 / 3600  # one request an hour
    provider = MistralProvider(
        **MistralProvider.sandbox_settings(server.url, KEY),
        settings={"retries": False, "timeout_hours": 2},
    )
    sub = submit_items(provider, items(5), tmp_path)
    server.engine.clock.advance(2 * 3600 + 1)
    status = provider.poll(sub.batch_id)
    assert status.state == "expired" and status.completed == 2


def test_leftovers_after_cleanup_are_left_to_the_runner(
    make_server: ServerFactory, tmp_path: Path
) -> None:
    server = make_server(rate=1.0)
    server.engine.clock.freeze()  # the counts below depend on sandbox time alone
    provider = provider_for(server)
    sub = submit_items(provider, items(5), tmp_path)
    server.engine.clock.advance(2)
    provider.cancel(sub.batch_id)
    provider.cleanup(sub)  # the input file is gone: unrun ids cannot be listed any more
    results = by_id(list(provider.results(sub.batch_id)))
    assert set(results) == {"c0", "c1"}


def test_failed_validation_fails_the_job(provider: MistralProvider, tmp_path: Path) -> None:
    lines = [provider.encode(i, MODEL) for i in items(3)]
    lines.append(lines[1])  # duplicate custom_id on line 4
    lines.append(b"{not json")
    sub = provider.submit(write_lines(tmp_path / "dup.jsonl", lines), model=MODEL, metadata={})
    status = provider.poll(sub.batch_id)
    assert status.state == "failed" and status.terminal
    assert status.message is not None
    assert 'Duplicate custom_id "c1" on line 4' in status.message
    assert "Invalid line 5" in status.message
    assert list(provider.results(sub.batch_id)) == []


def test_wrong_key_is_a_401_provider_error(server: SandboxServer, tmp_path: Path) -> None:
    wrong = "wrong-key-abcdef123456"
    provider = provider_for(server, api_key=wrong)
    with pytest.raises(ProviderError) as info:
        submit_items(provider, items(1), tmp_path)
    assert info.value.status_code == 401 and not info.value.retryable
    assert wrong not in str(info.value) and "MISTRAL_API_KEY" in str(info.value)
    assert info.value.__cause__ is not None  # raised from the SDK's error
    assert not server.engine.files and not server.engine.batches


def test_find_batch_pages_through_the_list(server: SandboxServer, tmp_path: Path) -> None:
    def paged(**settings: object) -> MistralProvider:
        return MistralProvider(
            **MistralProvider.sandbox_settings(server.url, KEY),
            settings={"retries": False, "find_batch_page_size": 4, **settings},
        )

    provider = paged()
    target = submit_items(provider, items(1), tmp_path, metadata={META_JOB: "old"})
    for i in range(9):  # more than two pages of newer jobs
        submit_items(provider, items(1), tmp_path, metadata={META_JOB: f"new{i}"})
    assert provider.find_batch({META_JOB: "old"}) == target.batch_id
    assert provider.find_batch({META_JOB: "new8"}) is not None
    assert paged(find_batch_limit=5).find_batch({META_JOB: "old"}) is None


def test_submit_streams_the_file(
    provider: MistralProvider,
    server: SandboxServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    lines = [provider.encode(i, MODEL) for i in items(3)]
    path = write_lines(tmp_path / "lines.txt", lines)

    def refuse(self: pathlib.Path) -> bytes:
        raise AssertionError("the lines file must be streamed, not read whole")

    monkeypatch.setattr(pathlib.Path, "read_bytes", refuse)
    sub = provider.submit(path, model=MODEL, metadata={})
    with sdk_client(server) as client:
        f = client.files.retrieve(file_id=sub.input_file_id or "")
    assert f.filename == "lines.jsonl" and f.size_bytes == path.stat().st_size
    assert f.purpose == "batch"


def test_job_carries_model_and_metadata(
    provider: MistralProvider, server: SandboxServer, tmp_path: Path
) -> None:
    sub = submit_items(provider, items(1), tmp_path, metadata={META_JOB: "j"})
    with sdk_client(server) as client:
        job = client.batch.jobs.get(job_id=sub.batch_id)
    assert job.model == MODEL and job.metadata == {META_JOB: "j"}
    assert job.endpoint == "/v1/chat/completions" and job.input_files == [sub.input_file_id]


def test_validate_item_rejects_what_mistral_cannot_take(provider: MistralProvider) -> None:
    user = [{"role": "user", "content": "hi"}]
    bad = [
        BatchItem(messages=user, extra={"stream": True}),
        BatchItem(messages=user, extra={"model": "other"}),
        BatchItem(messages=user, extra={"seed": 1}),
        BatchItem(messages=user, seed=3, extra={"random_seed": 4}),
        BatchItem(messages=user, max_tokens=5, extra={"max_tokens": 6}),
        BatchItem(messages=user, seed=-1),
        BatchItem(
            messages=user, response_format={"type": "json_schema", "json_schema": {"schema": {}}}
        ),
        BatchItem(
            messages=user, response_format={"type": "json_schema", "json_schema": {"name": "x"}}
        ),
        BatchItem(
            messages=[
                {"role": "system", "content": [{"type": "image_url", "image_url": "http://x"}]},
                *user,
            ]
        ),
        BatchItem(messages=[{"role": "user", "content": [{"type": "video", "url": "x"}]}]),
    ]
    for item in bad:
        with pytest.raises(ItemValidationError):
            provider.validate_item(item, MODEL)
    provider.validate_item(
        BatchItem(
            messages=[
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "hi"},
                        {"type": "image_url", "image_url": {"url": "https://x/y.png"}},
                    ],
                }
            ],
            stop=["x"],
            seed=7,
            response_format={"type": "json_schema", "json_schema": {"name": "out", "schema": {}}},
        ),
        MODEL,
    )


def test_a_lost_create_answer_makes_no_duplicate_job(
    make_server: ServerFactory, polybatch_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the job is created, then a gateway answers 502: the SDK would retry a 502 (SDK retries
    # are on here, the default), and a retried create is a second job nobody tracks
    real = mistral_sandbox.MistralApi.create_job
    creates: list[int] = []

    async def create_then_502(self: Any, request: Request) -> Response:
        response = await real(self, request)
        creates.append(response.status_code)
        return JSONResponse({"message": "bad gateway"}, 502) if len(creates) == 1 else response

    monkeypatch.setattr(mistral_sandbox.MistralApi, "create_job", create_then_502)
    server = make_server()  # after the patch: routes bind the handler when the server starts
    batch_items = items(4)
    job = polybatch.submit(batch_items, f"mistral:{MODEL}", sandbox=server)
    job.wait(poll_min=0.01, poll_max=0.05, timeout=60)
    # the runner found the first job by its metadata (afind_batch) instead of creating another
    assert creates == [200] and len(server.engine.batches) == 1
    assert {c.batch_id for c in job.chunks()} == set(server.engine.batches)
    assert [r.custom_id for r in job.results()] == [i.custom_id for i in batch_items]
