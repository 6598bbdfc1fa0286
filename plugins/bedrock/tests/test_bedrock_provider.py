"""Bedrock-specific behaviour against the sandbox: idempotent creates, the record minimum, the
model families end to end, and the CLI demo."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import polybatch
from polybatch import submit
from polybatch.cli import cli
from polybatch.errors import InputError, ProviderError
from polybatch.items import BatchItem
from polybatch.jobs.clients import public_settings
from polybatch.providers import META_CHUNK, META_JOB
from polybatch.sandbox import Faults, SandboxEngine, SandboxServer
from polybatch.testing import ProviderConformance
from polybatch_bedrock import codec
from polybatch_bedrock.provider import BedrockProvider
from polybatch_bedrock.sandbox import routes

KEY = "AKIAPOLYBATCHTEST0000"
CLAUDE = "anthropic.claude-haiku-4-5-20251001-v1:0"
EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "requests.jsonl"


@pytest.fixture(autouse=True)
def _home(polybatch_home: Path) -> Path:
    return polybatch_home


def serve(**engine: Any) -> SandboxServer:
    return SandboxServer(
        SandboxEngine(api_key=KEY, **engine), providers={"bedrock": BedrockProvider}
    )


def connect(server: SandboxServer, **settings: Any) -> BedrockProvider:
    kwargs = BedrockProvider.sandbox_settings(server.url, KEY)
    merged = {**kwargs.pop("settings"), "max_retries": 0, **settings}
    return BedrockProvider(**kwargs, settings=merged)


def items(n: int, prefix: str = "q") -> list[BatchItem]:
    """System + user requests, as the conformance suite makes them."""
    return ProviderConformance().make_items(n, prefix)


def write_lines(provider: BedrockProvider, batch: list[BatchItem], path: Path, model: str) -> Path:
    path.write_bytes(b"".join(provider.encode(i, model) + b"\n" for i in batch))
    return path


def jobs_of(server: SandboxServer) -> set[str]:
    """Every Bedrock job the sandbox holds (by job id)."""
    return {b.extra["job_id"] for b in server.engine.batches.values() if b.namespace == "bedrock"}


# -- a create whose answer was lost -----------------------------------------------------------
@pytest.mark.parametrize("recover", ["find_batch", "token"])
def test_lost_create_answers_leave_no_duplicate_job(
    recover: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Half the creates lose their answer after the job was made. Recovered through the job name
    (find_batch), or, with find_batch made blind, through the clientRequestToken of the resubmitted
    create: either way every chunk has exactly one Bedrock job."""
    if recover == "token":
        monkeypatch.setattr(BedrockProvider, "find_batch", lambda self, metadata: None)
    src = tmp_path / "in.jsonl"
    src.write_text(
        "".join(json.dumps({"custom_id": f"q-{i}", "prompt": f"Q{i}?"}) + "\n" for i in range(12))
    )
    with serve(faults=Faults(seed=2, create_timeout_rate=0.5)) as server:
        job = submit(
            src,
            f"bedrock:{CLAUDE}",
            sandbox=server,
            chunk_size=2,
            provider_settings={"max_retries": 0},
        )
        job.wait(poll_min=0.01, poll_max=0.05, timeout=60)
        lost = sum(e.kind == "create_timeout" for e in server.engine.fault_log)
        creates = Counter(
            p
            for m, p in server.engine.requests_seen
            if m == "POST" and p.endswith("/model-invocation-job")
        )
        known = {c.batch_id for c in job.chunks() if c.batch_id}
        held = jobs_of(server)
    assert [r.custom_id for r in job.results()] == [f"q-{i}" for i in range(12)]
    assert lost >= 1
    assert held == known and len(held) == 6, "one Bedrock job per chunk, none orphaned"
    if recover == "token":
        assert sum(creates.values()) == 6 + lost, "each lost create was sent again, same token"


def test_same_token_same_job(tmp_path: Path) -> None:
    with serve() as server:
        provider = connect(server)
        path = write_lines(provider, items(3), tmp_path / "l.jsonl", CLAUDE)
        meta = {META_JOB: "pb-0123456789abcdef", META_CHUNK: "4"}
        first = provider.submit(path, model=CLAUDE, metadata=meta)
        again = provider.submit(path, model=CLAUDE, metadata=meta)
        assert first.batch_id == again.batch_id and jobs_of(server) == {first.batch_id}
        assert provider.find_batch(meta) == first.batch_id
        other = provider.submit(path, model=CLAUDE, metadata={**meta, META_CHUNK: "5"})
        assert other.batch_id != first.batch_id


