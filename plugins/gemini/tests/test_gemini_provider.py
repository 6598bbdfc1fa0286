"""GeminiProvider end to end through the real google-genai SDK against the sandbox."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable
from contextlib import AbstractContextManager
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import pytest
from gemini_support import KEY, MODEL, item, provider_for, sdk_client, write_lines

from polybatch.errors import CredentialsError, ItemValidationError, ProviderError
from polybatch.items import BatchItem
from polybatch.plugins import PluginRegistry
from polybatch.sandbox import Faults, SandboxServer
from polybatch_gemini import plugin
from polybatch_gemini.provider import GeminiProvider, neutral_state
from polybatch_gemini.sandbox import EXPIRY_SECONDS

Sandbox = Callable[..., AbstractContextManager[SandboxServer]]
META = {"polybatch_job": "job-1", "polybatch_chunk": "0"}


def _items() -> list[BatchItem]:
    schema = {"type": "object", "properties": {"label": {"enum": ["pos", "neg"]}}}
    return [
        item("plain", "Tell me a story about foxes"),
        item("short", "Tell me a long story about foxes", max_tokens=2),
        item("obj", "Give JSON", response_format={"type": "json_object"}),
        item(
            "schema",
            "Classify",
            response_format={"type": "json_schema", "json_schema": {"name": "c", "schema": schema}},
        ),
        BatchItem.model_validate(
            {
                "custom_id": "cached thinker/ü",
                "messages": [
                    {"role": "system", "content": "You are a careful assistant."},
                    {"role": "user", "content": "one"},
                ],
                "extra": {
                    "cachedContent": "cachedContents/abc",
                    "generationConfig": {"thinkingConfig": {"thinkingBudget": 64}},
                },
            }
        ),
    ]


@pytest.mark.parametrize("mode", ["inline", "file"])
def test_round_trip_inline_and_file(server: SandboxServer, tmp_path: Path, mode: str) -> None:
    settings: dict[str, Any] = {"inline_max_bytes": 0} if mode == "file" else {}
    p = provider_for(server, **settings)
    lines = write_lines(tmp_path / "lines.jsonl", p, _items())
    sub = p.submit(lines, model=MODEL, metadata=META)
    assert sub.batch_id.startswith("batches/")
    assert (sub.input_file_id is not None) == (mode == "file")
    status = p.poll(sub.batch_id)
    assert status.state == "completed" and status.terminal
    results = {r.custom_id: r for r in p.results(sub.batch_id)}
    assert sorted(results) == sorted(i.custom_id or "" for i in _items())
    assert all(r.ok and r.batch_id == sub.batch_id and r.model == MODEL for r in results.values())
    assert results["plain"].finish_reason == "stop" and "foxes" in (results["plain"].text or "")
    assert results["short"].finish_reason == "length" and results["short"].usage.output_tokens == 2
    assert isinstance(json.loads(results["obj"].text or ""), dict)
    assert json.loads(results["schema"].text or "")["label"] in ("pos", "neg")
    usage = results["cached thinker/ü"].usage
    raw = (results["cached thinker/ü"].response or {})["usageMetadata"]
    # promptTokenCount includes the cache hit; thoughts are billed as output on top of candidates
    assert usage.cached_input_tokens == raw["cachedContentTokenCount"] > 0
    assert usage.input_tokens == raw["promptTokenCount"] - raw["cachedContentTokenCount"]
    assert usage.reasoning_tokens == raw["thoughtsTokenCount"] > 0
    assert usage.output_tokens == raw["candidatesTokenCount"] + raw["thoughtsTokenCount"]
    assert usage.total_tokens == raw["totalTokenCount"]
    assert p.find_batch(META) == sub.batch_id
    assert p.find_batch({**META, "polybatch_chunk": "9"}) is None
    seen = server.engine.requests_seen
    if mode == "file":
        assert ("POST", "/gemini/upload/v1/files") in seen
        assert any(path.endswith(":download") for _, path in seen)
        p.cleanup(sub)
        assert ("DELETE", "/gemini/v1/files/" + sub.input_file_id.removeprefix("files/")) in seen  # type: ignore[union-attr]
        assert server.engine.get_file("gemini", sub.input_file_id.removeprefix("files/")) is None  # type: ignore[union-attr]
    else:
        assert not any("upload" in path for _, path in seen)
    p.delete(sub.batch_id)
    with pytest.raises(ProviderError) as err:
        p.poll(sub.batch_id)
    assert err.value.status_code == 404 and not err.value.retryable


def test_v1beta_paths(server: SandboxServer, tmp_path: Path) -> None:
    for settings in ({}, {"inline_max_bytes": 0}):
        p = provider_for(server, api_version="v1beta", **settings)
        sub = p.submit(write_lines(tmp_path / "l.jsonl", p, [item("a")]), model=MODEL, metadata={})
        assert [r.ok for r in p.results(sub.batch_id)] == [True]
    paths = {path for _, path in server.engine.requests_seen}
    assert f"/gemini/v1beta/models/{MODEL}:batchGenerateContent" in paths
    assert "/gemini/upload/v1beta/files" in paths
    assert not any(path.startswith("/gemini/v1/") for path in paths)


def test_cancel_errors_and_faults(sandbox: Sandbox, tmp_path: Path) -> None:
    with sandbox(rate=5, faults=Faults(seed=3, item_error_rate=0.3)) as srv:
        srv.engine.clock.freeze()  # the counts below depend on sandbox time alone
        p = provider_for(srv)
        items = [item(f"i{n}") for n in range(50)]
        items[0] = item("i0", extra={"generationConfig": {"temperature": 3}})  # only the API judges
        sub = p.submit(write_lines(tmp_path / "a.jsonl", p, items), model=MODEL, metadata={})
        assert p.poll(sub.batch_id).state == "in_progress"
        srv.engine.clock.advance(4)  # 20 processed
        p.cancel(sub.batch_id)
        status = p.poll(sub.batch_id)
        assert status.state == "cancelled" and status.terminal
        results = list(p.results(sub.batch_id))
    statuses = [r.status for r in results]
    assert len(results) == 50 and statuses.count("cancelled") == 30  # 20 ran before the cancel
    canceled = next(r for r in results if r.status == "cancelled")
    assert canceled.error is not None and canceled.error.retryable
    assert canceled.error.code == "CANCELLED"
    errored = {r.error.code: r.error for r in results if r.error is not None}
    assert not errored["INVALID_ARGUMENT"].retryable
    assert "temperature" in errored["INVALID_ARGUMENT"].message
    assert errored["INTERNAL"].retryable and errored["INTERNAL"].status_code == 500
    assert any(r.ok for r in results)


def test_pending_expired_and_failed(sandbox: Sandbox, tmp_path: Path) -> None:
    # Gemini's 48 h window; 2 requests per 48 h: one has run when it closes
    window = {"expiry_seconds": EXPIRY_SECONDS, "validation_seconds": 10}
    with sandbox(rate=2 / EXPIRY_SECONDS, **window) as srv:
        p = provider_for(srv, inline_max_bytes=0)
        items = [item(f"e{n}") for n in range(4)]
        sub = p.submit(write_lines(tmp_path / "b.jsonl", p, items), model=MODEL, metadata={})
        assert p.poll(sub.batch_id).state == "validating"
        srv.engine.clock.advance(25 * 3600)
        status = p.poll(sub.batch_id)
        assert status.state == "in_progress" and (status.total, status.completed) == (4, 1)
        srv.engine.clock.advance(24 * 3600)
        status = p.poll(sub.batch_id)
        assert status.state == "expired" and status.message
        results = list(p.results(sub.batch_id))
        assert [r.status for r in results] == ["succeeded", "expired", "expired", "expired"]
        assert results[1].error is not None and results[1].error.retryable

        # a malformed input file fails the job as a whole
        client = sdk_client(srv)
        bad = tmp_path / "bad.jsonl"
        bad.write_bytes(b'{"key": "x", "request": {"contents": []}}\nnot json\n')
        uploaded = client.files.upload(file=str(bad), config={"mime_type": "jsonl"})
        job = client.batches.create(model=MODEL, src=uploaded.name or "")
        srv.engine.clock.advance(11)
        status = p.poll(job.name or "")
        assert status.state == "failed" and status.message
        assert list(p.results(job.name or "")) == []


@pytest.mark.parametrize("api_version", ["v1", "v1beta"])
def test_list_pagination(server: SandboxServer, tmp_path: Path, api_version: str) -> None:
    p = provider_for(server)
    names = [
        p.submit(
            write_lines(tmp_path / f"{n}.jsonl", p, [item("x")]),
            model=MODEL,
            metadata={"polybatch_job": f"j{n}", "polybatch_chunk": "0"},
        ).batch_id
        for n in range(5)
    ]
    client = sdk_client(server, api_version=api_version)
    pager = client.batches.list(config={"page_size": 2})
    assert len(pager.page) == 2
    listed = [job.name for job in pager]
    assert listed == list(reversed(names))  # newest first, across 3 pages
    pages = [(m, path) for m, path in server.engine.requests_seen if path.endswith("/batches")]
    assert pages == [("GET", f"/gemini/{api_version}/batches")] * 3
    assert listed[0] and client.batches.get(name=listed[0]).state == "JOB_STATE_SUCCEEDED"
    assert p.find_batch({"polybatch_job": "j1", "polybatch_chunk": "0"}) == names[1]
    with pytest.raises(Exception, match="page token"):
        client.batches._list(config={"page_token": "nope"})


def test_keys(server: SandboxServer, tmp_path: Path) -> None:
    bad = GeminiProvider(**GeminiProvider.sandbox_settings(server.url, "wrong-key"), settings={})
    with pytest.raises(ProviderError) as err:
        bad.poll("batches/anything")
    assert err.value.status_code == 401 and "wrong-key" not in str(err.value)
    assert "UNAUTHENTICATED" in str(err.value)
    request = urllib.request.Request(server.url + "/gemini/v1beta/batches")
    with pytest.raises(urllib.error.HTTPError) as http:
        urllib.request.urlopen(request, timeout=5)
    assert http.value.code == 403
    assert json.loads(http.value.read())["error"]["status"] == "PERMISSION_DENIED"
    with pytest.raises(CredentialsError, match="GEMINI_API_KEY"):
        GeminiProvider().preflight()


def test_a_cut_responses_file_is_a_retryable_error(server: SandboxServer, tmp_path: Path) -> None:
    p = provider_for(server, inline_max_bytes=0)
    lines = write_lines(tmp_path / "c.jsonl", p, [item("a"), item("b")])
    sub = p.submit(lines, model=MODEL, metadata={})
    assert len(list(p.results(sub.batch_id))) == 2
    out = next(f for f in server.engine.files.values() if f.filename.startswith("batch-"))
    out.data = out.data[: len(out.data) // 2 + 3]
    with pytest.raises(ProviderError) as err:
        list(p.results(sub.batch_id))
    assert err.value.retryable


def test_validate_item() -> None:
    p = GeminiProvider(api_key=KEY)
    p.validate_item(item("ok", extra={"generationConfig": {"topK": 4}}), MODEL)
    with pytest.raises(ItemValidationError):
        p.validate_item(item("bad", extra={"generationConfig": {"notAField": 1}}), MODEL)
    with pytest.raises(ItemValidationError):
        p.validate_item(item("bad", extra={"contents2": []}), MODEL)


def test_states_map() -> None:
    assert neutral_state("BATCH_STATE_RUNNING") == "in_progress"
    assert neutral_state("JOB_STATE_PENDING") == "validating"
    assert neutral_state("JOB_STATE_CANCELLING") == "cancelling"
    assert neutral_state("JOB_STATE_PARTIALLY_SUCCEEDED") == "completed"
    assert neutral_state(None) == "validating"


def test_plugin_registers_provider_and_prices() -> None:
    reg = PluginRegistry(load_entry_points=False)
    reg.add_plugin(plugin.plugin, name="gemini")
    assert reg.providers()["gemini"] is GeminiProvider
    assert reg.price_files() == [plugin.PRICES]
    eps = {ep.name: ep.value for ep in entry_points(group="polybatch")}
    assert eps.get("gemini") == "polybatch_gemini.plugin:plugin"
    assert plugin.PRICES.exists()
    env = GeminiProvider.sandbox_env("http://h", "k")
    assert env == {"GOOGLE_GEMINI_BASE_URL": "http://h/gemini", "GEMINI_API_KEY": "k"}


def test_a_whole_job_through_the_runner(server: SandboxServer, polybatch_home: Path) -> None:
    from polybatch import submit
    from polybatch.pricing import price_registry

    # the price registry is cached per process: drop one an earlier test built without our file
    price_registry(providers=["gemini"], reload=True)

    items: list[dict[str, Any]] = [
        {"custom_id": "has space", "messages": [{"role": "user", "content": "hello"}]},
        {
            "custom_id": "json-1",
            "messages": [{"role": "user", "content": "bye"}],
            "response_format": {"type": "json_object"},
        },
    ]
    job = submit(items, f"gemini:{MODEL}", sandbox=server)
    job.wait(poll_min=0.02, timeout=60)
    results = list(job.results())
    assert [r.custom_id for r in results] == ["has space", "json-1"]
    assert all(r.ok and r.provider == "gemini" for r in results)
    assert isinstance(json.loads(results[1].text or ""), dict)
    assert job.usage().input_tokens > 0
    assert job.cost().total > 0
