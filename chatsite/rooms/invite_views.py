"""Invite links (`/invites/<token>/`) and the owner's list of live invites (SPEC §5, §7)."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import User
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect
from django.views.decorators.http import require_GET, require_POST

from . import membership, selectors
from .access import can_enter, can_manage
from .accounts import INVITE_SESSION_KEY
from .models import Invite, Room
from .serializers import iso_utc


@require_GET
def invite_link(request: HttpRequest, token: str) -> HttpResponse:
    """Signed in: join the room and go there. Signed out: sign in (or up) first, then here."""
    invite = membership.valid_invite(token)
    if invite is None:
        raise Http404("This invite link is unknown, expired or revoked.")
    if not request.user.is_authenticated:
        # Carried through the session: it opens sign-up even when CHAT_SIGNUP=invite.
        request.session[INVITE_SESSION_KEY] = token
        return redirect(f"/accounts/login/?next=/invites/{token}/")
    user: User = request.user
    room = membership.accept_invite(invite, user)
    request.session.pop(INVITE_SESSION_KEY, None)
    return redirect("room", slug=room.slug)


def invite_url(request: HttpRequest, invite: Invite) -> str:
    return request.build_absolute_uri(f"/invites/{invite.token}/")


def invite_data(request: HttpRequest, invite: Invite) -> dict[str, Any]:
    return {
        "id": invite.pk,
        "url": invite_url(request, invite),
        "created_by": invite.created_by.username,
        "created_at": iso_utc(invite.created_at),
        "expires_at": iso_utc(invite.expires_at),
    }


def _managed_room(request: HttpRequest, slug: str) -> Room | JsonResponse:
    """The room if the user owns it; otherwise the JSON answer (401, 404, or 403 to members)."""
    if not request.user.is_authenticated:
        return JsonResponse({"error": "Sign in first."}, status=401)
    room = selectors.room_by_slug(slug)
    if room is None or not can_enter(request.user, room):
        return JsonResponse({"error": "No such room."}, status=404)
    if not can_manage(request.user, room):
        return JsonResponse({"error": "Only the room's owner manages its invites."}, status=403)
    return room


@require_GET
def room_invites(request: HttpRequest, slug: str) -> JsonResponse:
    """`{"invites": [...]}`: the room's live invite links, for its owner."""
    room = _managed_room(request, slug)
    if isinstance(room, JsonResponse):
        return room
    return JsonResponse(
        {"invites": [invite_data(request, i) for i in membership.active_invites(room)]}
    )


@require_POST
def revoke_invite(request: HttpRequest, slug: str, invite_id: str) -> JsonResponse:
    """Revoke one live invite (CSRF-protected POST); 404 JSON when there is none."""
    room = _managed_room(request, slug)
    if isinstance(room, JsonResponse):
        return room
    if not membership.revoke_invite(room, int(invite_id)):
        return JsonResponse({"error": "No such invite."}, status=404)
    return JsonResponse({"revoked": int(invite_id)})
