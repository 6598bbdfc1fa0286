"""AnthropicProvider end to end against the sandbox: submit, poll, results, cancel, delete."""

from __future__ import annotations

import json
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import pytest
from anthropic_support import MODEL, item, provider_for, write_lines

from polybatch.errors import ProviderError
from polybatch.items import BatchItem
from polybatch.plugins import PluginRegistry
from polybatch.sandbox import Faults, SandboxServer
from polybatch_anthropic import plugin
from polybatch_anthropic.provider import AnthropicProvider

Sandbox = Callable[..., AbstractContextManager[SandboxServer]]


def test_round_trip_with_json_modes_and_finish_reasons(
    server: SandboxServer, tmp_path: Path
) -> None:
    p = provider_for(server)
    schema = {
        "type": "object",
        "properties": {"label": {"enum": ["pos", "neg"]}, "score": {"type": "integer"}},
    }
    items = [
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
                "custom_id": "conv",
                "messages": [
                    {"role": "system", "content": "Be brief."},
                    {"role": "user", "content": "one"},
                    {"role": "user", "content": "two"},
                ],
            }
        ),
    ]
    submitted = p.submit(
        write_lines(tmp_path / "lines.jsonl", p, items),
        model=MODEL,
        metadata={"polybatch_job": "j"},
    )
    status = p.poll(submitted.batch_id)
    assert status.state == "completed" and status.terminal
    assert (status.total, status.completed, status.failed) == (5, 5, 0)
    results = {r.custom_id: r for r in p.results(submitted.batch_id)}
    assert all(
        r.ok and r.provider == "anthropic" and r.batch_id == submitted.batch_id
        for r in results.values()
    )
    assert results["plain"].finish_reason == "stop" and results["plain"].model == MODEL
    assert results["plain"].text and "foxes" in results["plain"].text
    assert results["short"].finish_reason == "length" and results["short"].usage.output_tokens == 2
    assert isinstance(json.loads(results["obj"].text or ""), dict)
    assert results["obj"].finish_reason == "stop"
    assert json.loads(results["schema"].text or "")["label"] in ("pos", "neg")
    usage = results["conv"].usage
    assert (
        usage.input_tokens > 0
        and usage.cached_input_tokens == 0
        and usage.total_input_tokens == usage.input_tokens
    )
    assert p.find_batch({"polybatch_job": "j"}) is None  # Anthropic batches carry no metadata


def test_every_result_type(sandbox: Sandbox, tmp_path: Path) -> None:
    with sandbox(rate=5, faults=Faults(seed=1, item_error_rate=0.3)) as srv:
        srv.engine.clock.freeze()  # the counts below depend on sandbox time alone
        p = provider_for(srv)
        items = [item(f"i{n}") for n in range(50)]
        # an invalid request only the API can judge (polybatch allows temperature up to 1 here)
        items[0] = item("i0", extra={"temperature": 3})
        sub = p.submit(write_lines(tmp_path / "a.jsonl", p, items), model=MODEL, metadata={})
        srv.engine.clock.advance(4)  # 20 processed
        assert p.poll(sub.batch_id).state == "in_progress"
        p.cancel(sub.batch_id)
        status = p.poll(sub.batch_id)
        assert status.state == "cancelled" and status.total == 50
        results = list(p.results(sub.batch_id))
    statuses = [r.status for r in results]
    assert len(results) == 50 and statuses.count("cancelled") == 30
    errored = [r for r in results if r.status == "errored"]
    assert status.completed == statuses.count("succeeded") > 0
    assert status.failed == len(errored) > 1
    by_code = {r.error.code: r.error for r in errored if r.error}
    assert not by_code["invalid_request_error"].retryable
    assert "temperature" in by_code["invalid_request_error"].message
    assert by_code["api_error"].retryable
    canceled = next(r for r in results if r.status == "cancelled")
    assert canceled.error is not None and canceled.error.retryable

    with sandbox(rate=0.0001) as srv:
        p = provider_for(srv)
        sub = p.submit(
            write_lines(tmp_path / "b.jsonl", p, [item(f"e{n}") for n in range(10)]),
            model=MODEL,
            metadata={},
        )
        srv.engine.clock.advance(25 * 3600)
        status = p.poll(sub.batch_id)
        assert status.state == "expired" and status.message
        expired = [r for r in p.results(sub.batch_id) if r.status == "expired"]
        assert len(expired) == 2 and expired[0].error is not None and expired[0].error.retryable


