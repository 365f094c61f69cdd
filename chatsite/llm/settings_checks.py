"""Which provider the environment asks for, and what refuses to start (or warns) about it."""

from __future__ import annotations

import logging

from django.core.exceptions import ImproperlyConfigured

log = logging.getLogger("roomchat.settings")

PROVIDERS = ("anthropic", "heroku", "demo")


def default_provider(anthropic_key: str, inference_url: str, inference_key: str) -> str:
    """`anthropic` with a key, else `heroku` with an attached model, else the offline `demo`."""
    if anthropic_key:
        return "anthropic"
    if inference_url and inference_key:
        return "heroku"
    return "demo"


def check_provider(
    provider: str,
    *,
    inference: tuple[str, str, str],
    default: str,
    summary: str,
    fallback: str,
    allowed: list[str],
) -> None:
    """Refuse a configuration that cannot serve; log the warnings of one that can."""
    if provider not in PROVIDERS:
        raise ImproperlyConfigured("LLM_PROVIDER must be anthropic, heroku or demo")
    if provider == "heroku" and not all(inference):
        raise ImproperlyConfigured(
            "LLM_PROVIDER=heroku needs INFERENCE_URL, INFERENCE_KEY and INFERENCE_MODEL_ID"
        )
    if provider == "anthropic":
        from chatsite.llm.catalog import configuration_problems

        # A deprecated model refuses startup (docs/providers.md): better a failed release than
        # replies that break on the model's end-of-life date.
        errors, warnings = configuration_problems(
            default=default, summary=summary, fallback=fallback, allowed=allowed
        )
        for warning in warnings:
            log.warning("%s", warning)
        if errors:
            raise ImproperlyConfigured("; ".join(errors))
    elif provider == "heroku":
        from chatsite.llm.catalog import heroku_model_warning

        # Heroku retires the model it serves on its own schedule: warn loudly, keep serving.
        retiring = heroku_model_warning(inference[2])
        if retiring:
            log.warning("%s", retiring)


def check_request_budget(window: int, max_tokens: int, minimum: int) -> None:
    """The window minus the reply cap minus 10 % must hold a system prompt (4,000 characters)
    and a long message besides the history."""
    if window - max_tokens - window // 10 < minimum:
        raise ImproperlyConfigured(
            "LLM_CONTEXT_WINDOW minus LLM_MAX_TOKENS minus 10 % must leave at least "
            f"{minimum} tokens for the conversation"
        )
