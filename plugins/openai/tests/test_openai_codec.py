"""The wire codec on its own: encoding, decoding both ways, usage mapping, line splitting."""

from __future__ import annotations

import itertools
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from polybatch import wire
from polybatch.errors import ItemValidationError
from polybatch.items import BatchItem, Usage
from polybatch.plugins import PluginRegistry
from polybatch.providers import TERMINAL_STATES
from polybatch_openai import codec, plugin
from polybatch_openai.azure import AzureProvider
from polybatch_openai.compatible import GroqProvider, TogetherProvider
from polybatch_openai.provider import OpenAIProvider

MODEL = "gpt-4o-mini"


def test_encode_line_shape() -> None:
    item = BatchItem(
        custom_id="q1",
        messages=[
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": [{"type": "text", "text": "hi"}]},
        ],
        max_tokens=10,
        temperature=0.5,
        top_p=0.9,
        seed=7,
        stop=["\n"],
        response_format={"type": "json_object"},
        extra={"logprobs": True, "temperature": 0.1},
    )
    raw = codec.encode_line(item, MODEL)
    assert b"\n" not in raw and b", " not in raw  # compact, one line
    line = json.loads(raw)
    assert line == {
        "custom_id": "q1",
        "method": "POST",
        "url": "/v1/chat/completions",
        "body": {
            "model": MODEL,
            "messages": [
                {"role": "system", "content": "be brief"},
                {"role": "user", "content": [{"type": "text", "text": "hi"}]},
            ],
            "max_completion_tokens": 10,
            "temperature": 0.1,  # extra wins: it is what the user spelled out
            "top_p": 0.9,
            "seed": 7,
            "stop": ["\n"],
            "response_format": {"type": "json_object"},
            "logprobs": True,
        },
    }


def test_encode_url_and_model_overrides() -> None:
    item = BatchItem(
        custom_id="a", model="my-deployment", messages=[{"role": "user", "content": "x"}]
    )
    line = json.loads(codec.encode_line(item, MODEL, url="/chat/completions"))
    assert line["url"] == "/chat/completions" and line["body"]["model"] == "my-deployment"
    with pytest.raises(ValueError, match="custom_id"):
        codec.encode_line(BatchItem(messages=[{"role": "user", "content": "x"}]), MODEL)


def test_usage_subtracts_cached_tokens_once() -> None:
    usage = codec.usage_from_body(
        {
            "prompt_tokens": 1000,
            "completion_tokens": 300,
            "total_tokens": 1300,
            "prompt_tokens_details": {"cached_tokens": 800},
            "completion_tokens_details": {"reasoning_tokens": 200},
        }
    )
    assert usage == Usage(
        input_tokens=200, cached_input_tokens=800, output_tokens=300, reasoning_tokens=200
    )
    assert usage.total_input_tokens == 1000 and usage.total_tokens == 1300
    assert codec.usage_from_body(None) == Usage()
    assert (
        codec.usage_from_body({"prompt_tokens": 5, "prompt_tokens_details": None}).input_tokens == 5
    )


def _ok_line() -> dict[str, Any]:
    body = codec.chat_completion(
        completion_id="chatcmpl-1",
        created=1,
        model="gpt-4o-mini-2024-07-18",
        texts=["hello"],
        finish_reason="stop",
        prompt_tokens=10,
        completion_tokens=2,
        cached_tokens=4,
    )
    return codec.response_line("l1", "c1", status_code=200, request_id="r", body=body)


def test_decode_success() -> None:
    r = codec.decode_result(wire.dumps(_ok_line()), provider="openai", batch_id="b1")
    assert (r.status, r.text, r.finish_reason, r.model) == (
        "succeeded",
        "hello",
        "stop",
        "gpt-4o-mini-2024-07-18",
    )
    assert (r.provider, r.batch_id) == ("openai", "b1")
    assert r.usage == Usage(input_tokens=6, cached_input_tokens=4, output_tokens=2)
    assert r.response is not None and r.response["id"] == "chatcmpl-1"


