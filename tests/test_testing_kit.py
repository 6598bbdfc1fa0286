"""polybatch.testing: the fake provider, the fixtures, derived isolation and the real-home guard."""

from __future__ import annotations

import ast
import asyncio
import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest

import polybatch
from polybatch.plugins import PluginRegistry, get_registry
from polybatch.testing import (
    ISOLATED_ENV,
    CliOutcome,
    FakeProvider,
    Sandbox,
    by_id,
    isolated_env,
    make_items,
    submit_items,
)
from polybatch.testing.fake import PRICES

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples" / "requests.jsonl"


def fake(**settings: object) -> FakeProvider:
    """The provider ``fake`` as the registry builds it (no special import path)."""
    provider = get_registry().provider_class("fake")(settings=settings)
    assert isinstance(provider, FakeProvider)
    return provider


# -- the fake provider ---------------------------------------------------------------------------
def test_fake_arrives_through_the_cores_own_entry_point() -> None:
    registry = PluginRegistry()
    cls = registry.provider_class("fake")
    assert cls is FakeProvider
    info = registry.info("fake")
    assert (info.distribution, info.plugin) == ("polybatch", "fake")
    assert registry.price_files(["fake"]) == [PRICES]
    assert "FAKE PRICES" in PRICES.read_text()


def test_fake_replies_are_deterministic_and_counted(tmp_path: Path) -> None:
    items = make_items(4, max_tokens=30)
    first, second = fake(), fake()
    a = submit_items(first, items, tmp_path, model="echo", name="a.jsonl")
    b = submit_items(second, items, tmp_path, model="echo", name="b.jsonl")
    assert first.poll(a.batch_id).state == "completed"
    got_a, got_b = by_id(first.results(a.batch_id)), by_id(second.results(b.batch_id))
    assert set(got_a) == {"c0", "c1", "c2", "c3"}
    for cid, r in got_a.items():
        assert r.ok and r.text and r.provider == "fake" and r.model == "echo"
        assert r.text == got_b[cid].text, "the same request gets the same reply"
        assert r.usage.input_tokens > 0 and 0 < r.usage.output_tokens <= 30


def test_fake_outcomes_are_scripted_by_argument_setting_or_marker(tmp_path: Path) -> None:
    items = [
        *make_items(3),
        *make_items(1, prefix="q-fake-error-"),
        *make_items(1, prefix="q-fake-expire-"),
    ]
    by_arg = FakeProvider(outcomes={"c0": "error"}, settings={"outcomes": {"c0": "expire"}})
    by_setting = fake(outcomes={"c1": "error", "c2": "expire"})
    by_callable = FakeProvider(outcomes=lambda cid: "error" if cid == "c2" else None)
    seen: dict[str, dict[str, str]] = {}
    states: dict[str, str] = {}
    for label, provider in (("arg", by_arg), ("setting", by_setting), ("call", by_callable)):
        sub = submit_items(provider, items, tmp_path, model="echo", name=f"{label}.jsonl")
        states[label] = provider.poll(sub.batch_id).state
        seen[label] = {r.custom_id: r.status for r in provider.results(sub.batch_id)}
    marked = {"q-fake-error-0": "errored", "q-fake-expire-0": "expired"}
    assert seen["arg"] == {"c0": "errored", "c1": "succeeded", "c2": "succeeded", **marked}
    assert seen["setting"] == {"c0": "succeeded", "c1": "errored", "c2": "expired", **marked}
    assert seen["call"] == {"c0": "succeeded", "c1": "succeeded", "c2": "errored", **marked}
    assert set(states.values()) == {"expired"}, "an expired item means the window closed"
    with pytest.raises(polybatch.ProviderError, match="not one of"):
        fake(outcomes={"c0": "explode"})


def test_fake_polls_cancel_and_find_batch(tmp_path: Path) -> None:
    provider = fake(polls=2)
    sub = submit_items(provider, make_items(3), tmp_path, model="echo", metadata={"job": "j1"})
    assert provider.find_batch({"job": "j1"}) == sub.batch_id
    assert provider.find_batch({"job": "j2"}) is None
    assert provider.poll(sub.batch_id).state == "in_progress"
    with pytest.raises(polybatch.ProviderError, match="not ended"):
        list(provider.results(sub.batch_id))
    provider.cancel(sub.batch_id)
    status = provider.poll(sub.batch_id)
    assert (status.state, status.failed) == ("cancelled", 3)
    assert {r.status for r in provider.results(sub.batch_id)} == {"cancelled"}
    with pytest.raises(polybatch.ProviderError, match="no batch"):
        provider.poll("fake-batch-unknown")


def test_fake_job_through_the_library_with_retries() -> None:
    items = ["first?", "second?", {"custom_id": "x-fake-error", "prompt": "third?"}]
    job = polybatch.submit(items, "fake:echo", retry_failed=1)
    job.wait(poll_min=0.01, timeout=30)
    results = list(job.results())
    assert [r.status for r in results] == ["succeeded", "succeeded", "errored"]
    assert len(job.chunks()) == 2, "the errored item was sent again, and failed again"


