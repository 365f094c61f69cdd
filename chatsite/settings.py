"""Django settings for Roomchat, read only from the environment (see docs/configuration.md)."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import dj_database_url
from django.core.exceptions import ImproperlyConfigured
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff
from redis.exceptions import ConnectionError as RedisConnectionError

BASE_DIR = Path(__file__).resolve().parent.parent
log = logging.getLogger("roomchat.settings")


def env_str(name: str, default: str = "") -> str:
    """The variable's value, or `default` when it is unset or blank."""
    value = os.environ.get(name, "").strip()
    return value or default


def env_bool(name: str, default: bool) -> bool:
    """`1/true/yes/on` or `0/false/no/off`; anything else is a configuration error."""
    raw = os.environ.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in {"1", "true", "yes", "on"}:
        return True
    if raw in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name} must be 1 or 0, not {raw!r}")


def env_number(name: str, default: float, *, minimum: float = 0) -> float:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a number, not {raw!r}") from None
    if value < minimum:
        raise ImproperlyConfigured(f"{name} must be at least {minimum}, not {raw!r}")
    return value


def env_int(name: str, default: int, *, minimum: int = 0) -> int:
    value = env_number(name, default, minimum=minimum)
    if value != int(value):
        raise ImproperlyConfigured(f"{name} must be a whole number")
    return int(value)


def env_list(name: str, default: str) -> list[str]:
    return [item.strip() for item in env_str(name, default).split(",") if item.strip()]


# --- Django core -------------------------------------------------------------------------

DEBUG = env_bool("DJANGO_DEBUG", False)
SECRET_KEY = env_str("DJANGO_SECRET_KEY")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("DJANGO_SECRET_KEY must be set when DJANGO_DEBUG is off")
    SECRET_KEY = "dev-only-insecure-key-do-not-use-in-production"

ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", "localhost,127.0.0.1")
HTTPS = env_bool("DJANGO_HTTPS", False)
if HTTPS:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = True
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = 60 * 60 * 24 * 365
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    # Health checks come from the router over plain HTTP inside the dyno network.
    SECURE_REDIRECT_EXEMPT = [r"^healthz$"]

# Headers on every response (docs/security.md): no framing, no referrer off-site, cookies out
# of scripts' reach, and a strict Content-Security-Policy (django-csp): scripts and styles only
# from our own files, plus the one nonce'd import map of the room page; no inline attributes.
X_FRAME_OPTIONS = "DENY"
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CONTENT_TYPE_NOSNIFF = True
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
from csp.constants import NONCE, NONE, SELF  # noqa: E402

CONTENT_SECURITY_POLICY: dict[str, Any] = {
    "DIRECTIVES": {
        "default-src": [NONE],
        "script-src": [SELF, NONCE],
        "style-src": [SELF],
        "img-src": [SELF, "data:"],
        "font-src": [SELF],
        # 'self' covers the page's own ws:/wss: origin (CSP Level 3).
        "connect-src": [SELF],
        "manifest-src": [SELF],
        "base-uri": [NONE],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
        "object-src": [NONE],
    }
}

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "channels",
    "chatsite.rooms",
    "chatsite.deploy",  # create_first_admin (app.json postdeploy)
    "chatsite.usage",  # prices, ledger, budgets, /usage/, /metrics (SPEC §8)
    "chatsite.conversation",  # reply modes' decisions, feedback, export (SPEC §7)
    "axes",  # failed sign-ins per address and per account (issue 12, "Login throttling" below)
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    # Sign-in/sign-up POSTs one at a time per process, waiting on the event loop (issue 12).
    "chatsite.security.middleware.PasswordWorkLimiter",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "axes.middleware.AxesMiddleware",  # last: turns a lockout into a 429
]

