"""Request parameters are declared once (RequestDefaults, JobOptions): profiles, submit() and the
CLI's options all take the same fields, with the same bounds."""

from __future__ import annotations

from pathlib import Path

import click
import pytest
from click.testing import CliRunner

import polybatch
from polybatch import JobOptions, RequestDefaults
from polybatch.cli import cli
from polybatch.cli.options import JOB_FIELDS, REQUEST_FIELDS
from polybatch.config import Profile
from polybatch.errors import ConfigError
from polybatch.sandbox import SandboxServer

MODEL = "openai:gpt-4o-mini"


def test_profile_fields_are_the_request_defaults_and_job_limits() -> None:
    request = set(RequestDefaults.model_fields)
    assert request <= set(Profile.model_fields)
    assert {"max_cost", "chunk_size", "max_in_flight"} <= set(Profile.model_fields)
    assert set(Profile.model_fields) - request - set(JobOptions.model_fields) == {"providers"}


def test_profile_to_defaults_to_submit(tmp_path: Path, sandbox_server: SandboxServer) -> None:
    (tmp_path / "polybatch.toml").write_text(
        f'[profiles.p]\nmodel = "{MODEL}"\nmax_tokens = 77\ntemperature = 0.25\n'
        'system_prompt = "Be brief."\nchunk_size = 1\n',
        encoding="utf-8",
    )
    job = polybatch.submit(["a?", "b?"], profile="p", sandbox=sandbox_server, start=False)
    items = list(job.requests())
    assert {i.max_tokens for i in items} == {77}
    assert {i.temperature for i in items} == {0.25}
    assert all(i.messages[0].role == "system" for i in items)
    assert len(job.chunks()) == 2  # chunk_size from the profile
    # an argument wins over the profile, field by field
    other = polybatch.submit(
        ["a?", "b?"],
        profile="p",
        defaults=RequestDefaults(max_tokens=5),
        sandbox=sandbox_server,
        start=False,
    )
    assert {i.max_tokens for i in other.requests()} == {5}
    assert {i.temperature for i in other.requests()} == {0.25}


def test_defaults_object_and_keywords_are_the_same_job(sandbox_server: SandboxServer) -> None:
    by_model = polybatch.submit(
        ["x?"],
        MODEL,
        defaults=RequestDefaults(max_tokens=33, system_prompt="Hi.", seed=7),
        options=JobOptions(chunk_size=10, retry_failed=1),
        sandbox=sandbox_server,
        start=False,
    )
    by_keywords = polybatch.submit(
        ["x?"],
        MODEL,
        max_tokens=33,
        system="Hi.",
        seed=7,
        chunk_size=10,
        retry_failed=1,
        sandbox=sandbox_server,
        start=False,
    )
    assert by_keywords.id == by_model.id  # same input, model and options: the same job
    assert by_keywords.options == by_model.options
    (item,) = by_model.requests()
    assert (item.max_tokens, item.seed, item.messages[0].content) == (33, 7, "Hi.")
    # the model may come in the defaults too
    again = polybatch.submit(
        ["x?"],
        defaults=RequestDefaults(model=MODEL, max_tokens=33, system_prompt="Hi.", seed=7),
        options=JobOptions(chunk_size=10, retry_failed=1),
        sandbox=sandbox_server,
        start=False,
    )
    assert again.id == by_model.id


def test_bad_values_are_refused_the_same_way_everywhere(sandbox_server: SandboxServer) -> None:
    with pytest.raises(ValueError):
        RequestDefaults(max_tokens=0)
    with pytest.raises(ConfigError, match="max_tokens"):
        polybatch.submit(["x?"], MODEL, max_tokens=0, sandbox=sandbox_server, start=False)
    with pytest.raises(ConfigError, match="temperature"):
        polybatch.submit(["x?"], MODEL, temperature=3.0, sandbox=sandbox_server, start=False)
    with pytest.raises(TypeError, match="max_token"):
        polybatch.submit(["x?"], MODEL, max_token=5, sandbox=sandbox_server, start=False)  # type: ignore[call-arg]
    result = CliRunner().invoke(cli, ["submit", "in.jsonl", "-m", MODEL, "--max-tokens", "0"])
    assert result.exit_code == 2 and "--max-tokens" in result.output


@pytest.mark.parametrize("command", ["run", "submit", "estimate"])
def test_cli_options_are_the_model_fields(command: str) -> None:
    params = {p.name: p for p in cli.commands[command].params if isinstance(p, click.Option)}
    for name in REQUEST_FIELDS:
        assert name in params, f"{command} has no option for RequestDefaults.{name}"
    if command != "estimate":
        for name in JOB_FIELDS:
            assert name in params, f"{command} has no option for JobOptions.{name}"
    max_tokens = params["max_tokens"].type
    assert isinstance(max_tokens, click.IntRange) and max_tokens.min == 1
    temperature = params["temperature"].type
    assert isinstance(temperature, click.FloatRange)
    assert (temperature.min, temperature.max) == (0, 2)
    assert params["system_prompt"].opts == ["--system-prompt"]  # --system: its hidden old name


def test_cli_option_reaches_the_same_field(tmp_path: Path) -> None:
    src = tmp_path / "in.jsonl"
    src.write_text('{"custom_id": "a", "messages": [{"role": "user", "content": "a?"}]}\n')
    result = CliRunner().invoke(
        cli,
        [
            "run",
            str(src),
            "-m",
            MODEL,
            "--sandbox",
            "--sandbox-rate",
            "0",
            "--no-progress",
            "--max-tokens",
            "21",
            "--top-p",
            "0.5",
            "--system",
            "Terse.",
        ],
    )
    assert result.exit_code == 0, result.output
    (job,) = polybatch.jobs()
    (item,) = job.requests()
    assert (item.max_tokens, item.top_p, item.messages[0].content) == (21, 0.5, "Terse.")
