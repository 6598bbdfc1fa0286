"""Help that teaches (issue 16, item 7): every command's ``--help`` has an example and its exit
codes, shows no RST markup, and every option says what it does; renamed options keep working
under their old, hidden names; the listing commands have ``--json``; start-up imports no SDK."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from polybatch.cli import cli
from polybatch.jobs import Job
from polybatch.testing.fixtures import CliOutcome

from .test_cli_mistakes import finished_job, requests_file

Cli = Callable[..., CliOutcome]


def commands(group: click.Group = cli, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """The path of every command under ``group`` (``("config", "show")``), groups included."""
    for name, cmd in sorted(group.commands.items()):
        yield (*path, name)
        if isinstance(cmd, click.Group):
            yield from commands(cmd, (*path, name))


def command_at(path: tuple[str, ...]) -> click.Command:
    cmd: click.Command = cli
    for name in path:
        assert isinstance(cmd, click.Group)
        cmd = cmd.commands[name]
    return cmd


ALL = list(commands())


def test_the_walk_finds_the_commands() -> None:
    assert {("run",), ("status",), ("config", "show"), ("sandbox",)} <= set(ALL)


def help_text(path: tuple[str, ...]) -> str:
    out = CliRunner().invoke(cli, [*path, "--help"], prog_name="polybatch")
    assert out.exit_code == 0, out.output
    return out.output


@pytest.mark.parametrize("path", ALL, ids=" ".join)
def test_help_has_an_example_and_exit_codes(path: tuple[str, ...]) -> None:
    text = help_text(path)
    examples = [ln.strip() for ln in text.splitlines() if ln.strip().startswith("Example:")]
    assert examples, text
    assert all(e.removeprefix("Example:").strip().startswith("polybatch ") for e in examples)
    if not isinstance(command_at(path), click.Group):
        # the example runs this very command
        assert any(" ".join(path) in e for e in examples), examples
    assert "Exit codes:" in text, text


@pytest.mark.parametrize("path", ALL, ids=" ".join)
def test_help_shows_no_markup(path: tuple[str, ...]) -> None:
    text = help_text(path)
    for markup in ("\b", "``", "::", ".. ", ":func:", ":class:"):
        assert markup not in text, (markup, text)


@pytest.mark.parametrize("path", ALL, ids=" ".join)
def test_every_option_has_help(path: tuple[str, ...]) -> None:
    cmd = command_at(path)
    missing = [
        p.opts[0]
        for p in cmd.params
        if isinstance(p, click.Option) and not p.hidden and not (p.help or "").strip()
    ]
    assert missing == [], f"polybatch {' '.join(path)}: options without help: {missing}"


def test_the_top_level_help_lists_every_command() -> None:
    text = help_text(())
    for (name,) in (p for p in ALL if len(p) == 1):
        assert name in text


# -- one name per concept ------------------------------------------------------------------------
run_job = finished_job  # a job run to the end on the fake provider: its id

__all__ = ["requests_file"]  # the fixture, shared with test_cli_mistakes


def test_system_prompt_is_the_flag_and_system_still_works(
    polybatch_cli: Cli, requests_file: Path
) -> None:
    assert "--system-prompt" in help_text(("run",))
    assert "--system " not in help_text(("run",))
    for flag, text in (("--system-prompt", "be brief"), ("--system", "be briefer")):
        job_id = run_job(polybatch_cli, requests_file, flag, text, "--new")
        items = list(Job.load(job_id).requests())
        assert text in json.dumps(items[0].model_dump(mode="json"))


def test_retry_takes_retry_failed_and_the_old_rounds(polybatch_cli: Cli) -> None:
    text = help_text(("retry",))
    assert "--retry-failed" in text and "--rounds" not in text
    for flag in ("--retry-failed", "--rounds"):
        out = polybatch_cli("retry", "no-such-job", flag, "2")
        assert out.exit_code == 2  # the option parsed; the job id is what is wrong
        assert "no job matching" in out.stderr


def test_sandbox_rate_is_one_name_and_rate_still_works(polybatch_cli: Cli) -> None:
    assert "--sandbox-rate" in help_text(("sandbox",))
    assert "--rate " not in help_text(("sandbox",)).replace("--sandbox-rate", "")
    for flag in ("--sandbox-rate", "--rate"):
        out = polybatch_cli("sandbox", flag, "-5")
        assert out.exit_code == 2
        assert "-5" in out.stderr


def test_results_schema_and_the_old_format(polybatch_cli: Cli, requests_file: Path) -> None:
    job_id = run_job(polybatch_cli, requests_file)
    assert "--schema" in help_text(("results",))
    by_schema = polybatch_cli("results", job_id, "--schema", "openai")
    by_format = polybatch_cli("results", job_id, "--format", "openai")
    assert by_schema.exit_code == by_format.exit_code == 0
    assert by_schema.stdout == by_format.stdout
    assert json.loads(by_schema.stdout.splitlines()[0])["response"]["status_code"] == 200


# -- --json ----------------------------------------------------------------------------------------
def test_status_json(polybatch_cli: Cli, requests_file: Path) -> None:
    job_id = run_job(polybatch_cli, requests_file)
    out = polybatch_cli("status", job_id, "--json", "--no-refresh")
    assert out.exit_code == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["job_id"] == job_id
    assert data["state"] == "completed"
    assert data["succeeded"] == 3 and data["total"] == 3
    assert data["chunks"][0]["requests"] == 3


def test_list_json(polybatch_cli: Cli, requests_file: Path) -> None:
    job_id = run_job(polybatch_cli, requests_file)
    out = polybatch_cli("list", "--json")
    assert out.exit_code == 0, out.stderr
    data = json.loads(out.stdout)
    assert [j["job_id"] for j in data] == [job_id]
    assert data[0]["ok"] == 3 and data[0]["provider"] == "fake"


def test_providers_json() -> None:
    out = CliRunner().invoke(cli, ["providers", "--json"])
    assert out.exit_code == 0, out.output
    data = json.loads(out.stdout)
    names = {p["provider"] for p in data}
    assert {"openai", "anthropic", "fake"} <= names
    openai = next(p for p in data if p["provider"] == "openai")
    assert openai["credentials"] == {"set": False, "env": ["OPENAI_API_KEY"]}
    assert isinstance(openai["max_requests"], int)


def test_estimate_json_keeps_money_as_strings(polybatch_cli: Cli, requests_file: Path) -> None:
    out = polybatch_cli("estimate", str(requests_file), "-m", "fake:echo", "--json")
    assert out.exit_code == 0, out.stderr
    data = json.loads(out.stdout)
    assert isinstance(data["low"], str) and isinstance(data["high"], str)
    from decimal import Decimal

    assert Decimal(data["low"]) <= Decimal(data["high"])
    assert data["batches"] == 1 and data["model"] == "fake:echo"


# -- start-up ------------------------------------------------------------------------------------
SDKS = ("openai", "anthropic", "google.genai", "mistralai", "boto3")
PROBE = """
import sys
sys.argv = ["polybatch", *{args!r}]
from polybatch.cli import main
try:
    main()