ROOT_URLCONF = "chatsite.urls"
ASGI_APPLICATION = "chatsite.asgi.application"
# /healthz and /api/... answer exactly as written, so no slash-appending redirects.
APPEND_SLASH = False

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "chatsite" / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {
    "default": dj_database_url.parse(
        env_str("DATABASE_URL", f"sqlite:///{BASE_DIR / 'db.sqlite3'}"),
        conn_max_age=0 if DEBUG else 60,
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Several processes (daphne workers, tests) may write at once: wait instead of failing.
    DATABASES["default"].setdefault("OPTIONS", {})["timeout"] = 20
# PostgreSQL connections one process may hold, through Django's psycopg pool. Under ASGI every
# sync_to_async thread (one per concurrent HTTP request, the consumers' database thread, the
# health check's) would keep a persistent connection of its own, so CONN_MAX_AGE bounds
# nothing; the pool does. Heroku Postgres essential-0 allows 20 connections in all: 2 dynos x 8
# leave room for the release phase and a `heroku run` (docs/operations.md). 0: no pool, one
# connection per unit of work.
DATABASE_POOL_MAX = env_int("DATABASE_POOL_MAX", 8)
# Seconds a unit of work waits for a pooled connection before it fails.
DATABASE_POOL_TIMEOUT = env_number("DATABASE_POOL_TIMEOUT", 10, minimum=0.1)
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # The pool refuses persistent connections; CONN_HEALTH_CHECKS makes it check a connection
    # before lending it, so a PostgreSQL restart costs no failed request.
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    if DATABASE_POOL_MAX:
        DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
            "min_size": min(2, DATABASE_POOL_MAX),
            "max_size": DATABASE_POOL_MAX,
            "timeout": DATABASE_POOL_TIMEOUT,
            "name": "roomchat",
        }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# --- Login throttling (issue 12; django-axes, docs/security.md "Hostile clients") ----------
# Axes first: a locked-out address or account is refused before any password is hashed.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
# Failed sign-ins are counted in the database (every process sees them) per address and, apart,
# per account: after AXES_FAILURE_LIMIT of either, sign-ins from that address or to that account
# are refused (429) without checking the password, for AXES_COOLOFF_HOURS.
# Daphne runs with --proxy-headers, so REMOTE_ADDR is the client's address behind Heroku's router.
AXES_FAILURE_LIMIT = env_int("AXES_FAILURE_LIMIT", 5, minimum=1)
AXES_COOLOFF_TIME = env_number("AXES_COOLOFF_HOURS", 0.25, minimum=0.001)
AXES_LOCKOUT_PARAMETERS = ["ip_address", "username"]
AXES_RESET_ON_SUCCESS = True
AXES_HTTP_RESPONSE_CODE = 429
# Failures are what is counted; a row per successful sign-in would only grow the database.
AXES_DISABLE_ACCESS_LOG = True
# Sign-up POSTs one address may make an hour, across processes (chatsite/security/middleware.py).
CHAT_SIGNUPS_PER_HOUR = env_int("CHAT_SIGNUPS_PER_HOUR", 10, minimum=1)
# New sockets one person may open at once on a process, then one a second; each costs a
# snapshot (consumers/frame_budget.py). Above CHAT_MAX_SOCKETS_PER_USER: the cap binds first
# for honest use. 0: no pace.
CHAT_CONNECT_BURST = env_int("CHAT_CONNECT_BURST", 40)
LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/accounts/login/"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES: dict[str, dict[str, Any]] = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG
        else "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}
WHITENOISE_USE_FINDERS = DEBUG
WHITENOISE_AUTOREFRESH = DEBUG
WHITENOISE_MAX_AGE = 60 * 60 * 24 * 365  # hashed names: cache for a year

# --- Redis and the channel layer ------------------------------------------------------------

# One Redis, or several as a comma list: the channel layer and each room's live state are
# spread over them by room (channels-redis's crc32 ring, consumers/shards.py); state that is not
# a room's (per-user limits, budgets, the circuit breaker) lives on the first (SPEC §4).
# Changing the list moves rooms between servers: docs/operations.md.
REDIS_URLS = env_list("REDIS_URL", "")
if len(set(REDIS_URLS)) != len(REDIS_URLS):
    raise ImproperlyConfigured("REDIS_URL names the same server twice")
REDIS_URL = REDIS_URLS[0] if REDIS_URLS else ""
# Keys of our shared state (locks, live text, stop flags, presence, rate limits) start with this.
REDIS_KEY_PREFIX = env_str("REDIS_KEY_PREFIX", "roomchat")
# `pubsub` (default): one PUBLISH per frame, fanned out inside each process, no capacity drops,
# subscriptions survive a Redis restart. `core`: channels_redis' list-based layer.
REDIS_CHANNEL_LAYER = env_str("REDIS_CHANNEL_LAYER", "pubsub")


def redis_connection_options(url: str) -> dict[str, Any]:
    """Options for every Redis client we open (channel layer and shared state)."""
    options: dict[str, Any] = {
        # redis-py 8 defaults to a 5 s socket timeout, which kills idle blocking reads.
        "socket_timeout": 15,
        "socket_connect_timeout": 5,
        "health_check_interval": 10,
        # redis-py's own default (10 retries, up to 1 s apart) makes every call hang for
        # seconds while Redis is down, and a pool without a client (the channel layer's) gets
        # none, so the first PUBLISH after a restart fails on a dead pooled connection. Two
        # quick retries on connection errors only: a timed-out command may have run already.
        "retry": Retry(
            ExponentialWithJitterBackoff(base=0.05, cap=0.5), 2, (RedisConnectionError,)
        ),
    }
    if url.startswith("rediss://"):
        # Heroku Redis presents self-signed certificates; plain redis:// rejects this option.
        options["ssl_cert_reqs"] = None
    return options


REDIS_OPTIONS = redis_connection_options(REDIS_URL) if REDIS_URL else {}
# channels-redis host dicts, in REDIS_URL's order (the order decides each room's server); TLS
# options per server, since only rediss:// accepts them.
REDIS_HOSTS = [{"address": url, **redis_connection_options(url)} for url in REDIS_URLS]
if REDIS_URL:
    if REDIS_CHANNEL_LAYER == "core":
        CHANNEL_LAYERS = {
            "default": {
                "BACKEND": "channels_redis.core.RedisChannelLayer",
                # A process's sockets share one inbox: size it for many tabs per process.
                "CONFIG": {"hosts": REDIS_HOSTS, "capacity": 5000, "prefix": REDIS_KEY_PREFIX},
            }
        }
    elif REDIS_CHANNEL_LAYER == "pubsub":
        CHANNEL_LAYERS = {
            "default": {
                "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
                "CONFIG": {"hosts": REDIS_HOSTS, "prefix": REDIS_KEY_PREFIX},
            }
        }
    else:
        raise ImproperlyConfigured("REDIS_CHANNEL_LAYER must be pubsub or core")
else:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels.layers.InMemoryChannelLayer",
            "CONFIG": {"capacity": 5000},
        }
    }

