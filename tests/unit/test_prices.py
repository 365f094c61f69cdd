"""The price table (SPEC §4 LLM_PRICES, §8 costs): pure, no database."""

from __future__ import annotations

import logging
from decimal import Decimal

import pytest
from django.core.exceptions import ImproperlyConfigured

from chatsite.llm.base import Usage
from chatsite.usage import prices
from chatsite.usage.ledger import split


@pytest.fixture(autouse=True)
def fresh_table(settings: object) -> None:
    prices.price_table.cache_clear()
    prices._warned.clear()


def test_built_in_prices_for_the_allowed_models_and_a_free_demo() -> None:
    usage = Usage(
        input_tokens=1_000_000,
        output_tokens=1_000_000,
        cache_creation_input_tokens=1_000_000,
        cache_read_input_tokens=1_000_000,
    )
    assert prices.cost_usd("claude-sonnet-5-5", usage) == Decimal("22.05")  # 3+15+3.75+0.30
    assert prices.cost_usd("claude-haiku-5-5", usage) == Decimal("7.35")  # 1+5+1.25+0.10
    assert prices.cost_usd("demo", usage) == 0


def test_each_kind_of_token_has_its_price_and_costs_round_to_the_micro_dollar() -> None:
    sonnet = "claude-sonnet-5-5"
    assert prices.cost_usd(sonnet, Usage(input_tokens=1)) == Decimal("0.000003")
    assert prices.cost_usd(sonnet, Usage(output_tokens=1)) == Decimal("0.000015")
    assert prices.cost_usd(sonnet, Usage(cache_creation_input_tokens=1)) == Decimal("0.000004")
    assert prices.cost_usd(sonnet, Usage(cache_read_input_tokens=10)) == Decimal("0.000003")
    assert prices.cost_usd(sonnet, Usage(input_tokens=1234, output_tokens=567)) == Decimal(
        "0.012207"
    )


def test_llm_prices_adds_and_overrides(settings: object) -> None:
    settings.LLM_PRICES = '{"claude-sonnet-5-5": [1, 2, 0, 0], "my-model": [10, 20, 30, 0.5]}'  # type: ignore[attr-defined]
    prices.price_table.cache_clear()
    assert prices.cost_usd("claude-sonnet-5-5", Usage(1_000_000, 1_000_000)) == Decimal("3")
    assert prices.cost_usd("my-model", Usage(0, 0, 0, 2_000_000)) == Decimal("1")
    assert prices.cost_usd("claude-haiku-5-5", Usage(1_000_000)) == Decimal("1")


@pytest.mark.parametrize(
    "raw",
    [
        "not json",
        "[1, 2, 3, 4]",
        '{"m": [1, 2, 3]}',
        '{"m": [1, 2, 3, -4]}',
        '{"m": ["1", 2, 3, 4]}',
        '{"m": [true, 2, 3, 4]}',
        '{"m": {"input": 1}}',
    ],
)
def test_a_bad_llm_prices_refuses_to_start_with_a_clear_message(raw: str) -> None:
    with pytest.raises(ImproperlyConfigured, match="LLM_PRICES"):
        prices.parse_prices(raw)


def test_an_unknown_model_costs_nothing_and_is_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="chatsite.usage.prices"):
        for _ in range(3):
            assert prices.cost_usd("mystery-model", Usage(1000, 1000)) == 0
        assert prices.cost_usd("other-model", Usage(1000, 1000)) == 0
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert [r.getMessage().split("'")[1] for r in warnings] == ["mystery-model", "other-model"]


def test_a_cost_splits_evenly_and_exactly_among_distinct_payers() -> None:
    assert split(Decimal("0.3"), (1, 2, 1)) == {1: Decimal("0.15"), 2: Decimal("0.15")}
    shares = split(Decimal("0.100000"), (1, 2, 3))
    assert sum(shares.values()) == Decimal("0.1")
    assert sorted(shares.values()) == [
        Decimal("0.033333"),
        Decimal("0.033333"),
        Decimal("0.033334"),
    ]
    assert split(Decimal("1"), ()) == {}