@pytest.mark.parametrize(
    ("status", "error", "code", "retryable"),
    [
        (
            400,
            {
                "message": "bad",
                "type": "invalid_request_error",
                "param": "x",
                "code": "invalid_value",
            },
            "invalid_value",
            False,
        ),
        (
            400,
            {"message": "bad", "type": "invalid_request_error", "param": None, "code": None},
            "invalid_request_error",
            False,
        ),
        (408, {"message": "slow", "type": "timeout", "code": None}, "timeout", True),
        (409, {"message": "busy", "type": "conflict", "code": None}, "conflict", True),
        (
            429,
            {"message": "slow down", "type": "requests", "code": "rate_limit_exceeded"},
            "rate_limit_exceeded",
            True,
        ),
        (
            500,
            {"message": "oops", "type": "server_error", "code": "server_error"},
            "server_error",
            True,
        ),
        (503, {}, "http_503", True),
    ],
)
def test_decode_http_errors(status: int, error: dict[str, Any], code: str, retryable: bool) -> None:
    body = {"error": error} if error else {}
    line = codec.response_line("l", "c", status_code=status, request_id="r", body=body)
    r = codec.decode_result(line)
    assert r.status == "errored" and r.error is not None
    assert (r.error.code, r.error.status_code, r.error.retryable) == (code, status, retryable)
    assert r.response == body and r.usage == Usage()


@pytest.mark.parametrize(
    ("code", "status", "retryable"),
    [
        ("batch_expired", "expired", True),
        ("batch_cancelled", "cancelled", True),
        ("request_timeout", "errored", True),
        ("something_new", "errored", False),
    ],
)
def test_decode_error_only_lines(code: str, status: str, retryable: bool) -> None:
    r = codec.decode_result(codec.error_line("l", "c", code=code, message="m"))
    assert r.status == status and r.error is not None
    assert (r.error.code, r.error.retryable, r.error.status_code) == (code, retryable, None)


def test_decode_odd_lines() -> None:
    r = codec.decode_result({"id": "l", "custom_id": "c", "response": None, "error": None})
    assert r.status == "errored" and r.error and r.error.code == "invalid_output_line"
    with pytest.raises(codec.WireError):
        codec.decode_result(b"{broken")
    with pytest.raises(codec.WireError):
        codec.decode_result(b'{"id": "x"}')


# -- sandbox side ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"messages": [{"role": "user", "content": "x"}]}, "model"),
        ({"model": MODEL}, "messages"),
        ({"model": MODEL, "messages": []}, "messages"),
        ({"model": MODEL, "messages": [{"role": "robot", "content": "x"}]}, "messages[0].role"),
        ({"model": MODEL, "messages": [{"role": "user"}]}, "messages[0].content"),
        ({"model": MODEL, "messages": [{"role": "user", "content": []}]}, "messages[0].content"),
        (
            {"model": MODEL, "messages": [{"role": "user", "content": [{"text": "x"}]}]},
            "messages[0].content[0]",
        ),
        (
            {"model": MODEL, "messages": [{"role": "user", "content": "x"}], "temperature": 2.5},
            "temperature",
        ),
        ({"model": MODEL, "messages": [{"role": "user", "content": "x"}], "top_p": -0.1}, "top_p"),
        (
            {"model": MODEL, "messages": [{"role": "user", "content": "x"}], "max_tokens": 0},
            "max_tokens",
        ),
        (
            {
                "model": MODEL,
                "messages": [{"role": "user", "content": "x"}],
                "max_completion_tokens": True,
            },
            "max_completion_tokens",
        ),
        (
            {
                "model": MODEL,
                "messages": [{"role": "user", "content": "x"}],
                "max_tokens": 1,
                "max_completion_tokens": 1,
            },
            "max_completion_tokens",
        ),
        (
            {"model": MODEL, "messages": [{"role": "user", "content": "x"}], "stop": ["a"] * 5},
            "stop",
        ),
        (
            {"model": MODEL, "messages": [{"role": "user", "content": "x"}], "stream": True},
            "stream",
        ),
        (
            {
                "model": MODEL,
                "messages": [{"role": "user", "content": "x"}],
                "response_format": {"type": "yaml"},
            },
            "response_format.type",
        ),
        (
            {
                "model": MODEL,
                "messages": [{"role": "user", "content": "x"}],
                "response_format": {"type": "json_schema"},
            },
            "response_format.json_schema.name",
        ),
    ],
)
def test_parse_chat_body_rejects(body: dict[str, Any], param: str) -> None:
    with pytest.raises(codec.WireError) as info:
        codec.parse_chat_body(body)
    assert info.value.param == param


