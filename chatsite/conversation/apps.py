"""The group-conversation app: reply modes, auto-mode decisions, reactions feedback, export."""

from __future__ import annotations

from django.apps import AppConfig


class ConversationConfig(AppConfig):
    name = "chatsite.conversation"
    label = "conversation"
    verbose_name = "Group conversation"
    default_auto_field = "django.db.models.BigAutoField"
