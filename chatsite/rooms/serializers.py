"""Rooms and messages in the shapes of SPEC §6 (Room, Message)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TypedDict

from chatsite.llm.base import Provider

from .models import Message, Room


class RoomData(TypedDict):
    """A Room of SPEC §6."""

    slug: str
    title: str
    owner: str
    model: str
    provider: str
    system_prompt: str
    models: list[str]
    private: bool
    members: list[str]
    reply_mode: str
    summary_upto_id: int


class MessageData(TypedDict):
    """A Message of SPEC §6."""

    id: int
    role: str
    author: str | None
    model: str | None
    text: str
    status: str
    created_at: str
    client_msg_id: str | None
    reactions: dict[str, list[str]]
    in_reply_to: list[int]
    stopped_by: str | None
    superseded: bool


def iso_utc(moment: datetime) -> str:
    """UTC ISO 8601 with a `Z`, to the millisecond."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def room_data(room: Room, provider: Provider) -> RoomData:
    """A Room (SPEC §6), plus the additive `summary_upto_id` (docs/protocol.md)."""
    return {
        "slug": room.slug,
        "title": room.title,
        "owner": room.owner.username,
        "model": provider.model_for(room.model),
        "provider": provider.name,
        "system_prompt": room.system_prompt,
        "models": provider.selectable_models(),
        "private": room.is_private,
        "members": room_members(room),
        "reply_mode": room.reply_mode,
        # Messages with ids up to this are folded into the summary the model reads (0: none).
        "summary_upto_id": room.summary_upto_id,
    }


def message_data(message: Message, text: str | None = None) -> MessageData:
    """A Message; `text` overrides the stored text (a running reply's live text)."""
    is_user = message.role == Message.Role.USER
    return {
        "id": message.pk,
        "role": message.role,
        "author": message.author.username if is_user and message.author else None,
        "model": None if is_user else message.model,
        "text": message.text if text is None else text,
        "status": message.status,
        "created_at": iso_utc(message.created_at),
        "client_msg_id": message.client_msg_id if is_user else None,
        "reactions": reactions_data(message),
        "in_reply_to": [] if is_user else list(message.in_reply_to or []),
        "stopped_by": message.stopped_by.username if message.stopped_by else None,
        "superseded": message.superseded,
    }


def room_members(room: Room) -> list[str]:
    """Sorted usernames of a private room's members, the owner included; [] when public."""
    if not room.is_private:
        return []
    names = {user.username for user in room.members.all()}
    names.add(room.owner.username)
    return sorted(names)


def reactions_data(message: Message) -> dict[str, list[str]]:
    """{emoji: sorted usernames}, only emoji someone chose (prefetch `reactions__user`)."""
    chosen: dict[str, list[str]] = {}
    for reaction in message.reactions.all():
        chosen.setdefault(reaction.emoji, []).append(reaction.user.username)
    return {emoji: sorted(names) for emoji, names in chosen.items()}
