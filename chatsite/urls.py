"""HTTP URLs (SPEC §5)."""

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import path, re_path

from chatsite.rooms import views

urlpatterns = [
    path("", views.lobby, name="lobby"),
    path("accounts/signup/", views.signup, name="signup"),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    re_path(r"^rooms/(?P<slug>[^/]+)/$", views.room_page, name="room"),
    re_path(r"^api/rooms/(?P<slug>[^/]+)/messages$", views.room_messages, name="room-messages"),
    path("healthz", views.healthz, name="healthz"),
    path("admin/", admin.site.urls),
]
