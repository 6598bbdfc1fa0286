"""The sandbox engine's lifecycle, computed from its clock; the synthetic model's determinism."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from polybatch.jobs.ledger import Ledger
from polybatch.sandbox import Faults, SandboxEngine, SyntheticModel
from polybatch.tokens import count_tokens


def make(engine: SandboxEngine, n: int = 10):  # type: ignore[no-untyped-def]
    return engine.create_batch("t", list(range(n)), lambda x: x * 2)


def test_instant_batches_complete_at_once() -> None:
    e = SandboxEngine()
    b = make(e)
    assert b.state(e.now()) == "completed"
    assert b.processed(e.now()) == 10
    assert b.outcome(3) == 6


def test_rate_drives_progress_then_finalizing_then_completed() -> None:
    e = SandboxEngine(rate=2.0, validation_seconds=1.0, finalize_seconds=1.0)
    b = make(e)
    t0 = b.created_at
    assert b.state(t0) == "validating"
    assert b.state(t0 + 1.0) == "in_progress"
    assert b.processed(t0 + 3.0) == 4
    assert b.state(t0 + 6.0) == "finalizing"
    assert b.state(t0 + 7.0) == "completed"
    ts = b.timestamps(t0 + 7.0)
    assert (
        ts["in_progress_at"] == t0 + 1.0
        and ts["finalizing_at"] == t0 + 6.0
        and ts["completed_at"] == t0 + 7.0
    )


def test_cancel_freezes_progress() -> None:
    e = SandboxEngine(rate=2.0, cancel_seconds=1.0)
    b = make(e)
    e.clock.advance(2.0)
    e.cancel(b)
    now = e.now()
    assert b.state(now) == "cancelling"
    e.clock.advance(10)
    assert b.state(e.now()) == "cancelled"
    assert b.processed(e.now()) == 4


def test_expiry_keeps_partial_results() -> None:
    e = SandboxEngine(rate=1.0, expiry_seconds=3.0)
    b = make(e)
    e.clock.advance(5)
    assert b.state(e.now()) == "expired"
    assert b.processed(e.now()) == 3


def test_validation_failure() -> None:
    e = SandboxEngine()
    b = e.create_batch("t", [], lambda x: x, errors=[{"code": "empty_file", "message": "empty"}])
    assert b.state(e.now()) == "failed"
    assert b.processed(e.now()) == 0


def test_faults_are_seeded_and_reproducible() -> None:
    f1, f2, f3 = Faults(seed=1), Faults(seed=1), Faults(seed=2)
    hits1 = [f1.hit(0.3, "b", i) for i in range(200)]
    assert hits1 == [f2.hit(0.3, "b", i) for i in range(200)]
    assert hits1 != [f3.hit(0.3, "b", i) for i in range(200)]
    assert 30 < sum(hits1) < 90


def test_synthetic_model_is_deterministic_and_honours_limits() -> None:
    m = SyntheticModel()
    msgs = [("system", "be brief"), ("user", "Tell me about glaciers, please.")]
    a = m.chat(model="x", messages=msgs)
    assert a == m.chat(model="x", messages=msgs)
    assert a.completion_tokens == count_tokens(a.text)
    assert a.prompt_tokens == 3 + (2 + 4) + (7 + 4)
    short = m.chat(model="x", messages=msgs, max_tokens=3)
    assert short.completion_tokens == 3 and short.finish_reason == "length"
    schema = {
        "type": "object",
        "properties": {
            "n": {"type": "integer", "minimum": 1, "maximum": 5},
            "tags": {"type": "array", "items": {"type": "string"}},
        },
    }
    data = json.loads(m.chat(model="x", messages=msgs, json_schema=schema).text)
    assert 1 <= data["n"] <= 5 and isinstance(data["tags"], list)
    vec = m.embed(model="e", text="hello", dimensions=8)
    assert len(vec) == 8 and abs(sum(v * v for v in vec) - 1) < 1e-3


def test_ledger_file_is_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "ledger.sqlite3"
    Ledger(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


@pytest.mark.parametrize("key", [None, "k"])
def test_check_key(key: str | None) -> None:
    e = SandboxEngine(api_key=key)
    assert e.check_key("k")
    assert e.check_key("other") is (key is None)
