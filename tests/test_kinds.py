"""The item kinds beyond chat and embedding (issue 19, item 1): ``response``, ``completion`` and
``moderation`` in the neutral model, OpenAI-format lines of their endpoints read as they are,
job defaults by kind, and providers refusing kinds they do not serve while planning (the CLI
names file, line and field). End to end through a provider: plugins/openai/tests/
test_openai_endpoints.py."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from polybatch import submit
from polybatch.errors import InputError, ItemValidationError
from polybatch.inputs import item_from_dict
from polybatch.items import BatchItem, BatchResult, Message
from polybatch.jobs.planner import apply_defaults
from polybatch.kinds import Moderation, input_texts
from polybatch.sandbox import SandboxServer
from polybatch.testing import CliOutcome


class City(BaseModel):
    name: str


# -- the item -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"kind": "response"}, "a response item needs 'input'"),
        ({"kind": "completion"}, "a completion item needs 'prompt'"),
        ({"kind": "moderation"}, "a moderation item needs 'input'"),
        ({"kind": "moderation", "input": "x", "temperature": 0.5}, "cannot set temperature"),
        (
            {"kind": "completion", "prompt": "x", "response_format": {"type": "json_object"}},
            "cannot set response_format",
        ),
        (
            {"kind": "completion", "prompt": "x", "input": "y"},
            "belongs to kind='embedding' or 'response' or 'moderation'",
        ),
        ({"kind": "response", "input": "x", "seed": 1}, "cannot set seed"),
        (
            {"prompt": "x", "messages": [{"role": "user", "content": "y"}]},
            "give either 'prompt' or 'messages', not both",
        ),
        (
            {"instructions": "x", "messages": [{"role": "user", "content": "y"}]},
            "belongs to kind='response'",
        ),
        (
            {"kind": "response", "input": "x", "messages": [{"role": "user", "content": "y"}]},
            "takes 'input', not 'messages'",
        ),
        ({"kind": "moderation", "input": [{"type": "audio"}]}, "'text' or 'image_url' part"),
        ({"kind": "response", "input": [{"content": "no role"}]}, "needs a 'role' or a 'type'"),
        ({"kind": "embedding", "input": [{"type": "text", "text": "x"}]}, "must be one string"),
        ({"kind": "response", "input": []}, "at least 1 item"),
        ({"kind": "completion", "prompt": ""}, "at least 1 character"),
    ],
)
def test_items_of_the_new_kinds_are_validated(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        BatchItem.model_validate(fields)


@pytest.mark.parametrize(
    "fields",
    [
        {
            "kind": "response",
            "input": "hi",
            "instructions": "Be brief.",
            "max_tokens": 50,
            "reasoning": {"effort": "low"},
            "tools": [{"type": "web_search"}],
            "temperature": 0.2,
        },
        {
            "kind": "response",
            "input": [{"role": "user", "content": [{"type": "input_text", "text": "hi"}]}],
        },
        {"kind": "completion", "prompt": "Once", "max_tokens": 5, "stop": ["\n"], "seed": 3},
        {"kind": "moderation", "input": "hello", "model": "omni-moderation-latest"},
        {
            "kind": "moderation",
            "input": [
                {"type": "text", "text": "a"},
                {"type": "image_url", "image_url": {"url": "u"}},
            ],
        },
    ],
)
def test_items_of_the_new_kinds_round_trip_through_json(fields: dict[str, Any]) -> None:
    item = BatchItem.model_validate({"custom_id": "a", **fields})
    line = item.model_dump_json(exclude_none=True, exclude_defaults=True)
    assert BatchItem.model_validate_json(line) == item
    assert json.loads(line)["kind"] == fields["kind"]


def test_structured_output_of_a_response_item_goes_to_text_format() -> None:
    item = BatchItem(kind="response", input="Name a city", response_model=City)
    assert item.response_format is None and item.text is not None
    fmt = item.text["format"]
    assert fmt["type"] == "json_schema" and fmt["name"] == "City" and fmt["strict"] is True
    assert fmt["schema"]["required"] == ["name"]
    ok = BatchResult(custom_id="a", status="succeeded", text='{"name": "Oslo"}')
    assert item.check_result(ok).ok
    bad = item.check_result(ok.model_copy(update={"text": '{"town": 1}'}))
    assert bad.status == "errored" and bad.error is not None
    assert bad.error.code == "invalid_output"
    # read back from an items file (no class at hand), the check still applies
    again = BatchItem.model_validate_json(item.model_dump_json(exclude_none=True))
    assert again.check_result(ok.model_copy(update={"text": "not json"})).status == "errored"


def test_a_moderation_result_round_trips() -> None:
    verdict = Moderation(
        flagged=True, categories={"violence": True}, category_scores={"violence": 0.9}
    )
    result = BatchResult(custom_id="m", status="succeeded", moderation=verdict)
    again = BatchResult.model_validate_json(result.model_dump_json())
    assert again.moderation == verdict and again.text is None


def test_input_texts_reads_strings_parts_and_messages() -> None:
    assert input_texts("a") == ["a"]
    assert input_texts([{"type": "text", "text": "b"}, {"type": "image_url", "image_url": {}}]) == [
        "b"
    ]
    messages = [
        {"role": "user", "content": [{"type": "input_text", "text": "c"}]},
        {"role": "assistant", "content": "d"},
    ]
    assert input_texts(messages) == ["c", "d"]
    assert input_texts(None) == []


# -- OpenAI-format lines ------------------------------------------------------------------------
def openai_line(url: str, **body: Any) -> dict[str, Any]:
    return {"custom_id": "x", "method": "POST", "url": url, "body": body}


def test_openai_lines_of_the_new_endpoints_are_read_as_they_are() -> None:
    response = item_from_dict(
        openai_line(
            "/v1/responses",
            model="gpt-5-mini",
            input="hi",
            instructions="Be brief.",
            max_output_tokens=64,
            text={"format": {"type": "json_object"}},
            store=False,
        )
    )
    assert response.kind == "response" and response.model == "gpt-5-mini"
    assert (response.input, response.instructions, response.max_tokens) == ("hi", "Be brief.", 64)
    assert response.text == {"format": {"type": "json_object"}} and response.extra == {
        "store": False
    }
    assert response.output_check() is not None, "text.format asks for JSON"
    completion = item_from_dict(
        openai_line("/v1/completions", model="gpt-3.5-turbo-instruct", prompt="Once", max_tokens=5)
    )
    assert (completion.kind, completion.prompt, completion.max_tokens) == ("completion", "Once", 5)
    moderation = item_from_dict(openai_line("/v1/moderations", input="hello"))
    assert (moderation.kind, moderation.input, moderation.model) == ("moderation", "hello", None)
    embedding = item_from_dict(
        openai_line("/v1/embeddings", model="text-embedding-3-small", input="v")
    )
    assert embedding.kind == "embedding" and embedding.model == "text-embedding-3-small"
    chat = item_from_dict(
        openai_line(
            "/v1/chat/completions", model="gpt-4o", messages=[{"role": "user", "content": "q"}]
        )
    )
    assert chat.kind == "chat" and chat.model is None, "a chat line's model is the job's"


@pytest.mark.parametrize(
    ("record", "field", "said"),
    [
        (
            openai_line("/v1/moderations", input=[{"type": "video", "video": "v"}]),
            "input[0]",
            "image_url",
        ),
        (
            openai_line("/v1/completions", messages=[{"role": "user", "content": "q"}]),
            "prompt",
            "needs 'prompt'",
        ),
        (openai_line("/v1/images/generations", prompt="cat"), "url", "unsupported endpoint"),
        ({"kind": "response", "input": "x", "seed": 4}, "seed", "cannot set seed"),
        ({"kind": "moderation", "input": [{"type": "video"}]}, "input[0]", "image_url"),
        ({"kind": "completion"}, "prompt", "needs 'prompt'"),
    ],
)
def test_bad_records_of_the_new_kinds_name_the_field(
    record: dict[str, Any], field: str, said: str
) -> None:
    with pytest.raises(InputError, match=said) as caught:
        item_from_dict(record, path="in.jsonl", line=3)
    assert caught.value.field == field and caught.value.line == 3


def test_a_neutral_completion_record_keeps_its_prompt() -> None:
    # ``prompt`` is a chat shorthand for one user message, except on a completion item
    assert item_from_dict({"kind": "completion", "prompt": "Once"}).prompt == "Once"
    assert item_from_dict({"prompt": "Hi"}).messages[0].content == "Hi"


# -- job defaults -------------------------------------------------------------------------------
def test_job_defaults_apply_by_kind() -> None:
    defaults = {"max_tokens": 40, "temperature": 0.3, "seed": 7}
    completion = apply_defaults(BatchItem(kind="completion", prompt="x"), defaults, "Sys")
    assert (completion.max_tokens, completion.temperature, completion.seed) == (40, 0.3, 7)
    response = apply_defaults(BatchItem(kind="response", input="x"), defaults, "Sys")
    assert (response.max_tokens, response.seed, response.instructions) == (40, None, "Sys")
    moderation = apply_defaults(BatchItem(kind="moderation", input="x"), defaults, "Sys")
    assert moderation == BatchItem(kind="moderation", input="x")


# -- providers that do not serve a kind ---------------------------------------------------------
def test_the_cli_refuses_a_kind_the_provider_does_not_serve(
    tmp_path: Path, polybatch_cli: Callable[..., CliOutcome]
) -> None:
    src = tmp_path / "in.jsonl"
    src.write_text(
        json.dumps({"custom_id": "a", "prompt": "hi"})
        + "\n"
        + json.dumps(openai_line("/v1/moderations", input="hello"))
        + "\n"
    )
    outcome = polybatch_cli("run", str(src), "--model", "fake:echo", "--no-progress")
    assert outcome.exit_code == 2, outcome.stdout
    assert f"{src}:2" in outcome.stderr and "field 'kind'" in outcome.stderr
    assert "fake does not offer moderation batches" in outcome.stderr
    assert "Traceback" not in outcome.stderr and len(outcome.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("fields", "label"),
    [
        ({"kind": "response", "input": "x"}, "Responses API"),
        ({"kind": "completion", "prompt": "x"}, "completion"),
        ({"kind": "moderation", "input": "x"}, "moderation"),
    ],
)
def test_a_chat_only_provider_refuses_the_new_kinds_before_its_own_checks(
    make_sandbox: Callable[..., SandboxServer], fields: dict[str, Any], label: str
) -> None:
    # Anthropic's adapter validates chat requests: it never sees the item
    server = make_sandbox()
    chat = BatchItem(custom_id="c", messages=[Message(role="user", content="hi")])
    odd = BatchItem.model_validate({"custom_id": "o", **fields})
    with pytest.raises(
        ItemValidationError, match=f"anthropic does not offer {label} batches"
    ) as caught:
        submit([chat, odd], "anthropic:claude-haiku-4-5", sandbox=server)
    assert caught.value.field == "kind" and caught.value.line == 2
    assert server.engine.requests_seen == []
