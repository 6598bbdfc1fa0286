"""The Bedrock wire format: bodies per model family, record ids, output decoding, statuses."""

from __future__ import annotations

import json

import botocore.session
import pytest

from polybatch.errors import ConfigError, ItemValidationError
from polybatch.items import BatchItem, Message
from polybatch.providers import META_CHUNK, META_JOB, TERMINAL_STATES
from polybatch_bedrock import codec
from polybatch_bedrock.provider import BedrockProvider


def item(**kw: object) -> BatchItem:
    fields: dict[str, object] = {
        "custom_id": "a-1",
        "messages": [
            Message(role="system", content="Be brief."),
            Message(role="user", content="Hi"),
            Message(role="user", content="there"),
        ],
    }
    fields.update(kw)
    return BatchItem.model_validate(fields)


# -- statuses ---------------------------------------------------------------------------------
def test_every_status_of_the_sdk_is_mapped() -> None:
    model = botocore.session.get_session().get_service_model("bedrock")
    statuses = set(model.shape_for("ModelInvocationJobStatus").enum)
    assert statuses == set(codec.STATUS)
    assert codec.batch_state("Scheduled") == "validating"
    assert codec.batch_state("Stopping") == "cancelling"
    assert codec.batch_state("PartiallyCompleted") == "expired"
    assert codec.batch_state("Expired") == "expired"


def test_reported_statuses_read_back_as_the_same_state() -> None:
    for state in ("validating", "in_progress", "cancelling", *TERMINAL_STATES):
        for processed in (0, 3):
            for phase in (0.0, 0.5, 0.9):
                status = codec.reported_status(state, processed=processed, phase=phase)  # type: ignore[arg-type]
                assert codec.batch_state(status) == state
    assert codec.reported_status("expired", processed=2) == "PartiallyCompleted"
    assert codec.reported_status("validating", processed=0, phase=0.9) == "Scheduled"


# -- names, tokens, ids -----------------------------------------------------------------------
def test_job_name_and_token_are_pure_and_fit_the_sdk_patterns() -> None:
    meta = {META_JOB: "pb-0123456789abcdef", META_CHUNK: "12"}
    assert codec.job_name(meta) == "pb-0123456789abcdef-c12"
    token = codec.request_token(meta, "m", "s3://b/k.jsonl")
    assert token == codec.request_token(dict(meta), "m", "s3://b/k.jsonl")
    assert token != codec.request_token({**meta, META_CHUNK: "13"}, "m", "s3://b/k.jsonl")
    assert codec.TOKEN_RE.match(token)
    long = codec.job_name({META_JOB: "x" * 80, META_CHUNK: "1"})
    assert len(long) <= 63 and codec.JOB_NAME_RE.match(long)


def test_record_ids_are_alphanumeric_and_distinct() -> None:
    assert codec.wire_custom_id("CALL0000001") == "CALL0000001"
    mapped = codec.wire_custom_id("item-1")
    assert mapped.startswith("pb") and codec.RECORD_ID_RE.match(mapped)
    assert codec.wire_custom_id("pbabc") != "pbabc", "the reserved prefix is always mapped"
    assert (
        codec.job_id("arn:aws:bedrock:us-east-1:123456789012:model-invocation-job/abc123def456")
        == "abc123def456"
    )


def test_families_by_model_id() -> None:
    assert codec.family("anthropic.claude-haiku-4-5-20251001-v1:0") == "anthropic"
    assert codec.family("global.anthropic.claude-haiku-4-5-20251001-v1:0") == "anthropic"
    assert codec.family("us.amazon.nova-pro-v1:0") == "nova"
    assert codec.family("meta.llama3-1-8b-instruct-v1:0") == "llama"
    assert codec.family("anything", invocation_type="Converse") == "converse"
    arn = "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/abc"
    assert codec.family(arn, override="nova") == "nova"
    with pytest.raises(ValueError, match="Converse"):
        codec.family("cohere.command-r-v1:0")
    with pytest.raises(ConfigError):
        BedrockProvider(settings={}).encode(item(), "cohere.command-r-v1:0")


# -- encoding ---------------------------------------------------------------------------------
def test_claude_body_is_the_messages_body_without_model() -> None:
    line = json.loads(
        BedrockProvider().encode(item(max_tokens=50), "anthropic.claude-3-haiku-20240307-v1:0")
    )
    body = line["modelInput"]
    assert line["recordId"] == codec.wire_custom_id("a-1")
    assert body["anthropic_version"] == "bedrock-2023-05-31" and "model" not in body
    assert body["system"] == "Be brief." and body["max_tokens"] == 50
    assert body["messages"] == [{"role": "user", "content": "Hi\n\nthere"}]
    assert codec.check_model_input("anthropic", body, "m") is None


def test_claude_gets_a_default_max_tokens() -> None:
    provider = BedrockProvider(settings={"default_max_tokens": 77})
    body = json.loads(provider.encode(item(), "anthropic.claude-3-haiku-20240307-v1:0"))[
        "modelInput"
    ]
    assert body["max_tokens"] == 77


def test_nova_and_converse_bodies() -> None:
    nova = codec.model_input(item(temperature=0.3, stop="END"), "amazon.nova-lite-v1:0", "nova")
    assert nova["schemaVersion"] == "messages-v1"
    assert nova["system"] == [{"text": "Be brief."}]
    assert nova["messages"] == [{"role": "user", "content": [{"text": "Hi\n\nthere"}]}]
    assert nova["inferenceConfig"] == {
        "maxTokens": 1024,
        "temperature": 0.3,
        "stopSequences": ["END"],
    }
    converse = codec.model_input(item(), "x", "converse")
    assert "schemaVersion" not in converse and converse["messages"] == nova["messages"]
    assert codec.check_model_input("nova", nova, "m") is None
    assert codec.converse_turns(nova) == [("system", "Be brief."), ("user", "Hi\n\nthere")]


