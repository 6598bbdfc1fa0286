"""The OpenAI-compatible presets: each vendor's differences as data, served by the sandbox.

Every preset runs through the real openai SDK on the sandbox, whose routes serve that preset's
differences (purpose, line shape, status words, progress, refused fields, the create envelope,
Idempotency-Key), so an adapter that ignored one of them would fail here.
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Iterator
from contextlib import AbstractContextManager
from pathlib import Path

import openai
import pytest
from openai_testlib import OpenAISDKConformance

from polybatch import submit
from polybatch.errors import ConfigError, ProviderConnectionError
from polybatch.items import BatchItem
from polybatch.plugins import PluginRegistry, reset_registry
from polybatch.providers import META_CHUNK, META_JOB
from polybatch.sandbox import Faults, SandboxEngine, SandboxServer
from polybatch.testing import SANDBOX_KEY, ProviderConformance
from polybatch_openai.compatible import (
    PRESETS,
    REGISTERED,
    OpenAICompatibleProvider,
    Preset,
    TogetherProvider,
    compatible_provider,
    preset_provider,
)

PerplexityProvider = preset_provider("perplexity", PRESETS["perplexity"])
NovitaProvider = preset_provider("novita", PRESETS["novita"])
TOGETHER_MODEL = "meta-llama/Llama-3.3-70B-Instruct-Turbo"


def registered(cls: type[OpenAICompatibleProvider]) -> AbstractContextManager[None]:
    """The process-wide registry holding ``cls`` alone: the conformance suite's own helper."""
    suite = type("Suite", (ProviderConformance,), {"provider_class": cls})()
    return suite.registered()


def serve(cls: type[OpenAICompatibleProvider], **engine: object) -> SandboxServer:
    return SandboxServer(SandboxEngine(api_key=SANDBOX_KEY, **engine), providers={cls.name: cls})


def connect(cls: type[OpenAICompatibleProvider], server: SandboxServer) -> openai.OpenAI:
    """The SDK pointed at the preset's sandbox routes, as a user's own script would be."""
    settings = cls.sandbox_settings(server.url, SANDBOX_KEY)
    return openai.OpenAI(api_key=SANDBOX_KEY, base_url=settings["base_url"], max_retries=0)


def write_lines(tmp_path: Path, cls: type[OpenAICompatibleProvider], n: int = 3) -> Path:
    provider = cls(api_key="unused")
    path = tmp_path / "lines.jsonl"
    items = [
        BatchItem(custom_id=f"c{i}", messages=[{"role": "user", "content": f"q {i}"}])
        for i in range(n)
    ]
    path.write_bytes(b"".join(provider.encode(item, "m") + b"\n" for item in items))
    return path


# -- the presets as data ---------------------------------------------------------------------
def test_every_preset_is_a_provider_class() -> None:
    for name, preset in PRESETS.items():
        cls = preset_provider(name, preset)
        assert cls.credential_env == (preset.api_key_env,)
        assert cls.limits.max_requests == preset.max_requests
        assert cls(api_key="k").resolved_base_url() == preset.base_url
        assert cls.base_url_env == (preset.base_url_env or f"{name.upper()}_BASE_URL")
    assert set(REGISTERED) <= set(PRESETS)


def test_together_preset_is_what_its_sdk_says() -> None:
    p = PRESETS["together"]
    assert p.purpose == "batch-api"
    assert set(p.status_words().values()) == {
        "VALIDATING",
        "IN_PROGRESS",
        "COMPLETED",
        "FAILED",
        "EXPIRED",
        "CANCELLED",
    }
    assert p.states()["IN_PROGRESS"] == "in_progress"  # not finalizing or cancelling
    assert (TogetherProvider.limits.max_requests, TogetherProvider.limits.max_bytes) == (
        50_000,
        100 * 1024 * 1024,
    )


