"""The estimator adds up the tokens of requests priced at the same tier's rates and prices them
once; that must give exactly what pricing each request on its own gives (a long-context tier
still applying per request, never to the sum)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from polybatch.items import BatchItem
from polybatch.pricing import Estimator, PriceRegistry, request_bounds
from polybatch.pricing.cost import cost_of

DAY = date(2026, 1, 15)
PRICES = """
[[price]]
provider = "acme"
model = "tiered"
mode = "batch"
effective = 2025-01-01
input = "1.5"
cached_input = "0.15"
cache_write_5m = "1.875"
cache_write_1h = "3"
output = "7.5"
[[price.tiers]]
above_input_tokens = 2000
input = "3"
cached_input = "0.3"
cache_write_5m = "3.75"
cache_write_1h = "6"
output = "11.25"

[[price]]
provider = "acme"
model = "flat"
mode = "batch"
effective = 2025-01-01
input = "0.07"
output = "0.3"
"""


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> PriceRegistry:
    # only these rows: a price file of the test's own (files= replaces the bundled ones)
    path = tmp_path_factory.mktemp("prices") / "prices.toml"
    path.write_text(PRICES, encoding="utf-8")
    return PriceRegistry.load(files=[path])


request = st.tuples(
    st.integers(min_value=1, max_value=4000),  # words in the prompt (the tier is at 2,000 tokens)
    st.one_of(st.none(), st.integers(min_value=1, max_value=5000)),  # max_tokens
    st.sampled_from([None, "5m", "1h"]),  # cache_control on the message
    st.sampled_from(["tiered", "flat"]),
)


def _item(i: int, words: int, max_tokens: int | None, cache: str | None, model: str) -> BatchItem:
    part: dict[str, object] = {"type": "text", "text": "word " * words}
    if cache:
        part["cache_control"] = {"type": "ephemeral", "ttl": cache}
    return BatchItem(
        custom_id=f"r{i}",
        model=model,
        max_tokens=max_tokens,
        messages=[{"role": "user", "content": [part]}],
    )


@settings(max_examples=40, deadline=None)
@given(st.lists(request, min_size=1, max_size=12))
def test_summed_estimate_equals_pricing_each_request(
    registry: PriceRegistry, requests: list[tuple[int, int | None, str | None, str]]
) -> None:
    est = Estimator("acme", registry, default_max_tokens=1000, on=DAY)
    low = high = Decimal(0)
    for i, (words, max_tokens, cache, model) in enumerate(requests):
        item = _item(i, words, max_tokens, cache, model)
        est.add(item, model)
        price = registry.price("acme", model, "batch", DAY)
        bounds = request_bounds(item, price, default_max_tokens=1000)
        low += cost_of(bounds.low, price).total
        high += cost_of(bounds.high, price).total
    result = est.result()
    assert (result.low, result.high) == (low, high)
    assert result.items == len(requests)
