from django.apps import AppConfig


class RoomsConfig(AppConfig):
    """Rooms, their messages and the rules of who may enter."""

    name = "chatsite.rooms"
    label = "rooms"
    default_auto_field = "django.db.models.BigAutoField"