@pytest.mark.filterwarnings("ignore:no estimate")
@pytest.mark.parametrize("name", sorted(PRESETS))
def test_each_preset_runs_a_job_on_the_sandbox(name: str, polybatch_home: Path) -> None:
    cls = preset_provider(name, PRESETS[name])
    # one made-up model name "m" for every preset: the sandbox lets any model through
    with registered(cls), serve(cls, strict_models=False) as server:
        items = [{"custom_id": f"c{i}", "prompt": f"q {i}"} for i in range(4)]
        job = submit(items, f"{name}:m", sandbox=server, chunk_size=2)
        job.wait(poll_min=0.02, timeout=60)
        assert [(r.custom_id, r.status) for r in job.results()] == [
            (f"c{i}", "succeeded") for i in range(4)
        ]
        assert len(server.engine.batches) == 2


# -- Together's differences on the wire -------------------------------------------------------
def test_together_wire(tmp_path: Path) -> None:
    path = write_lines(tmp_path, TogetherProvider)
    assert set(json.loads(path.read_text().splitlines()[0])) == {"custom_id", "body"}
    with serve(TogetherProvider) as server:
        client = connect(TogetherProvider, server)
        with pytest.raises(openai.BadRequestError, match="purpose"):
            client.files.create(file=path.open("rb"), purpose="batch")
        uploaded = client.files.create(file=path.open("rb"), purpose="batch-api")  # type: ignore[arg-type]
        with pytest.raises(openai.BadRequestError, match="metadata"):
            client.batches.create(
                input_file_id=uploaded.id,
                endpoint="/v1/chat/completions",
                completion_window="24h",
                metadata={"a": "b"},
            )
        raw = client.batches.with_raw_response.create(
            input_file_id=uploaded.id, endpoint="/v1/chat/completions", completion_window="24h"
        )
        created = raw.http_response.json()
        assert set(created) == {"job", "warning"}
        server.engine.clock.advance(10**6)
        polled = client.batches.with_raw_response.retrieve(
            created["job"]["id"]
        ).http_response.json()
        assert (polled["status"], polled["progress"]) == ("COMPLETED", 100.0)


def test_progress_stands_in_for_missing_counts() -> None:
    batch = openai.types.Batch.construct(
        id="b", status="IN_PROGRESS", request_counts=None, errors=None, progress=42.4
    )
    status = TogetherProvider(api_key="k").status_of(batch)
    assert (status.state, status.total, status.completed) == ("in_progress", 100, 42)
    failed = openai.types.Batch.construct(
        id="b", status="FAILED", request_counts=None, errors=None, error="bad file"
    )
    assert TogetherProvider(api_key="k").status_of(failed).message == "bad file"


# -- Perplexity: an Idempotency-Key makes the create safe to retry ------------------------------
def test_same_idempotency_key_same_batch(tmp_path: Path) -> None:
    path = write_lines(tmp_path, PerplexityProvider)
    with serve(PerplexityProvider) as server:
        provider = PerplexityProvider(
            **PerplexityProvider.sandbox_settings(server.url, SANDBOX_KEY)
        )
        meta = {META_JOB: "pb-1", META_CHUNK: "0"}
        first = provider.submit(path, model="m", metadata=meta)
        again = provider.submit(path, model="m", metadata=meta)
        other = provider.submit(path, model="m", metadata={**meta, META_CHUNK: "1"})
        assert first.batch_id == again.batch_id != other.batch_id
        assert len(server.engine.batches) == 2


def test_lost_create_answers_are_retried_under_one_key(tmp_path: Path) -> None:
    path = write_lines(tmp_path, PerplexityProvider)
    with serve(PerplexityProvider, faults=Faults(create_timeout_rate=1.0)) as server:
        settings = PerplexityProvider.sandbox_settings(server.url, SANDBOX_KEY)
        provider = PerplexityProvider(**settings, settings={"max_retries": 2})
        with pytest.raises(ProviderConnectionError):
            provider.submit(path, model="m", metadata={META_JOB: "pb-2", META_CHUNK: "0"})
        create = ("POST", "/compat/perplexity/v1/batches")
        assert server.engine.requests_seen.count(create) == 3  # the SDK sent it again, twice
        assert len(server.engine.batches) == 1  # and the key made it the same batch


