"""`/rooms/<slug>/export.md` and `/rooms/<slug>/export.json` (SPEC §5): the whole room.

For whoever may enter the room (`access.can_enter`); anyone else gets 404, as for the room's
page. The messages are read in id-ordered batches and streamed, so a long room never sits in
memory whole.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Callable
from typing import Any

from asgiref.sync import sync_to_async
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, StreamingHttpResponse

from chatsite.llm.registry import get_provider
from chatsite.rooms import selectors
from chatsite.rooms.access import can_enter
from chatsite.rooms.models import SLUG_PATTERN, Message, Room
from chatsite.rooms.serializers import MessageData, RoomData, message_data, room_data

BATCH = 500  # messages read per query


def _enterable_room(user: Any, slug: str) -> Room | None:
    if not re.fullmatch(SLUG_PATTERN, slug):
        return None
    room = selectors.room_by_slug(slug)
    return room if room is not None and can_enter(user, room) else None


def _batch(room_id: int, after_id: int) -> list[MessageData]:
    rows = (
        Message.objects.filter(room_id=room_id, id__gt=after_id)
        .select_related(*selectors.MESSAGE_RELATED)
        .prefetch_related(*selectors.MESSAGE_PREFETCH)
        .order_by("id")[:BATCH]
    )
    return [message_data(m) for m in rows]


async def all_messages(room_id: int) -> AsyncIterator[MessageData]:
    """Every message of the room as SPEC §6 Messages, oldest first, a batch at a time."""
    after = 0
    while True:
        batch = await sync_to_async(_batch)(room_id, after)
        for message in batch:
            yield message
        if len(batch) < BATCH:
            return
        after = batch[-1]["id"]


async def _json_parts(room: RoomData, room_id: int) -> AsyncIterator[str]:
    yield '{"room":' + json.dumps(room, ensure_ascii=False) + ',"messages":['
    first = True
    async for message in all_messages(room_id):
        yield ("" if first else ",") + json.dumps(message, ensure_ascii=False)
        first = False
    yield "]}\n"


def _when(iso: str) -> str:
    """`2026-12-04T19:50:01.123Z` as `2026-12-04 19:50 UTC`."""
    return iso[:10] + " " + iso[11:16] + " UTC"


def message_markdown(message: MessageData) -> str:
    """One message of the Markdown export: a heading line, its text, its reactions."""
    if message["role"] == "user":
        who = message["author"] or "someone"
    else:
        who = f"Claude ({message['model']})" if message["model"] else "Claude"
    details = [_when(message["created_at"]), message["status"]]
    if message["in_reply_to"]:
        details.append("answering " + ", ".join(f"#{i}" for i in message["in_reply_to"]))
    if message["stopped_by"]:
        details.append(f"stopped by {message['stopped_by']}")
    if message["superseded"]:
        details.append("superseded by a regenerated reply")
    lines = [f"### #{message['id']} {who}", "", "*" + " · ".join(details) + "*", ""]
    lines.append(message["text"] if message["text"].strip() else "*(no text)*")
    if message["reactions"]:
        chosen = [f"{emoji} {', '.join(names)}" for emoji, names in message["reactions"].items()]
        lines += ["", "Reactions: " + " · ".join(chosen)]
    return "\n".join(lines) + "\n\n---\n\n"


async def _markdown_parts(room: RoomData, room_id: int) -> AsyncIterator[str]:
    yield f"# {room['title']}\n\nRoom `{room['slug']}` · reply mode {room['reply_mode']}\n\n---\n\n"
    async for message in all_messages(room_id):
        yield message_markdown(message)


async def _export(
    request: HttpRequest,
    slug: str,
    parts: Callable[[RoomData, int], AsyncIterator[str]],
    content_type: str,
    suffix: str,
) -> StreamingHttpResponse:
    user = await request.auser()
    room = await sync_to_async(_enterable_room)(user, slug)
    if room is None:
        raise Http404("No such room")
    data = await sync_to_async(room_data)(room, get_provider())
    response = StreamingHttpResponse(parts(data, room.pk), content_type=content_type)
    response["Content-Disposition"] = f'attachment; filename="{room.slug}.{suffix}"'
    response["Cache-Control"] = "private, no-store"
    return response


@login_required
async def export_markdown(request: HttpRequest, slug: str) -> StreamingHttpResponse:
    """The room as Markdown: its title, then every message with author, time, status and
    reactions."""
    return await _export(request, slug, _markdown_parts, "text/markdown; charset=utf-8", "md")


@login_required
async def export_json(request: HttpRequest, slug: str) -> StreamingHttpResponse:
    """The room as JSON: `{"room": Room, "messages": [Message…]}`, every message."""
    return await _export(request, slug, _json_parts, "application/json", "json")
