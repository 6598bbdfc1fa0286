"""OpenAI-compatible providers configured by data: Groq built in, any endpoint from config.

The runner, the plugin registry and the real openai SDK run against the sandbox, which serves
each compatible provider's API under its own prefix with its own batches.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import pytest
from openai_testlib import OpenAISDKConformance

from polybatch import submit
from polybatch.errors import ConfigError, UnknownProviderError
from polybatch.plugins import PluginRegistry, reset_registry
from polybatch.sandbox import SandboxServer
from polybatch.testing import run_cli
from polybatch_openai.compatible import GroqProvider, compatible_provider

MYLAB = """
[providers.mylab]
kind = "openai-compatible"
base_url = "https://llm.mylab.invalid/v1"
api_key_env = "MYLAB_API_KEY"
max_requests = 4
completion_windows = ["24h", "3d"]
completion_window = "3d"

[[prices.price]]
provider = "mylab"
model = "lab-model"
mode = "batch"
input = "1"
output = "2"

[[prices.price]]
provider = "mylab"
model = "lab-model"
mode = "standard"
input = "2"
output = "4"
"""


@pytest.fixture
def fresh_registry() -> object:
    """A registry that reads the config of this test (the process-wide one is cached)."""
    reset_registry(PluginRegistry())
    yield
    reset_registry(None)


def items(n: int) -> list[dict[str, str]]:
    return [{"custom_id": f"c{i}", "prompt": f"question {i}"} for i in range(n)]


def test_groq_is_built_in_with_its_windows() -> None:
    assert GroqProvider.name == "groq"
    assert GroqProvider.credential_env == ("GROQ_API_KEY",)
    assert "7d" in GroqProvider.limits.completion_windows
    assert GroqProvider(api_key="k").resolved_base_url() == "https://api.groq.com/openai/v1"


def test_groq_job_on_the_sandbox_with_a_7_day_window(sandbox_server: SandboxServer) -> None:
    job = submit(
        items(5),
        "groq:llama-3.3-70b-versatile",
        sandbox=sandbox_server,
        provider_settings={"completion_window": "7d"},
    )
    job.wait(poll_min=0.02, timeout=60)
    assert [r.status for r in job.results()] == ["succeeded"] * 5
    (batch,) = [b for b in sandbox_server.engine.batches.values() if b.namespace == "groq"]
    assert batch.extra["completion_window"] == "7d"
    assert job.cost().total > 0  # Groq's rows are priced


def test_a_window_the_endpoint_does_not_take_is_refused(sandbox_server: SandboxServer) -> None:
    with pytest.raises(ConfigError, match="completion window '30d' is not one of"):
        submit(
            items(1),
            "groq:llama-3.3-70b-versatile",
            sandbox=sandbox_server,
            provider_settings={"completion_window": "30d"},
        )
    assert sandbox_server.engine.requests_seen == []


def test_a_provider_from_config_runs_end_to_end(
    make_sandbox: Callable[..., SandboxServer], polybatch_home: Path, fresh_registry: object
) -> None:
    (polybatch_home.parent / "polybatch.toml").write_text(MYLAB)  # the working directory
    server = make_sandbox()  # built after the config: its routes include mylab's
    job = submit(items(10), "mylab:lab-model", sandbox=server)
    job.wait(poll_min=0.02, timeout=60)
    assert [r.custom_id for r in job.results()] == [f"c{i}" for i in range(10)]
    mylab = [b for b in server.engine.batches.values() if b.namespace == "mylab"]
    assert len(mylab) == 3  # max_requests = 4 per batch
    assert {b.extra["completion_window"] for b in mylab} == {"3d"}
    assert ("POST", "/compat/mylab/v1/batches") in server.engine.requests_seen
    usage = job.usage()
    expected = Decimal(usage.total_input_tokens * 1 + usage.output_tokens * 2) / 1_000_000
    assert job.cost().total == expected


def test_config_errors_name_the_key(polybatch_home: Path, fresh_registry: object) -> None:
    (polybatch_home.parent / "polybatch.toml").write_text(
        '[providers.bad]\nkind = "openai-compatible"\n'
    )
    with pytest.raises(ConfigError, match=r"providers.bad.base_url"):
        submit(items(1), "bad:m", api_key="k")
    (polybatch_home.parent / "polybatch.toml").write_text(
        '[providers.odd]\nkind = "no-such-kind"\n'
    )
    reset_registry(PluginRegistry())
    with pytest.raises(ConfigError, match=r"unknown kind 'no-such-kind'"):
        submit(items(1), "odd:m", api_key="k")


def test_factory_validation() -> None:
    ok = {"base_url": "https://x.invalid/v1", "api_key_env": "X_KEY"}
    assert compatible_provider("x", ok).credential_env == ("X_KEY",)
    with pytest.raises(ConfigError, match="unknown for kind"):
        compatible_provider("x", {**ok, "colour": "red"})
    with pytest.raises(ConfigError, match="lowercase"):
        compatible_provider("X Y", ok)
    with pytest.raises(ConfigError, match="completion_windows"):
        compatible_provider("x", {**ok, "completion_windows": []})


@pytest.mark.slow
def test_cli_lists_and_runs_a_configured_provider(tmp_path: Path, polybatch_home: Path) -> None:
    (polybatch_home.parent / "polybatch.toml").write_text(MYLAB)
    env = {**os.environ, "MYLAB_API_KEY": "k"}
    cwd = polybatch_home.parent
    listing = run_cli(["providers"], env, cwd=cwd)
    assert listing.returncode == 0, listing.stderr
    assert "mylab" in listing.stdout and "groq" in listing.stdout
    path = tmp_path / "in.jsonl"
    path.write_text("".join(json.dumps(i) + "\n" for i in items(3)))
    args = ["run", str(path), "-m", "mylab:lab-model", "--sandbox", "--no-progress"]
    run = run_cli(args, env, cwd=cwd)
    assert run.returncode == 0, run.stderr
    assert "3 succeeded" in run.stdout and "mylab" in run.stdout


def test_unknown_provider_still_lists_configured_ones(
    polybatch_home: Path, fresh_registry: object
) -> None:
    (polybatch_home.parent / "polybatch.toml").write_text(MYLAB)
    with pytest.raises(UnknownProviderError, match="mylab"):
        submit(items(1), "nope:m", api_key="k")


class TestGroqConformance(OpenAISDKConformance):
    provider_class = GroqProvider
    model = "llama-3.3-70b-versatile"
    supports_find_batch = True
    base_url_from_env = True  # GROQ_BASE_URL: the preset family sets base_url_env per class