# --- The model -----------------------------------------------------------------------------

ANTHROPIC_API_KEY = env_str("ANTHROPIC_API_KEY")
ANTHROPIC_BASE_URL = env_str("ANTHROPIC_BASE_URL")
INFERENCE_URL = env_str("INFERENCE_URL").rstrip("/")
INFERENCE_KEY = env_str("INFERENCE_KEY")
INFERENCE_MODEL_ID = env_str("INFERENCE_MODEL_ID")


def _default_provider() -> str:
    if ANTHROPIC_API_KEY:
        return "anthropic"
    if INFERENCE_URL and INFERENCE_KEY:
        return "heroku"
    return "demo"


LLM_PROVIDER = env_str("LLM_PROVIDER", _default_provider())
if LLM_PROVIDER not in {"anthropic", "heroku", "demo"}:
    raise ImproperlyConfigured("LLM_PROVIDER must be anthropic, heroku or demo")
if LLM_PROVIDER == "heroku" and not (INFERENCE_URL and INFERENCE_KEY and INFERENCE_MODEL_ID):
    raise ImproperlyConfigured(
        "LLM_PROVIDER=heroku needs INFERENCE_URL, INFERENCE_KEY and INFERENCE_MODEL_ID"
    )
ANTHROPIC_MODEL = env_str("ANTHROPIC_MODEL", "claude-sonnet-5-5")
LLM_ALLOWED_MODELS = env_list("LLM_ALLOWED_MODELS", "claude-sonnet-5-5,claude-haiku-5-5")
LLM_SUMMARY_MODEL = env_str("LLM_SUMMARY_MODEL", "claude-haiku-5-5")
LLM_MAX_TOKENS = env_int("LLM_MAX_TOKENS", 1024, minimum=1)
LLM_CONTEXT_WINDOW = env_int("LLM_CONTEXT_WINDOW", 200_000, minimum=1000)
LLM_MAX_RETRIES = env_int("LLM_MAX_RETRIES", 4)
LLM_STALL_TIMEOUT = env_number("LLM_STALL_TIMEOUT", 30, minimum=0.1)
LLM_BREAKER_FAILURES = env_int("LLM_BREAKER_FAILURES", 5, minimum=1)
LLM_BREAKER_COOLDOWN = env_number("LLM_BREAKER_COOLDOWN", 30, minimum=0.1)
LLM_FALLBACK_MODEL = env_str("LLM_FALLBACK_MODEL")
if LLM_PROVIDER == "anthropic":
    from chatsite.llm.catalog import configuration_problems

    # A deprecated model refuses startup (docs/providers.md): better a failed release than
    # replies that break on the model's end-of-life date.
    _model_errors, _model_warnings = configuration_problems(
        default=ANTHROPIC_MODEL,
        summary=LLM_SUMMARY_MODEL,
        fallback=LLM_FALLBACK_MODEL,
        allowed=LLM_ALLOWED_MODELS,
    )
    for _warning in _model_warnings:
        log.warning("%s", _warning)
    if _model_errors:
        raise ImproperlyConfigured("; ".join(_model_errors))
elif LLM_PROVIDER == "heroku":
    from chatsite.llm.catalog import heroku_model_warning

    # Heroku retires the model it serves on its own schedule: warn loudly, keep serving.
    _heroku_warning = heroku_model_warning(INFERENCE_MODEL_ID)
    if _heroku_warning:
        log.warning("%s", _heroku_warning)
