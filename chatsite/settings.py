"""Django settings for Roomchat, read only from the environment (see docs/configuration.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.exceptions import ImproperlyConfigured

from chatsite.database_config import database
from chatsite.env import env_bool, env_choice, env_int, env_list, env_number, env_str
from chatsite.llm.settings_checks import check_provider, check_request_budget, default_provider
from chatsite.redis_config import channel_layers, redis_connection_options, redis_hosts

BASE_DIR = Path(__file__).resolve().parent.parent


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

# PostgreSQL connections one process may hold, through Django's psycopg pool. Heroku Postgres
# essential-0 allows 20 connections in all: 2 dynos x 8 leave room for the release phase and a
# `heroku run` (docs/operations.md). 0: no pool, one connection per unit of work.
DATABASE_POOL_MAX = env_int("DATABASE_POOL_MAX", 8)
# Seconds a unit of work waits for a pooled connection before it fails.
DATABASE_POOL_TIMEOUT = env_number("DATABASE_POOL_TIMEOUT", 10, minimum=0.1)
DATABASES = {
    "default": database(
        env_str("DATABASE_URL", f"sqlite:///{BASE_DIR / 'db.sqlite3'}"),
        debug=DEBUG,
        pool_max=DATABASE_POOL_MAX,
        pool_timeout=DATABASE_POOL_TIMEOUT,
    )
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
REDIS_URL = REDIS_URLS[0] if REDIS_URLS else ""
# Keys of our shared state (locks, live text, stop flags, presence, rate limits) start with this.
REDIS_KEY_PREFIX = env_str("REDIS_KEY_PREFIX", "roomchat")
# `pubsub` (default): one PUBLISH per frame, fanned out inside each process, no capacity drops,
# subscriptions survive a Redis restart. `core`: channels_redis' list-based layer.
REDIS_CHANNEL_LAYER = env_str("REDIS_CHANNEL_LAYER", "pubsub")
REDIS_OPTIONS = redis_connection_options(REDIS_URL) if REDIS_URL else {}
REDIS_HOSTS = redis_hosts(REDIS_URLS)
CHANNEL_LAYERS = channel_layers(REDIS_HOSTS, REDIS_KEY_PREFIX, REDIS_CHANNEL_LAYER)

# --- The model -----------------------------------------------------------------------------

ANTHROPIC_API_KEY = env_str("ANTHROPIC_API_KEY")
ANTHROPIC_BASE_URL = env_str("ANTHROPIC_BASE_URL")
INFERENCE_URL = env_str("INFERENCE_URL").rstrip("/")
INFERENCE_KEY = env_str("INFERENCE_KEY")
INFERENCE_MODEL_ID = env_str("INFERENCE_MODEL_ID")


LLM_PROVIDER = env_str(
    "LLM_PROVIDER", default_provider(ANTHROPIC_API_KEY, INFERENCE_URL, INFERENCE_KEY)
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
check_provider(
    LLM_PROVIDER,
    inference=(INFERENCE_URL, INFERENCE_KEY, INFERENCE_MODEL_ID),
    default=ANTHROPIC_MODEL,
    summary=LLM_SUMMARY_MODEL,
    fallback=LLM_FALLBACK_MODEL,
    allowed=LLM_ALLOWED_MODELS,
)
# Input tokens a request may use: the window minus the reply cap minus 10 %.
LLM_MIN_REQUEST_BUDGET = 4096
check_request_budget(LLM_CONTEXT_WINDOW, LLM_MAX_TOKENS, LLM_MIN_REQUEST_BUDGET)
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
# A tab's presence entry lives this long unless its process renews it (every PRESENCE_REFRESH
# seconds): a process that died without a word leaves the rooms' lists within about that long.
# Connections the kernel queues for daphne before it accepts them (consumers/startup.py):
# Twisted's 50 drops a reconnect storm's SYNs, each then retried seconds later.
LISTEN_BACKLOG = env_int("LISTEN_BACKLOG", 4096, minimum=1)
PRESENCE_TTL = env_number("PRESENCE_TTL", 30.0, minimum=1.0)
PRESENCE_REFRESH = env_number("PRESENCE_REFRESH", 10.0, minimum=0.2)
# A socket whose client lets this many bytes pile up unread is dropped (docs/operations.md);
# above the largest snapshot (50 messages of CHAT_MAX_TEXT characters), so a fresh one fits.
WS_MAX_BACKLOG_BYTES = env_int("WS_MAX_BACKLOG_BYTES", 4 * 1024 * 1024, minimum=65536)


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
