"""``--if-exists resume|refuse|new`` and job names (issue 16 item 8), on the ``fake`` provider,
through the CLI as users type it and through the Python API."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

import polybatch
from polybatch import Job
from polybatch.errors import JobError, JobExistsError
from polybatch.testing.fixtures import CliOutcome

Cli = Callable[..., CliOutcome]


@pytest.fixture
def requests_file(polybatch_home: Path) -> Path:
    path = Path.cwd() / "requests.jsonl"  # polybatch_home makes the test directory the cwd
    path.write_text(
        "".join(json.dumps({"custom_id": f"q{i}", "prompt": f"Q{i}?"}) + "\n" for i in range(3))
    )
    return path


def job_ids() -> list[str]:
    return [j.id for j in polybatch.jobs()]


def run_named(cli: Cli, name: str) -> str:
    """``polybatch run requests.jsonl -m fake:echo --name NAME``; the one job's id."""
    out = cli("run", "requests.jsonl", "-m", "fake:echo", "--name", name)
    assert out.exit_code == 0, out.stderr
    [job_id] = job_ids()
    return job_id


def test_if_exists_refuse_names_the_existing_job_and_exits_2(
    polybatch_cli: Cli, requests_file: Path
) -> None:
    job_id = run_named(polybatch_cli, "nightly")
    again = polybatch_cli("run", "requests.jsonl", "-m", "fake:echo", "--if-exists", "refuse")
    assert again.exit_code == 2
    lines = again.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), again.stderr
    assert job_id in lines[0] and "nightly" in lines[0]
    assert job_ids() == [job_id]  # nothing new recorded


def test_if_exists_resume_is_the_default_and_new_makes_another_id(
    polybatch_cli: Cli, requests_file: Path
) -> None:
    assert polybatch_cli("run", "requests.jsonl", "-m", "fake:echo").exit_code == 0
    assert polybatch_cli("run", "requests.jsonl", "-m", "fake:echo").exit_code == 0
    assert len(job_ids()) == 1
    args = ("run", "requests.jsonl", "-m", "fake:echo", "--if-exists", "new")
    assert polybatch_cli(*args).exit_code == 0
    ids = job_ids()
    assert len(ids) == 2 and ids[0] != ids[1] and ids[0].startswith(ids[1])
    bad = polybatch_cli("run", "requests.jsonl", "-m", "fake:echo", "--if-exists", "maybe")
    assert bad.exit_code == 2 and "Traceback" not in bad.stderr


def test_python_if_exists(requests_file: Path) -> None:
    job = polybatch.submit(requests_file, "fake:echo", name="first")
    with pytest.raises(JobExistsError) as caught:
        polybatch.submit(requests_file, "fake:echo", if_exists="refuse")
    assert caught.value.job_id == job.id
    assert polybatch.submit(requests_file, "fake:echo").id == job.id
    other = polybatch.submit(requests_file, "fake:echo", if_exists="new", name="second")
    assert other.id != job.id
    assert (Job.load("first").id, Job.load("second").id) == (job.id, other.id)


def test_a_name_is_shown_and_accepted_wherever_a_job_id_is(
    polybatch_cli: Cli, requests_file: Path
) -> None:
    job_id = run_named(polybatch_cli, "reviews-dec")
    listed = polybatch_cli("list")
    assert "reviews-dec" in listed.stdout
    assert json.loads(polybatch_cli("list", "--json").stdout)[0]["name"] == "reviews-dec"
    status = polybatch_cli("status", "reviews-dec")
    assert status.exit_code == 0 and f"job {job_id} (reviews-dec): completed" in status.stdout
    assert json.loads(polybatch_cli("status", "reviews-dec", "--json").stdout)["name"] == (
        "reviews-dec"
    )
    results = polybatch_cli("results", "reviews-dec")
    assert results.exit_code == 0 and len(results.stdout.splitlines()) == 3
    assert Job.load("reviews-dec").name == "reviews-dec"


def test_an_ambiguous_name_lists_the_candidates(polybatch_cli: Cli, requests_file: Path) -> None:
    for _ in range(2):
        args = ("submit", "requests.jsonl", "-m", "fake:echo", "--name", "dup", "--if-exists")
        assert polybatch_cli(*args, "new").exit_code == 0
    ids = job_ids()
    out = polybatch_cli("status", "dup")
    assert out.exit_code == 2
    assert all(i in out.stderr for i in ids) and len(out.stderr.strip().splitlines()) == 1
    with pytest.raises(JobError, match="2 jobs match 'dup'"):
        Job.load("dup")


def test_a_client_of_your_own_is_refused_by_a_provider_without_an_sdk(requests_file: Path) -> None:
    # the fake provider is not built on polybatch.sdk.SDKProvider: one clear ConfigError
    job = polybatch.submit(requests_file, "fake:echo", name="mine")
    with pytest.raises(polybatch.ConfigError, match="does not take a client"):
        Job.load("mine", client=object())
    assert Job.load("mine").id == job.id
