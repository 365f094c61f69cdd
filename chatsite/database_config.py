"""The database connection from DATABASE_URL, with PostgreSQL's connections bounded by a pool."""

from __future__ import annotations

from typing import Any

import dj_database_url


def database(url: str, *, debug: bool, pool_max: int, pool_timeout: float) -> dict[str, Any]:
    """Django's DATABASES["default"] for `url`.

    PostgreSQL goes through Django's psycopg pool of at most `pool_max` connections: under ASGI
    every sync_to_async thread (one per concurrent HTTP request, the consumers' database thread,
    the health check's) would keep a persistent connection of its own, so CONN_MAX_AGE bounds
    nothing; the pool does (docs/operations.md). `pool_max` 0: no pool.
    """
    config: dict[str, Any] = dict(
        dj_database_url.parse(url, conn_max_age=0 if debug else 60, conn_health_checks=True)
    )
    if config["ENGINE"] == "django.db.backends.sqlite3":
        # Several processes (daphne workers, tests) may write at once: wait instead of failing.
        config.setdefault("OPTIONS", {})["timeout"] = 20
    if config["ENGINE"] == "django.db.backends.postgresql":
        # The pool refuses persistent connections; CONN_HEALTH_CHECKS makes it check a
        # connection before lending it, so a PostgreSQL restart costs no failed request.
        config["CONN_MAX_AGE"] = 0
        if pool_max:
            config.setdefault("OPTIONS", {})["pool"] = {
                "min_size": min(2, pool_max),
                "max_size": pool_max,
                "timeout": pool_timeout,
                "name": "roomchat",
            }
    return config
