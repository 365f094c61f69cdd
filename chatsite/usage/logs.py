"""Log lines operators can parse: JSON (LOG_FORMAT=json) or text, each with the request id of
the work it belongs to, and never a secret (SPEC §8).

Imported by the logging configuration, so nothing here touches Django's models.
"""

from __future__ import annotations

import contextvars
import logging
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from pythonjsonlogger.json import JsonFormatter

# The id of the reply (or other unit of work) the current task serves; tasks started inside
# inherit it, and so do database threads (asgiref copies the context).
request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="")

# Environment variables whose values must never appear in a log line.
SECRET_VARIABLES = (
    "DJANGO_SECRET_KEY",
    "ANTHROPIC_API_KEY",
    "INFERENCE_KEY",
    "METRICS_TOKEN",
    "DATABASE_URL",
    "REDIS_URL",
)
REDACTED = "[redacted]"


def new_request_id() -> str:
    return uuid.uuid4().hex


@contextmanager
def request_context(request_id: str | None = None) -> Iterator[str]:
    """Run a block (and the tasks it starts) under a request id."""
    rid = request_id or new_request_id()
    token = request_id_var.set(rid)
    try:
        yield rid
    finally:
        request_id_var.reset(token)


def _secret_values() -> list[str]:
    values: list[str] = []
    for name in SECRET_VARIABLES:
        for part in os.environ.get(name, "").split(","):
            part = part.strip()
            if len(part) >= 8:  # short values would redact ordinary words
                values.append(part)
    return values


class RequestContextFilter(logging.Filter):
    """Adds `request_id` to every record, and blanks out known secrets in its message."""

    def __init__(self, name: str = "") -> None:
        super().__init__(name)
        self.secrets = _secret_values()

    def filter(self, record: logging.LogRecord) -> bool:
        if not getattr(record, "request_id", ""):
            record.request_id = request_id_var.get()
        if self.secrets:
            message = record.getMessage()
            clean = message
            for secret in self.secrets:
                clean = clean.replace(secret, REDACTED)
            if clean != message:
                record.msg, record.args = clean, None
            if record.exc_info and record.exc_info[1] is not None:
                text = str(record.exc_info[1])
                if any(secret in text for secret in self.secrets):
                    record.exc_info, record.exc_text = None, None
                    record.msg = f"{record.msg} (exception text withheld: it held a secret)"
        return True


def json_formatter(**_: Any) -> logging.Formatter:
    """One JSON object a line: time, level, logger, message, request id and any extras."""
    return JsonFormatter(
        "{asctime}{levelname}{name}{message}{request_id}",
        style="{",
        rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
        json_ensure_ascii=False,
    )


def text_formatter(**_: Any) -> logging.Formatter:
    return logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s")


def logging_config(log_format: str, level: str) -> dict[str, Any]:
    """settings.LOGGING for LOG_FORMAT `json` or `text`."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"context": {"()": "chatsite.usage.logs.RequestContextFilter"}},
        "formatters": {
            "json": {"()": "chatsite.usage.logs.json_formatter"},
            "text": {"()": "chatsite.usage.logs.text_formatter"},
        },
        "handlers": {
            "console": {
                "class": "logging.StreamHandler",
                "formatter": log_format,
                "filters": ["context"],
            }
        },
        "root": {"handlers": ["console"], "level": level},
        "loggers": {
            "django": {"level": "INFO"},
            "httpx": {"level": "WARNING"},
            "httpx2": {"level": "WARNING"},
            "anthropic": {"level": "WARNING"},
            "openai": {"level": "WARNING"},
        },
    }
