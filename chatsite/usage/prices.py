"""What tokens cost: one price table per model, overridable by LLM_PRICES (SPEC §4, §8; pure).

Prices are USD per million tokens: (input, output, cache write, cache read). The built-in
figures for the models the settings allow are Anthropic's current published tiers for Sonnet
($3 / $15, cache write $3.75, cache read $0.30) and Haiku ($1 / $5, $1.25, $0.10). Anthropic
publishes no separate price for claude-sonnet-5-5 or claude-haiku-5-5 that we can read offline,
so these are the tier prices, assumed to carry over; an operator corrects them with LLM_PRICES
without a release. The demo model costs nothing. A model in neither table costs 0 and is
logged once as a WARNING, so a new model is noticed rather than silently free.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from functools import cache
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from chatsite.llm.base import Usage

log = logging.getLogger(__name__)

MILLION = Decimal(1_000_000)
# Costs are kept to the micro-dollar (Message.cost_usd has 6 decimal places).
MICRO = Decimal("0.000001")


@dataclass(frozen=True)
class Price:
    """USD per million tokens."""

    input: Decimal
    output: Decimal
    cache_write: Decimal
    cache_read: Decimal


def _price(*values: str) -> Price:
    return Price(*(Decimal(v) for v in values))


SONNET = _price("3", "15", "3.75", "0.30")
HAIKU = _price("1", "5", "1.25", "0.10")
FREE = _price("0", "0", "0", "0")

BUILT_IN: dict[str, Price] = {
    "claude-sonnet-5-5": SONNET,
    "claude-haiku-5-5": HAIKU,
    "demo": FREE,
}


def parse_prices(raw: str) -> dict[str, Price]:
    """LLM_PRICES: `{"<model>": [input, output, cache_write, cache_read]}`; raises
    ImproperlyConfigured with what is wrong."""
    if not raw.strip():
        return {}
    try:
        data: Any = json.loads(raw)
    except ValueError as exc:
        raise ImproperlyConfigured(f"LLM_PRICES is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ImproperlyConfigured(
            'LLM_PRICES must be a JSON object: {"<model>": [input, output, cache_write, '
            "cache_read]} in USD per million tokens"
        )
    table: dict[str, Price] = {}
    for model, values in data.items():
        if (
            not model
            or not isinstance(values, list)
            or len(values) != 4
            or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)
            or any(v < 0 for v in values)
        ):
            raise ImproperlyConfigured(
                f"LLM_PRICES[{model!r}] must be a list of 4 non-negative numbers: input, "
                "output, cache_write, cache_read (USD per million tokens)"
            )
        table[model] = Price(*(Decimal(str(v)) for v in values))
    return table


@cache
def price_table() -> dict[str, Price]:
    """The built-in table with LLM_PRICES over it (parsed once; `price_table.cache_clear()`)."""
    return {**BUILT_IN, **parse_prices(settings.LLM_PRICES)}


_warned: set[str] = set()


def price_of(model: str) -> Price:
    """The model's price; an unknown model costs 0 and is logged once as a WARNING."""
    price = price_table().get(model)
    if price is not None:
        return price
    if model not in _warned:
        _warned.add(model)
        log.warning("no price for model %r: its usage counts as 0 USD; add it to LLM_PRICES", model)
    return FREE


def cost_usd(model: str, usage: Usage) -> Decimal:
    """The estimated cost of `usage` on `model`, in USD, rounded to the micro-dollar."""
    price = price_of(model)
    total = (
        usage.input_tokens * price.input
        + usage.output_tokens * price.output
        + usage.cache_creation_input_tokens * price.cache_write
        + usage.cache_read_input_tokens * price.cache_read
    ) / MILLION
    return total.quantize(MICRO, rounding=ROUND_HALF_UP)
