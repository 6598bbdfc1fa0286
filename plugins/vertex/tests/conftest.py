"""Fixtures for the vertex plugin's tests: no Google settings of the developer's leak in."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from vertex_support import KEY, serve

from polybatch.sandbox import SandboxEngine, SandboxServer

#: variables that would point google-genai, google-auth or google-cloud-storage elsewhere
GOOGLE_ENV = (
    "GOOGLE_APPLICATION_CREDENTIALS",
    "GOOGLE_CLOUD_PROJECT",
    "GOOGLE_CLOUD_LOCATION",
    "GOOGLE_VERTEX_BASE_URL",
    "GOOGLE_GENAI_USE_VERTEXAI",
    "GOOGLE_GENAI_API_VERSION",
    "GOOGLE_API_KEY",
    "GEMINI_API_KEY",
    "STORAGE_EMULATOR_HOST",
    "API_ENDPOINT_OVERRIDE",
    "CLOUDSDK_CONFIG",
    "GOOGLE_OAUTH_ACCESS_TOKEN",
    "POLYBATCH_VERTEX_BUCKET",
)


@pytest.fixture(autouse=True)
def _no_real_google(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Keep a developer's own Google settings (and gcloud's ADC file) out of the tests."""
    for name in GOOGLE_ENV:
        monkeypatch.delenv(name, raising=False)
    # an empty gcloud config directory: no application-default credentials file is found
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path_factory.mktemp("gcloud")))
    # never probe the metadata server (a link-local address) from a test
    monkeypatch.setenv("NO_GCE_CHECK", "True")


@pytest.fixture
def server() -> Iterator[SandboxServer]:
    """A sandbox whose batches end at once."""
    with serve(SandboxEngine(api_key=KEY)) as srv:
        yield srv
