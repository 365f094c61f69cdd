"""Sign-up as the operator allows it (SPEC §4 `CHAT_SIGNUP`, §5 `/accounts/signup/`).

`open`: anyone. `invite`: only someone who opened a live invite link in this browser session
(the link stores its token in the session). `closed`: nobody but through an invite link; staff
create the other accounts. Refusals are a 403 page that says why.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth import login, password_validation
from django.contrib.auth import views as auth_views
from django.contrib.auth.forms import UserCreationForm
from django.contrib.auth.models import User
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_http_methods

from chatsite.security.usernames import SignupForm

from . import membership

# The session key that carries an invite link's token through sign-in or sign-up.
INVITE_SESSION_KEY = "invite_token"


def pending_invite_path(request: HttpRequest) -> str | None:
    """The path of the live invite this browser opened, if any (it leads into the room)."""
    token = request.session.get(INVITE_SESSION_KEY)
    if not isinstance(token, str) or membership.valid_invite(token) is None:
        return None
    return f"/invites/{token}/"


def _safe_next(request: HttpRequest) -> str:
    next_url = request.POST.get("next") or request.GET.get("next") or ""
    if url_has_allowed_host_and_scheme(
        next_url, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return next_url
    return ""


def _refusal(request: HttpRequest) -> HttpResponse:
    return render(
        request, "registration/signup_closed.html", {"mode": settings.CHAT_SIGNUP}, status=403
    )


@require_http_methods(["GET", "POST"])
def signup(request: HttpRequest) -> HttpResponse:
    """The sign-up form, or a 403 page when the operator allows no sign-up without an invite."""
    invite_path = pending_invite_path(request)
    if settings.CHAT_SIGNUP != "open" and invite_path is None:
        return _refusal(request)
    # Look-alike usernames refused (chatsite/security/usernames.py, issue 12).
    form: UserCreationForm[User] = SignupForm(request.POST or None)
    # Whoever followed a room or invite link signs up and lands there, as after a login.
    next_url = _safe_next(request) or invite_path or ""
    if request.method == "POST" and form.is_valid():
        user = form.save()
        login(request, user, backend="django.contrib.auth.backends.ModelBackend")
        return redirect(next_url or "lobby")
    return render(
        request,
        "registration/signup.html",
        {
            "form": form,
            "next": next_url,
            "password_rules": password_validation.password_validators_help_texts(),
        },
    )


class LoginView(auth_views.LoginView):
    """Django's login page; it offers sign-up only where sign-up would be let through."""

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        context["signup_offered"] = settings.CHAT_SIGNUP == "open" or bool(
            pending_invite_path(self.request)
        )
        return context
