"""Production headers (issue 11, docs/security.md): `check --deploy` is clean, every page
carries a strict Content-Security-Policy whose only inline script is the nonce'd import map,
no template or script relies on inline handlers or style attributes, frames and off-site
referrers are refused, cookies are out of scripts' reach, and debug off needs a secret key."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client

from chatsite.rooms.models import Room
from tests.support import REPO_ROOT, python_executable

pytestmark = pytest.mark.django_db

TEMPLATES = REPO_ROOT / "chatsite" / "templates"
SCRIPTS = REPO_ROOT / "static" / "js"
# An attribute that runs script or styles an element inline: CSP refuses both.
INLINE_ATTRIBUTE = re.compile(r"""\s(on[a-z]+|style)\s*=\s*["']""", re.IGNORECASE)


def manage(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "CHAT_"))}
    return subprocess.run(
        [python_executable(), "manage.py", *args],
        cwd=REPO_ROOT,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_check_deploy_is_clean_with_debug_off_behind_https() -> None:
    done = manage(
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
        DJANGO_DEBUG="0",
        DJANGO_HTTPS="1",
        DJANGO_SECRET_KEY="k" * 20 + "-unguessable-" + "q9" * 20,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "no issues" in done.stdout


def test_debug_off_without_a_secret_key_refuses_to_start() -> None:
    done = manage("check", DJANGO_DEBUG="0")
    assert done.returncode != 0
    assert "DJANGO_SECRET_KEY must be set" in done.stderr


@pytest.fixture
def signed_in() -> Client:
    user = User.objects.create_user("header-h1", password=None)
    Room.objects.create(slug="lit-h1", title="Lit", owner=user)
    client = Client()
    client.force_login(user)
    return client


PAGES = ["/", "/rooms/lit-h1/", "/rooms/free-h1/", "/accounts/login/", "/rooms/nope_/"]


@pytest.mark.parametrize("path", PAGES)
def test_every_page_has_a_strict_policy_and_no_inline_code(signed_in: Client, path: str) -> None:
    page = signed_in.get(path)
    policy = page["Content-Security-Policy"]
    directives = dict(
        (part.split()[0], part.split()[1:]) for part in policy.split("; ") if part.strip()
    )
    assert directives["default-src"] == ["'none'"]
    assert directives["frame-ancestors"] == ["'none'"]
    assert directives["object-src"] == ["'none'"] and directives["base-uri"] == ["'none'"]
    assert directives["style-src"] == ["'self'"]
    assert "'unsafe-inline'" not in policy and "'unsafe-eval'" not in policy
    nonces = [s for s in directives["script-src"] if s.startswith("'nonce-")]
    assert [s for s in directives["script-src"] if s not in nonces] == ["'self'"]
    html = page.content.decode()
    assert not INLINE_ATTRIBUTE.search(html), INLINE_ATTRIBUTE.search(html)
    # Inline scripts: data blocks (never run) and the import map, with this response's nonce.
    for tag in re.findall(r"<script\b[^>]*>", html):
        if "src=" in tag or 'type="application/json"' in tag:
            continue
        assert 'type="importmap"' in tag and len(nonces) == 1, tag
        assert f'nonce="{nonces[0][7:-1]}"' in tag
    assert page["X-Frame-Options"] == "DENY"
    assert page["Referrer-Policy"] == "same-origin"
    assert page["X-Content-Type-Options"] == "nosniff"


def test_each_response_gets_its_own_nonce(signed_in: Client) -> None:
    first = signed_in.get("/rooms/lit-h1/")["Content-Security-Policy"]
    second = signed_in.get("/rooms/lit-h1/")["Content-Security-Policy"]
    assert "'nonce-" in first and first != second


def files(root: Path, suffix: str) -> list[Path]:
    return [p for p in root.rglob(f"*{suffix}") if "vendor" not in p.parts]


def test_templates_and_scripts_use_no_inline_handlers_styles_or_scripts() -> None:
    templates = files(TEMPLATES, ".html")
    scripts = files(SCRIPTS, ".js")
    assert templates and scripts
    for path in templates:
        text = path.read_text()
        assert not INLINE_ATTRIBUTE.search(text), (path, INLINE_ATTRIBUTE.search(text))
        for tag in re.findall(r"<script\b[^>]*>", text):
            assert "src=" in tag or "nonce=" in tag, (path, tag)
    for path in scripts:
        text = path.read_text()
        # Markup built as strings or a style attribute set directly would be refused.
        assert not re.search(r"setAttribute\(\s*[\"']style[\"']", text), path
        assert not re.search(r"""<[a-z][^>]*\s(on[a-z]+|style)=""", text), path
        assert "eval(" not in text and "new Function(" not in text, path


def test_cookies_are_http_only_and_same_site(settings: Any) -> None:
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    User.objects.create_user("cookie-h1", password="pw-secret-123")
    browser = Client()
    assert browser.get("/accounts/login/").cookies["csrftoken"]["samesite"] == "Lax"
    answer = browser.post(
        "/accounts/login/", {"username": "cookie-h1", "password": "pw-secret-123"}
    )
    session = answer.cookies[settings.SESSION_COOKIE_NAME]
    assert answer.status_code == 302 and session["httponly"] and session["samesite"] == "Lax"


def test_https_turns_on_secure_cookies_hsts_preload_and_the_redirect() -> None:
    probe = (
        "import django, json; django.setup(); from django.conf import settings as s; "
        "print(json.dumps([s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE, s.SESSION_COOKIE_HTTPONLY,"
        " s.SECURE_HSTS_SECONDS, s.SECURE_HSTS_PRELOAD, s.SECURE_HSTS_INCLUDE_SUBDOMAINS,"
        " s.SECURE_SSL_REDIRECT]))"
    )
    done = subprocess.run(
        [python_executable(), "-c", probe],
        cwd=REPO_ROOT,
        env={
            **{k: v for k, v in os.environ.items() if not k.startswith("DJANGO_")},
            "DJANGO_SETTINGS_MODULE": "chatsite.settings",
            "DJANGO_DEBUG": "0",
            "DJANGO_HTTPS": "1",
            "DJANGO_SECRET_KEY": "probe-secret",
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[true, true, true, 31536000, true, true, true]"