def test_parse_chat_body_accepts_both_max_token_names() -> None:
    msgs = [{"role": "user", "content": "x"}]
    assert (
        codec.parse_chat_body({"model": MODEL, "messages": msgs, "max_tokens": 3}).max_tokens == 3
    )
    req = codec.parse_chat_body(
        {"model": MODEL, "messages": msgs, "max_completion_tokens": 4, "user": "u"}
    )
    assert req.max_tokens == 4 and req.extra == {"user": "u"}


def test_decode_input_line_errors() -> None:
    for raw, code in (
        (b"[1]", "invalid_json_line"),
        (b"\xef\xbb\xbf{}", "invalid_json_line"),  # a UTF-8 BOM
        (b'{"method":"POST","url":"u","body":{}}', "invalid_request"),
        (b'{"custom_id":"a","method":"POST","url":"u","body":[]}', "invalid_request"),
    ):
        with pytest.raises(codec.WireError) as info:
            codec.decode_input_line(raw)
        assert info.value.code == code


# -- properties ----------------------------------------------------------------------------------
_text = st.text(min_size=1, max_size=40)
_messages = st.lists(
    st.builds(
        lambda role, content: {"role": role, "content": content},
        st.sampled_from(["user", "assistant"]),
        st.one_of(
            _text,
            st.lists(
                st.builds(lambda t: {"type": "text", "text": t}, _text), min_size=1, max_size=3
            ),
        ),
    ),
    min_size=1,
    max_size=4,
)
_items = st.builds(
    BatchItem,
    custom_id=st.text(min_size=1, max_size=64),
    messages=_messages,
    model=st.one_of(st.none(), st.sampled_from(["gpt-4o", "my-deployment"])),
    max_tokens=st.one_of(st.none(), st.integers(1, 100_000)),
    temperature=st.one_of(st.none(), st.floats(0, 2)),
    top_p=st.one_of(st.none(), st.floats(0, 1)),
    seed=st.one_of(st.none(), st.integers(-(2**63) + 1, 2**63 - 1)),
    stop=st.one_of(st.none(), _text, st.lists(_text, min_size=1, max_size=4)),
    response_format=st.one_of(
        st.none(),
        st.just({"type": "json_object"}),
        st.just(
            {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}}
        ),
    ),
    extra=st.dictionaries(
        st.sampled_from(["user", "logprobs", "service_tier"]), st.text(max_size=5), max_size=2
    ),
)


@settings(max_examples=150, deadline=None)
@given(item=_items, url=st.sampled_from(["/v1/chat/completions", "/chat/completions"]))
def test_round_trip_encode_then_sandbox_decode(item: BatchItem, url: str) -> None:
    provider = OpenAIProvider(api_key="unused")
    provider.validate_item(item, MODEL)
    parsed = codec.decode_input_line(codec.encode_line(item, MODEL, url=url))
    assert (parsed.custom_id, parsed.method, parsed.url) == (item.custom_id, "POST", url)
    req = codec.parse_chat_body(parsed.body)
    assert req.model == (item.model or MODEL)
    assert req.messages == [m.model_dump() for m in item.messages]
    assert req.max_tokens == item.max_tokens
    assert req.temperature == item.temperature and req.top_p == item.top_p and req.seed == item.seed
    assert req.stop == ([item.stop] if isinstance(item.stop, str) else item.stop)
    assert req.response_format == item.response_format
    assert req.extra == item.extra
    assert [t for _, t in req.transcript()] == [m.text for m in item.messages]


