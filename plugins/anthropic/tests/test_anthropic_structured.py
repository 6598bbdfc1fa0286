"""Structured outputs on the Anthropic adapter (``output_config.format``), and embeddings refused.

End to end through the runner: ``tests/test_structured.py``. Here: the params, the sandbox's
answers under the SDK's strict response validation, and the invalid-JSON fault.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path

import pytest
from anthropic_support import MODEL, provider_for, strict_client
from pydantic import BaseModel

from polybatch.errors import ItemValidationError
from polybatch.items import BatchItem, Message, json_schema_format
from polybatch.sandbox import Faults, SandboxServer
from polybatch_anthropic import codec
from polybatch_anthropic.provider import AnthropicProvider

Sandbox = Callable[..., AbstractContextManager[SandboxServer]]


class Ticket(BaseModel):
    """A small structured reply, with a nested model and an optional field."""

    class Owner(BaseModel):
        """Nested: pydantic writes it as a $ref."""

        team: str

    title: str
    priority: int
    owner: Owner
    due: str | None = None


def tickets(n: int) -> list[BatchItem]:
    return [
        BatchItem(
            custom_id=f"t{i}",
            messages=[
                Message(role="system", content="You file tickets."),
                Message(role="user", content=f"File ticket {i}."),
            ],
            response_model=Ticket,
        )
        for i in range(n)
    ]


def test_response_model_goes_out_as_output_config_format() -> None:
    params = codec.build_params(tickets(1)[0], MODEL)
    schema = json_schema_format(Ticket)["json_schema"]["schema"]
    assert params["output_config"] == {"format": {"type": "json_schema", "schema": schema}}
    assert schema["additionalProperties"] is False  # what Anthropic's structured outputs need
    assert "tools" not in params and "tool_choice" not in params


def test_embedding_items_are_refused_with_the_field() -> None:
    item = BatchItem(custom_id="e", kind="embedding", input="x", model="text-embedding-3-small")
    provider = AnthropicProvider(api_key="unused")
    with pytest.raises(ItemValidationError) as caught:
        provider.validate_item(item, MODEL)
    assert caught.value.field == "kind"
    assert str(caught.value).startswith("field 'kind': Anthropic does not offer embedding batches")
    with pytest.raises(ItemValidationError, match="does not offer embedding"):
        provider.encode(item, MODEL)


def test_structured_replies_pass_the_sdks_strict_validation(server: SandboxServer) -> None:
    client = strict_client(server)
    provider = provider_for(server)
    items = tickets(3)
    requests = [json.loads(provider.encode(i, MODEL)) for i in items]
    batch = client.messages.batches.create(requests=requests)
    assert client.messages.batches.retrieve(batch.id).processing_status == "ended"
    for entry in client.messages.batches.results(batch.id):
        assert entry.result.type == "succeeded"
        [block] = entry.result.message.content
        assert block.type == "text"
        ticket = Ticket.model_validate_json(block.text)
        assert ticket.owner.team


def test_invalid_json_fault_and_the_check(sandbox: Sandbox, tmp_path: Path) -> None:
    with sandbox(faults=Faults(invalid_json_rate=1.0)) as server:
        provider = provider_for(server)
        items = [
            *tickets(2),
            BatchItem(custom_id="plain", messages=[Message(role="user", content="hi")]),
        ]
        lines = tmp_path / "lines.jsonl"
        lines.write_bytes(b"".join(provider.encode(i, MODEL) + b"\n" for i in items))
        batch = provider.submit(lines, model=MODEL, metadata={})
        assert provider.poll(batch.batch_id).terminal
        by_id = {r.custom_id: r for r in provider.results(batch.batch_id)}
        faults = [e.where for e in server.engine.fault_log]
    assert faults == ["anthropic t0", "anthropic t1"], "only structured requests are broken"
    for item in items:
        r = item.check_result(by_id[item.custom_id or ""])
        if item.custom_id == "plain":
            assert r.ok and r.text
        else:
            assert r.status == "errored" and r.error is not None
            assert r.error.code == "invalid_output"
            assert "Invalid JSON" in r.error.message
            assert r.usage.output_tokens > 0
