"""VertexProvider against the sandbox through the real google-genai and google-cloud-storage."""

from __future__ import annotations

import asyncio
import sys
from collections import Counter
from pathlib import Path

import pytest
from click.testing import CliRunner
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage  # type: ignore[import-untyped]
from vertex_support import KEY, MODEL, item, provider_for, serve, write_lines

from polybatch import submit
from polybatch.cli import main
from polybatch.errors import ConfigError, CredentialsError, InputError, ProviderError
from polybatch.jobs.driver import DEFAULT_MAX_IN_FLIGHT
from polybatch.plugins import get_registry
from polybatch.sandbox import Faults, SandboxEngine, SandboxServer
from polybatch_vertex.provider import MAX_CONCURRENT_JOBS, VertexProvider
from polybatch_vertex.sandbox import SANDBOX_BUCKET

EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "requests.jsonl"


def _submit(srv: SandboxServer, tmp_path: Path, n: int = 5) -> tuple[VertexProvider, str]:
    provider = provider_for(srv)
    lines = write_lines(tmp_path / "in.jsonl", provider, [item(f"q-{i}") for i in range(n)])
    return provider, provider.submit(lines, model=MODEL, metadata={}).batch_id


def test_the_sdks_call_the_vertex_and_storage_paths(server: SandboxServer, tmp_path: Path) -> None:
    provider, batch_id = _submit(server, tmp_path)
    assert batch_id.startswith(
        "projects/polybatch-sandbox/locations/us-central1/batchPredictionJobs/"
    )
    assert provider.poll(batch_id).state == "completed"
    results = list(provider.results(batch_id))
    assert sorted(r.custom_id for r in results) == [f"q-{i}" for i in range(5)]
    seen = {(m, p.split("/b/")[0]) for m, p in server.engine.requests_seen}
    assert ("POST", "/vertex/upload/storage/v1") in seen
    assert ("GET", "/vertex/storage/v1") in seen  # the output directory's listing
    assert ("GET", "/vertex/download/storage/v1") in seen
    created = [p for m, p in server.engine.requests_seen if m == "POST" and "batchPrediction" in p]
    assert created == [
        "/vertex/v1/projects/polybatch-sandbox/locations/us-central1/batchPredictionJobs"
    ]


def test_cleanup_deletes_the_batch_folder(server: SandboxServer, tmp_path: Path) -> None:
    provider = provider_for(server)
    lines = write_lines(tmp_path / "in.jsonl", provider, [item("a"), item("b")])
    submitted = provider.submit(lines, model=MODEL, metadata={"polybatch_job": "pb-x"})
    assert submitted.input_file_id and submitted.input_file_id.startswith(
        f"gs://{SANDBOX_BUCKET}/batches/polybatch/pb-x/0-"
    )
    assert len(list(provider.results(submitted.batch_id))) == 2
    gcs = provider.storage
    folder = submitted.input_file_id.removeprefix(f"gs://{SANDBOX_BUCKET}/") + "/"
    names = [b.name for b in gcs.list_blobs(SANDBOX_BUCKET, prefix=folder)]
    assert folder + "input.jsonl" in names and any(n.endswith("predictions.jsonl") for n in names)
    provider.cleanup(submitted)
    assert list(gcs.list_blobs(SANDBOX_BUCKET, prefix=folder)) == []
    provider.cleanup(submitted)  # again: nothing left is the goal


def test_partial_results_of_a_cancelled_job(tmp_path: Path) -> None:
    """Rows run before the cancel come back; every other row is ``cancelled``, each once."""
    with serve(SandboxEngine(api_key=KEY, rate=0.01)) as srv:
        srv.engine.clock.freeze()  # the counts below depend on sandbox time alone
        provider, batch_id = _submit(srv, tmp_path)
        srv.engine.clock.advance(250)  # two rows have run
        # exported continuously: the rows run so far are in the output before the job ends
        early = list(provider.results(batch_id))
        assert [r.status for r in early] == ["succeeded", "succeeded"]
        provider.cancel(batch_id)
        status = provider.poll(batch_id)
        assert status.state == "cancelled" and status.completed == 2, status
        results = list(provider.results(batch_id))
    assert Counter(r.custom_id for r in results) == Counter(f"q-{i}" for i in range(5))
    by_id = {r.custom_id: r for r in results}
    assert [by_id[f"q-{i}"].status for i in range(5)] == ["succeeded"] * 2 + ["cancelled"] * 3
    assert all(r.error is not None and r.error.retryable for r in results if not r.ok)


