"""LOG_FORMAT and LLM_PRICES at start-up (SPEC §4), in a fresh interpreter as a server loads them."""

from __future__ import annotations

from tests.test_settings import load_settings

PROBE = """
import logging
from chatsite.usage.prices import price_table
print("FORMAT", settings.LOG_FORMAT, type(logging.getLogger().handlers[0].formatter).__name__)
print("PRICE", price_table()["claude-sonnet-5-5"].input)
logging.getLogger("probe").warning("hello")
"""
BASE = {"DJANGO_SECRET_KEY": "k" * 40, "DJANGO_DEBUG": "0"}


def test_json_logs_by_default_with_debug_off_and_text_on_request() -> None:
    code, _, out = load_settings(PROBE, **BASE)
    assert code == 0, out
    assert "FORMAT json JsonFormatter" in out
    assert '"message": "hello"' in out and '"level": "WARNING"' in out
    code, _, out = load_settings(PROBE, **BASE, LOG_FORMAT="text")
    assert code == 0 and "FORMAT text Formatter" in out and "WARNING probe [] hello" in out
    code, _, out = load_settings(PROBE, DJANGO_DEBUG="1")
    assert code == 0 and "FORMAT text" in out


def test_llm_prices_is_read_at_start_up_and_a_bad_one_refuses_to_start() -> None:
    code, _, out = load_settings(PROBE, **BASE, LLM_PRICES='{"claude-sonnet-5-5": [2.5, 10, 0, 0]}')
    assert code == 0 and "PRICE 2.5" in out
    code, _, out = load_settings(PROBE, **BASE, LLM_PRICES='{"claude-sonnet-5-5": [1, 2]}')
    assert code != 0
    assert "ImproperlyConfigured" in out and "LLM_PRICES['claude-sonnet-5-5'] must be a list" in out
    code, _, out = load_settings(PROBE, **BASE, LOG_FORMAT="xml")
    assert code != 0 and "LOG_FORMAT must be one of json, text" in out
