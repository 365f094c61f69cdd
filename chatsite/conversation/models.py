"""What `auto` mode decided for a user message, and why (operators read it in the admin)."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from chatsite.rooms.models import Message


class ReplyDecision(models.Model):
    """The cheap model's (or the demo rule's) answer to "should Claude reply to this?".

    Only `auto` rooms' messages without a mention get one: `always` and `mention` follow from
    the text alone (chatsite.conversation.reply_modes). The reply runner's hand-over reads
    `wanted` to know whether a message stored during a reply calls for the next one.
    """

    class How(models.TextChoices):
        MODEL = "model"  # the cheap model answered
        DEMO = "demo"  # the demo provider's deterministic rule
        BUDGET = "budget"  # a limit is reached: Claude stays quiet without asking
        FAILED = "failed"  # the cheap model failed: treated as "no"

    message = models.OneToOneField(
        "rooms.Message", on_delete=models.CASCADE, related_name="reply_decision"
    )
    wanted = models.BooleanField()
    how = models.CharField(max_length=10, choices=How.choices)
    model = models.CharField(max_length=100, blank=True, default="")
    # The exact prompt sent and the raw answer: for operators, never shown to users or logged.
    prompt = models.TextField(blank=True, default="")
    answer = models.CharField(max_length=200, blank=True, default="")
    input_tokens = models.PositiveIntegerField(default=0)
    output_tokens = models.PositiveIntegerField(default=0)
    cost_usd = models.DecimalField(max_digits=12, decimal_places=6, default=0)
    duration_ms = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"{self.message_id}: {'yes' if self.wanted else 'no'} ({self.how})"


class ReplyFeedback(Message):
    """Claude's replies as the feedback admin lists them (👍/👎 per reply and per model)."""

    class Meta:
        proxy = True
        verbose_name = "reply feedback"
        verbose_name_plural = "reply feedback"


class RoomEvent(models.Model):
    """A change of the room's settings, shown in the conversation as a quiet line (issue 14).

    Written by `room.update` for each field that actually changed. A system prompt's text is
    never copied here: `value` only says whether it was "changed" or "cleared".
    """

    class Kind(models.TextChoices):
        MODEL = "model"
        SYSTEM_PROMPT = "system_prompt"
        REPLY_MODE = "reply_mode"
        PRIVATE = "private"
        TITLE = "title"

    room = models.ForeignKey("rooms.Room", on_delete=models.CASCADE, related_name="events")
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="room_events",
    )
    kind = models.CharField(max_length=20, choices=Kind.choices)
    # The new model / reply mode / "private" or "public" / title; "changed" or "cleared" for
    # the system prompt.
    value = models.CharField(max_length=100, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["room", "id"], name="roomevent_room_id")]

    def __str__(self) -> str:
        return f"{self.room_id}: {self.kind} = {self.value}"
