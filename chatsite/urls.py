"""HTTP URLs (SPEC §5)."""

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import path, re_path

from chatsite.conversation import export
from chatsite.rooms import accounts, invite_views, roomlist, views
from chatsite.usage import views as usage_views

urlpatterns = [
    path("", views.lobby, name="lobby"),
    path("accounts/signup/", accounts.signup, name="signup"),
    path("accounts/login/", accounts.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    re_path(r"^rooms/(?P<slug>[^/]+)/$", views.room_page, name="room"),
    re_path(r"^rooms/(?P<slug>[^/]+)/export\.md$", export.export_markdown, name="export-md"),
    re_path(r"^rooms/(?P<slug>[^/]+)/export\.json$", export.export_json, name="export-json"),
    re_path(r"^api/rooms/(?P<slug>[^/]+)/messages$", views.room_messages, name="room-messages"),
    path("api/rooms", roomlist.my_rooms, name="my-rooms"),
    path("invites/<str:token>/", invite_views.invite_link, name="invite"),
    re_path(r"^api/rooms/(?P<slug>[^/]+)/invites$", invite_views.room_invites, name="room-invites"),
    re_path(
        r"^api/rooms/(?P<slug>[^/]+)/invites/(?P<invite_id>[0-9]{1,18})/revoke$",
        invite_views.revoke_invite,
        name="revoke-invite",
    ),
    path("healthz", views.healthz, name="healthz"),
    path("usage/", usage_views.usage_page, name="usage"),
    path("metrics", usage_views.metrics, name="metrics"),
    path("admin/", admin.site.urls),
]
