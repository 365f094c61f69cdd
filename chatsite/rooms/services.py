"""Writes: rooms, user messages, replies (Django-Styleguide services; sync, call via threads)."""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib.auth.models import User
from django.db import IntegrityError, transaction
from django.db.models import Prefetch, prefetch_related_objects
from django.utils import timezone

from chatsite.llm.base import Usage

from .models import Message, Reaction, Room


def open_room(slug: str, user: User, title: str | None = None) -> Room:
    """The room at `slug`, created public and owned by `user` if the slug is free."""
    from django.conf import settings

    room = Room.objects.select_related("owner").filter(slug=slug).first()
    if room is not None:
        return room
    try:
        with transaction.atomic():
            return Room.objects.create(
                slug=slug,
                title=(title or slug)[:100],
                owner=user,
                model=settings.ANTHROPIC_MODEL,
                reply_mode=settings.CHAT_DEFAULT_REPLY_MODE,
            )
    except IntegrityError:  # someone created it at the same moment
        return Room.objects.select_related("owner").get(slug=slug)


def store_user_message(
    room: Room, author: User, text: str, client_msg_id: str | None
) -> Message | None:
    """Store a user's message; None when `client_msg_id` was already used (store nothing).

    The unique constraint on (room, author, client_msg_id) is the check: no read before the
    write, and a repeat on another process at the same moment is refused alike.
    """
    try:
        with transaction.atomic():
            message = Message.objects.create(
                room=room,
                role=Message.Role.USER,
                author=author,
                text=text,
                status=Message.Status.COMPLETE,
                client_msg_id=client_msg_id,
            )
    except IntegrityError:  # that client_msg_id is taken: a repeat
        return None
    Room.objects.filter(pk=room.pk).update(updated_at=timezone.now())
    # A new message has no reactions: serializing it needs no query for them.
    prefetch_related_objects([message], Prefetch("reactions", queryset=Reaction.objects.none()))
    return message


def start_reply(room_id: int, provider: str, model: str) -> Message:
    """The assistant message a reply streams into; its id is the reply's id."""
    return Message.objects.create(
        room_id=room_id,
        role=Message.Role.ASSISTANT,
        status=Message.Status.STREAMING,
        provider=provider,
        model=model,
    )


@dataclass(frozen=True)
class ReplyOutcome:
    """How a reply ended and what it cost."""

    status: str  # complete, stopped, error, interrupted
    text: str
    stop_reason: str | None = None
    usage: Usage | None = None
    error_code: str = ""
    error_message: str = ""
    time_to_first_token_ms: int | None = None
    duration_ms: int | None = None
    model: str | None = None  # set when a fallback model answered
    estimated_input_tokens: int = 0  # what the server estimated the request's input at


def finish_reply(message_id: int, outcome: ReplyOutcome) -> bool:
    """Store the ending, once: False when the reply was already finished (e.g. by the reaper)."""
    usage = outcome.usage or Usage()
    fields = {
        "status": outcome.status,
        "text": outcome.text,
        "stop_reason": outcome.stop_reason or "",
        "error_code": outcome.error_code,
        "error_message": outcome.error_message[:500],
        "input_tokens": usage.input_tokens,
        "output_tokens": usage.output_tokens,
        "cache_creation_input_tokens": usage.cache_creation_input_tokens,
        "cache_read_input_tokens": usage.cache_read_input_tokens,
        "time_to_first_token_ms": outcome.time_to_first_token_ms,
        "duration_ms": outcome.duration_ms,
        "finished_at": timezone.now(),
    }
    if outcome.model:
        fields["model"] = outcome.model
    if outcome.status != Message.Status.STOPPED:
        fields["stopped_by"] = None  # a stop pressed as it ended otherwise does not count
    if outcome.estimated_input_tokens:
        fields["estimated_input_tokens"] = outcome.estimated_input_tokens
    updated = Message.objects.filter(pk=message_id, status=Message.Status.STREAMING).update(
        **fields
    )
    return updated == 1


def store_summary(room_id: int, expected_upto_id: int, upto_id: int, summary: str) -> Room | None:
    """Store a fold unless another one landed first (compare-and-set on `summary_upto_id`).

    Returns the updated room, or None when the summary moved meanwhile. `updated_at` stays:
    a fold is not activity in the lobby's sense.
    """
    updated = Room.objects.filter(pk=room_id, summary_upto_id=expected_upto_id).update(
        summary=summary, summary_upto_id=upto_id
    )
    if not updated:
        return None
    return Room.objects.select_related("owner").get(pk=room_id)


def update_room_settings(
    room: Room,
    *,
    title: str | None,
    system_prompt: str | None,
    model: str | None,
    private: bool | None = None,
    reply_mode: str | None = None,
) -> Room:
    """Apply the owner's changes (already validated) to the stored room, not a stale copy."""
    room = Room.objects.select_related("owner").prefetch_related("members").get(pk=room.pk)
    if title is not None:
        room.title = title
    if system_prompt is not None:
        room.system_prompt = system_prompt
    if model is not None:
        room.model = model
    if private is not None:
        room.is_private = private
    if reply_mode is not None:
        room.reply_mode = reply_mode
    room.save(
        update_fields=[
            "title",
            "system_prompt",
            "model",
            "is_private",
            "reply_mode",
            "updated_at",
        ]
    )
    return room
