"""One neutral input, three profiles (openai, azure classic, azure v1): switched by configuration.

Nothing is mocked: polybatch.submit and the CLI load the plugin through its entry point and drive the
real openai SDK against one sandbox over loopback HTTP.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

import polybatch
from polybatch.errors import ConfigError, CredentialsError
from polybatch.sandbox import SandboxServer
from polybatch.testing import SANDBOX_KEY, run_cli

PROFILES = ("openai", "azure-classic", "azure-v1")
DEPLOYMENT = "gpt-4o-mini-globalbatch"
INPUT = [
    {"custom_id": "plain", "prompt": "Name a colour."},
    {
        "custom_id": "own-system",
        "messages": [
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": "Name a fruit."},
        ],
    },
    {"custom_id": "own-max", "prompt": "Count to twenty.", "max_tokens": 2},
]


def toml(endpoint: str, openai_url: str) -> str:
    """A polybatch.toml with the three profiles (endpoints point at a sandbox)."""
    return f"""
default_profile = "openai"

[profiles.openai]
model = "openai:gpt-4o-mini"
system_prompt = "Answer in one sentence."
max_tokens = 40
[profiles.openai.providers.openai]
base_url = "{openai_url}"

[profiles.azure-classic]
model = "azure:gpt-4o-mini"
system_prompt = "Answer in one sentence."
max_tokens = 40
[profiles.azure-classic.providers.azure]
endpoint = "{endpoint}"
api_version = "2024-10-21"
deployments = {{ "gpt-4o-mini" = "{DEPLOYMENT}" }}

[profiles.azure-v1]
model = "azure:gpt-4o-mini"
system_prompt = "Answer in one sentence."
max_tokens = 40
[profiles.azure-v1.providers.azure]
endpoint = "{endpoint}"
style = "v1"
deployments = {{ "gpt-4o-mini" = "{DEPLOYMENT}" }}

