"""Structured outputs (issue 8, item 1): response_model on items, checked replies, parsed results.

The item side is unit-tested here; end to end, through the runner, the real SDKs and the sandbox
over loopback, on OpenAI and Anthropic: the runner checks each collected result against its
item (``BatchItem.output_check()`` / ``OutputCheck.apply``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import jsonschema
import pytest
from pydantic import BaseModel, Field, ValidationError

from polybatch import Job, submit
from polybatch.inputs import item_from_dict
from polybatch.items import (
    BatchItem,
    BatchResult,
    Message,
    OutputCheck,
    import_model,
    json_schema_format,
    model_ref,
    strict_json_schema,
)
from polybatch.jobs.clients import make_provider
from polybatch.providers import BatchProvider
from polybatch.sandbox import Faults, SandboxServer
from polybatch.sandbox.model import SyntheticModel


class Address(BaseModel):
    """A nested model: pydantic writes it as a $ref into $defs."""

    city: str
    zip_code: str = Field(description="postal code", min_length=1)


class Person(BaseModel):
    """What the tests ask the model for."""

    name: str
    age: int = Field(ge=0, le=150)
    nickname: str | None = None
    address: Address
    tags: list[str] = []


REF = f"{__name__}:Person"
MODELS = ["openai:gpt-4o-mini", "anthropic:claude-haiku-4-5"]


def person_items(n: int, **extra: object) -> list[BatchItem]:
    return [
        BatchItem(
            custom_id=f"p-{i}",
            messages=[Message(role="user", content=f"Describe person number {i}.")],
            response_model=Person,
            **extra,  # type: ignore[arg-type]
        )
        for i in range(n)
    ]


def fast(job: Job) -> Job:
    return job.wait(poll_min=0.02, poll_max=0.2, timeout=60)


# -- the item side ------------------------------------------------------------------------------
def test_response_model_fills_a_strict_schema_and_a_ref() -> None:
    item = person_items(1)[0]
    assert item.response_format == json_schema_format(Person)
    spec = item.response_format["json_schema"]
    assert spec["name"] == "Person" and spec["strict"] is True
    schema = spec["schema"]
    assert schema["additionalProperties"] is False
    assert schema["required"] == ["name", "age", "nickname", "address", "tags"]
    assert schema["$defs"]["Address"]["additionalProperties"] is False
    assert item.response_model_ref == REF
    assert item.json_schema == schema


def test_the_class_is_not_serialised_but_the_schema_and_ref_are() -> None:
    item = person_items(1)[0]
    line = item.model_dump_json(exclude_none=True, exclude_defaults=True)
    assert 'response_model"' not in line
    back = BatchItem.model_validate_json(line)
    assert back.response_model is None
    assert back.response_format == item.response_format
    assert back.response_model_ref == REF
    assert back.output_check() == OutputCheck(ref=REF)


def test_response_model_may_be_named_by_a_string() -> None:
    item = BatchItem(messages=[Message(role="user", content="x")], response_model=REF)  # type: ignore[arg-type]
    assert item.response_model is Person and item.response_model_ref == REF


def test_input_files_accept_response_model_and_embeddings() -> None:
    item = item_from_dict({"prompt": "Who?", "response_model": REF}, path="f.jsonl", line=1)
    assert item.response_model_ref == REF and item.json_schema is not None
    emb = item_from_dict(
        {"kind": "embedding", "input": "hello", "model": "text-embedding-3-small"}, line=2
    )
    assert (emb.kind, emb.input, emb.messages) == ("embedding", "hello", [])


def test_an_unimportable_response_model_name_is_an_input_error() -> None:
    from polybatch.errors import InputError

    with pytest.raises(InputError, match="cannot use response_model"):
        item_from_dict({"prompt": "x", "response_model": "no_such_module_pb:Nope"}, line=3)


def test_response_model_and_a_different_response_format_clash() -> None:
    with pytest.raises(ValidationError, match="not both"):
        BatchItem(
            messages=[Message(role="user", content="x")],
            response_model=Person,
            response_format={"type": "json_object"},
        )


def test_classes_that_cannot_be_imported_again_get_no_ref() -> None:
    class Local(BaseModel):
        x: int

    assert model_ref(Local) is None
    assert model_ref(Person) == REF
    item = BatchItem(messages=[Message(role="user", content="x")], response_model=Local)
    assert item.response_model_ref is None
    # the class itself still checks replies in this process
    assert item.output_check() == OutputCheck(ref=None, model=Local)


def test_import_model_rejects_what_is_not_a_model() -> None:
    with pytest.raises(ImportError):
        import_model("not a ref")
    with pytest.raises(TypeError):
        import_model("json:loads")
    with pytest.raises(ImportError):
        import_model(f"{__name__}:Missing")


def test_strict_schema_inlines_refs_with_siblings_and_drops_null_defaults() -> None:
    schema = {
        "type": "object",
        "properties": {
            "a": {"$ref": "#/$defs/A", "description": "an A"},
            "b": {"anyOf": [{"type": "string"}, {"type": "null"}], "default": None},
        },
        "$defs": {"A": {"type": "object", "properties": {"x": {"type": "integer"}}}},
    }
    out = strict_json_schema(schema)
    assert out["properties"]["a"] == {
        "type": "object",
        "properties": {"x": {"type": "integer"}},
        "required": ["x"],
        "additionalProperties": False,
        "description": "an A",
    }
    assert "default" not in out["properties"]["b"]
    assert out["required"] == ["a", "b"]
    assert "additionalProperties" not in schema, "the input is not modified"


# -- checking a reply ---------------------------------------------------------------------------
def ok(text: str | None, **extra: object) -> BatchResult:
    return BatchResult(custom_id="p-0", status="succeeded", text=text, **extra)  # type: ignore[arg-type]


GOOD = json.dumps(
    {"name": "Ada", "age": 36, "nickname": None, "address": {"city": "London", "zip_code": "N1"}}
)


def test_a_valid_reply_stays_succeeded_and_parses() -> None:
    item = person_items(1)[0]
    r = item.check_result(ok(GOOD))
    assert r.ok and r.response_model_ref == REF
    assert isinstance(r.parsed, Person) and r.parsed.address.city == "London"
    assert r.parsed is r.parsed, "parsed once, then cached"
    assert r.parsed_as(Person) == r.parsed


def test_a_reply_that_does_not_validate_is_an_item_error() -> None:
    item = person_items(1)[0]
    bad = json.dumps({"name": "Ada", "age": 200, "address": {"city": "X"}})
    r = item.check_result(ok(bad, usage={"input_tokens": 5, "output_tokens": 7}))
    assert r.status == "errored" and r.error is not None
    assert r.error.code == "invalid_output" and not r.error.retryable
    assert r.error.message.startswith("2 validation errors for Person: ")
    assert "age: Input should be less than or equal to 150" in r.error.message
    assert "address.zip_code: Field required" in r.error.message
    assert r.text == bad and r.usage.output_tokens == 7, "the billed reply is kept"
    assert r.parsed is None


def test_broken_json_and_missing_text_are_item_errors() -> None:
    item = person_items(1)[0]
    cut = item.check_result(ok(GOOD[:20], finish_reason="length"))
    assert cut.error is not None and "Invalid JSON" in cut.error.message
    assert cut.error.message.endswith("(the reply was cut off at max_tokens)")
    empty = item.check_result(ok(None))
    assert empty.error is not None and empty.error.code == "invalid_output"


def test_without_a_model_only_json_is_checked() -> None:
    raw = {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}}
    item = BatchItem(messages=[Message(role="user", content="x")], response_format=raw)
    assert item.output_check() == OutputCheck()
    assert item.check_result(ok('{"any": 1}')).ok
    r = item.check_result(ok("not json"))
    assert r.error is not None and r.error.message.startswith("the reply is not valid JSON")


def test_plain_items_and_failed_results_pass_untouched() -> None:
    plain = BatchItem(messages=[Message(role="user", content="x")])
    r = ok("anything")
    assert plain.check_result(r) is r
    failed = BatchResult(custom_id="p-0", status="expired")
    checked = person_items(1)[0].check_result(failed)
    assert checked.status == "expired" and checked.response_model_ref == REF


def test_parsed_as_works_on_any_result_and_explains_failures() -> None:
    assert ok(GOOD).parsed is None, "no model known: parsed is None, parsed_as still works"
    assert ok(GOOD).parsed_as(Person).name == "Ada"
    with pytest.raises(ValueError, match="cannot be parsed"):
        BatchResult(custom_id="x", status="expired").parsed_as(Person)


# -- the sandbox's synthetic model --------------------------------------------------------------
def test_the_synthetic_model_answers_schemas_with_valid_json() -> None:
    schema = json_schema_format(Person)["json_schema"]["schema"]
    model = SyntheticModel()
    for i in range(20):
        reply = model.chat(model="m", messages=[("user", f"q{i}")], json_schema=schema)
        Person.model_validate_json(reply.text)
        jsonschema.validate(json.loads(reply.text), schema)
        broken = model.chat(
            model="m", messages=[("user", f"q{i}")], json_schema=schema, invalid_json=True
        )
        with pytest.raises(ValidationError):
            Person.model_validate_json(broken.text)


# -- end to end ---------------------------------------------------------------------------------
def provider_for(spec: str, server: SandboxServer) -> BatchProvider:
    """The provider of ``spec`` pointed at the sandbox, as polybatch.submit builds it."""
    from polybatch.plugins import get_registry

    name = spec.partition(":")[0]
    cls = get_registry().provider_class(name)
    return make_provider(name, cls.sandbox_settings(server.url, server.engine.api_key or ""))


def run_checked(
    spec: str, server: SandboxServer, items: Sequence[BatchItem], tmp_path: Path
) -> dict[str, BatchResult]:
    """encode -> submit -> results -> ``item.check_result``: what the runner hook does, by hand."""
    provider = provider_for(spec, server)
    model = spec.partition(":")[2]
    lines = tmp_path / "lines.jsonl"
    lines.write_bytes(b"".join(provider.encode(i, model) + b"\n" for i in items))
    batch = provider.submit(lines, model=model, metadata={})
    assert provider.poll(batch.batch_id).terminal
    by_wire = {provider.wire_custom_id(i.custom_id or ""): i for i in items}
    out = {}
    for r in provider.results(batch.batch_id):
        item = by_wire[r.custom_id]
        out[item.custom_id or ""] = item.check_result(r)
    return out


@pytest.mark.parametrize("spec", MODELS)
def test_round_trip_parses_through_the_runner(spec: str, sandbox_server: SandboxServer) -> None:
    items = person_items(4)
    job = fast(submit(items, spec, sandbox=sandbox_server))
    results = list(job.results())
    assert [r.custom_id for r in results] == [i.custom_id for i in items]
    assert all(r.ok for r in results), [r.error for r in results]
    people = [r.parsed_as(Person) for r in results]
    assert all(isinstance(p, Person) and p.address.city for p in people)
    # read back from the job's files, as another process would
    again = [r.parsed_as(Person) for r in Job.load(job.id).results()]
    assert again == people


@pytest.mark.parametrize("spec", MODELS)
def test_parsed_works_on_results_read_back(spec: str, sandbox_server: SandboxServer) -> None:
    job = fast(submit(person_items(3), spec, sandbox=sandbox_server))
    for r in Job.load(job.id).results():
        assert r.response_model_ref == REF
        assert isinstance(r.parsed, Person)


@pytest.mark.parametrize("spec", MODELS)
def test_invalid_json_is_an_item_error(spec: str, make_sandbox: object, tmp_path: Path) -> None:
    server = make_sandbox(faults=Faults(invalid_json_rate=1.0))  # type: ignore[operator]
    items = person_items(3)
    results = run_checked(spec, server, items, tmp_path)
    for r in results.values():
        assert r.status == "errored" and r.error is not None, r
        assert r.error.code == "invalid_output"
        assert r.error.message.startswith("1 validation error for Person: (root): Invalid JSON")
        assert r.usage.output_tokens > 0, "a broken reply is still billed, and counted"
    assert [e.kind for e in server.engine.fault_log] == ["invalid_json"] * 3


@pytest.mark.parametrize("spec", MODELS)
def test_some_invalid_replies_among_good_ones(
    spec: str, make_sandbox: object, tmp_path: Path
) -> None:
    server = make_sandbox(faults=Faults(seed=7, invalid_json_rate=0.5))  # type: ignore[operator]
    results = run_checked(spec, server, person_items(12), tmp_path)
    bad = {cid for cid, r in results.items() if not r.ok}
    assert 0 < len(bad) < 12
    assert {e.where.split()[-1] for e in server.engine.fault_log} == {
        provider_for(spec, server).wire_custom_id(cid) for cid in bad
    }
    assert all(isinstance(r.parsed, Person) for r in results.values() if r.ok)


@pytest.mark.parametrize("spec", MODELS)
def test_invalid_json_through_the_runner(spec: str, make_sandbox: object) -> None:
    server = make_sandbox(faults=Faults(invalid_json_rate=1.0))  # type: ignore[operator]
    job = fast(submit(person_items(2), spec, sandbox=server))
    results = list(job.results())
    assert all(r.status == "errored" for r in results)
    assert all(r.error and r.error.code == "invalid_output" for r in results)
    assert job.status().failed == 2