except SystemExit:
    pass
print("IMPORTED=" + ",".join(m for m in {sdks!r} if m in sys.modules), file=sys.stderr)
"""


def imported_sdks(args: list[str], tmp_path: Path) -> tuple[list[str], str]:
    env = {**os.environ, "POLYBATCH_HOME": str(tmp_path / "home")}
    proc = subprocess.run(
        [sys.executable, "-c", PROBE.format(args=args, sdks=SDKS)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
        check=False,
    )
    line = next(ln for ln in proc.stderr.splitlines() if ln.startswith("IMPORTED="))
    return [m for m in line.removeprefix("IMPORTED=").split(",") if m], proc.stdout


def test_help_imports_no_provider_sdk(tmp_path: Path) -> None:
    imported, stdout = imported_sdks(["--help"], tmp_path)
    assert "Usage:" in stdout
    assert imported == []


def test_providers_imports_no_provider_sdk(tmp_path: Path) -> None:
    imported, stdout = imported_sdks(["providers"], tmp_path)
    assert "anthropic" in stdout and "openai" in stdout
    assert imported == []


def test_run_imports_only_the_chosen_providers_sdk(tmp_path: Path, requests_file: Path) -> None:
    imported, stdout = imported_sdks(
        ["run", str(requests_file), "-m", "openai:gpt-4o-mini", "--sandbox", "--no-progress"],
        tmp_path,
    )
    assert "completed" in stdout
    assert imported == ["openai"]