[profiles.azure-no-endpoint]
model = "azure:gpt-4o-mini"
"""


@pytest.fixture
def setup(polybatch_home: Path, sandbox_server: SandboxServer, tmp_path: Path) -> Path:
    """polybatch.toml in the working directory and the input file; returns the input path."""
    url = sandbox_server.url
    (tmp_path / "polybatch.toml").write_text(toml(f"{url}/azure", f"{url}/openai/v1"))
    path = tmp_path / "input.jsonl"
    path.write_text("".join(json.dumps(item) + "\n" for item in INPUT))
    return path


@pytest.mark.parametrize("profile", PROFILES)
def test_same_input_three_profiles_python_api(
    setup: Path, sandbox_server: SandboxServer, profile: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", SANDBOX_KEY)
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", SANDBOX_KEY)
    job = polybatch.submit(setup, profile=profile).wait(poll_min=0.02, poll_max=0.2, timeout=60)
    results = {r.custom_id: r for r in job.results()}
    assert list(results) == ["plain", "own-system", "own-max"]
    provider = "openai" if profile == "openai" else "azure"
    assert all(r.ok and r.provider == provider for r in results.values())
    assert {r.model for r in results.values()} == {"gpt-4o-mini"}  # reported, not the deployment
    assert results["own-max"].usage.output_tokens <= 2  # the item's value beats the profile's
    assert job.options["profile"] == profile
    # what went on the wire: the deployment as body.model, the profile's system prompt by default
    engine = sandbox_server.engine
    (batch,) = engine.batches.values()
    bodies = {r.custom_id: r.body for r in batch.requests}
    wire_model = "gpt-4o-mini" if profile == "openai" else DEPLOYMENT
    assert {b["model"] for b in bodies.values()} == {wire_model}
    assert bodies["plain"]["messages"][0] == {
        "role": "system",
        "content": "Answer in one sentence.",
    }
    assert bodies["own-system"]["messages"][0]["content"] == "You are terse."
    assert bodies["plain"]["max_completion_tokens"] == 40
    prefix = {
        "openai": "/openai/v1/",
        "azure-classic": "/azure/openai/",
        "azure-v1": "/azure/openai/v1/",
    }
    assert all(path.startswith(prefix[profile]) for _, path in engine.requests_seen)
    # the ledger keeps settings but never the key
    assert SANDBOX_KEY not in json.dumps(job.options)


def test_profile_from_env_and_sandbox_flag_override_endpoint(
    setup: Path, sandbox_server: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("POLYBATCH_PROFILE", "azure-no-endpoint")
    # sandbox= points the provider at the sandbox's Azure resource: no endpoint or key needed
    job = polybatch.submit(setup, sandbox=sandbox_server).wait(poll_min=0.02, timeout=60)
    assert job.provider_name == "azure" and job.options["profile"] == "azure-no-endpoint"
    assert [r.status for r in job.results()] == ["succeeded"] * 3


def test_missing_endpoint_and_key_submit_nothing(
    setup: Path, sandbox_server: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(
        CredentialsError, match=r"AZURE_OPENAI_ENDPOINT or providers\.azure\.endpoint"
    ):
        polybatch.submit(setup, profile="azure-no-endpoint")
    with pytest.raises(CredentialsError, match="AZURE_OPENAI_API_KEY"):
        polybatch.submit(setup, profile="azure-v1")
    with pytest.raises(ConfigError, match="unknown profile 'azure'"):
        polybatch.submit(setup, profile="azure")
    assert sandbox_server.engine.requests_seen == []


# -- the CLI ------------------------------------------------------------------------------------


def cli(*args: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return run_cli(args, {**os.environ, **env}, cwd=cwd)


@pytest.mark.slow
def test_cli_three_profiles_same_custom_ids(setup: Path, sandbox_server: SandboxServer) -> None:
    env = {"OPENAI_API_KEY": SANDBOX_KEY, "AZURE_OPENAI_API_KEY": SANDBOX_KEY}
    for profile in PROFILES:
        out = setup.parent / f"{profile}.jsonl"
        proc = cli(
            "run", str(setup), "--profile", profile, "-o", str(out), "--no-progress",
            cwd=setup.parent, env=env,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        rows = [json.loads(line) for line in out.read_text().splitlines()]
        assert [r["custom_id"] for r in rows] == ["plain", "own-system", "own-max"]
        assert {r["provider"] for r in rows} == {"openai" if profile == "openai" else "azure"}
        assert SANDBOX_KEY not in proc.stdout + proc.stderr
    assert len(sandbox_server.engine.batches) == 3


@pytest.mark.slow
@pytest.mark.parametrize(
    ("args", "env", "expected"),
    [
        (["-p", "nope"], {}, "unknown profile 'nope' in "),
        (["-p", "azure-no-endpoint"], {"AZURE_OPENAI_API_KEY": "k"}, "providers.azure.endpoint"),
        (["-p", "azure-classic"], {}, "set AZURE_OPENAI_API_KEY (or providers.azure.api_key_env"),
        ([], {"POLYBATCH_PROFILE": "gone"}, "'gone' (from POLYBATCH_PROFILE)"),
    ],
)
def test_cli_config_errors_exit_2_one_line_nothing_sent(
    setup: Path,
    sandbox_server: SandboxServer,
    args: list[str],
    env: dict[str, str],
    expected: str,
) -> None:
    proc = cli("submit", str(setup), *args, cwd=setup.parent, env=env)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0]
    assert sandbox_server.engine.requests_seen == []


@pytest.mark.slow
def test_cli_run_sandbox_with_azure_profile(setup: Path) -> None:
    proc = cli(
        "run", str(setup), "-p", "azure-v1", "--sandbox", "--no-progress", cwd=setup.parent, env={}
    )
    assert proc.returncode == 0, proc.stderr
    assert "3 results" in proc.stdout and "azure" in proc.stdout