@pytest.mark.filterwarnings("ignore:no estimate")
def test_lost_creates_through_the_runner_make_no_second_batch(polybatch_home: Path) -> None:
    """The chaos case Together and Anthropic fail: with the key, every lost create is harmless."""
    faults = Faults(seed=5, create_timeout_rate=0.4)
    with registered(PerplexityProvider), serve(PerplexityProvider, faults=faults) as server:
        items = [{"custom_id": f"c{i}", "prompt": f"q {i}"} for i in range(20)]
        job = submit(items, "perplexity:sonar", sandbox=server, chunk_size=4)
        job.wait(poll_min=0.02, timeout=120)
        assert [r.custom_id for r in job.results()] == [f"c{i}" for i in range(20)]
        assert any(e.kind == "create_timeout" for e in server.engine.fault_log)
        assert len(server.engine.batches) == 5  # one per chunk, however many creates


# -- config: a preset by name, a user's own --------------------------------------------------
@pytest.fixture
def fresh_registry() -> Iterator[None]:
    reset_registry(PluginRegistry())
    yield
    reset_registry(None)


@pytest.mark.filterwarnings("ignore:no estimate")
@pytest.mark.usefixtures("fresh_registry")
def test_a_preset_enabled_in_config(polybatch_home: Path) -> None:
    (polybatch_home.parent / "polybatch.toml").write_text(
        '[providers.nebius]\nkind = "openai-compatible"\npreset = "nebius"\nmax_requests = 3\n'
    )
    with SandboxServer(SandboxEngine(api_key=SANDBOX_KEY)) as server:  # the config's nebius
        job = submit([{"prompt": f"q{i}"} for i in range(5)], "nebius:m", sandbox=server)
        job.wait(poll_min=0.02, timeout=60)
        assert [r.status for r in job.results()] == ["succeeded"] * 5
        nebius = [b for b in server.engine.batches.values() if b.namespace == "nebius"]
        assert len(nebius) == 2  # max_requests = 3 over the preset's 50,000


def test_preset_config_errors_name_the_key() -> None:
    with pytest.raises(ConfigError, match=r"providers.x.preset': unknown preset 'nope'"):
        compatible_provider("x", {"preset": "nope"})
    with pytest.raises(ConfigError, match=r"providers.x.line_fields"):
        compatible_provider("x", {"preset": "nebius", "line_fields": "xml"})
    own = compatible_provider(
        "mine",
        {
            "base_url": "https://x.invalid/v1",
            "api_key_env": "MINE_KEY",
            "purpose": "batch-api",
            "statuses": {"completed": "DONE"},
            "omit": ["metadata"],
        },
    )
    assert own.preset == Preset(
        base_url="https://x.invalid/v1",
        api_key_env="MINE_KEY",
        purpose="batch-api",
        statuses={"completed": "DONE"},
        omit=frozenset({"metadata"}),
    )
    assert own.preset.states()["DONE"] == "completed"


# -- the conformance suite on three presets ----------------------------------------------------
class _PresetConformance(OpenAISDKConformance):
    """What every preset declares alike: the openai SDK's async client."""

    supports_find_batch = True
    # refused by OpenAI's rules, which the family validates with (at most 128 choices)
    bad_item = BatchItem(messages=[{"role": "user", "content": "hi"}], extra={"n": 500})


class TestTogetherConformance(_PresetConformance):
    provider_class = TogetherProvider
    model = TOGETHER_MODEL
    supports_find_batch = False  # Together's batches carry no metadata


class TestPerplexityConformance(_PresetConformance):
    provider_class = PerplexityProvider
    model = "sonar"


class TestNovitaConformance(_PresetConformance):
    provider_class = NovitaProvider
    model = "meta-llama/llama-3.3-70b-instruct"


def test_the_docs_config_tables_make_providers() -> None:
    """Every ``[providers.X]`` table in docs/providers/openai-compatible.md is valid config."""
    doc = Path(__file__).resolve().parents[3] / "docs" / "providers" / "openai-compatible.md"
    blocks = re.findall(r"```toml\n(.*?)```", doc.read_text(encoding="utf-8"), re.DOTALL)
    tables = {name: t for block in blocks for name, t in tomllib.loads(block)["providers"].items()}
    assert set(tables) == {"nebius", "mylab"}
    made = {
        name: compatible_provider(name, {k: v for k, v in table.items() if k != "kind"})
        for name, table in tables.items()
    }
    assert made["nebius"].preset == PRESETS["nebius"]
    assert made["mylab"].preset.states()["DONE"] == "completed"
    assert made["mylab"].preset.line_fields == "body"
