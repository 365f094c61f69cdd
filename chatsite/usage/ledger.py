"""Writes to and sums over the usage ledger (sync: call through threads from async code)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, Decimal
from typing import Any

from django.db import transaction
from django.db.models import QuerySet, Sum

from chatsite.llm.base import Usage
from chatsite.rooms.models import Message

from .models import Charge, UsageEntry
from .prices import MICRO, cost_usd


@dataclass(frozen=True)
class Call:
    """What one model call did, as the ledger records it."""

    kind: str  # reply, summary, decision
    room_id: int | None
    model: str
    provider: str
    usage: Usage
    status: str = "complete"
    error_code: str = ""
    message_id: int | None = None
    ttft_ms: int | None = None
    duration_ms: int | None = None
    retries: int = 0
    deltas: int = 0
    request_id: str = ""
    # Who pays: the reply's distinct authors; empty for a room's background work.
    payers: tuple[int, ...] = ()


@dataclass(frozen=True)
class Recorded:
    """The stored entry's cost and how it was split (user id → USD)."""

    entry_id: int
    cost: Decimal
    shares: dict[int, Decimal] = field(default_factory=dict)
    created_at: dt.datetime | None = None


def split(cost: Decimal, payers: tuple[int, ...]) -> dict[int, Decimal]:
    """`cost` split evenly among `payers` to the micro-dollar; the first payers carry the
    remainder, so the shares add up to `cost` exactly."""
    people = list(dict.fromkeys(payers))
    if not people:
        return {}
    share = (cost / len(people)).quantize(MICRO, rounding=ROUND_DOWN)
    shares = dict.fromkeys(people, share)
    left = cost - share * len(people)
    for person in people:
        if left <= 0:
            break
        shares[person] += MICRO
        left -= MICRO
    return shares


def record(call: Call) -> Recorded:
    """Store the entry and its charges at once; a reply's message gets its cost too."""
    cost = cost_usd(call.model, call.usage)
    shares = split(cost, call.payers)
    with transaction.atomic():
        entry = UsageEntry.objects.create(
            room_id=call.room_id,
            kind=call.kind,
            message_id=call.message_id,
            model=call.model,
            provider=call.provider,
            status=call.status,
            error_code=call.error_code,
            input_tokens=call.usage.input_tokens,
            output_tokens=call.usage.output_tokens,
            cache_creation_input_tokens=call.usage.cache_creation_input_tokens,
            cache_read_input_tokens=call.usage.cache_read_input_tokens,
            cost_usd=cost,
            ttft_ms=call.ttft_ms,
            duration_ms=call.duration_ms,
            retries=call.retries,
            deltas=call.deltas,
            request_id=call.request_id,
        )
        Charge.objects.bulk_create(
            Charge(entry=entry, user_id=user_id, cost_usd=share, created_at=entry.created_at)
            for user_id, share in shares.items()
        )
        if call.message_id is not None and call.kind == UsageEntry.Kind.REPLY:
            Message.objects.filter(pk=call.message_id).update(cost_usd=cost)
    return Recorded(entry.pk, cost, shares, entry.created_at)


def reply_payers(message_id: int) -> tuple[int, ...]:
    """The distinct authors of the user messages a reply answers: its `in_reply_to`, or else
    the user messages between the room's previous reply and this one."""
    reply = Message.objects.filter(pk=message_id).only("room_id", "in_reply_to").first()
    if reply is None:
        return ()
    answered = [i for i in (reply.in_reply_to or []) if isinstance(i, int)]
    users = Message.objects.filter(room_id=reply.room_id, role=Message.Role.USER)
    if answered:
        users = users.filter(pk__in=answered)
    else:
        previous = (
            Message.objects.filter(
                room_id=reply.room_id, role=Message.Role.ASSISTANT, pk__lt=message_id
            )
            .order_by("-pk")
            .values_list("pk", flat=True)
            .first()
        )
        users = users.filter(pk__lt=message_id, pk__gt=previous or 0)
    authors = users.exclude(author=None).order_by("pk").values_list("author_id", flat=True)
    return tuple(dict.fromkeys(a for a in authors if a is not None))


def day_start(now: dt.datetime | None = None) -> dt.datetime:
    """Midnight (UTC) of today."""
    now = now or dt.datetime.now(dt.UTC)
    return now.astimezone(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def spent_today(scope: str, ident: int | None) -> Decimal:
    """USD spent since midnight UTC by a user (`user`), a room (`room`) or everyone (`all`)."""
    since = day_start()
    rows: QuerySet[Any]
    if scope == "user":
        rows = Charge.objects.filter(user_id=ident or 0, created_at__gte=since)
    elif scope == "room":
        rows = UsageEntry.objects.filter(room_id=ident or 0, created_at__gte=since)
    else:
        rows = UsageEntry.objects.filter(created_at__gte=since)
    total = rows.aggregate(total=Sum("cost_usd"))["total"]
    return Decimal(total or 0)