# -- the record minimum -----------------------------------------------------------------------
def _real_settings(server: SandboxServer, **more: Any) -> dict[str, Any]:
    """The sandbox's profile with Bedrock's default minimum (no --sandbox lowering)."""
    kwargs = BedrockProvider.sandbox_settings(server.url, KEY)
    settings = {**kwargs["settings"], "base_url": kwargs["base_url"], **more}
    settings.pop("min_records")
    return settings


def test_a_job_under_the_minimum_is_refused_before_anything_is_sent(tmp_path: Path) -> None:
    src = tmp_path / "in.jsonl"
    src.write_text(
        "".join(json.dumps({"custom_id": f"q-{i}", "prompt": "hi"}) + "\n" for i in range(18))
    )
    with serve() as server:
        with pytest.raises(InputError) as caught:
            submit(src, f"bedrock:{CLAUDE}", api_key=KEY, provider_settings=_real_settings(server))
        assert server.engine.requests_seen == [], "nothing uploaded, nothing created"
    message = str(caught.value)
    assert "at least 100 requests" in message and "this job has 18" in message
    assert "provider without a minimum" in message and "never pads" in message
    assert polybatch.jobs() == [], "nothing recorded in the ledger"


def test_a_chunk_under_the_minimum_names_the_chunk_size(tmp_path: Path) -> None:
    src = tmp_path / "in.jsonl"
    src.write_text(
        "".join(json.dumps({"custom_id": f"q-{i}", "prompt": "hi"}) + "\n" for i in range(150))
    )
    with serve() as server, pytest.raises(InputError, match="batch 2 of 2 would hold 50"):
        submit(
            src,
            f"bedrock:{CLAUDE}",
            api_key=KEY,
            chunk_size=100,
            provider_settings=_real_settings(server),
        )


def test_the_minimum_is_a_profile_setting(tmp_path: Path) -> None:
    provider = BedrockProvider(settings={"min_records": 10, "max_records": 500})
    assert (provider.limits.min_requests, provider.limits.max_requests) == (10, 500)
    assert BedrockProvider.limits.min_requests == 100, "the class keeps Bedrock's default"


def test_a_small_retry_round_is_refused_before_upload(tmp_path: Path) -> None:
    with serve() as server:
        provider = connect(server, min_records=100)
        path = write_lines(provider, items(3), tmp_path / "l.jsonl", CLAUDE)
        with pytest.raises(ProviderError, match="100 to 50000 records; this one has 3") as caught:
            provider.submit(path, model=CLAUDE, metadata={META_JOB: "pb-x", META_CHUNK: "1"})
        assert not caught.value.retryable
        assert server.engine.requests_seen == []


def test_the_sandbox_minimum_fails_the_job_in_validation(tmp_path: Path) -> None:
    class Strict(BedrockProvider):
        @classmethod
        def sandbox_routes(cls, engine: SandboxEngine) -> list[Any]:
            return routes(engine, min_records=100)

    with SandboxServer(SandboxEngine(api_key=KEY), providers={"bedrock": Strict}) as server:
        provider = connect(server)
        path = write_lines(provider, items(3), tmp_path / "l.jsonl", CLAUDE)
        submitted = provider.submit(path, model=CLAUDE, metadata={})
        status = provider.poll(submitted.batch_id)
    assert status.state == "failed"
    assert status.message and "needs 100 to 50000 records" in status.message


