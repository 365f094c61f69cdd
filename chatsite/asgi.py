"""The ASGI application daphne serves: Django for HTTP, the room consumer for websockets."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatsite.settings")
# Django must be set up before anything imports models.
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from consumers import startup  # noqa: E402
from consumers.auth import AuthMiddlewareStack  # noqa: E402
from consumers.origin import SameOriginValidator  # noqa: E402
from consumers.routing import websocket_urlpatterns  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        # An Origin other than the request's own (scheme, host, port) is refused at the
        # handshake (HTTP 403): consumers/origin.py.
        "websocket": SameOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
    }
)

# This server process: its state, reply runner, presence and loops (started with daphne's reactor).
process = startup.bring_up()
