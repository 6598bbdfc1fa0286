"""Whether Vertex credentials are at hand, without importing the Google SDKs (for the lazy
registration in :mod:`polybatch_vertex.plugin` and ``VertexProvider.credentials_present``)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

#: the variables that hold a token or a key file (``VertexProvider.credential_env``)
CREDENTIAL_ENV = ("GOOGLE_OAUTH_ACCESS_TOKEN", "GOOGLE_APPLICATION_CREDENTIALS")


def credentials_present(env: Mapping[str, str] | None = None) -> bool:
    """A token or key file in the environment, or gcloud's application-default login."""
    env = os.environ if env is None else env
    if any(env.get(name) for name in CREDENTIAL_ENV):
        return True
    default = (
        Path(env.get("APPDATA", "")) / "gcloud"
        if os.name == "nt"
        else Path.home() / ".config" / "gcloud"
    )
    config = Path(env["CLOUDSDK_CONFIG"]) if env.get("CLOUDSDK_CONFIG") else default
    return (config / "application_default_credentials.json").is_file()
