"""What ``polybatch sandbox`` tells users to export works: ``polybatch run`` without ``--sandbox``.

Each provider's ``sandbox_env`` names its key variable and its base-URL variable (the vendor's
convention: OPENAI_BASE_URL, ANTHROPIC_BASE_URL, GROQ_BASE_URL, MISTRAL_BASE_URL,
GOOGLE_GEMINI_BASE_URL, AZURE_OPENAI_ENDPOINT); with exactly those set, the CLI reaches the
sandbox and the job completes.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from dataclasses import astuple
from pathlib import Path

import pytest

from polybatch.plugins import get_registry
from polybatch.sandbox import SandboxEngine, SandboxServer
from polybatch.testing import CliOutcome

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "requests.jsonl"
KEY = "sk-sandbox-env-test-0123456789"
MODELS = {
    "openai": "gpt-4o-mini",
    "anthropic": "claude-haiku-4-5",
    "azure": "gpt-4o-mini",
    "groq": "llama-3.3-70b-versatile",
    "mistral": "mistral-small-latest",
    "gemini": "gemini-2.5-flash",
}
BASE_URL_ENV = {
    "openai": "OPENAI_BASE_URL",
    "anthropic": "ANTHROPIC_BASE_URL",
    "azure": "AZURE_OPENAI_ENDPOINT",
    "groq": "GROQ_BASE_URL",
    "mistral": "MISTRAL_BASE_URL",
    "gemini": "GOOGLE_GEMINI_BASE_URL",
}


@pytest.fixture(scope="module")
def server() -> Iterator[SandboxServer]:
    with SandboxServer(SandboxEngine(api_key=KEY)) as srv:
        yield srv


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No provider variable of the developer's, no user config: only what a test sets."""
    for cls in get_registry().providers().values():
        for name in (*cls.credential_env, *cls.sandbox_env("http://x", "k")):
            monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))


@pytest.mark.parametrize("provider", MODELS)
def test_sandbox_env_names_the_key_and_the_base_url(provider: str) -> None:
    cls = get_registry().provider_class(provider)
    env = cls.sandbox_env("http://127.0.0.1:9", KEY)
    assert env[cls.credential_env[0]] == KEY
    assert env[BASE_URL_ENV[provider]].startswith("http://127.0.0.1:9/")


@pytest.mark.usefixtures("clean_env")
@pytest.mark.parametrize("provider", MODELS)
def test_run_with_the_printed_env_reaches_the_sandbox(
    provider: str,
    server: SandboxServer,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    polybatch_cli: Callable[..., CliOutcome],
) -> None:
    cls = get_registry().provider_class(provider)
    for name, value in cls.sandbox_env(server.url, KEY).items():
        monkeypatch.setenv(name, value)
    seen = len(server.engine.requests_seen)
    out_path = tmp_path / "out.jsonl"
    code, out, err = astuple(
        polybatch_cli(
            "run",
            str(EXAMPLES),
            "--model",
            f"{provider}:{MODELS[provider]}",
            "--no-progress",
            "-o",
            str(out_path),
        )
    )
    assert code == 0, err
    assert "18 succeeded" in out, out
    results = [json.loads(line) for line in out_path.read_text().splitlines()]
    assert len(results) == 18 and {r["status"] for r in results} == {"succeeded"}
    prefix = cls.sandbox_prefix
    assert any(path.startswith(prefix) for _, path in server.engine.requests_seen[seen:]), (
        "the requests went to the sandbox"
    )


def test_the_default_port_is_one_the_os_chooses_and_its_url_is_printed(tmp_path: Path) -> None:
    """``polybatch sandbox`` with no --port does not clash between users (issue #16 item 4)."""
    import os
    import subprocess

    env = {**os.environ, "POLYBATCH_HOME": str(tmp_path / "home")}
    cmd = [sys.executable, "-m", "polybatch.cli", "sandbox"]
    urls = []
    for _ in range(2):  # two at once: each gets its own port
        proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
        )
        assert proc.stdout is not None
        urls.append((proc, proc.stdout.readline().strip()))
    for proc, _ in urls:
        proc.terminate()
        proc.wait(timeout=30)
    (a, b) = [line for _, line in urls]
    assert a.startswith("polybatch sandbox on http://127.0.0.1:") and ":8765" not in a, a
    assert b.startswith("polybatch sandbox on http://127.0.0.1:") and a != b


def test_a_port_in_use_is_one_line_and_exit_2(polybatch_cli: Callable[..., CliOutcome]) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = polybatch_cli("sandbox", "--port", str(port))
    assert result.exit_code == 2
    (line,) = result.stderr.strip().splitlines()
    assert f"127.0.0.1:{port} is already in use" in line and line.startswith("error:"), line
