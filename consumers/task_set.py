"""Short-lived tasks a process starts on someone's behalf (e.g. `auto` reply decisions), held
so none is garbage-collected and so shutdown can let them finish."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

log = logging.getLogger(__name__)


class TaskSet:
    """Tasks started with `spawn`, each dropped from the set when it ends."""

    def __init__(self, name: str) -> None:
        self.name = name  # for log lines: what these tasks are
        self.tasks: set[asyncio.Task[None]] = set()

    def spawn(self, work: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(work)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    async def idle(self) -> None:
        """Wait until every task (including ones started meanwhile) has ended."""
        while self.tasks:
            await asyncio.gather(*list(self.tasks), return_exceptions=True)

    async def finish(self, timeout: float) -> None:
        """Let the tasks end within `timeout` seconds (shutdown), then cancel what is left."""
        try:
            await asyncio.wait_for(self.idle(), timeout)
        except TimeoutError:
            log.warning("shutdown: %s %s cancelled unfinished", len(self.tasks), self.name)
            for task in list(self.tasks):
                task.cancel()
