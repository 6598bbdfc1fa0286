"""Structured outputs and embeddings on the OpenAI and Azure adapters: codec, provider, sandbox.

The end-to-end runs through the runner are in ``tests/test_structured.py`` and
``tests/test_embeddings.py``; these check the wire pieces one by one, with the real SDK's types.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
from openai.types import CreateEmbeddingResponse
from openai_testlib import (
    KEY,
    MODEL,
    ServerFactory,
    inspector,
    provider_for,
    wait_terminal,
    write_lines,
)
from pydantic import BaseModel

from polybatch.errors import ItemValidationError
from polybatch.items import BatchItem, Message, json_schema_format
from polybatch.sandbox import Faults, SandboxEngine, SandboxServer
from polybatch.sandbox.model import SyntheticModel
from polybatch_openai import codec
from polybatch_openai import sandbox as openai_sandbox
from polybatch_openai.azure import AzureProvider
from polybatch_openai.provider import OpenAIProvider

EMBED = "text-embedding-3-small"


class Verdict(BaseModel):
    """A small structured reply."""

    label: str
    score: float
    reasons: list[str]


def embedding(cid: str, text: str, **fields: object) -> BatchItem:
    return BatchItem(custom_id=cid, kind="embedding", input=text, model=EMBED, **fields)  # type: ignore[arg-type]


def verdicts(n: int) -> list[BatchItem]:
    return [
        BatchItem(
            custom_id=f"v{i}",
            messages=[Message(role="user", content=f"Judge case {i}.")],
            response_model=Verdict,
        )
        for i in range(n)
    ]


@pytest.fixture
def both() -> Iterator[SandboxServer]:
    """A sandbox serving OpenAI and Azure."""
    engine = SandboxEngine(api_key=KEY)
    with SandboxServer(
        engine, providers={"openai": OpenAIProvider, "azure": AzureProvider}
    ) as server:
        yield server


def azure_for(server: SandboxServer) -> AzureProvider:
    return AzureProvider(
        **AzureProvider.sandbox_settings(server.url, KEY),
        settings={"max_retries": 0, "deployments": {EMBED: "text-embedding-3-small-batch"}},
    )


# -- encoding -----------------------------------------------------------------------------------
def test_embedding_items_encode_to_embeddings_lines() -> None:
    line = json.loads(
        OpenAIProvider(api_key="k").encode(embedding("e1", "hi", dimensions=64), MODEL)
    )
    assert line == {
        "custom_id": "e1",
        "method": "POST",
        "url": "/v1/embeddings",
        "body": {"model": EMBED, "input": "hi", "dimensions": 64},
    }


def test_azure_embeddings_use_its_url_and_the_deployment() -> None:
    line = json.loads(azure_for_offline().encode(embedding("e1", "hi"), MODEL))
    assert line["url"] == "/embeddings"
    assert line["body"] == {"model": "text-embedding-3-small-batch", "input": "hi"}


def azure_for_offline() -> AzureProvider:
    return AzureProvider(
        api_key="k",
        settings={
            "endpoint": "https://x.openai.azure.com",
            "deployments": {EMBED: "text-embedding-3-small-batch"},
        },
    )


def test_response_model_items_send_a_strict_json_schema() -> None:
    line = json.loads(OpenAIProvider(api_key="k").encode(verdicts(1)[0], MODEL))
    assert line["url"] == "/v1/chat/completions"
    assert line["body"]["response_format"] == json_schema_format(Verdict)
    assert line["body"]["response_format"]["json_schema"]["schema"]["additionalProperties"] is False


def test_the_batch_endpoint_comes_from_the_lines(tmp_path: Path) -> None:
    p = OpenAIProvider(api_key="k")
    emb = write_lines(tmp_path / "e.jsonl", [p.encode(embedding("e", "x"), MODEL)])
    chat = write_lines(tmp_path / "c.jsonl", [p.encode(verdicts(1)[0], MODEL)])
    empty = write_lines(tmp_path / "n.jsonl", [])
    assert p.endpoint_for(emb) == "/v1/embeddings"
    assert p.endpoint_for(chat) == p.endpoint_for(empty) == "/v1/chat/completions"
    assert (
        azure_for_offline().endpoint_for(
            write_lines(
                tmp_path / "a.jsonl", [azure_for_offline().encode(embedding("e", "x"), MODEL)]
            )
        )
        == "/embeddings"
    )


@pytest.mark.parametrize(
    ("extra", "field"),
    [({"input": "again"}, "extra.input"), ({"encoding_format": "int8"}, "extra.encoding_format")],
)
def test_embedding_extras_are_checked(extra: dict[str, object], field: str) -> None:
    with pytest.raises(ItemValidationError) as caught:
        OpenAIProvider(api_key="k").validate_item(embedding("e", "x", extra=extra), MODEL)
    assert caught.value.field == field


# -- decoding -----------------------------------------------------------------------------------
def test_embeddings_output_lines_decode_to_vectors() -> None:
    vector = [0.25, -0.5, 0.125]
    for encoding in ("float", "base64"):
        body = codec.embeddings_response(
            model=EMBED, vectors=[codec.encode_vector(vector, encoding)], prompt_tokens=4
        )
        if encoding == "float":  # the SDK's own type (it decodes base64 itself, client side)
            CreateEmbeddingResponse.model_validate(body)
        line = codec.response_line("l1", "e1", status_code=200, request_id="r", body=body)
        r = codec.decode_result(line, provider="openai", batch_id="b")
        assert r.ok and r.embedding == vector and r.text is None
        assert (r.usage.input_tokens, r.usage.output_tokens) == (4, 0)
        assert r.response is not None and r.response["data"] == [
            {"object": "embedding", "index": 0}
        ]


# -- the sandbox --------------------------------------------------------------------------------
def test_embeddings_batch_on_the_sandbox(server: SandboxServer, tmp_path: Path) -> None:
    provider = provider_for(server)
    items = [embedding(f"e{i}", f"text number {i}") for i in range(3)]
    lines = write_lines(tmp_path / "e.jsonl", [provider.encode(i, MODEL) for i in items])
    batch = provider.submit(lines, model=EMBED, metadata={})
    assert wait_terminal(provider, server.engine, batch.batch_id).state == "completed"
    raw = inspector(provider).batches.retrieve(batch.batch_id)
    assert raw.endpoint == "/v1/embeddings"
    assert raw.usage is not None and raw.usage.output_tokens == 0
    results = {r.custom_id: r for r in provider.results(batch.batch_id)}
    model = SyntheticModel()
    for item in items:
        assert results[item.custom_id or ""].embedding == model.embed(
            model=EMBED, text=item.input or ""
        )


def test_bad_embeddings_bodies_are_errored_results(server: SandboxServer, tmp_path: Path) -> None:
    provider = provider_for(server)
    bad = json.dumps(
        {"custom_id": "x", "method": "POST", "url": "/v1/embeddings", "body": {"model": EMBED}}
    )
    batch = provider.submit(
        write_lines(tmp_path / "b.jsonl", [bad.encode()]), model=EMBED, metadata={}
    )
    wait_terminal(provider, server.engine, batch.batch_id)
    [r] = list(provider.results(batch.batch_id))
    assert r.status == "errored" and r.error is not None
    assert (r.error.code, r.error.status_code) == ("invalid_value", 400)
    assert "'input'" in r.error.message


def test_an_embeddings_batch_over_the_input_cap_fails_whole(
    server: SandboxServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(openai_sandbox, "MAX_EMBEDDING_INPUTS", 2)
    provider = provider_for(server)
    lines = [provider.encode(embedding(f"e{i}", "x"), MODEL) for i in range(3)]
    batch = provider.submit(write_lines(tmp_path / "e.jsonl", lines), model=EMBED, metadata={})
    status = wait_terminal(provider, server.engine, batch.batch_id)
    assert status.state == "failed"
    assert status.message is not None and "too_many_embedding_inputs" in status.message


def test_a_chat_line_in_an_embeddings_batch_is_refused(
    server: SandboxServer, tmp_path: Path
) -> None:
    provider = provider_for(server)
    lines = [provider.encode(embedding("e", "x"), MODEL), provider.encode(verdicts(1)[0], MODEL)]
    batch = provider.submit(write_lines(tmp_path / "m.jsonl", lines), model=EMBED, metadata={})
    status = wait_terminal(provider, server.engine, batch.batch_id)
    assert status.state == "failed" and "url_mismatch" in (status.message or "")


def test_structured_replies_validate_and_invalid_json_is_caught(
    make_server: ServerFactory, tmp_path: Path
) -> None:
    for rate, ok in ((0.0, True), (1.0, False)):
        server = make_server(faults=Faults(invalid_json_rate=rate))
        provider = provider_for(server)
        items = verdicts(3)
        lines = [provider.encode(i, MODEL) for i in items]
        batch = provider.submit(
            write_lines(tmp_path / f"s{rate}.jsonl", lines), model=MODEL, metadata={}
        )
        wait_terminal(provider, server.engine, batch.batch_id)
        by_id = {r.custom_id: r for r in provider.results(batch.batch_id)}
        for item in items:
            checked = item.check_result(by_id[item.custom_id or ""])
            assert checked.ok is ok, checked.error
            if ok:
                assert isinstance(checked.parsed_as(Verdict), Verdict)
            else:
                assert checked.error is not None and checked.error.code == "invalid_output"


def test_the_fault_only_strikes_structured_requests(
    make_server: ServerFactory, tmp_path: Path
) -> None:
    server = make_server(faults=Faults(invalid_json_rate=1.0))
    provider = provider_for(server)
    plain = BatchItem(custom_id="plain", messages=[Message(role="user", content="hi")])
    batch = provider.submit(
        write_lines(tmp_path / "p.jsonl", [provider.encode(plain, MODEL)]), model=MODEL, metadata={}
    )
    wait_terminal(provider, server.engine, batch.batch_id)
    [r] = list(provider.results(batch.batch_id))
    assert r.ok and r.text and server.engine.fault_log == []


# -- Azure --------------------------------------------------------------------------------------
def test_azure_embeddings_and_structured_output(both: SandboxServer, tmp_path: Path) -> None:
    provider = azure_for(both)
    emb = [provider.encode(embedding(f"e{i}", f"t{i}"), EMBED) for i in range(2)]
    batch = provider.submit(write_lines(tmp_path / "e.jsonl", emb), model=EMBED, metadata={})
    wait_terminal(provider, both.engine, batch.batch_id)
    results = list(provider.results(batch.batch_id))
    assert all(r.ok and r.embedding and r.model == EMBED for r in results)
    assert both.engine.batches[batch.batch_id].extra["endpoint"] == "/embeddings"
    items = verdicts(2)
    chat = [provider.encode(i, "gpt-4o-mini") for i in items]
    batch = provider.submit(
        write_lines(tmp_path / "c.jsonl", chat), model="gpt-4o-mini", metadata={}
    )
    wait_terminal(provider, both.engine, batch.batch_id)
    by_id = {r.custom_id: r for r in provider.results(batch.batch_id)}
    for item in items:
        r = item.check_result(by_id[item.custom_id or ""])
        assert r.ok and isinstance(r.parsed_as(Verdict), Verdict)
        assert r.response is not None and "content_filter_results" in r.response["choices"][0]


def test_the_sdk_sends_the_embeddings_endpoint(server: SandboxServer, tmp_path: Path) -> None:
    """What the SDK puts on the wire for an embeddings batch is what the sandbox records."""
    provider = provider_for(server)
    line = provider.encode(embedding("e", "x"), MODEL)
    batch = provider.submit(write_lines(tmp_path / "e.jsonl", [line]), model=EMBED, metadata={})
    client = openai.OpenAI(api_key=KEY, base_url=f"{server.url}/openai/v1", max_retries=0)
    assert client.batches.retrieve(batch.batch_id).endpoint == "/v1/embeddings"
