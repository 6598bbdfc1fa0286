"""Issue #16 item 8 (part B): plain prompts in BatchItem, other libraries' input shapes with stable
ids, a job-wide response_model (Python, profiles, --response-model), OpenAI-format results from
Python, and Job.batches(). With the in-process ``fake`` provider; the CLI through polybatch_cli."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from pydantic import BaseModel, ValidationError

import polybatch
from polybatch import BatchItem, RequestDefaults
from polybatch.errors import ConfigError
from polybatch.inputs import item_from_dict
from polybatch.sandbox import SandboxServer
from polybatch.testing import CliOutcome

FAKE = "fake:echo"
Cli = Callable[..., CliOutcome]


class City(BaseModel):
    name: str
    country: str


class Colour(BaseModel):
    colour: str


REF = f"{__name__}:City"


# -- BatchItem(prompt=...) ---------------------------------------------------------------------
def test_prompt_is_one_user_message() -> None:
    item = BatchItem(prompt="Hello?")
    assert [(m.role, m.content) for m in item.messages] == [("user", "Hello?")]
    assert item.prompt is None  # a shortcut: it is not kept, nor written to the job's files
    # (``prompt`` is a completion item's own field: on a chat item it stays unset)
    assert "prompt" not in item.model_dump(exclude_none=True)
    with_system = BatchItem(prompt="Hello?", system="Be brief.")
    assert [m.role for m in with_system.messages] == ["system", "user"]


def test_a_full_dump_of_an_item_reads_back_as_input() -> None:
    # every field written, nulls included (prompt: null beside messages is "not given")
    item = BatchItem(custom_id="a", prompt="Hello?", max_tokens=5)
    assert item_from_dict(json.loads(item.model_dump_json())) == item


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"prompt": ""}, "prompt: must be a non-empty string"),
        ({"prompt": "x", "messages": [{"role": "user", "content": "y"}]}, "not both"),
        ({"prompt": "x", "system": 3}, "system: must be a string"),
    ],
)
def test_bad_prompt_is_one_clear_error(kwargs: dict[str, object], fragment: str) -> None:
    with pytest.raises(ValidationError, match=fragment):
        BatchItem(**kwargs)  # type: ignore[arg-type]


# -- other libraries' shapes ---------------------------------------------------------------------
def test_id_content_lines_and_bare_lists_get_stable_ids(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    path.write_text(
        '{"id": "a", "content": [{"role": "user", "content": "Hello?"}]}\n'
        "\n"  # blank lines are not counted in the position
        '[{"role": "user", "content": "Two?"}]\n'
        '{"id": 7, "content": "Three?"}\n'
        '[{"role": "system", "content": "Brief."}, {"role": "user", "content": "Four?"}]\n',
        encoding="utf-8",
    )
    first = polybatch.submit(path, FAKE, start=False)
    ids = [i.custom_id for i in first.requests()]
    assert ids == ["a", "item-2", "7", "item-4"]
    assert [m.role for m in list(first.requests())[3].messages] == ["system", "user"]
    # the same file is the same job, with the same ids
    assert polybatch.submit(path, FAKE, start=False).id == first.id
    results = polybatch.run(path, FAKE)
    assert [r.custom_id for r in results] == ids and all(r.ok for r in results)


def test_python_items_take_the_same_shapes() -> None:
    results = polybatch.run(
        [[{"role": "user", "content": "One?"}], {"id": "b", "content": "Two?"}], FAKE
    )
    assert [r.custom_id for r in results] == ["item-1", "b"]


@pytest.mark.parametrize(
    ("line", "where"),
    [
        ('{"id": "a", "content": [{"role": "bot", "content": "x"}]}', "field 'content[0].role'"),
        ('[{"role": "user"}]', "field '[0].content': Field required"),
        ('[{"content": "x"}]', "field '[0]': expected a JSON object (or a list of messages)"),
        ('{"id": true, "content": "x"}', "field 'id': must be a string or an integer"),
        ('{"id": "a", "custom_id": "b", "content": "x"}', "field 'id': give either"),
        ('{"content": 3}', "field 'content': must be a list of messages or a prompt string"),
        ("[]", "an empty list"),
    ],
)
def test_bad_line_names_file_line_and_field(
    polybatch_cli: Cli, tmp_path: Path, line: str, where: str
) -> None:
    path = tmp_path / "in.jsonl"
    path.write_text('{"prompt": "fine"}\n' + line + "\n", encoding="utf-8")
    out = polybatch_cli("run", str(path), "-m", FAKE)
    assert out.exit_code == 2, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in out.stderr, out.stderr
    assert f"{path}:2: {where}" in lines[0], lines[0]


# -- a job-wide response_model -------------------------------------------------------------------
def test_job_wide_response_model_fills_items_without_their_own() -> None:
    items = [
        BatchItem(custom_id="plain", prompt="The capital of France?"),
        BatchItem(custom_id="own", prompt="A colour?", response_model=Colour),
        BatchItem(custom_id="raw", prompt="JSON please", response_format={"type": "json_object"}),
    ]
    job = polybatch.submit(items, FAKE, response_model=City)
    job.wait()
    by_id = {r.custom_id: r for r in job.results()}
    assert isinstance(by_id["plain"].parsed, City)
    assert isinstance(by_id["own"].parsed, Colour)  # the item's own model wins
    assert by_id["raw"].response_model_ref is None  # its own format, no model: not the job's
    stored = {i.custom_id: i for i in job.requests()}
    assert stored["plain"].response_model_ref == REF
    assert stored["raw"].response_format == {"type": "json_object"}


def test_response_model_by_name_in_defaults_and_profiles(tmp_path: Path) -> None:
    by_class = polybatch.submit(
        ["a?"], FAKE, defaults=RequestDefaults(response_model=City), start=False
    )
    (tmp_path / "polybatch.toml").write_text(
        f'[profiles.p]\nmodel = "{FAKE}"\nresponse_model = "{REF}"\n', encoding="utf-8"
    )
    by_profile = polybatch.submit(["a?"], profile="p", start=False)
    assert by_profile.id == by_class.id  # the same requests: the same job
    # an argument's response_format wins over the profile's model, as one choice
    fmt = {"type": "json_object"}
    other = polybatch.submit(["a?"], profile="p", response_format=fmt, start=False)
    assert [(i.response_format, i.response_model_ref) for i in other.requests()] == [(fmt, None)]


def test_bad_response_model_is_one_clear_error() -> None:
    class Local(BaseModel):
        x: int

    with pytest.raises(ConfigError, match=r"response_model.*inside a function"):
        polybatch.submit(["a?"], FAKE, response_model=Local, start=False)
    with pytest.raises(ConfigError, match=r"response_model.*nosuchmodule"):
        polybatch.submit(["a?"], FAKE, response_model="nosuchmodule:X", start=False)
    with pytest.raises(ConfigError, match="not both"):
        polybatch.submit(
            ["a?"], FAKE, response_model=City, response_format={"type": "json_object"}, start=False
        )


def test_cli_response_model(
    polybatch_cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "wf_models.py").write_text(
        "from pydantic import BaseModel\n\nclass Answer(BaseModel):\n    city: str\n",
        encoding="utf-8",
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "wf_models", raising=False)
    src = tmp_path / "q.jsonl"
    src.write_text('{"prompt": "Capital of Peru?"}\n', encoding="utf-8")
    out_path = tmp_path / "out.jsonl"
    out = polybatch_cli(
        "run", str(src), "-m", FAKE, "--response-model", "wf_models:Answer", "-o", str(out_path)
    )
    assert out.exit_code == 0, out.stderr
    result = polybatch.BatchResult.model_validate_json(out_path.read_text().splitlines()[0])
    assert result.response_model_ref == "wf_models:Answer"
    assert type(result.parsed).__name__ == "Answer"
    bad = polybatch_cli("run", str(src), "-m", FAKE, "--response-model", "wf_models:Nope")
    assert bad.exit_code == 2 and "response_model" in bad.stderr and "Traceback" not in bad.stderr
    assert "--response-model" in polybatch_cli("run", "--help").stdout


# -- results in OpenAI's format, and the provider batches ----------------------------------------
def test_to_openai_is_the_cli_format(polybatch_cli: Cli, tmp_path: Path) -> None:
    job = polybatch.submit(["Hello?", BatchItem(custom_id="fake-error-1", prompt="x")], FAKE)
    job.wait()
    mine = [polybatch.to_openai(r) for r in job.results()]
    out = polybatch_cli("results", job.id, "--format", "openai")
    assert out.exit_code == 0, out.stderr
    assert [json.loads(line) for line in out.stdout.splitlines()] == mine
    ok, failed = mine
    assert ok["response"]["status_code"] == 200
    assert ok["response"]["body"]["choices"][0]["message"]["content"]
    assert failed["custom_id"] == "fake-error-1" and failed["response"]["status_code"] >= 400


def test_batches_lists_each_provider_batch() -> None:
    job = polybatch.submit(["a?", "b?", "c?"], FAKE, chunk_size=2, start=False)
    planned = job.batches()
    assert [(b.chunk, b.start, b.count, b.batch_id) for b in planned] == [
        (0, 0, 2, None),
        (1, 2, 1, None),
    ]
    job.wait()
    done = job.batches()
    assert all(b.batch_id and b.state == "collected" for b in done)
    assert {b.batch_id for b in done} == {c.batch_id for c in job.chunks()}
    assert len({b.batch_id for b in done}) == 2


# -- an OpenAI-format input's body.model ----------------------------------------------------------
def openai_lines(path: Path, models: list[str]) -> Path:
    path.write_text(
        "".join(
            json.dumps(
                {
                    "custom_id": f"r{n}",
                    "method": "POST",
                    "url": "/v1/chat/completions",
                    "body": {"model": m, "messages": [{"role": "user", "content": f"Hi {n}"}]},
                }
            )
            + "\n"
            for n, m in enumerate(models, start=1)
        ),
        encoding="utf-8",
    )
    return path


def test_openai_body_model_is_the_model_when_the_job_names_none(
    tmp_path: Path, sandbox_server: SandboxServer
) -> None:
    path = openai_lines(tmp_path / "batch.jsonl", ["gpt-4o-mini", "gpt-4.1-mini", "gpt-4o-mini"])
    job = polybatch.submit(path, sandbox=sandbox_server)
    assert (job.provider_name, job.model) == ("openai", "gpt-4o-mini")
    assert [i.model for i in job.requests()] == ["gpt-4o-mini", "gpt-4.1-mini", "gpt-4o-mini"]
    assert sorted({c.model for c in job.chunks()}) == ["gpt-4.1-mini", "gpt-4o-mini"]
    job.wait(poll_min=0.01)
    models = {r.custom_id: r.model for r in job.results()}
    assert models["r2"] is not None and models["r2"].startswith("gpt-4.1-mini")
    # a job that names its model runs every line on it, whatever body.model says
    named = polybatch.submit(path, FAKE, start=False)
    assert {i.model for i in named.requests()} == {None} and named.model == "echo"


def test_cli_runs_an_openai_file_without_model(polybatch_cli: Cli, tmp_path: Path) -> None:
    path = openai_lines(tmp_path / "batch.jsonl", ["gpt-4o-mini", "gpt-4o-mini"])
    out = polybatch_cli("run", str(path), "--sandbox", "--no-progress")
    assert out.exit_code == 0, out.stderr
    assert "openai:gpt-4o-mini" in out.stderr
