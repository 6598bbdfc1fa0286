"""Responses, legacy completions and moderations batches on OpenAI (issue 19, item 1).

The done-criterion runs through the CLI: an OpenAI-format file with ``/v1/responses``,
``/v1/completions`` and ``/v1/moderations`` lines, on the sandbox through the real ``openai``
SDK, with results, usage and cost. The sandbox's bodies are checked against the SDK's own
response types, so the shapes the decoder reads are the ones the API documents.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from openai.types import Completion, ModerationCreateResponse
from openai.types.responses import Response
from openai_testlib import KEY, ServerFactory, wait_terminal, write_lines
from pydantic import BaseModel

from polybatch import Job, submit
from polybatch.errors import ItemValidationError
from polybatch.items import BatchItem
from polybatch.sandbox import Faults, SandboxServer
from polybatch.testing import CliOutcome, Sandbox
from polybatch_openai import codec, endpoints
from polybatch_openai.azure import AzureProvider
from polybatch_openai.compatible import GroqProvider

CITY = {
    "type": "json_schema",
    "name": "city",
    "schema": {
        "type": "object",
        "properties": {"name": {"type": "string"}},
        "required": ["name"],
        "additionalProperties": False,
    },
    "strict": True,
}


def line(cid: str, url: str, **body: Any) -> dict[str, Any]:
    return {"custom_id": cid, "method": "POST", "url": url, "body": body}


LINES = [
    line(
        "r1",
        "/v1/responses",
        model="gpt-4o-mini",
        input="Tell me about batches.",
        instructions="Be brief.",
        max_output_tokens=200,
    ),
    line(
        "r2",
        "/v1/responses",
        model="gpt-4o-mini",
        input=[{"role": "user", "content": [{"type": "input_text", "text": "Name a city"}]}],
        reasoning={"effort": "low"},
        text={"format": CITY},
    ),
    line(
        "c1",
        "/v1/completions",
        model="gpt-3.5-turbo-instruct",
        prompt="Once upon a time",
        max_tokens=20,
    ),
    line(
        "m1",
        "/v1/moderations",
        model="omni-moderation-latest",
        input="I will attack the castle and kill the dragon",
    ),
    line(
        "m2",
        "/v1/moderations",
        model="omni-moderation-latest",
        input=[
            {"type": "text", "text": "a calm lake"},
            {"type": "image_url", "image_url": {"url": "https://example.com/lake.png"}},
        ],
    ),
]


def write(path: Path, lines: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    return path


@pytest.mark.slow
def test_an_openai_file_of_the_three_endpoints_runs_with_results_usage_and_cost(
    tmp_path: Path, polybatch_cli: Callable[..., CliOutcome]
) -> None:
    src = write(tmp_path / "requests.jsonl", LINES)
    out = tmp_path / "results.jsonl"
    args = ("run", str(src), "--model", "openai:gpt-4o-mini", "--sandbox", "--no-progress")
    outcome = polybatch_cli(*args, "-o", str(out))
    assert outcome.exit_code == 0, outcome.stderr
    assert "5 succeeded" in outcome.stdout
    results = {r["custom_id"]: r for r in map(json.loads, out.read_text().splitlines())}
    assert all(r["status"] == "succeeded" for r in results.values())

    r1, r2, c1 = results["r1"], results["r2"], results["c1"]
    assert r1["text"].startswith("Synthetic reply to: Tell me about batches")
    assert r1["finish_reason"] == "stop" and r1["model"] == "gpt-4o-mini"
    assert r1["usage"]["input_tokens"] > 0 and r1["usage"]["output_tokens"] > 0
    assert set(json.loads(r2["text"])) == {"name"}, "text.format's schema was honoured"
    assert r2["usage"]["reasoning_tokens"] == 16  # the sandbox's low effort
    assert r2["usage"]["output_tokens"] > 16, "reasoning is inside output_tokens"
    assert c1["text"] and c1["model"] == "gpt-3.5-turbo-instruct"
    assert 0 < c1["usage"]["output_tokens"] <= 20
    m1, m2 = results["m1"]["moderation"], results["m2"]["moderation"]
    assert (
        m1["flagged"] and m1["categories"]["violence"] and m1["category_scores"]["violence"] > 0.5
    )
    assert not m2["flagged"] and m2["category_applied_input_types"]["violence"] == ["text", "image"]
    assert results["m1"].get("text") is None and results["m1"]["usage"]["input_tokens"] == 0

    job_id = re.search(r"job (pb-[0-9a-f]+): completed", outcome.stdout)
    assert job_id is not None, outcome.stdout
    job = Job.load(job_id.group(1))
    # one batch per endpoint and model: responses, completions, moderations
    assert sorted(c.count for c in job.chunks()) == [1, 2, 2]
    cost = job.cost()
    assert cost.total > 0 and isinstance(cost.total, Decimal)
    # moderations are free: priced at 0, not unpriced (the row is in the table, at $0)
    assert re.search(
        r"omni-moderation-latest\s*\|\s*2\s*\|\s*0\s*\|.*\|\s*0\.000000\s*\|", outcome.stdout
    )
    assert re.search(r"gpt-3\.5-turbo-instruct\s*\|\s*1\s*\|", outcome.stdout)


def test_the_planner_cuts_one_batch_per_endpoint_even_on_one_model(
    server: SandboxServer,
) -> None:
    items = [
        BatchItem(custom_id="a", kind="response", input="x"),
        BatchItem(custom_id="b", kind="response", input="y"),
        BatchItem(custom_id="c", kind="completion", prompt="z"),
        BatchItem(custom_id="d", kind="response", input="w"),
    ]
    job = submit(items, "openai:gpt-4o-mini", sandbox=server)
    assert [(c.count) for c in job.chunks()] == [2, 1, 1]
    job.wait(poll_min=0.02, timeout=60)
    endpoints_seen = sorted(b.extra["endpoint"] for b in server.engine.batches.values())
    assert endpoints_seen == ["/v1/completions", "/v1/responses", "/v1/responses"]
    assert all(r.ok and r.text for r in job.results())


def test_a_system_prompt_becomes_the_instructions_of_response_items(server: SandboxServer) -> None:
    item = BatchItem(custom_id="a", kind="response", input="Hello")
    job = submit([item], "openai:gpt-4o-mini", sandbox=server, system="Answer in French.")
    [sent] = list(job.requests())
    assert sent.instructions == "Answer in French." and sent.messages == []
    job.wait(poll_min=0.02, timeout=60)
    [result] = list(job.results())
    assert result.ok and result.text
    [batch] = server.engine.batches.values()
    assert batch.requests[0].body["instructions"] == "Answer in French."


@pytest.mark.parametrize(
    ("provider", "model", "kind", "fields", "said"),
    [
        ("groq", "llama-3.3-70b-versatile", "response", {"input": "x"}, "Responses API"),
        ("groq", "llama-3.3-70b-versatile", "moderation", {"input": "x"}, "moderation"),
        ("groq", "llama-3.3-70b-versatile", "completion", {"prompt": "x"}, "completion"),
    ],
)
def test_providers_refuse_kinds_they_do_not_serve_while_planning(
    polybatch_sandbox: Callable[..., Sandbox],
    provider: str,
    model: str,
    kind: str,
    fields: dict[str, Any],
    said: str,
) -> None:
    sandbox = polybatch_sandbox(providers=[provider])
    chat = BatchItem(custom_id="ok", messages=[{"role": "user", "content": "hi"}])
    odd = BatchItem.model_validate({"custom_id": "odd", "kind": kind, **fields})
    with pytest.raises(ItemValidationError, match=f"does not offer {said} batches") as caught:
        submit([chat, odd], f"{provider}:{model}", sandbox=sandbox.server)
    assert caught.value.field == "kind" and caught.value.line == 2
    assert sandbox.server.engine.requests_seen == []


def test_azure_serves_responses_but_not_completions_or_moderations() -> None:
    # Azure's batch docs list chat and /v1/responses lines; legacy completions and moderations
    # are OpenAI's alone (compatible vendors: chat and embeddings, as before)
    assert AzureProvider.serves("response") and AzureProvider.serves("chat")
    assert not AzureProvider.serves("completion") and not AzureProvider.serves("moderation")
    assert not GroqProvider.serves("response")


# -- the codec ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("fields", "field", "said"),
    [
        (
            {"kind": "response", "input": "x", "reasoning": {"effort": "huge"}},
            "reasoning.effort",
            "one of",
        ),
        (
            {"kind": "response", "input": "x", "text": {"format": {"type": "xml"}}},
            "text.format.type",
            "expected",
        ),
        ({"kind": "response", "input": "x", "extra": {"input": "y"}}, "extra.input", "own field"),
        (
            {"kind": "completion", "prompt": "x", "stop": ["a", "b", "c", "d", "e"]},
            "stop",
            "up to 4",
        ),
        (
            {"kind": "moderation", "input": "x", "extra": {"temperature": 1}},
            "extra.temperature",
            "Unrecognized",
        ),
    ],
)
def test_bad_items_of_the_new_kinds_are_refused_naming_the_field(
    fields: dict[str, Any], field: str, said: str
) -> None:
    item = BatchItem.model_validate({"custom_id": "a", **fields})
    with pytest.raises(ItemValidationError, match=said) as caught:
        codec.check_item(item, "gpt-4o-mini")
    assert caught.value.field == field


def test_responses_usage_is_decoded_in_disjoint_buckets() -> None:
    usage = endpoints.responses_usage(
        {
            "input_tokens": 1000,
            "input_tokens_details": {"cached_tokens": 600, "cache_write_tokens": 100},
            "output_tokens": 300,
            "output_tokens_details": {"reasoning_tokens": 200},
        }
    )
    assert (usage.input_tokens, usage.cached_input_tokens, usage.cache_write_5m_tokens) == (
        300,
        600,
        100,
    )
    assert usage.output_tokens == 300 and usage.reasoning_tokens == 200
    assert usage.total_input_tokens == 1000


def test_incomplete_and_failed_responses() -> None:
    common = {"custom_id": "a", "provider": "openai", "batch_id": "b"}
    cut = endpoints.response_result(
        {
            "object": "response",
            "status": "incomplete",
            "incomplete_details": {"reason": "max_output_tokens"},
            "output": [{"type": "reasoning", "summary": []}],
        },
        common,
    )
    assert cut.ok and cut.finish_reason == "length" and cut.text is None
    failed = endpoints.response_result(
        {
            "object": "response",
            "status": "failed",
            "error": {"code": "server_error", "message": "boom"},
        },
        common,
    )
    assert failed.status == "errored" and failed.error is not None and failed.error.retryable


def test_sandbox_bodies_parse_as_the_sdk_types(server: SandboxServer) -> None:
    items = [
        BatchItem(custom_id="r", kind="response", input="hi", reasoning={"effort": "high"}),
        BatchItem(custom_id="c", kind="completion", prompt="hi", model="gpt-3.5-turbo-instruct"),
        BatchItem(custom_id="m", kind="moderation", input="hi", model="omni-moderation-latest"),
    ]
    job = submit(items, "openai:gpt-4o-mini", sandbox=server)
    job.wait(poll_min=0.02, timeout=60)
    got = {r.custom_id: r for r in job.results()}
    assert all(r.ok and r.response is not None for r in got.values())
    response = Response.model_validate(got["r"].response)
    assert response.output_text == got["r"].text
    assert (
        response.usage is not None and response.usage.output_tokens_details.reasoning_tokens == 64
    )
    assert Completion.model_validate(got["c"].response).choices[0].text == got["c"].text
    verdict = ModerationCreateResponse.model_validate(got["m"].response).results[0]
    assert verdict.flagged is False and got["m"].moderation is not None
    assert verdict.category_scores.violence == got["m"].moderation.category_scores["violence"]


@pytest.mark.parametrize("style", ["classic", "v1"])
def test_azure_runs_a_responses_batch_on_its_deployment(
    polybatch_sandbox: Callable[..., Sandbox], tmp_path: Path, style: str
) -> None:
    server = polybatch_sandbox(providers=["azure"], api_key=KEY).server
    p = AzureProvider(
        **AzureProvider.sandbox_settings(server.url, KEY),
        settings={
            "max_retries": 0,
            "style": style,
            "deployments": {"gpt-4o-mini": "gpt-4o-mini-globalbatch"},
        },
    )
    item = BatchItem(custom_id="r", kind="response", input="Hello", max_tokens=30)
    encoded = p.encode(item, "gpt-4o-mini")
    assert json.loads(encoded)["url"] == "/v1/responses"
    assert json.loads(encoded)["body"]["model"] == "gpt-4o-mini-globalbatch"
    sub = p.submit(write_lines(tmp_path / "in.jsonl", [encoded]), model="gpt-4o-mini", metadata={})
    assert wait_terminal(p, server.engine, sub.batch_id).state == "completed"
    [result] = list(p.results(sub.batch_id))
    assert result.ok and result.text and result.usage.output_tokens > 0
    assert result.model == "gpt-4o-mini", "Azure reports the model behind the deployment"
    assert server.engine.batches[sub.batch_id].extra["endpoint"] == "/v1/responses"


class City(BaseModel):
    name: str
    population: int


@pytest.mark.parametrize("rate", [0.0, 1.0])
def test_structured_responses_are_checked_against_their_model(
    make_server: ServerFactory, rate: float
) -> None:
    server = make_server(faults=Faults(invalid_json_rate=rate))
    item = BatchItem(custom_id="r", kind="response", input="A city?", response_model=City)
    job = submit([item], "openai:gpt-4o-mini", sandbox=server)
    job.wait(poll_min=0.02, timeout=60)
    [result] = list(job.results())
    [batch] = server.engine.batches.values()
    assert batch.requests[0].body["text"]["format"]["name"] == "City"
    if rate == 0.0:
        assert result.ok and isinstance(result.parsed, City)
    else:  # the sandbox broke the JSON: the reply is billed but fails its model
        assert result.status == "errored" and result.error is not None
        assert result.error.code == "invalid_output" and result.usage.output_tokens > 0
