"""Files written by polybatch 0.1 still read in 0.2 (see CHANGELOG.md): result lines that spell a
status ``canceled`` and a usage bucket ``cache_write_tokens``."""

from __future__ import annotations

import json

import pytest

import polybatch
from polybatch import BatchResult, Usage
from polybatch.errors import ConfigError
from polybatch.items import result_status

#: one line of a 0.1 ``results.jsonl`` (as 0.1's BatchResult.model_dump_json wrote it)
LINE_0_1 = json.dumps(
    {
        "custom_id": "q1",
        "status": "canceled",
        "text": None,
        "finish_reason": None,
        "usage": {
            "input_tokens": 10,
            "cached_input_tokens": 0,
            "cache_write_tokens": 7,
            "cache_write_1h_tokens": 0,
            "output_tokens": 0,
            "reasoning_tokens": 0,
        },
        "error": {
            "code": "batch_cancelled",
            "message": "x",
            "status_code": None,
            "retryable": True,
        },
        "model": None,
        "provider": "openai",
        "batch_id": "batch_1",
        "response": None,
        "embedding": None,
        "response_model_ref": None,
    }
)


def test_a_0_1_result_line_reads_with_the_new_names() -> None:
    r = BatchResult.model_validate_json(LINE_0_1)
    assert r.status == "cancelled"
    assert r.usage.cache_write_5m_tokens == 7
    assert r.usage.cache_write_tokens == 7  # the old attribute still answers
    assert r.usage.total_input_tokens == 17
    # written back, it uses the 0.2 spelling only
    out = json.loads(r.model_dump_json())
    assert out["status"] == "cancelled"
    assert "cache_write_5m_tokens" in out["usage"] and "cache_write_tokens" not in out["usage"]


def test_usage_takes_both_names() -> None:
    assert Usage(cache_write_tokens=3) == Usage(cache_write_5m_tokens=3)


@pytest.mark.parametrize(
    ("given", "status"), [("canceled", "cancelled"), ("cancelled", "cancelled")]
)
def test_result_status_accepts_the_old_spelling(given: str, status: str) -> None:
    assert result_status(given) == status


def test_an_unknown_status_filter_names_the_valid_ones() -> None:
    with pytest.raises(ValueError, match="succeeded, errored, expired, cancelled"):
        result_status("bogus")


def test_job_results_refuses_an_unknown_status_filter() -> None:
    job = polybatch.submit(["hi"], "fake:echo")
    job.wait(poll_min=0.01, poll_max=0.02)
    assert [r.status for r in job.results(status="canceled")] == []
    assert [r.ok for r in job.results(status="succeeded")] == [True]
    with pytest.raises(ConfigError, match="unknown result status 'bogus'"):
        job.results(status="bogus")
