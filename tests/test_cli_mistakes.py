"""Every mistake is one clear line and the documented exit code (issue 16, item 6).

Each case is what a user typed (or called from Python) by mistake; the CLI must answer with one
``error: ...`` line on stderr, no traceback, and the exit code the README documents (2: bad input
or configuration, 1: a provider refused). Python callers get a polybatch error whose message says
what to fix, never a bare TypeError / AttributeError.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

import polybatch
from polybatch.errors import ConfigError, JobError, PolybatchError
from polybatch.jobs import Job, jobs, usage_table
from polybatch.plugins import get_registry
from polybatch.sandbox import SandboxServer
from polybatch.testing.fixtures import CliOutcome

Cli = Callable[..., CliOutcome]


def one_error_line(out: CliOutcome, code: int) -> str:
    """The single stderr line, after checking the exit code and that nothing else was printed."""
    assert out.exit_code == code, (out.exit_code, out.stdout, out.stderr)
    assert "Traceback" not in out.stderr
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, out.stderr
    return lines[0]


@pytest.fixture
def requests_file(tmp_path: Path) -> Path:
    path = tmp_path / "in.jsonl"
    path.write_text(
        "".join(json.dumps({"custom_id": f"q-{i}", "prompt": f"hi {i}"}) + "\n" for i in range(3))
    )
    return path


def finished_job(polybatch_cli: Cli, path: Path, *extra: str) -> str:
    out = polybatch_cli("run", str(path), "-m", "fake:echo", "--no-progress", *extra)
    assert out.exit_code == 0, out.stderr
    line = next(ln for ln in out.stdout.splitlines() if ln.startswith("job "))
    return line.split()[1].rstrip(":")


# -- usage --by -----------------------------------------------------------------------------------
@pytest.mark.parametrize("by", ["jobs", "provider,color"])
def test_usage_by_unknown_key_is_one_line_naming_the_cli_keys(polybatch_cli: Cli, by: str) -> None:
    line = one_error_line(polybatch_cli("usage", "--by", by), 2)
    assert line.startswith("error: --by: cannot group by")
    assert "provider, model, job, date" in line
    assert "job_id" not in line.split("choose from")[1]


def test_usage_by_job_works_on_the_cli(polybatch_cli: Cli, requests_file: Path) -> None:
    job_id = finished_job(polybatch_cli, requests_file)
    out = polybatch_cli("usage", "--by", "job", "--format", "json")
    assert out.exit_code == 0, out.stderr
    assert job_id in out.stdout


def test_usage_table_in_python_accepts_job_like_the_cli(
    polybatch_cli: Cli, requests_file: Path
) -> None:
    job_id = finished_job(polybatch_cli, requests_file)
    assert job_id in usage_table(by=("job",), fmt="csv")
    with pytest.raises(ConfigError, match=r"cannot group by 'jobs'.*provider, model, job, date"):
        usage_table(by=("jobs",))


# -- Python API mistakes -------------------------------------------------------------------------
def test_run_with_sandbox_true_says_what_to_pass(requests_file: Path) -> None:
    with pytest.raises(ConfigError, match=r"sandbox=.*SandboxServer"):
        polybatch.run(requests_file, "fake:echo", sandbox=True)


def test_submit_with_sandbox_true_says_what_to_pass(requests_file: Path) -> None:
    with pytest.raises(ConfigError, match=r"sandbox=.*SandboxServer"):
        polybatch.submit(requests_file, "fake:echo", sandbox=True)


def test_home_as_a_string_works_everywhere(requests_file: Path, tmp_path: Path) -> None:
    home = str(tmp_path / "elsewhere")
    job = polybatch.submit(requests_file, "fake:echo", home=home)  # type: ignore[arg-type]
    job.wait()
    assert [j.id for j in jobs(home=home)] == [job.id]  # type: ignore[arg-type]
    assert Job.load(job.id, home=home).id == job.id  # type: ignore[arg-type]
    assert (Path(home) / "ledger.sqlite3").exists()


def test_home_of_the_wrong_type_is_a_config_error(requests_file: Path) -> None:
    with pytest.raises(ConfigError, match="home"):
        jobs(home=42)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="home"):
        Job.load("x", home=42)  # type: ignore[arg-type]


def test_results_with_an_unknown_status_names_the_valid_ones(requests_file: Path) -> None:
    job = polybatch.submit(requests_file, "fake:echo")
    job.wait()
    with pytest.raises(ConfigError, match=r"bogus.*succeeded.*failed"):
        list(job.results(status="bogus"))
    assert len(list(job.results(status="succeeded"))) == 3


# -- run options ---------------------------------------------------------------------------------
def test_negative_sandbox_rate_is_refused(polybatch_cli: Cli, requests_file: Path) -> None:
    out = polybatch_cli("run", str(requests_file), "-m", "fake:echo", "--sandbox-rate", "-1")
    line = one_error_line(out, 2)
    assert "--sandbox-rate" in line or "--rate" in line
    assert "-1" in line


def test_negative_sandbox_command_rate_is_refused(polybatch_cli: Cli) -> None:
    out = polybatch_cli("sandbox", "--rate", "-1")
    line = one_error_line(out, 2)
    assert "--rate" in line


# -- estimate ------------------------------------------------------------------------------------
def test_estimate_on_an_unpriced_model_exits_2(polybatch_cli: Cli, requests_file: Path) -> None:
    out = polybatch_cli("estimate", str(requests_file), "-m", "fake:no-such-price")
    assert out.exit_code == 2, (out.stdout, out.stderr)
    assert "Traceback" not in out.stderr
    assert out.stderr.splitlines() == [
        "error: model 'no-such-price' is not in the price registry nor in fake's model list"
    ]


def test_estimate_is_printed_before_anything_is_submitted(
    polybatch_cli: Cli, requests_file: Path
) -> None:
    out = polybatch_cli("run", str(requests_file), "-m", "fake:echo", "--no-progress")
    assert out.exit_code == 0, out.stderr
    err = out.stderr
    assert "estimate:" in err
    # the estimate comes before the line that says the job was submitted
    assert err.index("estimate:") < err.index("batch(es) on fake:echo")


# -- keys ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("provider", "model", "env_name"),
    [
        ("anthropic", "claude-haiku-4-5", "ANTHROPIC_API_KEY"),
        ("gemini", "gemini-2.5-flash", "GEMINI_API_KEY"),
    ],
)
def test_a_refused_key_says_which_variable_to_check(
    polybatch_cli: Cli,
    requests_file: Path,
    sandbox_server: SandboxServer,
    provider: str,
    model: str,
    env_name: str,
) -> None:
    cls = get_registry().provider_class(provider)
    env = cls.sandbox_env(sandbox_server.url, "wrong-key")
    assert env.get(env_name) == "wrong-key"
    out = polybatch_cli("submit", str(requests_file), "-m", f"{provider}:{model}", env=env)
    assert out.exit_code == 1, out.stderr
    assert "Traceback" not in out.stderr
    # the estimate comes first (before anything is sent); then one error line, the last
    line = out.stderr.strip().splitlines()[-1]
    assert [ln for ln in out.stderr.splitlines() if ln.startswith("error")] == [line]
    assert line.startswith(f"error: {provider}:")
    assert "401" in line
    assert f"check {env_name}" in line
    assert "{" not in line  # no raw dict of the error body


def test_a_missing_key_suggests_the_sandbox(polybatch_cli: Cli, requests_file: Path) -> None:
    out = polybatch_cli("submit", str(requests_file), "-m", "anthropic:claude-haiku-4-5")
    line = one_error_line(out, 2)
    assert "no API key" in line
    assert "ANTHROPIC_API_KEY" in line
    assert "--sandbox" in line


# -- job ids -------------------------------------------------------------------------------------
def test_an_ambiguous_prefix_lists_the_candidates(
    polybatch_cli: Cli, requests_file: Path, tmp_path: Path
) -> None:
    other = tmp_path / "other.jsonl"
    other.write_text(json.dumps({"custom_id": "z", "prompt": "other"}) + "\n")
    a = finished_job(polybatch_cli, requests_file)
    b = finished_job(polybatch_cli, other)
    prefix = next((a[:i] for i in range(len(a)) if a[: i + 1] != b[: i + 1]), a)
    line = one_error_line(polybatch_cli("status", prefix, "--no-refresh"), 2)
    assert "2 jobs" in line
    assert a in line and b in line


def test_an_unknown_job_is_one_line(polybatch_cli: Cli) -> None:
    line = one_error_line(polybatch_cli("status", "nope-nope"), 2)
    assert "no job matching 'nope-nope'" in line
    with pytest.raises(JobError):
        Job.load("nope-nope")


def test_cancel_on_a_finished_job_says_it_had_finished(
    polybatch_cli: Cli, requests_file: Path
) -> None:
    job_id = finished_job(polybatch_cli, requests_file)
    out = polybatch_cli("cancel", job_id)
    assert out.exit_code == 0, out.stderr
    assert "already finished" in out.stdout
    assert "cancel requested" not in out.stdout


# -- config show ---------------------------------------------------------------------------------
def test_config_show_with_profiles_but_no_default_model(polybatch_cli: Cli, tmp_path: Path) -> None:
    cfg = tmp_path / "polybatch.toml"
    cfg.write_text(
        'default_profile = "cheap"\n'
        '[profiles.cheap]\nmodel = "openai:gpt-4o-mini"\n'
        '[profiles.smart]\nmodel = "anthropic:claude-sonnet-4-5"\n'
    )
    env = {"POLYBATCH_CONFIG": str(cfg)}
    out = polybatch_cli("config", "show", env=env)
    assert out.exit_code == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["default_profile"] == "cheap"
    assert set(data["profiles"]) == {"cheap", "smart"}


def test_config_show_with_profiles_and_no_default_profile(
    polybatch_cli: Cli, tmp_path: Path
) -> None:
    cfg = tmp_path / "polybatch.toml"
    cfg.write_text('[profiles.cheap]\nmodel = "openai:gpt-4o-mini"\n')
    out = polybatch_cli("config", "show", env={"POLYBATCH_CONFIG": str(cfg)})
    assert out.exit_code == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["default_profile"] is None
    assert list(data["profiles"]) == ["cheap"]
    assert "model" in data.get("note", "") or data.get("model") is None


# -- warnings ------------------------------------------------------------------------------------
def test_warnings_are_one_plain_line_without_source_paths(
    polybatch_cli: Cli, requests_file: Path
) -> None:
    out = polybatch_cli("run", str(requests_file), "-m", "fake:unpriced-model", "--no-progress")
    assert out.exit_code == 0, out.stderr
    warned = [ln for ln in out.stderr.splitlines() if "price" in ln.lower()]
    assert warned, out.stderr
    assert len(warned) == len(set(warned))  # once
    for line in warned:
        assert ".py:" not in line and "Warning:" not in line
    assert " INFO " not in out.stderr and " DEBUG " not in out.stderr


def test_polybatch_errors_keep_their_base_class() -> None:
    assert issubclass(ConfigError, PolybatchError)