def test_a_failed_job_gives_every_item_one_result_through_the_runner(polybatch_home: Path) -> None:
    with serve(SandboxEngine(api_key=KEY, faults=Faults(batch_fail_rate=1.0))) as srv:
        job = submit([item(f"f-{i}") for i in range(3)], f"vertex:{MODEL}", sandbox=srv)
        job.wait(poll_min=0.02, timeout=60)
        results = list(job.results())
    assert [r.custom_id for r in results] == ["f-0", "f-1", "f-2"]
    assert {r.status for r in results} == {"errored"}
    assert {r.error.code for r in results if r.error} == {"batch_failed"}


def test_item_errors_and_a_cut_download(tmp_path: Path) -> None:
    faults = Faults(item_error_rate=1.0, truncate_output_rate=1.0)
    with serve(SandboxEngine(api_key=KEY, faults=faults)) as srv:
        provider, batch_id = _submit(srv, tmp_path)
        with pytest.raises(ProviderError) as caught:
            list(provider.results(batch_id))
        assert caught.value.retryable, "a cut download is fetched again"
        srv.engine.faults = Faults(item_error_rate=1.0)
        results = list(provider.results(batch_id))
    assert {r.status for r in results} == {"errored"}
    assert all(r.error is not None and r.error.code == "INTERNAL" for r in results)


def test_resumable_uploads_and_anonymous_storage_clients(server: SandboxServer) -> None:
    """A user's own GCS client pointed at the sandbox (as STORAGE_EMULATOR_HOST does)."""
    gcs = storage.Client(
        project="p",
        credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
        client_options={"api_endpoint": server.url + VertexProvider.sandbox_prefix},
    )
    blob = gcs.bucket("b").blob("dir/big.jsonl", chunk_size=256 * 1024)
    data = b"".join(b'{"n": %d}\n' % i for i in range(60_000))  # several chunks
    blob.upload_from_string(data, content_type="application/jsonl")
    assert gcs.bucket("b").blob("dir/big.jsonl").download_as_bytes() == data
    assert [b.name for b in gcs.list_blobs("b", prefix="dir/")] == ["dir/big.jsonl"]


def test_wrong_token_is_refused_by_storage_too(server: SandboxServer, tmp_path: Path) -> None:
    provider = provider_for(server, key="ya29.wrong-token-0000000000000000")
    lines = write_lines(tmp_path / "in.jsonl", provider, [item("a")])
    with pytest.raises(ProviderError) as caught:
        provider.submit(lines, model=MODEL, metadata={})
    # google-auth answers the 401 by trying to refresh the token, which a bare token cannot
    assert "wrong-token" not in str(caught.value)
    assert "credentials could not be refreshed" in str(caught.value)
    assert not caught.value.retryable
    assert not server.engine.batches


def test_embeddings_are_refused_while_planning(server: SandboxServer, polybatch_home: Path) -> None:
    embedding = {"custom_id": "e-1", "kind": "embedding", "input": "hello"}
    with pytest.raises(InputError, match="embedding batches"):
        submit([embedding], "vertex:text-embedding-005", sandbox=server)
    assert not server.engine.batches


def test_the_default_in_flight_bound_is_the_quota(
    server: SandboxServer, polybatch_home: Path
) -> None:
    assert MAX_CONCURRENT_JOBS == 8 != DEFAULT_MAX_IN_FLIGHT
    job = submit([item("a")], f"vertex:{MODEL}", sandbox=server, start=False)
    assert job.options["max_in_flight"] == 8
    other = submit([item("b")], f"vertex:{MODEL}", sandbox=server, start=False, max_in_flight=2)
    assert other.options["max_in_flight"] == 2


