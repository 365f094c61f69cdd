"""The usage ledger: one row per model call that costs money, and who it is charged to."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class UsageEntry(models.Model):
    """One model call: a room's reply, a long room's summary, or an auto-mode decision."""

    class Kind(models.TextChoices):
        REPLY = "reply"
        SUMMARY = "summary"
        DECISION = "decision"

    room = models.ForeignKey(
        "rooms.Room", null=True, blank=True, on_delete=models.SET_NULL, related_name="usage"
    )
    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.REPLY)
    # The reply this call produced (replies only).
    message = models.ForeignKey(
        "rooms.Message", null=True, blank=True, on_delete=models.SET_NULL, related_name="usage"
    )
    model = models.CharField(max_length=100, blank=True, default="")
    provider = models.CharField(max_length=20, blank=True, default="")
    # complete, stopped, error, interrupted (a reply's ending); complete or error otherwise.
    status = models.CharField(max_length=12, default="complete")
    error_code = models.CharField(max_length=40, blank=True, default="")
    input_tokens = models.PositiveIntegerField(default=0)
    output_tokens = models.PositiveIntegerField(default=0)
    cache_creation_input_tokens = models.PositiveIntegerField(default=0)
    cache_read_input_tokens = models.PositiveIntegerField(default=0)
    cost_usd = models.DecimalField(max_digits=12, decimal_places=6, default=0)
    ttft_ms = models.PositiveIntegerField(null=True, blank=True)
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    # Attempts before the one that answered (or gave up).
    retries = models.PositiveSmallIntegerField(default=0)
    # `generation.delta` frames the reply sent to its room.
    deltas = models.PositiveIntegerField(default=0)
    # Ties the call's log lines together (chatsite.usage.logs).
    request_id = models.CharField(max_length=32, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]
        verbose_name = "usage entry"
        verbose_name_plural = "usage ledger"
        indexes = [
            # /usage/ (the last 30 days by day, model, room) and the deployment's spend today.
            models.Index(fields=["created_at"], name="usage_created"),
            # A room's spend today (budgets).
            models.Index(fields=["room", "created_at"], name="usage_room_created"),
            # /metrics: replies by status, tokens and cost by model.
            models.Index(fields=["kind", "status"], name="usage_kind_status"),
            models.Index(fields=["model"], name="usage_model"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.model} ${self.cost_usd}"


class Charge(models.Model):
    """The part of an entry's cost charged to one person (a reply's cost split among the
    distinct authors of the messages it answers, SPEC §8)."""

    entry = models.ForeignKey(UsageEntry, on_delete=models.CASCADE, related_name="charges")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="usage_charges"
    )
    cost_usd = models.DecimalField(max_digits=12, decimal_places=6, default=0)
    # The entry's time, repeated so a person's spend today is one index range.
    created_at = models.DateTimeField()

    class Meta:
        indexes = [models.Index(fields=["user", "created_at"], name="charge_user_created")]

    def __str__(self) -> str:
        return f"{self.user_id} ${self.cost_usd}"
