"""docs/jobs-in-code.md, run as written (issue 16 item 8): callbacks, names and --if-exists,
clean-up of output files at the provider, and ``Job.load(..., client=...)``, on the real openai
SDK against the sandbox over loopback HTTP (``OPENAI_BASE_URL``/``OPENAI_API_KEY``, as a user
points the SDK at it)."""

from __future__ import annotations

import re
import shlex
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import openai
import pytest

import polybatch
from polybatch import Job
from polybatch.errors import CredentialsError
from polybatch.sandbox import Faults, SandboxServer
from polybatch.testing import SANDBOX_KEY
from polybatch.testing.fixtures import CliOutcome

ROOT = Path(__file__).resolve().parents[3]
DOC = ROOT / "docs" / "jobs-in-code.md"
BLOCK = re.compile(r"^```(python|console)\n(.*?)^```", re.S | re.M)


@pytest.fixture
def sandbox_env(
    polybatch_home: Path, polybatch_sandbox: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> SandboxServer:
    # some requests fail (an error file per batch too), reproducibly
    faults = Faults(seed=3, item_error_rate=0.3)
    server: SandboxServer = polybatch_sandbox(providers=["openai"], faults=faults).server
    monkeypatch.setenv("OPENAI_BASE_URL", f"{server.url}/openai/v1")
    monkeypatch.setenv("OPENAI_API_KEY", SANDBOX_KEY)
    shutil.copy(ROOT / "examples" / "requests.jsonl", Path.cwd() / "requests.jsonl")
    return server


def sandbox_files() -> set[str]:
    client = openai.OpenAI(max_retries=0)  # from the environment: the sandbox
    return {f.id for f in client.files.list()}


def output_files(job: Job) -> set[str]:
    client = openai.OpenAI(max_retries=0)
    found: set[str] = set()
    for c in job.chunks():
        assert c.batch_id is not None
        batch = client.batches.retrieve(c.batch_id)
        found |= {f for f in (batch.output_file_id, batch.error_file_id) if f}
    return found


def test_docs_workflows_run_as_written(
    sandbox_env: SandboxServer,
    polybatch_cli: Callable[..., CliOutcome],
    capsys: pytest.CaptureFixture[str],
) -> None:
    namespace: dict[str, Any] = {}
    blocks = BLOCK.findall(DOC.read_text(encoding="utf-8"))
    assert [kind for kind, _ in blocks].count("python") >= 5
    for kind, text in blocks:
        if kind == "python":
            exec(compile(text, str(DOC), "exec"), namespace)
            continue
        lines = text.splitlines()
        for i, line in enumerate(lines):
            if not line.startswith("$ polybatch "):
                continue
            shown = lines[i + 1] if i + 1 < len(lines) else ""
            out = polybatch_cli(*shlex.split(line.removeprefix("$ polybatch ")))
            expected = 2 if shown.startswith("error:") else 0
            assert out.exit_code == expected, (line, out.stdout, out.stderr)
            if expected:
                assert out.stderr.split(" pb-")[0] == shown.split(" pb-")[0]
    nightly = Job.load("nightly")
    # the sink got every success, on_error every failure (the sandbox fails some on purpose)
    answers = (Path.cwd() / "answers.tsv").read_text().splitlines()
    failed = re.findall(r"^failed: (\S+) ", capsys.readouterr().out, re.M)
    st = nightly.status()
    assert (len(answers), len(failed)) == (st.succeeded, st.failed) and st.failed > 0
    assert sorted(a.split("\t")[0] for a in answers) + sorted(failed) == sorted(
        r.custom_id for r in nightly.results("succeeded")
    ) + sorted(r.custom_id for r in nightly.results("failed"))
    assert len(nightly.chunks()) == 4  # the first run's job, named on its second submit
    [other] = [j for j in polybatch.jobs() if j.id != nightly.id]
    assert other.id == f"{nightly.id}-2" and other.options.get("delete_outputs")
    # every output and error file is gone at the provider: as the job ended, or by cleanup()
    deleted = output_files(nightly) | output_files(other)
    assert deleted and not deleted & sandbox_files()


def test_delete_outputs_deletes_output_and_error_files(sandbox_env: SandboxServer) -> None:
    items = [f"Question {i}?" for i in range(12)]
    kept = polybatch.submit(items, "openai:gpt-4o-mini", poll_min=0.05)
    kept.wait()
    assert {r.status for r in kept.results()} == {"succeeded", "errored"}
    outputs = output_files(kept)
    assert len(outputs) == 2 and outputs <= sandbox_files()  # an output and an error file
    gone = polybatch.submit(
        items, "openai:gpt-4o-mini", delete_outputs=True, if_exists="new", poll_min=0.05
    )
    gone.wait()
    assert len(output_files(gone)) == 2 and not output_files(gone) & sandbox_files()
    assert sandbox_files() == outputs  # the first job's outputs stay until asked
    assert sorted(kept.cleanup()) == sorted(outputs)
    assert sandbox_files() == set()  # inputs went at the end of each job, outputs now
    assert len(list(kept.results())) == 12  # the results stay on disk


def test_job_load_talks_through_the_callers_client(
    sandbox_env: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    job = polybatch.submit(["Hello?"], "openai:gpt-4o-mini", start=False)
    base_url = f"{sandbox_env.url}/openai/v1"
    monkeypatch.delenv("OPENAI_API_KEY")
    monkeypatch.delenv("OPENAI_BASE_URL")
    with pytest.raises(CredentialsError):
        Job.load(job.id, provider_settings={"max_retries": 0}).wait(poll_min=0.05)
    client = openai.AsyncOpenAI(api_key=SANDBOX_KEY, base_url=base_url, max_retries=0)
    loaded = Job.load(job.id, client=client)
    loaded.wait(poll_min=0.05)
    assert [r.status for r in loaded.results()] == ["succeeded"]
    assert not client.is_closed()  # the caller's to close
