"""Rooms and the messages people and Claude write in them."""

from __future__ import annotations

from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models

SLUG_PATTERN = r"^[a-z0-9-]{1,50}$"


class ReplyMode(models.TextChoices):
    """When Claude answers a room's messages (SPEC §7)."""

    ALWAYS = "always"
    MENTION = "mention"
    AUTO = "auto"


class Room(models.Model):
    """A place where people and Claude talk; public rooms are open to every signed-in user."""

    slug = models.CharField(max_length=50, unique=True, validators=[RegexValidator(SLUG_PATTERN)])
    title = models.CharField(max_length=100)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="owned_rooms"
    )
    # The Anthropic model the owner picked; other providers use their own fixed model.
    model = models.CharField(max_length=100, blank=True, default="")
    system_prompt = models.TextField(blank=True, default="", max_length=4000)
    is_private = models.BooleanField(default=False)
    # Private rooms admit the owner and these people (SPEC §7 "Members and invites").
    members = models.ManyToManyField(
        settings.AUTH_USER_MODEL, through="Membership", related_name="member_rooms", blank=True
    )
    reply_mode = models.CharField(
        max_length=10, choices=ReplyMode.choices, default=ReplyMode.ALWAYS
    )
    # Older turns folded into a running summary (long rooms): the summary covers ids <= this.
    summary = models.TextField(blank=True, default="")
    summary_upto_id = models.BigIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-updated_at"]
        # The lobby's recent rooms and the reaper's look for unanswered ones.
        indexes = [models.Index(fields=["updated_at"], name="room_updated_at")]

    def __str__(self) -> str:
        return self.slug


class Message(models.Model):
    """One turn in a room: a person's message or one of Claude's replies."""

    class Role(models.TextChoices):
        USER = "user"
        ASSISTANT = "assistant"

    class Status(models.TextChoices):
        COMPLETE = "complete"
        STREAMING = "streaming"
        STOPPED = "stopped"
        ERROR = "error"
        INTERRUPTED = "interrupted"

    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="messages")
    role = models.CharField(max_length=10, choices=Role.choices)
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="room_messages",
    )
    text = models.TextField(blank=True, default="")
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.COMPLETE)
    client_msg_id = models.CharField(max_length=64, null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    # Replies only: what was called and what it cost.
    provider = models.CharField(max_length=20, blank=True, default="")
    model = models.CharField(max_length=100, blank=True, default="")
    stop_reason = models.CharField(max_length=40, blank=True, default="")
    error_code = models.CharField(max_length=40, blank=True, default="")
    error_message = models.CharField(max_length=500, blank=True, default="")
    input_tokens = models.PositiveIntegerField(default=0)
    output_tokens = models.PositiveIntegerField(default=0)
    cache_creation_input_tokens = models.PositiveIntegerField(default=0)
    cache_read_input_tokens = models.PositiveIntegerField(default=0)
    # The server's estimate of the request's input: against the reported usage it calibrates
    # the room's later budgets (chatsite.llm.context.calibrated_budget).
    estimated_input_tokens = models.PositiveIntegerField(default=0)
    time_to_first_token_ms = models.PositiveIntegerField(null=True, blank=True)
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # Replies only: the ids of the user messages it answers, oldest first (SPEC §6 Message).
    in_reply_to = models.JSONField(default=list, blank=True)
    # Who pressed stop (status `stopped`).
    stopped_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="stopped_replies",
    )
    # A reply that `generation.regenerate` replaced: kept and shown, never sent as context.
    superseded = models.BooleanField(default=False)
    # Estimated cost of this reply in USD (usage × the price table, SPEC §8).
    cost_usd = models.DecimalField(max_digits=12, decimal_places=6, default=0)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["room", "author", "client_msg_id"],
                condition=models.Q(client_msg_id__isnull=False),
                name="unique_client_msg_id_per_room_author",
            )
        ]
        indexes = [
            models.Index(fields=["room", "id"], name="message_room_id"),
            models.Index(
                fields=["status"],
                name="message_streaming",
                condition=models.Q(status="streaming"),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.room_id}#{self.pk} {self.role}"


class Membership(models.Model):
    """A person admitted to a private room (the owner is always admitted)."""

    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    added_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["room", "user"], name="unique_membership")]


class Invite(models.Model):
    """A link that admits whoever opens it to a room as a member, until it expires or is revoked."""

    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="invites")
    # URL-safe random token (secrets.token_urlsafe); the only secret part of the link.
    token = models.CharField(max_length=64, unique=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="created_invites"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    revoked_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"invite to {self.room_id}"


class Reaction(models.Model):
    """One person's emoji on one message (SPEC §7 Reactions)."""

    EMOJI = ("👍", "👎", "❤️", "😂", "🎉", "🤔", "👀", "✅")

    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="reactions")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="reactions"
    )
    emoji = models.CharField(max_length=8)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["message", "user", "emoji"], name="unique_reaction_per_user_emoji"
            )
        ]