def test_fake_async_job() -> None:
    async def main() -> list[str]:
        job = await polybatch.asubmit(["hi?", "there?"], "fake:echo")
        await job.await_done(poll_min=0.01, timeout=30)
        return [r.status for r in job.results()]

    assert asyncio.run(main()) == ["succeeded", "succeeded"]


def test_polybatch_run_on_the_fake_prints_results_and_a_cost_table(
    polybatch_cli: Callable[..., CliOutcome], tmp_path: Path
) -> None:
    out_file = tmp_path / "out.jsonl"
    outcome = polybatch_cli(
        "run", str(EXAMPLES), "--model", "fake:echo", "--no-progress", "-o", str(out_file)
    )
    assert outcome.exit_code == 0, outcome.stderr
    lines = [json.loads(line) for line in out_file.read_text().splitlines()]
    assert len(lines) == len(EXAMPLES.read_text().splitlines())
    assert all(line["status"] == "succeeded" and line["provider"] == "fake" for line in lines)
    table = outcome.stdout + outcome.stderr
    assert "| fake" in table and "TOTAL" in table and "0.000" in table


# -- fixtures ------------------------------------------------------------------------------------
def test_polybatch_sandbox_serves_named_providers(
    polybatch_sandbox: Callable[..., Sandbox], tmp_path: Path
) -> None:
    sandbox = polybatch_sandbox(providers=["openai"], rate=1000.0)
    assert sandbox.providers == ("openai",) and sandbox.engine.rate == 1000.0
    provider = sandbox.provider("openai", max_retries=0)
    assert provider.settings["max_retries"] == 0
    sub = submit_items(provider, make_items(2), tmp_path, model="gpt-4o-mini")
    assert provider.poll(sub.batch_id).state == "completed"
    assert sorted(by_id(provider.results(sub.batch_id))) == ["c0", "c1"]


def test_polybatch_home_moves_home_and_xdg(polybatch_home: Path) -> None:
    assert os.environ["POLYBATCH_HOME"] == str(polybatch_home)
    for name in ("HOME", "XDG_DATA_HOME", "XDG_CONFIG_HOME"):
        assert os.environ[name].startswith(str(polybatch_home.parent)), name


# -- derived isolation ---------------------------------------------------------------------------
def test_isolated_env_is_derived_from_the_registered_providers() -> None:
    names = set(ISOLATED_ENV)
    for cls in get_registry().providers().values():
        assert set(cls.credential_env) <= names, cls.name
        assert set(cls.sandbox_env("http://127.0.0.1:9", "k")) <= names, cls.name
    assert {"POLYBATCH_CONFIG", "POLYBATCH_PROFILE", "POLYBATCH_MODEL"} <= names
    # what a vendor's SDK reads by itself, named by no provider, shares the vendor's prefix
    ambient = isolated_env({"OPENAI_ORG_ID": "org", "ANTHROPIC_AUTH_TOKEN": "t", "PATH": "/bin"})
    assert {"OPENAI_ORG_ID", "ANTHROPIC_AUTH_TOKEN"} <= set(ambient)
    assert "PATH" not in ambient and "POLYBATCH_HOME" not in ambient


def test_every_isolated_variable_is_blank_in_a_test() -> None:
    assert not [n for n in ISOLATED_ENV if n in os.environ]


# -- the real-home guard -------------------------------------------------------------------------
LEAKY = """
import polybatch

def test_forgets_isolation():
    polybatch.submit(["hi?"], "fake:echo").wait(poll_min=0.01, timeout=30)
"""


@pytest.mark.slow
@pytest.mark.parametrize("isolation", [False, True])
def test_the_guard_fails_a_run_that_wrote_into_the_real_home(
    pytester: pytest.Pytester, polybatch_home: Path, isolation: bool
) -> None:
    # the inner run's "real" home is this test's isolated one: nothing outside is at risk
    pytester.makeini(
        f"[pytest]\npolybatch_isolation = {str(isolation).lower()}\npolybatch_home_guard = true\n"
    )
    pytester.makepyfile(test_leaky=LEAKY)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    if isolation:
        result.assert_outcomes(passed=1)
        assert result.ret == 0
        assert not polybatch_home.exists()
    else:
        result.assert_outcomes(passed=1)  # the test itself passed: the session check failed it
        assert result.ret == 1
        result.stdout.fnmatch_lines(["*tests wrote into the real polybatch home*ledger.sqlite3*"])


# -- core tests stay provider-neutral ------------------------------------------------------------
def _vendor_modules() -> set[str]:
    plugins = {p.name for p in (ROOT / "plugins").iterdir() if (p / "pyproject.toml").exists()}
    return {"openai", "anthropic", "google.genai", "mistralai"} | {
        f"polybatch_{p}" for p in plugins
    }


def test_core_tests_import_no_provider_sdk_or_plugin() -> None:
    banned = _vendor_modules()
    offenders: list[str] = []
    for path in sorted((ROOT / "tests").glob("**/*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
            else:
                continue
            hits = [n for n in names if any(n == b or n.startswith(b + ".") for b in banned)]
            if hits:
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}: {hits[0]}")
    assert not offenders, "core tests go through the registry:\n" + "\n".join(offenders)
