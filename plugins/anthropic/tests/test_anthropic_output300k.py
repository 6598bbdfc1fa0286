"""Anthropic's batch-only ``output-300k-2026-03-24`` beta (issue 19 item 2): sent as the
``anthropic-beta`` header, through the real anthropic SDK over loopback HTTP, only for the models
that accept it; it lifts their max_tokens ceiling (and only theirs); the sandbox refuses a request
above the normal ceiling without it, as the API does."""

from __future__ import annotations

from typing import Any

import anthropic
import pytest
from anthropic_support import KEY, strict_client

from polybatch import submit
from polybatch.errors import ItemValidationError
from polybatch.items import BatchItem
from polybatch.sandbox import SandboxServer
from polybatch.testing import make_items
from polybatch_anthropic import output300k


def ask(max_tokens: int, n: int = 1) -> list[BatchItem]:
    return make_items(n, prefix="q-", max_tokens=max_tokens)


def run(server: SandboxServer, model: str, items: list[BatchItem], **settings: Any) -> list[Any]:
    job = submit(items, f"anthropic:{model}", sandbox=server, provider_settings=settings)
    return list(job.wait(poll_min=0.02, poll_max=0.2, timeout=60).results())


def test_beta_models_get_the_header_and_the_higher_ceiling(server: SandboxServer) -> None:
    results = run(server, "claude-sonnet-4-6", ask(200_000, 2))
    assert all(r.ok for r in results), [r.error for r in results]
    (batch,) = server.engine.batches.values()
    assert batch.extra["betas"] == [output300k.BETA]


def test_other_models_are_sent_no_beta(server: SandboxServer) -> None:
    results = run(server, "claude-haiku-4-5", ask(1000))
    assert all(r.ok for r in results)
    (batch,) = server.engine.batches.values()
    assert batch.extra["betas"] == []


def test_above_300k_is_refused_while_planning(server: SandboxServer) -> None:
    with pytest.raises(ItemValidationError) as caught:
        submit(ask(300_001), "anthropic:claude-opus-4-6", sandbox=server)
    assert caught.value.field == "max_tokens" and "300000" in str(caught.value)
    assert server.engine.requests_seen == []


def test_a_setting_extends_the_beta_to_newer_models(server: SandboxServer) -> None:
    results = run(server, "claude-opus-5", ask(1000), output_300k_models=["claude-opus-5"])
    assert all(r.ok for r in results)
    (batch,) = server.engine.batches.values()
    assert batch.extra["betas"] == [output300k.BETA]


def test_the_sandbox_refuses_above_the_normal_ceiling_without_the_beta(
    server: SandboxServer,
) -> None:
    client = strict_client(server)
    params = {
        "model": "claude-sonnet-4-6",
        "max_tokens": 100_000,
        "messages": [{"role": "user", "content": "hi"}],
    }
    plain = client.messages.batches.create(requests=[{"custom_id": "a", "params": params}])  # type: ignore[list-item]
    beta = client.beta.messages.batches.create(
        requests=[{"custom_id": "a", "params": params}],  # type: ignore[list-item]
        betas=[output300k.BETA],
    )
    outcomes = {}
    for batch_id in (plain.id, beta.id):
        (entry,) = list(client.messages.batches.results(batch_id))
        outcomes[batch_id] = entry.result
    assert outcomes[plain.id].type == "errored"
    assert "64000" in str(outcomes[plain.id].error) and output300k.BETA in str(
        outcomes[plain.id].error
    )
    assert outcomes[beta.id].type == "succeeded"
    assert KEY not in str(outcomes[plain.id].error)
    assert isinstance(client, anthropic.Anthropic)
