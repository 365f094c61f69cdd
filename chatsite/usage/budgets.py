"""Today's spend against the daily limits (SPEC §8), held across processes.

Spend is counted per person, per room and for the whole deployment per UTC day, in micro-USD
counters (chatsite.usage.store) that are a cache of the ledger. Before a reply starts, a message
that calls for one is refused (`check_budget`) once its author, its room or the deployment has
spent its limit today; a reply that starts under a limit may end over it.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
from decimal import Decimal

from channels.db import database_sync_to_async
from django.conf import settings

from consumers.protocol.client import FrameError
from consumers.protocol.frames import BudgetData

from . import ledger
from .store import REBUILD_TTL, counters, key

log = logging.getLogger(__name__)

MICROS = Decimal(1_000_000)
WARN_AT = Decimal("0.8")  # the deployment's WARNING line, as a share of LLM_DAILY_SPEND_USD


def _limit(value: float) -> float | None:
    return value if value > 0 else None


def today() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%d")


def seconds_to_midnight(now: dt.datetime | None = None) -> int:
    """Whole seconds until the next UTC midnight, when today's budgets start again (≥ 1)."""
    now = (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
    midnight = ledger.day_start(now) + dt.timedelta(days=1)
    return max(1, math.ceil((midnight - now).total_seconds()))


def _scope_key(day: str, scope: str, ident: int | None) -> str:
    return key("spend", day, scope) if ident is None else key("spend", day, scope, ident)


async def spent(scopes: list[tuple[str, int | None]]) -> list[Decimal]:
    """Today's spend of each (scope, id): `user`, `room` or (`all`, None), in USD.

    From the counters; a missing one is rebuilt from the ledger. Without Redis (unreachable),
    straight from the ledger: budgets hold either way.
    """
    day = today()
    keys = [_scope_key(day, scope, ident) for scope, ident in scopes]
    store = counters()
    try:
        values = await store.get_many(keys)
    except Exception as exc:
        log.warning("spend counters unreadable, summing the ledger: %s", exc)
        values = [None] * len(keys)
        store = None  # type: ignore[assignment]
    missing = [i for i, value in enumerate(values) if value is None]
    if missing:
        # Every missing counter from the ledger in one trip to the database thread.
        totals = await database_sync_to_async(_ledger_totals)([scopes[i] for i in missing])
        for i, total in zip(missing, totals, strict=True):
            rebuilt = values[i] = int(total * MICROS)
            if store is not None:
                try:
                    values[i] = await store.set_if_absent(keys[i], rebuilt, REBUILD_TTL)
                except Exception as exc:
                    log.warning("spend counter %s not rebuilt: %s", keys[i], exc)
    return [Decimal(value or 0) / MICROS for value in values]


def _ledger_totals(scopes: list[tuple[str, int | None]]) -> list[Decimal]:
    return [ledger.spent_today(scope, ident) for scope, ident in scopes]


async def add_spend(room_id: int | None, cost: Decimal, shares: dict[int, Decimal]) -> None:
    """Count a stored entry's cost today: the room, the deployment, each payer's share."""
    if cost <= 0:
        return
    day = today()
    amounts = {_scope_key(day, "all", None): int(cost * MICROS)}
    if room_id is not None:
        amounts[_scope_key(day, "room", room_id)] = int(cost * MICROS)
    for user_id, share in shares.items():
        amounts[_scope_key(day, "user", user_id)] = int(share * MICROS)
    try:
        await counters().add_if_present(amounts)
    except Exception as exc:  # the counters are rebuilt from the ledger when next read
        log.warning("spend counters not updated: %s", exc)
    await _warn_near_cap(day)


async def _warn_near_cap(day: str) -> None:
    """One WARNING line a day, from one process, once the deployment passes 80 % of its cap."""
    cap = settings.LLM_DAILY_SPEND_USD
    if cap <= 0:
        return
    (total,) = await spent([("all", None)])
    if total < WARN_AT * Decimal(str(cap)):
        return
    try:
        first = await counters().flag_once(key("warned", day), 2 * 24 * 3600)
    except Exception as exc:
        log.debug("80 %% flag unavailable: %s", exc)
        first = True
    if first:
        log.warning(
            "deployment spend today is %.2f USD, past 80 %% of LLM_DAILY_SPEND_USD (%.2f USD); "
            "replies are refused at 100 %%",
            total,
            cap,
            extra={"event": "spend_warning", "spent_usd": float(total), "limit_usd": cap},
        )


async def refusal(user_id: int, room_id: int) -> str | None:
    """Why a message that calls for a reply must be refused today, or None."""
    user_limit = _limit(settings.CHAT_USER_DAILY_USD)
    room_limit = _limit(settings.CHAT_ROOM_DAILY_USD)
    cap = _limit(settings.LLM_DAILY_SPEND_USD)
    if user_limit is None and room_limit is None and cap is None:
        return None
    user_spent, room_spent, all_spent = await spent(
        [("user", user_id), ("room", room_id), ("all", None)]
    )
    if user_limit is not None and user_spent >= Decimal(str(user_limit)):
        return f"You have used today's budget for Claude's replies (${user_limit:.2f})."
    if room_limit is not None and room_spent >= Decimal(str(room_limit)):
        return f"This room has used today's budget for Claude's replies (${room_limit:.2f})."
    if cap is not None and all_spent >= Decimal(str(cap)):
        return "Claude's budget for today is used up on this server."
    return None


async def check_budget(user_id: int, room_id: int) -> None:
    """Refuse (`budget_exceeded`, retry at the next UTC midnight) a message that calls for a
    reply when its author, its room or the deployment spent its limit today. Call it before
    storing the message: a refused frame stores nothing."""
    why = await refusal(user_id, room_id)
    if why is None:
        return
    wait = seconds_to_midnight()
    raise FrameError("budget_exceeded", f"{why} You can send again at 00:00 UTC.", retry_after=wait)


async def budget_view(user_id: int, room_id: int) -> BudgetData:
    """{user_spent_usd, user_limit_usd, room_spent_usd, room_limit_usd} for today (UTC)."""
    user_spent, room_spent = await spent([("user", user_id), ("room", room_id)])
    return {
        "user_spent_usd": float(user_spent),
        "user_limit_usd": _limit(settings.CHAT_USER_DAILY_USD),
        "room_spent_usd": float(room_spent),
        "room_limit_usd": _limit(settings.CHAT_ROOM_DAILY_USD),
    }