def test_llama_prompt_round_trips() -> None:
    body = codec.model_input(
        item(max_tokens=9, top_p=0.5), "meta.llama3-1-8b-instruct-v1:0", "llama"
    )
    assert body["prompt"].startswith("<|begin_of_text|><|start_header_id|>system")
    assert body["prompt"].endswith("<|start_header_id|>assistant<|end_header_id|>\n\n")
    assert (body["max_gen_len"], body["top_p"]) == (9, 0.5)
    assert codec.llama_turns(body["prompt"]) == [("system", "Be brief."), ("user", "Hi\n\nthere")]


@pytest.mark.parametrize(
    ("kw", "fam", "field"),
    [
        ({"seed": 3}, "anthropic", "seed"),
        ({"seed": 3}, "nova", "seed"),
        ({"stop": "x"}, "llama", "stop"),
        ({"response_format": {"type": "json_object"}}, "nova", "response_format"),
        (
            {
                "messages": [
                    Message(
                        role="user",
                        content=[{"type": "image_url", "image_url": {"url": "https://x/y.png"}}],
                    )
                ]
            },
            "converse",
            "messages[0].content[0].type",
        ),
        ({"messages": [Message(role="assistant", content="hi")]}, "nova", "messages[0].role"),
    ],
)
def test_what_a_family_cannot_express_is_refused(
    kw: dict[str, object], fam: codec.Family, field: str
) -> None:
    with pytest.raises(ItemValidationError) as caught:
        codec.model_input(item(**kw), "m", fam)
    assert caught.value.field == field


def test_json_object_for_claude_uses_the_forced_tool() -> None:
    body = codec.model_input(item(response_format={"type": "json_object"}), "m", "anthropic")
    assert body["tool_choice"]["type"] == "tool"


# -- decoding ---------------------------------------------------------------------------------
def test_decode_claude_output() -> None:
    out = {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "claude-haiku-4-5-20251001",
        "content": [{"type": "text", "text": "Hello"}],
        "stop_reason": "max_tokens",
        "usage": {"input_tokens": 11, "output_tokens": 2, "cache_read_input_tokens": 3},
    }
    r = codec.decode_record(
        {"recordId": "R1", "modelInput": {}, "modelOutput": out}, batch_id="j", model="anthropic.x"
    )
    assert (r.custom_id, r.status, r.text, r.finish_reason) == (
        "R1",
        "succeeded",
        "Hello",
        "length",
    )
    assert (r.provider, r.batch_id, r.model) == ("bedrock", "j", "anthropic.x")
    assert (r.usage.input_tokens, r.usage.cached_input_tokens, r.usage.output_tokens) == (11, 3, 2)


def test_decode_nova_converse_and_llama_outputs() -> None:
    nova = {
        "output": {"message": {"role": "assistant", "content": [{"text": "A"}, {"text": "B"}]}},
        "stopReason": "end_turn",
        "usage": {"inputTokens": 5, "outputTokens": 2, "cacheReadInputTokenCount": 1},
    }
    r = codec.decode_record(
        json.dumps({"recordId": "N", "modelOutput": nova}), batch_id=None, model="n"
    )
    assert (r.text, r.finish_reason, r.usage.input_tokens, r.usage.cached_input_tokens) == (
        "AB",
        "stop",
        5,
        1,
    )
    llama = {
        "generation": "G",
        "prompt_token_count": 7,
        "generation_token_count": 1,
        "stop_reason": "length",
    }
    r = codec.decode_record({"recordId": "L", "modelOutput": llama}, batch_id=None, model="l")
    assert (r.text, r.finish_reason, r.usage.input_tokens, r.usage.output_tokens) == (
        "G",
        "length",
        7,
        1,
    )


def test_record_errors_are_item_errors_retryable_by_status() -> None:
    bad = codec.decode_record(
        {"recordId": "E", "error": {"errorCode": 400, "errorMessage": "bad request"}},
        batch_id=None,
        model=None,
    )
    assert bad.status == "errored" and bad.error is not None
    assert (bad.error.code, bad.error.status_code, bad.error.retryable) == ("400", 400, False)
    busy = codec.decode_record(
        {"recordId": "E", "error": {"errorCode": 429, "errorMessage": "slow down"}},
        batch_id=None,
        model=None,
    )
    assert busy.error is not None and busy.error.retryable
    odd = codec.decode_record(
        {"recordId": "E", "error": {"errorCode": "ModelError"}}, batch_id=None, model=None
    )
    assert odd.error is not None and odd.error.status_code is None and not odd.error.retryable


def test_a_line_without_record_id_is_a_wire_error() -> None:
    with pytest.raises(ValueError, match="recordId"):
        codec.decode_record(b'{"modelOutput": {}}', batch_id=None, model=None)


def test_leftovers_and_input_ids() -> None:
    data = b'{"recordId":"A","modelInput":{}}\n{"recordId":"B","modelInput":{}}\n'
    assert codec.input_record_ids(data) == ["A", "B"]
    r = codec.leftover("A", "expired", batch_id="j")
    assert r.status == "expired" and r.error is not None and r.error.retryable


def test_s3_uris() -> None:
    assert codec.split_s3_uri("s3://my-bucket/in/put/") == ("my-bucket", "in/put/")
    assert codec.split_s3_uri("s3://my-bucket") == ("my-bucket", "")
    assert codec.folder("in") == "in/" and codec.folder("") == ""
    with pytest.raises(ValueError):
        codec.split_s3_uri("https://my-bucket/x")
