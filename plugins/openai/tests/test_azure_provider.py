"""The Azure adapter: settings, credentials, the two client styles, and round trips on the sandbox."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
from openai_testlib import KEY, by_id, items, wait_terminal, write_lines

from polybatch.errors import ConfigError, CredentialsError, ProviderError
from polybatch.sandbox import SandboxEngine, SandboxServer
from polybatch.testing import ISOLATED_ENV
from polybatch_openai.azure import DEFAULT_API_VERSION, AzureProvider
from polybatch_openai.provider import OpenAIProvider

MODEL = "gpt-4o-mini"
DEPLOYMENT = "gpt-4o-mini-globalbatch"
ENDPOINT = "https://res.openai.azure.com"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ISOLATED_ENV:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def server() -> Iterator[SandboxServer]:
    engine = SandboxEngine(api_key=KEY)
    with SandboxServer(engine, providers={"openai": OpenAIProvider, "azure": AzureProvider}) as srv:
        yield srv


def azure(server: SandboxServer | None = None, **settings: Any) -> AzureProvider:
    base: dict[str, Any] = {"max_retries": 0, "deployments": {MODEL: DEPLOYMENT}}
    base.update(settings)
    if server is None:
        key = base.pop("api_key", None)
        return AzureProvider(api_key=key, settings={"endpoint": ENDPOINT, **base})
    return AzureProvider(**AzureProvider.sandbox_settings(server.url, KEY), settings=base)


# -- settings and credentials -------------------------------------------------------------------


def test_encode_puts_the_deployment_in_body_model() -> None:
    p = azure(api_key="k")
    line = json.loads(p.encode(items(1)[0], MODEL))
    assert line["url"] == "/chat/completions"
    assert line["body"]["model"] == DEPLOYMENT
    # an item's own model is mapped too; an unmapped model is taken as the deployment name
    own = items(1, model="gpt-4.1")[0]
    assert json.loads(p.encode(own, MODEL))["body"]["model"] == "gpt-4.1"


def test_limits_are_azures() -> None:
    assert AzureProvider.limits.max_requests == 100_000
    assert AzureProvider.limits.completion_windows == ("24h",)
    assert AzureProvider.name == "azure" and AzureProvider.sandbox_prefix == "/azure"


def test_missing_endpoint_names_env_var_and_config_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", "k")
    with pytest.raises(CredentialsError) as err:
        AzureProvider(settings={}).preflight()
    assert str(err.value) == (
        "azure: no endpoint; set AZURE_OPENAI_ENDPOINT or providers.azure.endpoint in polybatch.toml"
    )


def test_missing_key_names_env_var_and_config_key() -> None:
    with pytest.raises(CredentialsError) as err:
        AzureProvider(settings={"endpoint": ENDPOINT}).preflight()
    msg = str(err.value)
    assert "AZURE_OPENAI_API_KEY" in msg and "providers.azure.api_key_env" in msg
    assert 'providers.azure.auth = "entra"' in msg and "\n" not in msg


def test_api_key_env_names_another_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", "not-this-one")
    monkeypatch.setenv("MY_AZURE_KEY", "this-one")
    p = AzureProvider(settings={"endpoint": ENDPOINT, "api_key_env": "MY_AZURE_KEY"})
    assert p.require_api_key() == "this-one"
    monkeypatch.delenv("MY_AZURE_KEY")
    with pytest.raises(CredentialsError, match="set MY_AZURE_KEY"):
        p.preflight()


@pytest.mark.parametrize(
    ("settings", "fragment"),
    [
        ({"style": "v2"}, "providers.azure.style must be 'classic' or 'v1'"),
        ({"deployments": ["x"]}, "providers.azure.deployments must map"),
        ({"auth": "magic"}, "providers.azure.auth must be 'key' or 'entra'"),
        ({"file_expiry": 60}, "providers.azure.file_expiry must be seconds from 1209600"),
    ],
)
def test_bad_settings_are_config_errors(settings: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment):
        AzureProvider(api_key="k", settings={"endpoint": ENDPOINT, **settings}).preflight()


def test_entra_without_azure_identity_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "azure.identity", None)  # import fails as if not installed
    with pytest.raises(CredentialsError, match=r"needs the azure-identity package: pip install"):
        AzureProvider(settings={"endpoint": ENDPOINT, "auth": "entra"}).preflight()


def test_endpoint_precedence_and_normalisation(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AZURE_OPENAI_ENDPOINT", "https://from-env.openai.azure.com/")
    assert AzureProvider().resolved_endpoint() == "https://from-env.openai.azure.com"
    p = AzureProvider(settings={"endpoint": "https://from-config.openai.azure.com/openai/v1/"})
    assert p.resolved_endpoint() == "https://from-config.openai.azure.com"
    p = AzureProvider(base_url="https://flag.example/openai", settings={"endpoint": ENDPOINT})
    assert p.resolved_endpoint() == "https://flag.example"


def test_api_version_setting_then_env_then_default(monkeypatch: pytest.MonkeyPatch) -> None:
    assert AzureProvider().api_version == DEFAULT_API_VERSION
    monkeypatch.setenv("OPENAI_API_VERSION", "2025-04-01-preview")
    assert AzureProvider().api_version == "2025-04-01-preview"
    assert AzureProvider(settings={"api_version": "2024-10-21"}).api_version == "2024-10-21"


def test_the_two_client_styles() -> None:
    classic = azure(api_key="k").make_client()
    assert isinstance(classic, openai.AsyncAzureOpenAI)
    assert str(classic.base_url) == f"{ENDPOINT}/openai/"
    assert classic._custom_query == {"api-version": DEFAULT_API_VERSION}
    v1 = azure(api_key="k", style="v1").make_client()
    assert type(v1) is openai.AsyncOpenAI
    assert str(v1.base_url) == f"{ENDPOINT}/openai/v1/"


def test_openai_base_url_env_does_not_leak_into_azure(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", "https://api.openai.com/v1")
    client = azure(api_key="k", style="v1").make_client()
    assert str(client.base_url) == f"{ENDPOINT}/openai/v1/"


# -- on the sandbox ---------------------------------------------------------------------------


@pytest.mark.parametrize("style", ["classic", "v1"])
def test_roundtrip_records_the_reported_model(
    server: SandboxServer, tmp_path: Path, style: str
) -> None:
    p = azure(server, style=style)
    p.preflight()
    lines = [p.encode(i, MODEL) for i in items(4)]
    sub = p.submit(write_lines(tmp_path / "in.jsonl", lines), model=MODEL, metadata={"j": style})
    status = wait_terminal(p, server.engine, sub.batch_id)
    assert (status.state, status.total, status.completed) == ("completed", 4, 4)
    results = by_id(list(p.results(sub.batch_id)))
    assert sorted(results) == ["c0", "c1", "c2", "c3"]
    for r in results.values():
        assert r.ok and r.text and r.provider == "azure" and r.batch_id == sub.batch_id
        assert r.model == MODEL  # what Azure reports back, not the deployment's name
    batch = server.engine.batches[sub.batch_id]
    assert batch.extra["model"] == DEPLOYMENT and batch.extra["endpoint"] == "/chat/completions"
    assert p.find_batch({"j": style}) == sub.batch_id
    p.cleanup(sub)
    paths = {path for _, path in server.engine.requests_seen}
    prefix = "/azure/openai/v1" if style == "v1" else "/azure/openai"
    assert f"{prefix}/files" in paths and f"{prefix}/batches" in paths
    assert not any("/deployments/" in path for path in paths)


def test_wrong_key_is_a_401_that_names_the_variable(server: SandboxServer, tmp_path: Path) -> None:
    secret = "wrong-key-0123456789abcdef"
    for style in ("classic", "v1"):
        p = AzureProvider(
            **AzureProvider.sandbox_settings(server.url, secret),
            settings={"style": style, "max_retries": 0},
        )
        with pytest.raises(ProviderError) as err:
            p.submit(
                write_lines(tmp_path / "in.jsonl", [p.encode(items(1)[0], MODEL)]),
                model=MODEL,
                metadata={},
            )
        assert err.value.status_code == 401 and not err.value.retryable
        assert "AZURE_OPENAI_API_KEY" in str(err.value) and secret not in str(err.value)
    assert server.engine.files == {}


def test_entra_token_from_env_is_sent_as_bearer(
    server: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the sandbox cannot check Entra tokens; it takes one equal to its key
    monkeypatch.setenv("AZURE_OPENAI_AD_TOKEN", KEY)
    p = AzureProvider(base_url=f"{server.url}/azure", settings={"max_retries": 0})
    p.preflight()
    assert p.credential() == ("token", KEY)
    assert p.find_batch({"none": "x"}) is None


def test_mixed_deployments_fail_the_batch_with_model_mismatch(
    server: SandboxServer, tmp_path: Path
) -> None:
    p = azure(server)
    one, two = items(2)
    lines = [p.encode(one, MODEL), p.encode(two.model_copy(update={"model": "gpt-4o"}), MODEL)]
    sub = p.submit(write_lines(tmp_path / "in.jsonl", lines), model=MODEL, metadata={})
    status = wait_terminal(p, server.engine, sub.batch_id)
    assert status.state == "failed" and status.message and "model_mismatch" in status.message
    assert list(p.results(sub.batch_id)) == []  # "" file ids: nothing to download


def test_file_expiry_is_sent_with_upload_and_batch(server: SandboxServer, tmp_path: Path) -> None:
    two_weeks = 14 * 24 * 3600
    p = azure(server, file_expiry=two_weeks)
    sub = p.submit(
        write_lines(tmp_path / "in.jsonl", [p.encode(items(1)[0], MODEL)]), model=MODEL, metadata={}
    )
    f = server.engine.files[sub.input_file_id or ""]
    assert f.expires_at is not None and f.expires_at - f.created_at == two_weeks
    batch = server.engine.batches[sub.batch_id]
    assert batch.extra["output_expires_after"] == {"anchor": "created_at", "seconds": two_weeks}
