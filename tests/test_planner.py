"""Planning: ids, defaults, duplicates, and chunks cut exactly at the provider's limits."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from polybatch.errors import InputError
from polybatch.items import BatchItem
from polybatch.jobs.planner import apply_defaults, iter_chunk_items, plan_job
from polybatch.providers import Limits

from .test_plugins import make_provider_class


def provider(max_requests: int = 3, max_bytes: int = 10_000) -> object:
    cls = make_provider_class("fake")
    cls.limits = Limits(max_requests=max_requests, max_bytes=max_bytes)
    # each item encodes to exactly 9 bytes + newline = 10
    cls.encode = lambda self, item, model: b"x" * 9  # type: ignore[method-assign]
    return cls()


def items(n: int, **kw: object) -> list[tuple[BatchItem, tuple[str | None, int | None]]]:
    return [
        (
            BatchItem.model_validate({"messages": [{"role": "user", "content": f"q{i}"}], **kw}),
            ("f.jsonl", i + 1),
        )
        for i in range(n)
    ]


def plan(tmp_path: Path, its: list, **kw: object):  # type: ignore[no-untyped-def]
    kw.setdefault("provider", provider())
    return plan_job(its, model="m", staging_dir=tmp_path, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("n", "cap", "expected"),
    [(3, 3, [3]), (4, 3, [3, 1]), (6, 3, [3, 3]), (7, 3, [3, 3, 1]), (1, 3, [1])],
)
def test_chunks_by_request_count_at_exact_boundaries(
    tmp_path: Path, n: int, cap: int, expected: list[int]
) -> None:
    p = plan(tmp_path, items(n), provider=provider(max_requests=cap))
    assert [c.count for c in p.chunks] == expected
    assert sum(c.count for c in p.chunks) == n == p.n_items


@pytest.mark.parametrize(
    ("max_bytes", "expected"),
    [(30, [3, 3, 1]), (29, [2, 2, 2, 1]), (20, [2, 2, 2, 1]), (10, [1] * 7)],
)
def test_chunks_by_bytes_at_exact_boundaries(
    tmp_path: Path, max_bytes: int, expected: list[int]
) -> None:
    p = plan(tmp_path, items(7), provider=provider(max_requests=100, max_bytes=max_bytes))
    assert [c.count for c in p.chunks] == expected
    assert all(c.nbytes <= max_bytes for c in p.chunks)


def test_user_chunk_size_caps_below_the_limit(tmp_path: Path) -> None:
    p = plan(tmp_path, items(5), provider=provider(max_requests=100), chunk_size=2)
    assert [c.count for c in p.chunks] == [2, 2, 1]


def test_an_item_too_big_for_any_batch_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="over the fake limit") as info:
        plan(tmp_path, items(2), provider=provider(max_bytes=9))
    assert info.value.line == 1


def test_model_changes_start_a_new_chunk(tmp_path: Path) -> None:
    its = items(2) + items(2, model="other") + items(1)
    p = plan(tmp_path, its, provider=provider(max_requests=100))
    assert [(c.count, c.model) for c in p.chunks] == [(2, "m"), (2, "other"), (1, "m")]


def test_auto_ids_are_stable_and_duplicates_name_both_lines(tmp_path: Path) -> None:
    a = plan(tmp_path, items(3))
    b = plan(tmp_path, items(3))
    assert a.job_id == b.job_id
    stored = list(iter_chunk_items(a.staging_path, 0, 3))
    assert [i.custom_id for i in stored] == ["item-1", "item-2", "item-3"]
    dup = [
        (BatchItem(custom_id="x", messages=[{"role": "user", "content": "a"}]), ("f.jsonl", n))
        for n in (4, 9)
    ]  # type: ignore[list-item]
    with pytest.raises(
        InputError, match=r"duplicate custom_id 'x' \(first used at f.jsonl:4\)"
    ) as info:
        plan(tmp_path, dup)
    assert (info.value.line, info.value.field) == (9, "custom_id")
    # a refused plan leaves no staging file behind
    items_files = [p for p in tmp_path.glob("plan-*.jsonl") if ".wire-" not in p.name]
    assert sorted(items_files) == sorted([a.staging_path, b.staging_path])
    assert sorted(tmp_path.glob("plan-*.wire-*")) == sorted(a.wire_files + b.wire_files)


def test_job_id_depends_on_content_model_and_options(tmp_path: Path) -> None:
    base = plan(tmp_path, items(2)).job_id
    assert plan(tmp_path, items(2, max_tokens=5)).job_id != base
    assert (
        plan_job(items(2), provider=provider(), model="other", staging_dir=tmp_path).job_id != base
    )  # type: ignore[arg-type]
    assert plan(tmp_path, items(2), identity={"endpoint": "x"}).job_id != base


def test_defaults_fill_gaps_and_item_values_win() -> None:
    item = BatchItem(messages=[{"role": "user", "content": "a"}], max_tokens=9)  # type: ignore[list-item]
    out = apply_defaults(item, {"max_tokens": 100, "temperature": 0.5}, "be brief")
    assert out.max_tokens == 9 and out.temperature == 0.5
    assert [m.role for m in out.messages] == ["system", "user"]
    with_system = BatchItem(
        messages=[{"role": "system", "content": "mine"}, {"role": "user", "content": "a"}]
    )  # type: ignore[list-item]
    assert apply_defaults(with_system, {}, "theirs").messages[0].content == "mine"


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 60), cap=st.integers(1, 10), max_bytes=st.integers(10, 200))
def test_chunking_property(
    tmp_path_factory: pytest.TempPathFactory, n: int, cap: int, max_bytes: int
) -> None:
    d = tmp_path_factory.mktemp("plan")
    p = plan_job(
        items(n), provider=provider(max_requests=cap, max_bytes=max_bytes), model="m", staging_dir=d
    )  # type: ignore[arg-type]
    counts = [c.count for c in p.chunks]
    assert sum(counts) == n
    assert all(0 < c <= cap and c * 10 <= max_bytes for c in counts)
    # greedy: every chunk but the last is full by one of the two limits
    assert all(c == cap or (c + 1) * 10 > max_bytes for c in counts[:-1])
    starts = [c.start for c in p.chunks]
    assert starts == [sum(counts[:i]) for i in range(len(counts))]
