"""``output_expires_after`` on OpenAI batches (issue 19 item 2): the provider setting and the
``--output-expires-after`` flag reach ``batches.create`` through the real openai SDK, and the
sandbox keeps the output file that long; out-of-range values are refused before anything is sent.
Azure's ``file_expiry`` goes through the same code path (test_azure_provider.py)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from polybatch import submit
from polybatch.errors import ConfigError
from polybatch.items import BatchItem, Message
from polybatch.testing import CliOutcome, Sandbox

MODEL = "gpt-4o-mini"
KEY = "sk-sandbox-expiry-test-0123456789"


def chat(n: int) -> list[BatchItem]:
    return [
        BatchItem(custom_id=f"c-{i}", messages=[Message(role="user", content=f"hi {i}")])
        for i in range(n)
    ]


@pytest.fixture
def sandbox(polybatch_sandbox: Callable[..., Sandbox]) -> Sandbox:
    return polybatch_sandbox(providers=["openai"], api_key=KEY)


def test_the_setting_reaches_the_batch_and_its_output_file(sandbox: Sandbox) -> None:
    job = submit(
        chat(2),
        f"openai:{MODEL}",
        sandbox=sandbox.server,
        provider_settings={"output_expires_after": 7200},
    ).wait(poll_min=0.02, poll_max=0.2, timeout=60)
    assert all(r.ok for r in job.results())
    (batch,) = sandbox.engine.batches.values()
    assert batch.extra["output_expires_after"] == {"anchor": "created_at", "seconds": 7200}
    (out,) = [f for f in sandbox.engine.files.values() if f.purpose == "batch_output"]
    assert out.expires_at is not None and out.expires_at - out.created_at == 7200


def test_without_the_setting_nothing_is_sent(sandbox: Sandbox) -> None:
    submit(chat(1), f"openai:{MODEL}", sandbox=sandbox.server).wait(
        poll_min=0.02, poll_max=0.2, timeout=60
    )
    (batch,) = sandbox.engine.batches.values()
    assert batch.extra["output_expires_after"] is None


@pytest.mark.parametrize("seconds", [60, 31 * 24 * 3600, "soon"])
def test_out_of_range_is_refused_before_sending(sandbox: Sandbox, seconds: object) -> None:
    with pytest.raises(ConfigError, match="output_expires_after must be seconds from 3600"):
        submit(
            chat(1),
            f"openai:{MODEL}",
            sandbox=sandbox.server,
            provider_settings={"output_expires_after": seconds},
        )
    assert sandbox.engine.requests_seen == []


def test_the_sandbox_refuses_a_bad_expiry_as_the_api_does(sandbox: Sandbox) -> None:
    import openai

    client = openai.OpenAI(api_key=KEY, base_url=f"{sandbox.url}/openai/v1", max_retries=0)
    uploaded = client.files.create(
        file=(
            "in.jsonl",
            b'{"custom_id":"a","method":"POST","url":"/v1/chat/completions",'
            b'"body":{"model":"gpt-4o-mini","messages":[{"role":"user","content":"x"}]}}\n',
        ),
        purpose="batch",
    )
    with pytest.raises(openai.BadRequestError, match="output_expires_after"):
        client.batches.create(
            input_file_id=uploaded.id,
            endpoint="/v1/chat/completions",
            completion_window="24h",
            output_expires_after={"anchor": "created_at", "seconds": 10},
        )


def test_the_cli_flag_sets_it(
    sandbox: Sandbox,
    polybatch_cli: Callable[..., CliOutcome],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    from polybatch_openai.provider import OpenAIProvider

    for name, value in OpenAIProvider.sandbox_env(sandbox.url, KEY).items():
        monkeypatch.setenv(name, value)
    src = tmp_path / "in.jsonl"
    src.write_text(json.dumps({"custom_id": "q", "prompt": "hello"}) + "\n")
    outcome = polybatch_cli(
        "run",
        str(src),
        "--model",
        f"openai:{MODEL}",
        "--output-expires-after",
        "86400",
        "--no-progress",
        "-o",
        str(tmp_path / "out.jsonl"),
    )
    assert outcome.exit_code == 0, outcome.stderr
    (batch,) = sandbox.engine.batches.values()
    assert batch.extra["output_expires_after"] == {"anchor": "created_at", "seconds": 86400}
    bad = polybatch_cli(
        "run", str(src), "--model", f"openai:{MODEL}", "--output-expires-after", "5", "--new"
    )
    assert bad.exit_code == 2 and "output_expires_after must be seconds" in bad.stderr
    assert "Traceback" not in bad.stderr
