"""Settings come from the environment only (SPEC §4): each case loads chatsite.settings in a
fresh interpreter with nothing but the variables it names, as a server process would."""

from __future__ import annotations

import json
import os
import subprocess
from typing import Any

import pytest

from tests.support import REPO_ROOT, python_executable

# Prints what the case needs to see of the loaded settings as one JSON line.
PROBE = """
import json
import django
django.setup()
from django.conf import settings
layer = settings.CHANNEL_LAYERS["default"]
hosts = layer.get("CONFIG", {}).get("hosts") or [{}]
print(json.dumps({
    "db_engine": settings.DATABASES["default"]["ENGINE"],
    "db_name": str(settings.DATABASES["default"]["NAME"]),
    "layer": layer["BACKEND"],
    "host": {k: v for k, v in hosts[0].items() if k in ("address", "socket_timeout", "ssl_cert_reqs")},
    "provider": settings.LLM_PROVIDER,
    "debug": settings.DEBUG,
}))
"""


def load_settings(extra_code: str = "", **env: str) -> tuple[int, dict[str, Any] | None, str]:
    """(exit code, the probe's JSON or None, everything printed) for settings under `env`."""
    clean = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/tmp"),
        "DJANGO_SETTINGS_MODULE": "chatsite.settings",
        **env,
    }
    result = subprocess.run(
        [python_executable(), "-c", PROBE + extra_code],
        cwd=REPO_ROOT,
        env=clean,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    output = result.stdout + result.stderr
    found = [line for line in result.stdout.splitlines() if line.startswith("{")]
    return result.returncode, json.loads(found[0]) if found else None, output


SECRET = {"DJANGO_SECRET_KEY": "settings-test-secret"}


def test_nothing_configured_means_sqlite_in_memory_layer_and_demo() -> None:
    code, seen, output = load_settings(**SECRET)
    assert code == 0, output
    assert seen is not None
    assert seen["db_engine"] == "django.db.backends.sqlite3"
    assert seen["db_name"] == str(REPO_ROOT / "db.sqlite3")
    assert seen["layer"] == "channels.layers.InMemoryChannelLayer"
    assert seen["provider"] == "demo"
    assert seen["debug"] is False


def test_serving_without_redis_warns_that_only_one_process_is_supported() -> None:
    code, _, output = load_settings("import chatsite.asgi\n", **SECRET)
    assert code == 0, output
    [warning] = [line for line in output.splitlines() if "REDIS_URL is not set" in line]
    record = json.loads(warning)  # debug off: one JSON object a line
    assert (record["level"], record["logger"]) == ("WARNING", "consumers.startup")
    assert "ONE process" in record["message"]


def test_make_run_hears_the_single_process_note_as_advice_not_a_warning() -> None:
    code, _, output = load_settings("import chatsite.asgi\n", DJANGO_DEBUG="1")
    assert code == 0, output
    [note] = [line for line in output.splitlines() if "REDIS_URL is not set" in line]
    assert " INFO consumers.startup " in note, note
    assert "ONE process" in note and "REDIS_URL=redis://" in note


@pytest.mark.parametrize(
    ("url", "layer_setting", "backend", "tls"),
    [
        ("redis://127.0.0.1:6390/0", "", "channels_redis.pubsub.RedisPubSubChannelLayer", False),
        ("rediss://h.example:6390", "", "channels_redis.pubsub.RedisPubSubChannelLayer", True),
        ("redis://127.0.0.1:6390/0", "core", "channels_redis.core.RedisChannelLayer", False),
        ("rediss://h.example:6390", "core", "channels_redis.core.RedisChannelLayer", True),
    ],
)
def test_redis_url_selects_channels_redis_with_tls_options_only_for_rediss(
    url: str, layer_setting: str, backend: str, tls: bool
) -> None:
    env = {**SECRET, "REDIS_URL": url}
    if layer_setting:
        env["REDIS_CHANNEL_LAYER"] = layer_setting
    code, seen, output = load_settings(**env)
    assert code == 0, output
    assert seen is not None and seen["layer"] == backend
    # redis-py 8's 5 s socket timeout would kill idle blocking reads (NOTES.md).
    assert seen["host"]["address"] == url and seen["host"]["socket_timeout"] == 15
    if tls:
        assert "ssl_cert_reqs" in seen["host"] and seen["host"]["ssl_cert_reqs"] is None
    else:
        assert "ssl_cert_reqs" not in seen["host"]  # redis:// would raise TypeError on it


def test_database_url_is_read_through_dj_database_url() -> None:
    code, seen, output = load_settings(
        **SECRET, DATABASE_URL="postgres://someone@db.example:5433/roomchat"
    )
    assert code == 0, output
    assert seen is not None
    assert seen["db_engine"] == "django.db.backends.postgresql"
    assert seen["db_name"] == "roomchat"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"DJANGO_DEBUG": "0"}, "DJANGO_SECRET_KEY must be set"),
        ({**SECRET, "DJANGO_DEBUG": "maybe"}, "DJANGO_DEBUG must be 1 or 0"),
        ({**SECRET, "REDIS_URL": "redis://x", "REDIS_CHANNEL_LAYER": "kafka"}, "pubsub or core"),
        ({**SECRET, "LLM_PROVIDER": "openai"}, "LLM_PROVIDER must be anthropic, heroku or demo"),
        ({**SECRET, "LLM_PROVIDER": "heroku"}, "needs INFERENCE_URL"),
        ({**SECRET, "CHAT_MAX_TEXT": "lots"}, "CHAT_MAX_TEXT must be a number"),
        (
            {**SECRET, "ANTHROPIC_API_KEY": "k", "ANTHROPIC_MODEL": "claude-sonnet-4-5"},
            "ANTHROPIC_MODEL=claude-sonnet-4-5 is deprecated",
        ),
    ],
)
def test_bad_configuration_refuses_to_start_with_a_clear_message(
    env: dict[str, str], message: str
) -> None:
    code, seen, output = load_settings(**env)
    assert code != 0 and seen is None
    assert "ImproperlyConfigured" in output and message in output, output[-1500:]
