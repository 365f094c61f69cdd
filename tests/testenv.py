"""Environment for the test run; loaded by `-p tests.testenv` before Django settings are read.

Defaults use `setdefault`, so a developer can still override one from the shell (for example a
slower DEMO_WORDS_PER_SECOND). In-process tests run on the in-memory channel layer; tests that
need Redis start real processes against a private redis-server (see tests/conftest.py).
"""

from __future__ import annotations

import os
from typing import Final, Literal

POSTGRES_CI_URL: Final = "postgres://postgres@127.0.0.1:5432/test"
_TRUE = {"1", "true", "yes", "on"}

ON_CI: Final = os.environ.get("CI", "").strip().lower() in _TRUE

# Model credentials from a developer's shell must never reach a test: every model call in the
# suite goes to a fake server, and a real key would turn a test into a paid, flaky API call.
_MODEL_SECRETS: Final = (
    "ANTHROPIC_API_KEY",
    "ANTHROPIC_AUTH_TOKEN",
    "ANTHROPIC_BASE_URL",
    "INFERENCE_URL",
    "INFERENCE_KEY",
    "INFERENCE_MODEL_ID",
    "OPENAI_API_KEY",
)
REMOVED_MODEL_SETTINGS: Final = tuple(name for name in _MODEL_SECRETS if os.environ.pop(name, None))

# In-process tests use the in-memory channel layer, never a Redis from the shell (which may be the
# machine's shared instance). The outer value stays visible here for whoever wants it.
OUTER_REDIS_URL: Final = os.environ.pop("REDIS_URL", None)
IN_PROCESS_REDIS_URL: Final[str | None] = None

DEFAULTS: Final = {
    "DJANGO_SECRET_KEY": "test-secret-key",
    "DJANGO_DEBUG": "0",
    "DJANGO_HTTPS": "0",
    "LLM_PROVIDER": "demo",
    "DEMO_WORDS_PER_SECOND": "400",
    "LLM_RETRY_BASE_DELAY": "0.05",
    "CHAT_RATE_PER_MINUTE": "1000",
    # Tests sign many people up from 127.0.0.1; tests of the limit set their own (issue 12).
    "CHAT_SIGNUPS_PER_HOUR": "1000",
}
for _name, _value in DEFAULTS.items():
    os.environ.setdefault(_name, _value)


def _choose_database() -> tuple[Literal["postgresql", "sqlite"], str | None]:
    """DATABASE_URL if given; PostgreSQL on CI; otherwise the settings' SQLite default."""
    url = os.environ.get("DATABASE_URL", "").strip()
    if not url and ON_CI:
        url = os.environ["DATABASE_URL"] = POSTGRES_CI_URL
    if not url or url.startswith("sqlite:"):
        return "sqlite", url or None
    return "postgresql", url


# Which database the suite runs on; pytest-django then creates a per-run test database from it
# (a unique name on PostgreSQL, a file in pytest's temp dir on SQLite: see conftest.py).
DATABASE_KIND, DATABASE_URL = _choose_database()
