"""Configuration: file discovery, profiles, precedence, provider settings, errors and masking."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from polybatch import config
from polybatch.errors import ConfigError, UnknownProviderError
from polybatch.items import BatchItem
from polybatch.jobs.planner import apply_defaults

TOML = """
default_profile = "cheap"

[profiles.cheap]
model = "anthropic:claude-haiku-4-5"
system_prompt = "Answer in one sentence."
max_tokens = 256
temperature = 0.2

[profiles.azure]
model = "azure:gpt-4o-mini"
max_tokens = 100
[profiles.azure.providers.azure]
style = "v1"
deployments = { "gpt-4o-mini" = "mini-batch" }

[providers.azure]
endpoint = "https://res.openai.azure.com"
api_version = "2024-10-21"
style = "classic"
"""


def write(path: Path, text: str = TOML) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def cfg_file(tmp_path: Path) -> Path:
    return write(tmp_path / "polybatch.toml")


# -- finding the file ---------------------------------------------------------------------------


def test_file_found_in_cwd_then_user_config_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    user_dir = tmp_path / "user-config"
    user_dir.mkdir()
    monkeypatch.setattr("platformdirs.user_config_dir", lambda app: str(user_dir))
    assert config.config_path() is None
    user_file = write(user_dir / "polybatch.toml")
    assert config.config_path() == user_file
    local = write(tmp_path / "polybatch.toml")  # the working directory (the fixture chdir'd here)
    assert config.config_path() == local


def test_polybatch_config_env_wins_and_must_exist(
    cfg_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = write(tmp_path / "other.toml", 'default_profile = "x"\n[profiles.x]\nmodel = "o:m"\n')
    monkeypatch.setenv("POLYBATCH_CONFIG", str(other))
    assert config.config_path() == other
    monkeypatch.setenv("POLYBATCH_CONFIG", str(tmp_path / "missing.toml"))
    with pytest.raises(ConfigError, match=r"missing.toml: POLYBATCH_CONFIG names no file"):
        config.config_path()


# -- errors name the file and the key -----------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("colour = 1\n", "key 'colour': unknown key"),
        (
            "[profiles.p]\nmodel = 'a:b'\nmax_tokenz = 5\n",
            "key 'profiles.p.max_tokenz': unknown key",
        ),
        ("[profiles.p]\nmax_tokens = 0\n", "key 'profiles.p.max_tokens': Input should be greater"),
        ("[profiles.p]\ntemperature = 9\n", "key 'profiles.p.temperature'"),
        # a union-typed field: pydantic's member tags (str, list[str]) are not keys
        ("[profiles.p]\nstop = 5\n", "key 'profiles.p.stop':"),
        ("[profiles]\np = 3\n", "key 'profiles.p':"),
    ],
)
def test_invalid_file_names_file_and_key(tmp_path: Path, text: str, fragment: str) -> None:
    path = write(tmp_path / "polybatch.toml", text)
    with pytest.raises(ConfigError) as err:
        config.load_config(path)
    assert str(err.value).startswith(f"{path}: ")
    assert fragment in str(err.value)
    assert "'profiles.p.stop.str'" not in str(err.value)


def test_invalid_toml_names_file(tmp_path: Path) -> None:
    path = write(tmp_path / "polybatch.toml", "[profiles\n")
    with pytest.raises(ConfigError, match=r"polybatch.toml: invalid TOML"):
        config.load_config(path)


def test_unknown_profile_names_file_origin_and_known_profiles(
    cfg_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(ConfigError) as err:
        config.resolve(profile="nope")
    assert str(err.value) == f"unknown profile 'nope' in {cfg_file}; profiles: azure, cheap"
    monkeypatch.setenv("POLYBATCH_PROFILE", "gone")
    with pytest.raises(ConfigError, match=r"'gone' \(from POLYBATCH_PROFILE\) in .*polybatch.toml"):
        config.resolve()


def test_unknown_profile_without_a_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"\(no polybatch.toml found\); profiles: none"):
        config.resolve(profile="p")


def test_malformed_model_names_where_it_came_from(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path / "polybatch.toml", "[profiles.p]\nmodel = 'gpt-4o-mini'\n")
    with pytest.raises(UnknownProviderError, match=rf"^{path}: key 'profiles.p.model': model"):
        config.resolve(profile="p")
    monkeypatch.setenv("POLYBATCH_MODEL", "nocolon")
    with pytest.raises(UnknownProviderError, match=r"^POLYBATCH_MODEL: model 'nocolon'"):
        config.resolve(profile="p")
    with pytest.raises(UnknownProviderError, match=r"^--model: model 'x'"):
        config.resolve(model="x")


def test_no_model_anywhere() -> None:
    with pytest.raises(ConfigError, match="no model"):
        config.resolve()


# -- precedence ---------------------------------------------------------------------------------


def test_default_profile_applies(cfg_file: Path) -> None:
    r = config.resolve()
    assert (r.profile, r.provider, r.model) == ("cheap", "anthropic", "claude-haiku-4-5")
    assert r.config_file == str(cfg_file)
    assert r.system_prompt == "Answer in one sentence."
    assert r.defaults == {"max_tokens": 256, "temperature": 0.2}
    assert r.sources["profile"] == "default_profile"
    assert r.sources["model"] == "profile cheap"


def test_profile_flag_beats_env_beats_default(
    cfg_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("POLYBATCH_PROFILE", "azure")
    r = config.resolve()
    assert (r.profile, r.provider, r.sources["profile"]) == (
        "azure",
        "azure",
        "env POLYBATCH_PROFILE",
    )
    r = config.resolve(profile="cheap")
    assert (r.profile, r.sources["profile"]) == ("cheap", "flag")


def test_model_flag_beats_env_beats_profile(
    cfg_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("POLYBATCH_MODEL", "openai:gpt-4o")
    r = config.resolve(profile="cheap")
    assert (r.provider, r.model, r.sources["model"]) == ("openai", "gpt-4o", "env POLYBATCH_MODEL")
    r = config.resolve(model="openai:gpt-4.1-mini", profile="cheap")
    assert (r.model, r.sources["model"]) == ("gpt-4.1-mini", "flag")
    # the profile still supplies what the flag and the variable leave unset
    assert r.defaults["max_tokens"] == 256 and r.sources["max_tokens"] == "profile cheap"


def test_option_flags_beat_profile_and_builtin_defaults_are_empty(cfg_file: Path) -> None:
    r = config.resolve(profile="cheap", max_tokens=10, system_prompt="Be terse.", temperature=None)
    assert r.defaults == {"max_tokens": 10, "temperature": 0.2}
    assert r.system_prompt == "Be terse."
    assert (r.sources["max_tokens"], r.sources["temperature"]) == ("flag", "profile cheap")
    bare = config.resolve(model="openai:gpt-4o-mini", config=config.ConfigFile())
    assert (bare.defaults, bare.system_prompt, bare.provider_settings) == ({}, None, {})


def test_provider_settings_merge_profile_over_table_over_nothing(cfg_file: Path) -> None:
    r = config.resolve(profile="azure", provider_settings={"timeout": 30})
    assert r.provider_settings == {
        "endpoint": "https://res.openai.azure.com",
        "api_version": "2024-10-21",
        "style": "v1",
        "deployments": {"gpt-4o-mini": "mini-batch"},
        "timeout": 30,
    }
    assert r.sources["providers.azure.style"] == "profile azure"
    assert r.sources["providers.azure.endpoint"] == "providers.azure"
    assert r.sources["providers.azure.timeout"] == "argument"
    # another provider's table never leaks in
    other = config.resolve(profile="cheap")
    assert other.provider_settings == {}


def test_item_values_win_over_profile_defaults(cfg_file: Path) -> None:
    r = config.resolve(profile="cheap")
    own = BatchItem(
        messages=[{"role": "system", "content": "Mine."}, {"role": "user", "content": "q"}],
        max_tokens=7,
    )
    bare = BatchItem(messages=[{"role": "user", "content": "q"}])
    a = apply_defaults(own, r.defaults, r.system_prompt)
    b = apply_defaults(bare, r.defaults, r.system_prompt)
    assert (a.max_tokens, a.temperature, a.messages[0].content) == (7, 0.2, "Mine.")
    assert (b.max_tokens, b.messages[0].role, b.messages[0].content) == (
        256,
        "system",
        "Answer in one sentence.",
    )


# -- masking ------------------------------------------------------------------------------------

AZURE_KEY = "0123456789abcdef0123456789abcdef"


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("api_key", "short"),
        ("api_key", "sk-proj-abcdefghijklmnop"),
        ("azure_ad_token", "whatever-token-value"),
        ("client-secret", "s3cr3t-value-here"),
        ("password", "hunter2"),
        ("Authorization", "Bearer abc.def.ghi"),
        # values that look like secrets are masked whatever their key
        ("note", "sk-ant-api03-abcdefghijklmnopqrstuvwxyz"),
        ("endpoint_key_copy", AZURE_KEY),
        ("x", AZURE_KEY),
        ("x", "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl"),
        ("x", "Bearer abcdefghijklmnop"),
        ("url", "https://acct.blob.core.windows.net/c/f?sv=2024&sig=abcdEFGH%3D"),
        ("url", "https://example.com/hook?key=abcdef"),
    ],
)
def test_mask_hides_secrets(key: str, value: str) -> None:
    masked = config.mask({key: value})[key]
    assert masked.startswith("****")
    assert value not in masked and len(masked) <= 8


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("api_key_env", "AZURE_OPENAI_API_KEY"),
        ("endpoint", "https://my-resource.openai.azure.com"),
        ("deployment", "gpt-4o-mini-global-batch-eastus2-prod"),
        ("max_tokens", 256),
        ("model", "claude-haiku-4-5"),
        ("system_prompt", "Answer in one sentence, using at most twenty words please."),
        ("api_version", "2025-04-01-preview"),
        ("keep_files", True),
        ("api_key", None),
    ],
)
def test_mask_leaves_ordinary_values(key: str, value: object) -> None:
    assert config.mask({key: value}) == {key: value}


def test_mask_walks_nested_structures_and_keeps_last_four() -> None:
    data: dict[str, Any] = {
        "providers": {"azure": {"api_key": AZURE_KEY, "deployments": {"gpt-4o": "gpt-4o-batch"}}},
        "headers": [{"api-key": "abcdefghijklmnopq"}],
    }
    out = config.mask(data)
    assert out["providers"]["azure"] == {
        "api_key": "****cdef",
        "deployments": {"gpt-4o": "gpt-4o-batch"},
    }
    assert out["headers"] == [{"api-key": "****nopq"}]
    assert data["providers"]["azure"]["api_key"] == AZURE_KEY  # a copy, not in place


def test_is_secret_key_by_word_not_substring() -> None:
    assert config.is_secret_key("api_key") and config.is_secret_key("AZURE_OPENAI_AD_TOKEN")
    assert not config.is_secret_key("max_tokens")
    assert not config.is_secret_key("api_key_env")
    assert not config.is_secret_key("monkey")


# -- the CLI ------------------------------------------------------------------------------------


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "polybatch.cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=dict(os.environ),
        timeout=60,
        check=False,
    )


@pytest.mark.slow
def test_config_show_prints_resolved_settings_masked(tmp_path: Path) -> None:
    write(
        tmp_path / "polybatch.toml",
        TOML
        + f'api_key = "{AZURE_KEY}"\n[providers.openai]\napi_key = "sk-proj-0123456789abcdef"\n',
    )
    proc = _cli("config", "show", "--profile", "azure", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    shown = json.loads(proc.stdout)
    assert shown["provider"] == "azure" and shown["profile"] == "azure"
    assert shown["provider_settings"]["api_key"] == "****cdef"
    assert shown["provider_settings"]["style"] == "v1"
    assert shown["sources"]["profile"] == "flag"
    assert AZURE_KEY not in proc.stdout + proc.stderr
    assert "sk-proj-0123456789abcdef" not in proc.stdout + proc.stderr


@pytest.mark.slow
def test_config_show_unknown_profile_exit_2_one_line(tmp_path: Path) -> None:
    write(tmp_path / "polybatch.toml")
    proc = _cli("config", "show", "-p", "nope", cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"error: unknown profile 'nope' in {tmp_path / 'polybatch.toml'}; profiles: azure, cheap"
    ]