# -- model families end to end ----------------------------------------------------------------
@pytest.mark.parametrize(
    ("model", "settings", "shape"),
    [
        ("amazon.nova-lite-v1:0", {}, "schemaVersion"),
        ("us.meta.llama3-3-70b-instruct-v1:0", {}, "prompt"),
        (
            "mistral.mistral-large-2407-v1:0",
            {"model_invocation_type": "Converse"},
            "inferenceConfig",
        ),
    ],
)
def test_families_round_trip(
    model: str, settings: dict[str, Any], shape: str, tmp_path: Path
) -> None:
    batch = items(4)
    with serve() as server:
        provider = connect(server, **settings)
        path = write_lines(provider, batch, tmp_path / "l.jsonl", model)
        assert shape in json.loads(path.read_text().splitlines()[0])["modelInput"]
        submitted = provider.submit(path, model=model, metadata={})
        assert provider.poll(submitted.batch_id).state == "completed"
        results = {r.custom_id: r for r in provider.results(submitted.batch_id)}
        if settings:
            view = server.engine.batches[next(iter(server.engine.batches))].extra
            assert view["modelInvocationType"] == "Converse"
    assert set(results) == {codec.wire_custom_id(i.custom_id or "") for i in batch}
    for item in batch:
        r = results[codec.wire_custom_id(item.custom_id or "")]
        assert r.ok and r.text and r.model == model
        assert r.usage.input_tokens == polybatch.tokens.prompt_tokens(m.text for m in item.messages)
        assert r.usage.output_tokens == polybatch.tokens.count_tokens(r.text)


def test_invalid_model_input_is_a_record_error(tmp_path: Path) -> None:
    with serve() as server:
        provider = connect(server)
        path = tmp_path / "l.jsonl"
        good = provider.encode(items(1)[0], CLAUDE)
        bad = json.dumps(
            {
                "recordId": "bad1",
                "modelInput": {"anthropic_version": "bedrock-2023-05-31", "messages": []},
            }
        )
        path.write_bytes(good + b"\n" + bad.encode() + b"\n")
        submitted = provider.submit(path, model=CLAUDE, metadata={})
        results = {r.custom_id: r for r in provider.results(submitted.batch_id)}
    assert results["bad1"].status == "errored" and results["bad1"].error is not None
    assert results["bad1"].error.status_code == 400 and not results["bad1"].error.retryable
    assert sum(r.ok for r in results.values()) == 1


def test_output_is_joined_on_record_id_not_order(tmp_path: Path) -> None:
    """The sandbox shuffles the output (Bedrock does not promise order); results still carry the
    right ids, and the manifest's counts agree."""
    batch = items(8)
    with serve() as server:
        provider = connect(server)
        path = write_lines(provider, batch, tmp_path / "l.jsonl", CLAUDE)
        submitted = provider.submit(path, model=CLAUDE, metadata={})
        got = list(provider.results(submitted.batch_id))
        s3 = provider.clients.s3
        listing = s3.list_objects_v2(
            Bucket="polybatch-sandbox", Prefix=f"output/{submitted.batch_id}/"
        )
        keys = sorted(o["Key"] for o in listing["Contents"])
        manifest = json.loads(
            s3.get_object(
                Bucket="polybatch-sandbox", Key=f"output/{submitted.batch_id}/manifest.json.out"
            )["Body"].read()
        )
    sent = [codec.wire_custom_id(i.custom_id or "") for i in batch]
    assert [r.custom_id for r in got] != sent and sorted(r.custom_id for r in got) == sorted(sent)
    assert len(keys) == 2 and {k.rsplit(".", 2)[-2] for k in keys} == {"jsonl", "json"}
    assert manifest["successRecordCount"] == 8 and manifest["processedRecordCount"] == 8
    assert manifest["inputTokenCount"] == sum(r.usage.input_tokens for r in got)


