"""Prompt caching end to end on the sandbox (issue #17 item 7).

Jobs with a long shared prompt prefix run over loopback HTTP through the real SDKs: the first
request writes the cache, the later ones read it. The usage table shows the cached and the
cache-write tokens, and the job's cost equals a hand computation from the bundled batch prices
(arithmetic in the comments); the estimate's range still holds it.

Token counts are the sandbox's (:mod:`polybatch.tokens`): one token per word, 3 framing tokens
per prompt and 4 per message; every word below is one token.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest

from polybatch import Job, submit, usage_table
from polybatch.items import BatchItem, Message
from polybatch.sandbox import SandboxServer
from polybatch.sandbox.caching import Cached, PromptCache, prompt_token_list
from polybatch.tokens import prompt_tokens

#: four requests, one per question: the first writes the cache, the other three read it
QUESTIONS = [f"q{k} please answer" for k in range(4)]  # 3 tokens each


def words(n: int, stem: str = "w") -> str:
    return " ".join(f"{stem}{i}" for i in range(n))


def fast(job: Job) -> Job:
    return job.wait(poll_min=0.02, poll_max=0.2, timeout=60)


def table_row(job: Job) -> dict[str, Any]:
    rows = json.loads(usage_table([job], fmt="json"))
    (row,) = [r for r in rows if r.get("model") not in (None, "", "TOTAL")]
    return dict(row)


def check_estimate(job: Job, actual: Decimal) -> None:
    est = job.estimate()
    assert est is not None
    assert Decimal(est["low"]) <= actual <= Decimal(est["high"])


def test_openai_prefix_caching_reads_and_writes(sandbox_server: SandboxServer) -> None:
    system = words(1500)
    items = [
        BatchItem(
            custom_id=f"r{k}",
            messages=[Message(role="system", content=system), Message(role="user", content=q)],
            max_tokens=1,
        )
        for k, q in enumerate(QUESTIONS)
    ]
    # prompt: 3 + (1,500 + 4) + (3 + 4) = 1,514 tokens; the first 1,511 are the same in every
    # request (the user turns differ from their first word on). Cacheable prefixes: 1,024 +
    # 128 k up to 1,514, so 1,024 ... 1,408.
    assert prompt_tokens([system, QUESTIONS[0]]) == 1514
    job = fast(submit(items, "openai:gpt-6-sol", sandbox=sandbox_server))
    assert job.status().state == "completed"
    # request 0: nothing cached yet, 1,408 written (gpt-6 bills writes), 106 plain input;
    # requests 1-3: 1,408 read, 106 plain input each; every reply is 1 token (max_tokens=1)
    row = table_row(job)
    assert (row["input_tokens"], row["cached_input_tokens"], row["cache_write_tokens"]) == (
        4 * 106,
        3 * 1408,
        1408,
    )
    assert row["output_tokens"] == 4
    text = usage_table([job])
    assert "Cached" in text and "Cache write" in text
    # gpt-6-sol batch, $ per 1M: input 1, cached 0.1, cache write 1.25, output 5
    # request 0:   106 x 1 + 1,408 x 1.25 + 1 x 5 = 106 + 1,760 + 5   = 1,871
    # requests 1-3: (106 x 1 + 1,408 x 0.1 + 1 x 5) x 3 = 251.8 x 3   =   755.4
    # total 2,626.4 / 1,000,000 = 0.0026264
    actual = job.cost().total
    assert actual == Decimal("0.0026264")
    check_estimate(job, actual)


def test_anthropic_cache_control_writes_5m_and_1h_then_reads(
    sandbox_server: SandboxServer,
) -> None:
    long_part, short_part = words(1100, "a"), words(300, "b")
    system = [
        {"type": "text", "text": long_part, "cache_control": {"type": "ephemeral", "ttl": "1h"}},
        {"type": "text", "text": short_part, "cache_control": {"type": "ephemeral"}},
    ]
    items = [
        BatchItem(
            custom_id=f"r{k}",
            messages=[Message(role="system", content=system), Message(role="user", content=q)],
            max_tokens=1,
        )
        for k, q in enumerate(QUESTIONS)
    ]
    # prompt: 3 + (1,100 + 300 + 4) + (3 + 4) = 1,414 tokens; breakpoints after the 1-hour
    # block at 3 + 4 + 1,100 = 1,107 and after the 5-minute block at 1,407
    job = fast(submit(items, "anthropic:claude-haiku-4-5", sandbox=sandbox_server))
    assert job.status().state == "completed"
    results = {r.custom_id: r.usage for r in job.results()}
    # request 0 writes 1,107 tokens to the 1-hour cache and the next 300 to the 5-minute one;
    # 7 tokens after the last breakpoint are plain input
    first = results["r0"]
    assert (first.input_tokens, first.cache_write_1h_tokens, first.cache_write_5m_tokens) == (
        7,
        1107,
        300,
    )
    assert first.cached_input_tokens == 0
    # requests 1-3 read the whole marked prefix, 1,407 tokens
    for k in (1, 2, 3):
        later = results[f"r{k}"]
        assert (later.input_tokens, later.cached_input_tokens, later.cache_write_tokens) == (
            7,
            1407,
            0,
        )
    row = table_row(job)
    assert (row["input_tokens"], row["cached_input_tokens"], row["cache_write_tokens"]) == (
        28,
        3 * 1407,
        1107 + 300,
    )
    # claude-haiku-4-5 batch, $ per 1M: input 0.5, cached 0.05, 5m write 0.625, 1h write 1,
    # output 2.5
    # request 0:    7 x 0.5 + 1,107 x 1 + 300 x 0.625 + 1 x 2.5 = 3.5 + 1,107 + 187.5 + 2.5
    #             = 1,300.5
    # requests 1-3: (7 x 0.5 + 1,407 x 0.05 + 1 x 2.5) x 3 = (3.5 + 70.35 + 2.5) x 3 = 229.05
    # total 1,529.55 / 1,000,000 = 0.00152955
    actual = job.cost().total
    assert actual == Decimal("0.00152955")
    check_estimate(job, actual)


def test_short_prompts_are_never_cached(sandbox_server: SandboxServer) -> None:
    items = [
        {"custom_id": f"s{k}", "prompt": "the same short prompt", "max_tokens": 5} for k in range(3)
    ]
    job = fast(submit(items, "openai:gpt-4o-mini", sandbox=sandbox_server))
    assert all(r.usage.cached_input_tokens == 0 for r in job.results())


# -- the cache itself ---------------------------------------------------------------------------


def test_automatic_cache_counts_in_128_token_steps() -> None:
    cache = PromptCache()
    base = [("user", words(1200))]
    # 3 + 4 + 1,200 = 1,207 tokens: prefixes 1,024 and 1,152 are cached, nothing read
    assert cache.automatic(("ns", "m"), base, writes=True) == Cached(write_5m=1152)
    # the same prompt again reads the longest cached prefix
    assert cache.automatic(("ns", "m"), base).read == 1152
    # another model (or provider) has its own cache
    assert cache.automatic(("ns", "other"), base).read == 0
    # a prompt sharing only 1,100 tokens reads the 1,024 prefix
    other = [("user", words(1093) + " " + words(200, "x"))]
    assert len(prompt_token_list(other)) == 1300
    assert cache.automatic(("ns", "m"), other, writes=True) == Cached(read=1024, write_5m=256)


def test_marked_cache_ignores_breakpoints_below_the_minimum() -> None:
    cache = PromptCache()
    tokens = prompt_token_list([("system", words(2000))])
    # a breakpoint at 500 tokens is too short to cache; 2,000 is written from the start at 1h
    assert cache.marked(("ns", "m"), tokens, [(500, "5m"), (2000, "1h")]) == Cached(write_1h=2000)
    assert cache.marked(("ns", "m"), tokens, [(500, "5m"), (2000, "1h")]) == Cached(read=2000)
    # a longer marked prefix reads the cached part and writes only the rest
    assert cache.marked(("ns", "m"), tokens, [(2000, "1h"), (2007, "5m")]) == Cached(
        read=2000, write_5m=7
    )


@pytest.mark.parametrize("model", ["gemini:gemini-2.5-flash", "vertex:gemini-2.5-flash"])
def test_gemini_implicit_caching_reports_cached_content(
    sandbox_server: SandboxServer, model: str
) -> None:
    system = words(1500)
    items = [
        BatchItem(
            custom_id=f"r{k}",
            messages=[Message(role="system", content=system), Message(role="user", content=q)],
            max_tokens=1,
        )
        for k, q in enumerate(QUESTIONS)
    ]
    job = fast(submit(items, model, sandbox=sandbox_server))
    assert job.status().state == "completed"
    usages = {r.custom_id: r.usage for r in job.results()}
    # 1,514 prompt tokens as on OpenAI: the first request reads nothing, the others the
    # 1,408-token prefix; promptTokenCount includes it, so 106 stay plain input
    assert (usages["r0"].input_tokens, usages["r0"].cached_input_tokens) == (1514, 0)
    for k in (1, 2, 3):
        assert (usages[f"r{k}"].input_tokens, usages[f"r{k}"].cached_input_tokens) == (106, 1408)
    row = table_row(job)
    assert row["cached_input_tokens"] == 3 * 1408
    check_estimate(job, job.cost().total)
