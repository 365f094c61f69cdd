"""`manage.py create_first_admin`: the first staff account of a fresh deployment, once.

Heroku's app.json runs it as `postdeploy`, with the username, password and e-mail the deployer
typed into the Heroku button's form (`DJANGO_SUPERUSER_USERNAME`, `DJANGO_SUPERUSER_PASSWORD`,
`DJANGO_SUPERUSER_EMAIL`, the names Django's own `createsuperuser --noinput` reads). It is safe
to run again: once any staff account exists it does nothing. It never promotes an existing
account (someone may have signed up under that name) and never prints the password.
"""

from __future__ import annotations

import os
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

USERNAME = "DJANGO_SUPERUSER_USERNAME"
PASSWORD = "DJANGO_SUPERUSER_PASSWORD"
EMAIL = "DJANGO_SUPERUSER_EMAIL"
LATER = (
    "create one later with `heroku run python manage.py createsuperuser` "
    f"(or set {USERNAME} and {PASSWORD} and run `python manage.py create_first_admin`)"
)


class Command(BaseCommand):
    help = "Create the first staff account from DJANGO_SUPERUSER_* unless one exists already."

    def handle(self, *args: Any, **options: Any) -> None:
        users = get_user_model()
        staff = users.objects.filter(is_staff=True).order_by("pk").first()
        if staff is not None:
            self.stdout.write(
                f"A staff account exists already ({staff.get_username()}): nothing to do."
            )
            return
        username = os.environ.get(USERNAME, "").strip()
        password = os.environ.get(PASSWORD, "")
        email = os.environ.get(EMAIL, "").strip()
        if not username or not password:
            self.stdout.write(
                f"No staff account yet and {USERNAME}/{PASSWORD} are not set: {LATER}."
            )
            return
        if users.objects.filter(**{users.USERNAME_FIELD: username}).exists():
            raise CommandError(
                f"An account named {username!r} exists and is not staff; it is not promoted. "
                f"Choose another {USERNAME}, or {LATER}."
            )
        candidate = users(**{users.USERNAME_FIELD: username, "email": email})
        try:
            validate_password(password, candidate)
        except ValidationError as exc:
            raise CommandError(f"{PASSWORD} is too weak: {' '.join(exc.messages)}") from None
        users.objects.create_superuser(username=username, email=email, password=password)
        self.stdout.write(
            f"Created the staff account {username!r}. Sign in at /accounts/login/; "
            f"you may now remove {PASSWORD} (heroku config:unset {PASSWORD})."
        )