def test_cancelling_state(sandbox: Sandbox, tmp_path: Path) -> None:
    with sandbox(rate=5, cancel_seconds=10) as srv:
        p = provider_for(srv)
        sub = p.submit(
            write_lines(tmp_path / "a.jsonl", p, [item(f"i{n}") for n in range(50)]),
            model=MODEL,
            metadata={},
        )
        p.cancel(sub.batch_id)
        assert p.poll(sub.batch_id).state == "cancelling"
        with pytest.raises(ProviderError) as exc:
            p.delete(sub.batch_id)
        assert exc.value.status_code == 400 and exc.value.provider == "anthropic"
        assert "cancel it before deleting" in str(exc.value)
        srv.engine.clock.advance(11)
        assert p.poll(sub.batch_id).state == "cancelled"
        p.delete(sub.batch_id)
        with pytest.raises(ProviderError) as exc:
            p.poll(sub.batch_id)
        assert exc.value.status_code == 404 and not exc.value.retryable


def test_custom_id_mapping_round_trip(server: SandboxServer, tmp_path: Path) -> None:
    p = provider_for(server)
    user_ids = ["has spaces in it", "x" * 100, "ünïcødé-ид-日本", "pb-looks-mapped", "plain_id-1"]
    items = [item(cid) for cid in user_ids]
    sub = p.submit(write_lines(tmp_path / "a.jsonl", p, items), model=MODEL, metadata={})
    wire_to_user = {p.wire_custom_id(c): c for c in user_ids}
    assert len(wire_to_user) == len(user_ids)
    assert p.wire_custom_id("plain_id-1") == "plain_id-1"
    got = {wire_to_user[r.custom_id] for r in p.results(sub.batch_id)}
    assert got == set(user_ids)


def test_errors_are_translated_without_the_key(server: SandboxServer) -> None:
    secret = "sk-ant-wrong-secret-123"
    p = AnthropicProvider(api_key=secret, base_url=server.url + "/anthropic")
    with pytest.raises(ProviderError) as exc:
        p.poll("msgbatch_x")
    assert exc.value.status_code == 401
    assert secret not in str(exc.value)
    assert isinstance(exc.value.__cause__, Exception)


def test_plugin_registers_the_provider() -> None:
    registry = PluginRegistry(load_entry_points=False)
    registry.add_plugin(plugin.plugin, name="anthropic")
    assert registry.providers()["anthropic"] is AnthropicProvider
    assert registry.price_files() == ([plugin.PRICES] if plugin.PRICES.exists() else [])


def test_entry_point_is_installed() -> None:
    from importlib.metadata import entry_points

    eps = {ep.name: ep.value for ep in entry_points(group="polybatch")}
    assert eps.get("anthropic") == "polybatch_anthropic.plugin:plugin"


def test_a_whole_job_through_the_runner(server: SandboxServer, polybatch_home: Path) -> None:
    import polybatch

    items: list[dict[str, Any]] = [
        {"custom_id": "has space", "messages": [{"role": "user", "content": "hello"}]},
        {
            "custom_id": "json-1",
            "messages": [{"role": "user", "content": "bye"}],
            "response_format": {"type": "json_object"},
        },
    ]
    results = polybatch.run(
        items, "anthropic:claude-haiku-4-5", sandbox=server, poll_min=0.05, poll_max=0.1
    )
    assert [r.custom_id for r in results] == ["has space", "json-1"]  # mapped back, in order
    assert all(r.ok for r in results)
    assert isinstance(json.loads(results[1].text or ""), dict)
