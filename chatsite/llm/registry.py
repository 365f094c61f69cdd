"""The configured provider, built once per process from settings."""

from __future__ import annotations

from functools import cache

from django.conf import settings

from .base import Provider


@cache
def get_provider() -> Provider:
    """The provider `LLM_PROVIDER` names, configured from the environment."""
    if settings.LLM_PROVIDER == "anthropic":
        from .anthropic_provider import AnthropicProvider

        return AnthropicProvider(
            api_key=settings.ANTHROPIC_API_KEY,
            base_url=settings.ANTHROPIC_BASE_URL or None,
            default_model=settings.ANTHROPIC_MODEL,
            allowed_models=settings.LLM_ALLOWED_MODELS,
            stall_timeout=settings.LLM_STALL_TIMEOUT,
            summary_model=settings.LLM_SUMMARY_MODEL,
        )
    if settings.LLM_PROVIDER == "heroku":
        from .heroku_provider import HerokuProvider

        return HerokuProvider(
            url=settings.INFERENCE_URL,
            key=settings.INFERENCE_KEY,
            model_id=settings.INFERENCE_MODEL_ID,
            stall_timeout=settings.LLM_STALL_TIMEOUT,
        )
    from .demo_provider import DemoProvider

    return DemoProvider(words_per_second=settings.DEMO_WORDS_PER_SECOND)
