"""Today's spend against the daily limits (SPEC §8), as the snapshot's `budget` shows it.

Placeholder owned by the cost-control work (issue 13): spend is not counted yet.
"""

from __future__ import annotations

from django.conf import settings


def _limit(value: float) -> float | None:
    return value if value > 0 else None


async def budget_view(user_id: int, room_id: int) -> dict[str, float | None]:
    """{user_spent_usd, user_limit_usd, room_spent_usd, room_limit_usd} for today (UTC)."""
    return {
        "user_spent_usd": 0.0,
        "user_limit_usd": _limit(settings.CHAT_USER_DAILY_USD),
        "room_spent_usd": 0.0,
        "room_limit_usd": _limit(settings.CHAT_ROOM_DAILY_USD),
    }
