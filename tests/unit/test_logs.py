"""Log lines (SPEC §8): JSON objects with a request id, text for people, secrets withheld."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from chatsite.usage.logs import (
    RequestContextFilter,
    json_formatter,
    request_context,
    text_formatter,
)

SECRET = "sk-ant-" + "x1y2z3" * 5


@pytest.fixture
def captured(
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[tuple[logging.Logger, io.StringIO, logging.Handler]]:
    monkeypatch.setenv("ANTHROPIC_API_KEY", SECRET)
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.addFilter(RequestContextFilter())
    logger = logging.getLogger("tests.logs")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    yield logger, out, handler
    logger.removeHandler(handler)


def test_json_lines_carry_the_request_id_and_extras(
    captured: tuple[logging.Logger, io.StringIO, logging.Handler],
) -> None:
    logger, out, handler = captured
    handler.setFormatter(json_formatter())
    with request_context("abc123"):
        logger.info("reply %s done", 7, extra={"event": "reply", "cost_usd": 0.25})
    logger.warning("outside")
    first, second = (json.loads(line) for line in out.getvalue().splitlines())
    assert first["message"] == "reply 7 done" and first["level"] == "INFO"
    assert first["request_id"] == "abc123" and first["event"] == "reply"
    assert first["cost_usd"] == 0.25 and first["logger"] == "tests.logs"
    assert second["request_id"] == ""


def test_secrets_never_reach_a_line(
    captured: tuple[logging.Logger, io.StringIO, logging.Handler],
) -> None:
    logger, out, handler = captured
    handler.setFormatter(json_formatter())
    logger.error("upstream said: key %s is invalid", SECRET)
    try:
        raise RuntimeError(f"bad key {SECRET}")
    except RuntimeError:
        logger.exception("call failed")
    text = out.getvalue()
    assert SECRET not in text
    assert "[redacted]" in text and "withheld" in text


def test_text_format_for_people(
    captured: tuple[logging.Logger, io.StringIO, logging.Handler],
) -> None:
    logger, out, handler = captured
    handler.setFormatter(text_formatter())
    with request_context("r-1"):
        logger.info("hello")
    assert out.getvalue().rstrip().endswith("INFO tests.logs [r-1] hello")
