"""Which Anthropic models may be used: the allow-list minus what the SDK lists as deprecated."""

from __future__ import annotations

import re
from collections.abc import Iterable

# Heroku names Claude models family-last ("claude-4-5-sonnet"); Anthropic family-first.
_HEROKU_CLAUDE = re.compile(r"^claude-(\d+(?:-\d+)?)-(sonnet|haiku|opus)(.*)$")


def deprecation_date(model: str) -> str | None:
    """The end-of-life date the `anthropic` SDK lists for a deprecated `model`, else None."""
    # Imported here so that settings can call this without loading the SDK for other providers.
    from anthropic.resources.messages.messages import DEPRECATED_MODELS

    return DEPRECATED_MODELS.get(model)


def is_deprecated(model: str) -> bool:
    """Whether the SDK lists `model` as deprecated (about to reach, or past, end of life)."""
    return deprecation_date(model) is not None


def offered_models(allowed: Iterable[str]) -> list[str]:
    """The allow-list in its order, without deprecated models and repeats."""
    offered: list[str] = []
    for model in allowed:
        if model not in offered and not is_deprecated(model):
            offered.append(model)
    return offered


def configuration_problems(
    *, default: str, summary: str, fallback: str, allowed: list[str]
) -> tuple[list[str], list[str]]:
    """(errors, warnings) about the configured Anthropic models.

    A deprecated default, summary or fallback model is an error: the app refuses to start (on
    Heroku the release phase fails and the running release stays). A deprecated entry of the
    allow-list is only dropped, with a warning, since the others still work.
    """
    errors: list[str] = []
    warnings: list[str] = []
    for name, model in (
        ("ANTHROPIC_MODEL", default),
        ("LLM_SUMMARY_MODEL", summary),
        ("LLM_FALLBACK_MODEL", fallback),
    ):
        retiring = deprecation_date(model) if model else None
        if retiring is not None:
            errors.append(
                f"{name}={model} is deprecated by Anthropic (end of life {retiring}); "
                "configure a current model"
            )
    for model in allowed:
        retiring = deprecation_date(model)
        if retiring is not None:
            warnings.append(
                f"LLM_ALLOWED_MODELS: {model} is deprecated (end of life {retiring}) "
                "and is not offered to room owners"
            )
    if not offered_models(allowed):
        warnings.append("LLM_ALLOWED_MODELS offers no current model: owners cannot pick one")
    elif default not in offered_models(allowed):
        warnings.append(f"ANTHROPIC_MODEL={default} is not in LLM_ALLOWED_MODELS")
    return errors, warnings


def anthropic_name(heroku_model_id: str) -> str:
    """Anthropic's name for a Heroku Managed Inference Claude model id (others unchanged)."""
    match = _HEROKU_CLAUDE.match(heroku_model_id)
    return f"claude-{match[2]}-{match[1]}{match[3]}" if match else heroku_model_id


def heroku_model_warning(model_id: str) -> str | None:
    """A warning when the attached Heroku model is one Anthropic has deprecated."""
    retiring = deprecation_date(anthropic_name(model_id))
    if retiring is None:
        return None
    return (
        f"INFERENCE_MODEL_ID={model_id} is deprecated by Anthropic (end of life {retiring}): "
        "attach a current model with `heroku ai:models:create`"
    )