@settings(max_examples=150, deadline=None)
@given(
    objs=st.lists(
        st.dictionaries(st.text(max_size=5), st.text(max_size=10), max_size=3), max_size=6
    ),
    cuts=st.lists(st.integers(0, 400), max_size=6),
)
def test_iter_jsonl_any_chunking(objs: list[dict[str, str]], cuts: list[int]) -> None:
    data = b"".join(wire.dumps(o) + b"\n" for o in objs)
    bounds = sorted({0, len(data), *(c for c in cuts if c < len(data))})
    chunks = [data[a:b] for a, b in itertools.pairwise(bounds)]
    assert [json.loads(line) for line in wire.iter_jsonl(chunks)] == objs


def test_iter_jsonl_keeps_unicode_separators_and_crlf() -> None:
    data = '{"a":"x\u2028y\x85z"}\r\n\n{"b":1}'.encode()
    assert [json.loads(line) for line in wire.iter_jsonl([data[:5], data[5:]])] == [
        {"a": "x\u2028y\x85z"},
        {"b": 1},
    ]


def test_dumps_survives_lone_surrogates() -> None:
    assert json.loads(wire.dumps({"s": "\ud800"})) == {"s": "\ud800"}


def test_plugin_registers_provider() -> None:
    registry = PluginRegistry(load_entry_points=False)
    registry.add_plugin(plugin.plugin, name="openai", dist="polybatch-openai")
    assert registry.providers() == {
        "openai": OpenAIProvider,
        "azure": AzureProvider,
        "groq": GroqProvider,
        "together": TogetherProvider,
    }
    assert registry.price_files() == ([plugin.PRICES] if plugin.PRICES.exists() else [])


# -- one set of request rules for adapter and sandbox -------------------------------------------
@pytest.mark.parametrize(
    ("body", "param"),
    [
        (
            {
                "model": MODEL,
                "messages": [{"role": "system", "content": [{"type": "image_url"}]}],
            },
            "messages[0].content[0]",
        ),
        (
            {
                "model": MODEL,
                "messages": [{"role": "assistant", "content": [{"type": "input_audio"}]}],
            },
            "messages[0].content[0]",
        ),
        (
            {
                "model": MODEL,
                "messages": [{"role": "user", "content": "x"}],
                "response_format": {"type": "json_schema", "json_schema": {"name": "a b"}},
            },
            "response_format.json_schema.name",
        ),
    ],
)
def test_check_body_rejects_what_the_adapter_used_to_check_alone(
    body: dict[str, Any], param: str
) -> None:
    with pytest.raises(codec.WireError) as info:
        codec.check_body(body)
    assert info.value.param == param


def test_check_body_picks_the_endpoints_rules() -> None:
    chat = codec.check_body({"model": MODEL, "messages": [{"role": "user", "content": "x"}]})
    assert isinstance(chat, codec.ChatRequest)
    emb = codec.check_body({"model": MODEL, "input": "x"}, url="/embeddings")
    assert isinstance(emb, codec.EmbeddingRequest) and emb.inputs == ["x"]


@pytest.mark.parametrize(
    ("item", "field"),
    [
        (BatchItem(messages=[{"role": "user", "content": "x"}]), "model"),
        (BatchItem(model="m", messages=[{"role": "user", "content": "x"}], seed=2**70), "seed"),
        (
            BatchItem(model="m", messages=[{"role": "user", "content": "x"}], extra={"n": 0}),
            "extra.n",
        ),
        (BatchItem(model="m", kind="embedding", input="x", extra={"foo": 1}), "extra.foo"),
    ],
)
def test_check_item_names_the_items_field(item: BatchItem, field: str) -> None:
    with pytest.raises(ItemValidationError) as info:
        codec.check_item(item, "")
    assert info.value.field == field


def test_batch_states() -> None:
    assert codec.batch_state("finalizing") == "finalizing"
    assert codec.batch_state("something_new") == "in_progress"
    assert {s for s in codec.STATES if s in TERMINAL_STATES} == codec.TERMINAL_STATUSES
