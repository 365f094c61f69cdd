"""Model allow-list and deprecations: what owners may pick, and what refuses to start."""

import os
import subprocess
import sys
from pathlib import Path

from anthropic.resources.messages.messages import DEPRECATED_MODELS

from chatsite.llm.anthropic_provider import AnthropicProvider
from chatsite.llm.catalog import (
    anthropic_name,
    configuration_problems,
    deprecation_date,
    heroku_model_warning,
    is_deprecated,
    offered_models,
)

ROOT = Path(__file__).resolve().parents[2]


def test_deprecations_come_from_the_sdk() -> None:
    assert deprecation_date("claude-sonnet-4-5") == DEPRECATED_MODELS["claude-sonnet-4-5"]
    assert is_deprecated("claude-sonnet-4-5")
    assert not is_deprecated("claude-sonnet-5-5")


def test_the_defaults_are_current_models() -> None:
    from django.conf import settings

    for model in ("claude-sonnet-5-5", "claude-haiku-5-5"):
        assert not is_deprecated(model)
    assert settings.LLM_SUMMARY_MODEL == "claude-haiku-5-5"
    errors, warnings = configuration_problems(
        default="claude-sonnet-5-5",
        summary="claude-haiku-5-5",
        fallback="",
        allowed=["claude-sonnet-5-5", "claude-haiku-5-5"],
    )
    assert (errors, warnings) == ([], [])


def test_owners_are_offered_the_allow_list_minus_deprecated_models() -> None:
    allowed = ["claude-sonnet-5-5", "claude-sonnet-4-5", "claude-haiku-5-5", "claude-sonnet-5-5"]
    assert offered_models(allowed) == ["claude-sonnet-5-5", "claude-haiku-5-5"]
    provider = AnthropicProvider("k", default_model="claude-sonnet-5-5", allowed_models=allowed)
    assert provider.selectable_models() == ["claude-sonnet-5-5", "claude-haiku-5-5"]
    # A room still set to a deprecated model is answered by the default.
    assert provider.model_for("claude-sonnet-4-5") == "claude-sonnet-5-5"
    assert provider.model_for("claude-haiku-5-5") == "claude-haiku-5-5"


def test_deprecated_configured_models_are_errors_and_allow_list_entries_warnings() -> None:
    errors, warnings = configuration_problems(
        default="claude-sonnet-4-5",
        summary="claude-3-5-haiku-latest",
        fallback="claude-opus-4-0",
        allowed=["claude-sonnet-4-5", "claude-sonnet-5-5"],
    )
    assert [e.split("=")[0] for e in errors] == [
        "ANTHROPIC_MODEL",
        "LLM_SUMMARY_MODEL",
        "LLM_FALLBACK_MODEL",
    ]
    assert "November 30th, 2026" in errors[0]
    assert any("claude-sonnet-4-5 is deprecated" in w for w in warnings)


def test_heroku_claude_ids_are_checked_under_anthropic_names() -> None:
    assert anthropic_name("claude-4-5-sonnet") == "claude-sonnet-4-5"
    assert anthropic_name("claude-5-5-haiku") == "claude-haiku-5-5"
    assert anthropic_name("claude-4-sonnet") == "claude-sonnet-4"
    assert anthropic_name("gpt-oss-120b") == "gpt-oss-120b"
    warning = heroku_model_warning("claude-4-5-sonnet")
    assert warning is not None and "November 30th, 2026" in warning
    assert heroku_model_warning("claude-5-5-sonnet") is None


def django_check(**env: str) -> subprocess.CompletedProcess[str]:
    """Load the settings in a fresh interpreter, as `manage.py migrate` (Heroku release) does."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("LLM_", "ANTHROPIC_"))}
    return subprocess.run(
        [sys.executable, "-c", "import django; django.setup(); print('ok')"],
        cwd=ROOT,
        env={**clean, "DJANGO_SETTINGS_MODULE": "chatsite.settings", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_deprecated_default_model_refuses_startup() -> None:
    result = django_check(ANTHROPIC_API_KEY="sk-secret-value", ANTHROPIC_MODEL="claude-sonnet-4-5")
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert "ANTHROPIC_MODEL=claude-sonnet-4-5 is deprecated" in result.stderr
    assert "sk-secret-value" not in result.stderr


def test_a_window_too_small_for_the_reply_cap_refuses_startup() -> None:
    result = django_check(LLM_CONTEXT_WINDOW="4000", LLM_MAX_TOKENS="1024")
    assert result.returncode != 0 and "LLM_CONTEXT_WINDOW" in result.stderr