# Input tokens a request may use: the window minus the reply cap minus 10 %. It must hold a
# system prompt (4,000 characters) and a long message besides the history.
LLM_MIN_REQUEST_BUDGET = 4096
if LLM_CONTEXT_WINDOW - LLM_MAX_TOKENS - LLM_CONTEXT_WINDOW // 10 < LLM_MIN_REQUEST_BUDGET:
    raise ImproperlyConfigured(
        "LLM_CONTEXT_WINDOW minus LLM_MAX_TOKENS minus 10 % must leave at least "
        f"{LLM_MIN_REQUEST_BUDGET} tokens for the conversation"
    )
# First retry waits about this long (then doubling, with jitter); tests make it small.
LLM_RETRY_BASE_DELAY = env_number("LLM_RETRY_BASE_DELAY", 1.0)
# Demo provider pace; tests speed it up.
DEMO_WORDS_PER_SECOND = env_number("DEMO_WORDS_PER_SECOND", 20, minimum=0.1)

# --- Chat limits -------------------------------------------------------------------------

STREAM_FLUSH_MS = env_int("STREAM_FLUSH_MS", 20)
CHAT_MAX_TEXT = env_int("CHAT_MAX_TEXT", 8000, minimum=1)
CHAT_RATE_PER_MINUTE = env_int("CHAT_RATE_PER_MINUTE", 20, minimum=1)
# A reply's room lock lives this long unless renewed; a dead process frees its room by then.
ROOM_LOCK_TTL = env_number("ROOM_LOCK_TTL", 15, minimum=1)
# A socket whose client lets this many bytes pile up unread is dropped (docs/operations.md);
# above the largest snapshot (50 messages of CHAT_MAX_TEXT characters), so a fresh one fits.
WS_MAX_BACKLOG_BYTES = env_int("WS_MAX_BACKLOG_BYTES", 4 * 1024 * 1024, minimum=65536)


def env_choice(name: str, default: str, choices: tuple[str, ...]) -> str:
    """One of `choices`; anything else refuses to start with a message naming them."""
    value = env_str(name, default).lower()
    if value not in choices:
        raise ImproperlyConfigured(f"{name} must be one of {', '.join(choices)}, not {value!r}")
    return value


# Who may sign up (SPEC §4): anyone, only through an invite link, or nobody (staff create users).
CHAT_SIGNUP = env_choice("CHAT_SIGNUP", "open" if DEBUG else "invite", ("open", "invite", "closed"))
# When Claude answers in a new room (SPEC §7).
CHAT_DEFAULT_REPLY_MODE = env_choice(
    "CHAT_DEFAULT_REPLY_MODE", "always", ("always", "mention", "auto")
)
# Open websockets one user may hold across processes; 0 = no limit.
CHAT_MAX_SOCKETS_PER_USER = env_int("CHAT_MAX_SOCKETS_PER_USER", 20)
# Seconds a process's claim on a socket slot lives unless its heartbeat renews it: the slots of
# a killed process free themselves after this long (consumers/socket_quota.py).
SOCKET_QUOTA_TTL = env_number("SOCKET_QUOTA_TTL", 30, minimum=1)
# A socket refused with `rate_limited` this many times within FLOOD_WINDOW seconds is closed
# with 4429.
FLOOD_REFUSALS = env_int("FLOOD_REFUSALS", 10, minimum=1)
FLOOD_WINDOW = env_number("FLOOD_WINDOW", 10, minimum=0.1)

# --- Spend (SPEC §8) -----------------------------------------------------------------------

# Estimated USD a UTC day: per user, per room, for the whole deployment; 0 = no limit.
CHAT_USER_DAILY_USD = env_number("CHAT_USER_DAILY_USD", 1.00)
CHAT_ROOM_DAILY_USD = env_number("CHAT_ROOM_DAILY_USD", 5.00)
LLM_DAILY_SPEND_USD = env_number("LLM_DAILY_SPEND_USD", 0)
# JSON over the built-in price table: {"<model>": [input, output, cache_write, cache_read]}.
LLM_PRICES = env_str("LLM_PRICES")
# Bearer token that may read /metrics (staff sessions always may).
METRICS_TOKEN = env_str("METRICS_TOKEN")

# --- Logging -----------------------------------------------------------------------------

LOG_LEVEL = env_str("LOG_LEVEL", "INFO")
# `json`: one object a line with a request id (SPEC §8); `text` for people reading a terminal.
LOG_FORMAT = env_choice("LOG_FORMAT", "text" if DEBUG else "json", ("json", "text"))
from chatsite.usage.logs import logging_config  # noqa: E402  (needs LOG_FORMAT, no models)

LOGGING = logging_config(LOG_FORMAT, LOG_LEVEL)
