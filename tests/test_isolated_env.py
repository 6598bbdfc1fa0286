"""ISOLATED_ENV is derived from the registered providers, never reaches polybatch's own home."""

from __future__ import annotations

from polybatch.testing.env import isolated_env, provider_env


def test_vendor_variables_are_blanked_but_the_test_home_is_kept() -> None:
    environ = {
        "POLYBATCH_HOME": "/tmp/test-home",  # the fixture's own isolation
        "POLYBATCH_PROFILE": "prod",  # would pick a user's profile
        "OPENAI_ORG_ID": "org-1",  # shares a vendor prefix with OPENAI_API_KEY
        "PATH": "/usr/bin",
    }
    blanked = isolated_env(environ)
    assert "POLYBATCH_HOME" not in blanked
    assert {"POLYBATCH_PROFILE", "OPENAI_ORG_ID", "OPENAI_API_KEY"} <= set(blanked)
    assert "PATH" not in blanked


def test_every_registered_providers_credentials_are_blanked() -> None:
    names = set(provider_env())
    assert {"OPENAI_API_KEY", "ANTHROPIC_API_KEY", "MISTRAL_API_KEY", "GROQ_BASE_URL"} <= names
