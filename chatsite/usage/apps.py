"""Cost control (SPEC §8): prices, the usage ledger, daily budgets, /usage/ and /metrics."""

from __future__ import annotations

from django.apps import AppConfig


class UsageConfig(AppConfig):
    name = "chatsite.usage"
    label = "usage"
    verbose_name = "Usage and spend"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # LLM_PRICES is parsed at start-up: a typo refuses to start instead of counting 0.
        from .prices import price_table

        price_table()
