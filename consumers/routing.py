"""Websocket URLs."""

from django.urls import re_path

from .room import RoomConsumer

# Any slug reaches the consumer: a malformed one is closed with 4404 (or 4401) after accept,
# which browsers can read, instead of a failed handshake they see only as 1006.
websocket_urlpatterns = [
    re_path(r"^ws/rooms/(?P<slug>[^/]+)/$", RoomConsumer.as_asgi()),
]