def test_preflight_needs_a_bucket_a_project_and_credentials() -> None:
    with pytest.raises(ConfigError, match="bucket"):
        VertexProvider(api_key="t", settings={"project": "p"}).preflight()
    with pytest.raises(ConfigError, match="gs://"):
        VertexProvider(api_key="t", settings={"project": "p", "bucket": "my-bucket"}).preflight()
    with pytest.raises(CredentialsError, match="application-default login"):
        VertexProvider(settings={"project": "p", "bucket": "gs://b/x"}).preflight()
    VertexProvider(api_key="t", settings={"project": "p", "bucket": "gs://b/x"}).preflight()


def test_plugin_registers_provider_and_prices() -> None:
    registry = get_registry()
    assert registry.provider_class("vertex") is VertexProvider
    assert any(
        p.name == "prices.toml" and "polybatch_vertex" in str(p) for p in registry.price_files()
    )


def test_polybatch_run_in_the_sandbox(
    polybatch_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The issue's acceptance command: results and a cost table, no credentials, no network."""
    out = polybatch_home.parent / "results.vertex.jsonl"
    args = ["run", str(EXAMPLES), "--model", f"vertex:{MODEL}", "--sandbox", "-o", str(out)]
    code, printed = _run_cli(args, monkeypatch)
    assert code == 0, printed
    assert "18 succeeded" in printed
    assert "vertex" in printed and "Batch $" in printed and "TOTAL" in printed
    assert len(out.read_text().splitlines()) == 18


def _run_cli(args: list[str], monkeypatch: pytest.MonkeyPatch) -> tuple[int, str]:
    monkeypatch.setattr(sys, "argv", ["polybatch", *args, "--no-progress"])
    code = 0
    with CliRunner().isolation() as (stdout, _stderr, _):
        try:
            main()
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
    return code, stdout.getvalue().decode()


def test_the_printed_env_alone_reaches_the_sandbox(
    server: SandboxServer, polybatch_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What ``polybatch sandbox`` prints for vertex is enough for a run: no profile needed."""
    env = VertexProvider.sandbox_env(server.url, KEY)
    assert env["GOOGLE_OAUTH_ACCESS_TOKEN"] == KEY
    assert env["STORAGE_EMULATOR_HOST"] == env["GOOGLE_VERTEX_BASE_URL"] == server.url + "/vertex"
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    out = polybatch_home.parent / "env.jsonl"
    code, printed = _run_cli(
        ["run", str(EXAMPLES), "--model", f"vertex:{MODEL}", "-o", str(out)], monkeypatch
    )
    assert code == 0, printed
    assert "18 succeeded" in printed
    assert any(p.startswith("/vertex/download/") for _, p in server.engine.requests_seen)


def test_list_pages_through_every_job(server: SandboxServer, tmp_path: Path) -> None:
    provider = provider_for(server)
    lines = write_lines(tmp_path / "in.jsonl", provider, [item("a")])
    made = [
        provider.submit(
            lines, model=MODEL, metadata={"polybatch_job": "pb-l", "polybatch_chunk": str(n)}
        )
        for n in range(5)
    ]

    async def names() -> list[str]:
        pager = await provider.client.batches.list(config={"page_size": 2})
        return [job.name async for job in pager if job.name]

    listed = asyncio.run(names())
    assert listed == [m.batch_id for m in reversed(made)]
    assert (
        provider.find_batch({"polybatch_job": "pb-l", "polybatch_chunk": "3"}) == made[3].batch_id
    )


def test_credentials_present_sees_a_gcloud_login(tmp_path: Path) -> None:
    assert not VertexProvider.credentials_present({"CLOUDSDK_CONFIG": str(tmp_path)})
    assert VertexProvider.credentials_present({"GOOGLE_OAUTH_ACCESS_TOKEN": "ya29.x"})
    (tmp_path / "application_default_credentials.json").write_text("{}")
    assert VertexProvider.credentials_present({"CLOUDSDK_CONFIG": str(tmp_path)})
