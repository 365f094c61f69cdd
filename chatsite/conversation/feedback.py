"""👍 and 👎 on Claude's replies, kept as feedback and counted per model (the admin reads it)."""

from __future__ import annotations

from typing import Any

from django.db.models import Count, Q, QuerySet

from chatsite.rooms.models import Message

THUMBS_UP = "👍"
THUMBS_DOWN = "👎"


def with_thumbs(replies: QuerySet[Any]) -> QuerySet[Any]:
    """Replies annotated with `thumbs_up` and `thumbs_down` (how many people chose each)."""
    annotated: QuerySet[Any] = replies.annotate(
        thumbs_up=Count("reactions", filter=Q(reactions__emoji=THUMBS_UP), distinct=True),
        thumbs_down=Count("reactions", filter=Q(reactions__emoji=THUMBS_DOWN), distinct=True),
    )
    return annotated


def per_model() -> list[dict[str, Any]]:
    """[{model, replies, thumbs_up, thumbs_down}] over every reply, busiest model first."""
    rows = (
        Message.objects.filter(role=Message.Role.ASSISTANT)
        .values("model")
        .annotate(
            replies=Count("id", distinct=True),
            thumbs_up=Count("reactions", filter=Q(reactions__emoji=THUMBS_UP), distinct=True),
            thumbs_down=Count("reactions", filter=Q(reactions__emoji=THUMBS_DOWN), distinct=True),
        )
        .order_by("-replies", "model")
    )
    return [dict(row) for row in rows]
