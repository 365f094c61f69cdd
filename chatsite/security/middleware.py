"""Pacing of password work (issue 12): sign-in and sign-up hash a password (PBKDF2, about half
a second of CPU), so a flood of them would take both cores from the event loop that serves
everyone's websockets. Each process runs at most PASSWORD_WORK_AT_ONCE of those requests at a
time; the others wait their turn on the event loop (not in a thread), up to QUEUE_TIMEOUT, then
get 429. Sign-up is also limited per address (CHAT_SIGNUPS_PER_HOUR, across processes, failing
closed); failed sign-ins are counted per address and per account by django-axes.
"""

from __future__ import annotations

import asyncio
import math
import weakref
from collections.abc import Awaitable, Callable

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.urls import reverse

PASSWORD_WORK_AT_ONCE = 1
QUEUE_TIMEOUT = 10.0  # seconds a sign-in waits for its turn before a 429

GetResponse = Callable[[HttpRequest], Awaitable[HttpResponse]]


def _too_many(message: str, retry_after: float) -> HttpResponse:
    response = HttpResponse(message, status=429, content_type="text/plain; charset=utf-8")
    response["Retry-After"] = str(max(1, math.ceil(retry_after)))
    return response


class PasswordWorkLimiter:
    """Async middleware in front of the sign-in and sign-up forms' POSTs."""

    async_capable = True
    sync_capable = False

    def __init__(self, get_response: GetResponse) -> None:
        if not iscoroutinefunction(get_response):
            raise TypeError("PasswordWorkLimiter needs an async middleware chain")
        self.get_response = get_response
        self._turns: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = (
            weakref.WeakKeyDictionary()
        )
        markcoroutinefunction(self)

    def _semaphore(self) -> asyncio.Semaphore:
        loop = asyncio.get_running_loop()
        turns = self._turns.get(loop)
        if turns is None:
            turns = self._turns[loop] = asyncio.Semaphore(PASSWORD_WORK_AT_ONCE)
        return turns

    async def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.method != "POST":
            return await self.get_response(request)
        path = request.path
        signup = path == reverse("signup")
        if not signup and path != reverse("login"):
            return await self.get_response(request)
        if signup:
            from consumers import limit_guard

            address = request.META.get("REMOTE_ADDR") or "unknown"
            per_hour = settings.CHAT_SIGNUPS_PER_HOUR
            wait = await limit_guard.hit(address, per_hour, 3600.0, bucket="signup")
            if wait is not None:
                return _too_many("Too many sign-ups from your address. Try again later.", wait)
        turns = self._semaphore()
        try:
            await asyncio.wait_for(turns.acquire(), QUEUE_TIMEOUT)
        except TimeoutError:
            return _too_many("The server is busy signing people in. Try again shortly.", 5)
        try:
            return await self.get_response(request)
        finally:
            turns.release()
