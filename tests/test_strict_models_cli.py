"""A typo'd model or a window the provider does not take, said before submitting (issue #16
item 5), on the user's path: the CLI in-process, with the sandbox through the registry."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from polybatch.testing import CliOutcome

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "requests.jsonl"
TYPO = (
    "warning: model 'gpt-4o-mni' is not in the price registry nor in openai's model list "
    "(did you mean gpt-4o-mini?)"
)

Cli = Callable[..., CliOutcome]


def test_run_warns_once_before_submitting_and_the_sandbox_refuses_the_model(
    polybatch_cli: Cli, tmp_path: Path
) -> None:
    out_file = tmp_path / "results.jsonl"
    args = ("run", str(EXAMPLES), "-m", "openai:gpt-4o-mni", "--sandbox", "--no-progress")
    out = polybatch_cli(*args, "-o", str(out_file))
    lines = out.stderr.splitlines()
    assert lines.count(TYPO) == 1
    assert lines.index(TYPO) < next(i for i, x in enumerate(lines) if x.startswith("job "))
    assert not any("no estimate" in x for x in lines)
    results = [json.loads(x) for x in out_file.read_text().splitlines()]
    assert len(results) == 18
    assert {(r["status"], r["error"]["code"]) for r in results} == {("errored", "model_not_found")}


def test_estimate_says_the_same_in_one_error_line(polybatch_cli: Cli) -> None:
    out = polybatch_cli("estimate", str(EXAMPLES), "-m", "openai:gpt-4o-mni")
    assert out.exit_code == 2
    assert out.stderr.strip().splitlines() == [TYPO.replace("warning:", "error:", 1)]


def test_a_known_model_gets_no_such_warning(polybatch_cli: Cli) -> None:
    out = polybatch_cli("estimate", str(EXAMPLES), "-m", "openai:gpt-4o-mini")
    assert out.exit_code == 0 and "model list" not in out.stderr


@pytest.mark.parametrize("window", ["48h", "banana"])
def test_a_window_the_provider_does_not_take_is_one_line_and_exit_2(
    polybatch_cli: Cli, window: str
) -> None:
    args = ("run", str(EXAMPLES), "-m", "openai:gpt-4o-mini", "--sandbox", "--no-progress")
    out = polybatch_cli(*args, "--completion-window", window)
    assert out.exit_code == 2
    errors = [x for x in out.stderr.splitlines() if x.startswith("error:")]
    assert errors == [
        f"error: openai: completion window {window!r} is not one of '24h'"
        + ("" if window == "48h" else "; a window is hours or days, such as '24h'")
        + " (--completion-window, or the setting)"
    ]
    assert "Traceback" not in out.stderr and "job " not in out.stderr


def test_a_window_the_provider_takes_runs(polybatch_cli: Cli) -> None:
    args = ("run", str(EXAMPLES), "-m", "openai:gpt-4o-mini", "--sandbox", "--no-progress")
    out = polybatch_cli(*args, "--completion-window", "24h")
    assert out.exit_code == 0, out.stderr
