"""The Heroku button (app.json) and the first staff account it creates (issue 16).

app.json is only ever read by Heroku, so these tests hold it to what Heroku and the app need:
its shape, that every variable it sets is one the app reads, that its values make a valid
production configuration, and that its postdeploy command does what it says, idempotently.
"""

from __future__ import annotations

import json
import re

import pytest
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command

from tests.support import REPO_ROOT
from tests.test_settings import load_settings

APP = json.loads((REPO_ROOT / "app.json").read_text())
# Where the app reads its environment: settings (env_str/env_bool/... or os.environ) and the
# postdeploy command.
READERS = [
    REPO_ROOT / "chatsite" / "settings.py",
    REPO_ROOT / "chatsite" / "deploy" / "management" / "commands" / "create_first_admin.py",
]
ENV_READ = re.compile(
    r"""(?:env_\w+\(\s*|os\.environ(?:\.get)?[\(\[]\s*|^\w+\s*=\s*)["']([A-Z][A-Z0-9_]+)["']""",
    re.MULTILINE,
)


def names_the_app_reads() -> set[str]:
    return {name for path in READERS for name in ENV_READ.findall(path.read_text())}


def test_app_json_has_the_shape_heroku_expects() -> None:
    assert isinstance(APP["name"], str) and 3 <= len(APP["name"]) <= 30
    assert 0 < len(APP["description"]) <= 140
    assert APP["buildpacks"] == [{"url": "heroku/python"}]
    assert APP["formation"]["web"]["quantity"] >= 1
    plans = [addon["plan"] if isinstance(addon, dict) else addon for addon in APP["addons"]]
    assert any(plan.split(":")[0] == "heroku-postgresql" for plan in plans), plans
    assert any(plan.split(":")[0] == "heroku-redis" for plan in plans), plans
    assert set(APP) <= {
        "name", "description", "keywords", "website", "repository", "logo", "success_url",
        "scripts", "env", "formation", "addons", "buildpacks", "stack", "environments",
    }  # fmt: skip
    for name, spec in APP["env"].items():
        assert isinstance(spec, dict) and spec.get("description"), f"{name} has no description"
        assert set(spec) <= {"description", "value", "required", "generator"}, name
        assert "value" not in spec or isinstance(spec["value"], str), name


def test_app_json_sets_what_a_production_deploy_needs() -> None:
    env = APP["env"]
    assert env["DJANGO_SECRET_KEY"]["generator"] == "secret"
    assert env["DJANGO_HTTPS"]["value"] == "1"
    assert env["CHAT_SIGNUP"]["value"] == "invite"
    # Either provider is described; neither is required (the demo model runs without both).
    assert env["ANTHROPIC_API_KEY"]["required"] is False
    assert "--as INFERENCE" in env["ANTHROPIC_API_KEY"]["description"]
    # The first staff account: a postdeploy command that the password field feeds.
    assert "create_first_admin" in APP["scripts"]["postdeploy"]
    assert env["DJANGO_SUPERUSER_PASSWORD"]["required"] is True


def test_every_variable_app_json_names_is_one_the_app_reads() -> None:
    read = names_the_app_reads()
    assert {"DJANGO_SECRET_KEY", "DATABASE_URL", "REDIS_URL"} <= read  # the regex finds them
    unknown = sorted(set(APP["env"]) - read)
    assert not unknown, f"app.json sets variables nothing reads: {unknown}"


def test_app_json_values_with_the_addons_urls_load_as_production_settings() -> None:
    env = {name: spec["value"] for name, spec in APP["env"].items() if "value" in spec}
    env |= {
        "DJANGO_SECRET_KEY": "generated-by-heroku-" + "x" * 40,
        # What the add-ons set: Heroku Postgres and Heroku Key-Value Store (TLS, self-signed).
        "DATABASE_URL": "postgres://u:p@ec2.example.com:5432/d1",
        "REDIS_URL": "rediss://:p@ec2.example.com:6380",
    }
    code, seen, output = load_settings(
        "print(json.dumps({'app_json': {'signup': settings.CHAT_SIGNUP, "
        "'https': settings.HTTPS, 'hosts': settings.ALLOWED_HOSTS, "
        "'pool': settings.DATABASES['default']['OPTIONS']['pool']['max_size']}}))\n",
        **env,
    )
    assert code == 0, output
    assert seen is not None and seen["debug"] is False and seen["provider"] == "demo"
    assert seen["host"]["ssl_cert_reqs"] is None
    [line] = [line for line in output.splitlines() if line.startswith('{"app_json"')]
    extra = json.loads(line)["app_json"]
    assert extra == {"signup": "invite", "https": True, "hosts": [".herokuapp.com"], "pool": 8}


def test_the_procfile_migrates_on_release_and_serves_with_daphne_on_port() -> None:
    lines = dict(
        line.split(":", 1) for line in (REPO_ROOT / "Procfile").read_text().splitlines() if line
    )
    assert lines["release"].strip() == "python manage.py migrate --noinput"
    assert lines["web"].strip().startswith("daphne -b 0.0.0.0 -p $PORT ")
    assert lines["web"].strip().endswith(" chatsite.asgi:application")


# --- create_first_admin ---------------------------------------------------------------------


def admin_env(monkeypatch: pytest.MonkeyPatch, **values: str) -> None:
    for name in ("USERNAME", "PASSWORD", "EMAIL"):
        monkeypatch.delenv(f"DJANGO_SUPERUSER_{name}", raising=False)
    for name, value in values.items():
        monkeypatch.setenv(f"DJANGO_SUPERUSER_{name}", value)


def run(capsys: pytest.CaptureFixture[str]) -> str:
    call_command("create_first_admin")
    return str(capsys.readouterr().out)


@pytest.mark.django_db
def test_create_first_admin_creates_one_staff_account_once(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    admin_env(monkeypatch, USERNAME="boss", PASSWORD="a-strong-pass-123", EMAIL="b@example.com")
    out = run(capsys)
    assert "Created the staff account 'boss'" in out and "a-strong-pass-123" not in out
    boss = User.objects.get(username="boss")
    assert boss.is_staff and boss.is_superuser and boss.email == "b@example.com"
    assert boss.check_password("a-strong-pass-123")

    # Again (a second postdeploy, another name): nothing changes.
    admin_env(monkeypatch, USERNAME="other", PASSWORD="another-strong-pass-456")
    assert "A staff account exists already (boss)" in run(capsys)
    assert list(User.objects.values_list("username", flat=True)) == ["boss"]


@pytest.mark.django_db
def test_create_first_admin_without_credentials_says_how_to_make_one(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    admin_env(monkeypatch)
    out = run(capsys)
    assert "heroku run python manage.py createsuperuser" in out
    assert not User.objects.exists()


@pytest.mark.django_db
def test_create_first_admin_never_promotes_an_existing_account_nor_takes_a_weak_password(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    User.objects.create_user("early", password="whatever-pass-789")
    admin_env(monkeypatch, USERNAME="early", PASSWORD="a-strong-pass-123")
    with pytest.raises(CommandError, match="exists and is not staff"):
        call_command("create_first_admin")
    assert not User.objects.get(username="early").is_staff

    admin_env(monkeypatch, USERNAME="boss", PASSWORD="password")
    with pytest.raises(CommandError, match="too weak") as raised:
        call_command("create_first_admin")
    assert "'password'" not in str(raised.value)  # the password itself is never echoed
    assert not User.objects.filter(username="boss").exists()