def test_manifest_counting_more_than_the_output_warns(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with serve(faults=Faults(missing_output_rate=1.0)) as server:
        provider = connect(server)
        path = write_lines(provider, items(3), tmp_path / "l.jsonl", CLAUDE)
        submitted = provider.submit(path, model=CLAUDE, metadata={})
        assert list(provider.results(submitted.batch_id)) == []
    assert "manifest.json.out counts 3 records" in caplog.text


def test_cleanup_deletes_the_input_only(tmp_path: Path) -> None:
    with serve() as server:
        provider = connect(server)
        path = write_lines(provider, items(2), tmp_path / "l.jsonl", CLAUDE)
        submitted = provider.submit(path, model=CLAUDE, metadata={})
        list(provider.results(submitted.batch_id))
        provider.cleanup(submitted)
        provider.cleanup(submitted)  # already gone: fine
        keys = [
            o["Key"]
            for o in provider.clients.s3.list_objects_v2(Bucket="polybatch-sandbox")["Contents"]
        ]
    assert not any(k.startswith("input/") for k in keys)
    assert any(k.startswith(f"output/{submitted.batch_id}/") for k in keys)


def test_create_parameters_pass_settings_through(tmp_path: Path) -> None:
    settings = {
        "output_kms_id": "alias/polybatch",
        "vpc_subnet_ids": ["subnet-1"],
        "vpc_security_group_ids": ["sg-1"],
        "timeout_hours": 72,
        "s3_bucket_owner": "123456789012",
    }
    with serve() as server:
        provider = connect(server, **settings)
        path = write_lines(provider, items(2), tmp_path / "l.jsonl", CLAUDE)
        submitted = provider.submit(
            path, model=CLAUDE, metadata={META_JOB: "pb-k", META_CHUNK: "0"}
        )
        (batch,) = server.engine.batches.values()
        job = provider.clients.bedrock.get_model_invocation_job(jobIdentifier=submitted.batch_id)
    sent = batch.extra
    assert sent["outputDataConfig"]["s3OutputDataConfig"]["s3EncryptionKeyId"] == "alias/polybatch"
    assert sent["vpcConfig"] == {"subnetIds": ["subnet-1"], "securityGroupIds": ["sg-1"]}
    assert sent["timeoutDurationInHours"] == 72 and job["timeoutDurationInHours"] == 72
    assert sent["jobName"] == "pb-k-c0" and codec.TOKEN_RE.match(sent["clientRequestToken"])
    assert job["status"] == "Completed"
    assert public_settings(settings) == settings, "the ledger keeps every one (none is a secret)"


def test_preflight_names_missing_settings() -> None:
    with pytest.raises(polybatch.errors.ConfigError, match="role_arn, s3_input_uri, s3_output_uri"):
        BedrockProvider(api_key=KEY).preflight()
    with pytest.raises(polybatch.errors.ConfigError, match="s3_input_uri"):
        BedrockProvider(
            api_key=KEY,
            settings={
                "role_arn": "arn:aws:iam::1:role/r",
                "s3_input_uri": "bucket/x",
                "s3_output_uri": "s3://b1x/o/",
            },
        ).preflight()


def test_preflight_finds_credentials_through_the_boto3_chain(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = {
        "role_arn": "arn:aws:iam::123456789012:role/r",
        "s3_input_uri": "s3://b1x/in/",
        "s3_output_uri": "s3://b1x/out/",
    }
    with pytest.raises(polybatch.errors.CredentialsError, match="no AWS credentials"):
        BedrockProvider(settings=settings).preflight()
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAFROMTHEENVIRONMENT")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-a-real-secret")
    with pytest.raises(polybatch.errors.ConfigError, match="region"):
        BedrockProvider(settings=settings).preflight()
    BedrockProvider(settings={**settings, "region": "eu-west-1"}).preflight()
    with pytest.raises(polybatch.errors.ConfigError, match="nope"):
        BedrockProvider(settings={**settings, "aws_profile": "nope"}).preflight()


def test_wrong_key_never_shows(tmp_path: Path) -> None:
    with serve() as server:
        kwargs = BedrockProvider.sandbox_settings(server.url, "AKIAWRONGWRONGWRONG0")
        provider = BedrockProvider(**kwargs)
        path = write_lines(provider, items(1), tmp_path / "l.jsonl", CLAUDE)
        with pytest.raises(ProviderError) as caught:
            provider.submit(path, model=CLAUDE, metadata={})
    assert "AKIAWRONG" not in str(caught.value) and "403" in str(caught.value)


# -- the CLI demo -----------------------------------------------------------------------------
def test_cli_demo_runs_on_the_sandbox(tmp_path: Path, polybatch_home: Path) -> None:
    out = tmp_path / "results.jsonl"
    result = CliRunner().invoke(
        cli,
        [
            "run",
            str(EXAMPLES),
            "--model",
            f"bedrock:{CLAUDE}",
            "--sandbox",
            "-o",
            str(out),
            "--no-progress",
        ],
    )
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(lines) == 18 and all(line["status"] == "succeeded" for line in lines)
    assert "Batch $" in result.output and "bedrock" in result.output
    assert "TOTAL" in result.output
    for text in _files_text(polybatch_home, result.output, out):
        assert "sandbox-secret" not in text and "AKIA" not in text


def _files_text(home: Path, output: str, out: Path) -> Iterator[str]:
    yield output
    yield out.read_text()
    for f in home.rglob("*"):
        if f.is_file():
            yield f.read_bytes().decode("utf-8", "replace")
