"""Usernames that cannot pass for someone else's (issue 12): `аlice` with a Cyrillic `а` is
not `alice`. A name is NFKC-normalised, may not mix scripts (Han with kana or Hangul excepted),
and may not be written wholly in another script with letters that all look Latin (`аре`).
"""

from __future__ import annotations

import unicodedata
from typing import TYPE_CHECKING, Any

from confusable_homoglyphs import categories, confusables
from django.contrib.auth.forms import UserCreationForm
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError

# Scripts that real names mix: Japanese (Han, Hiragana, Katakana) and Korean (Hangul, Han).
_NEUTRAL = {"COMMON", "INHERITED"}
_MIXES_ALLOWED = ({"HAN", "HIRAGANA", "KATAKANA"}, {"HAN", "HANGUL"})


def _scripts(name: str) -> set[str]:
    return set(categories.unique_aliases(name)) - _NEUTRAL


def _looks_latin(char: str) -> bool:
    """Whether a non-ASCII letter has a Latin look-alike (Cyrillic `а`, Greek `ο`, …)."""
    found = confusables.is_confusable(char, preferred_aliases=["latin"], greedy=True)
    return bool(found)


def username_problem(name: str) -> str | None:
    """Why `name` may not be a username, or None when it may."""
    if unicodedata.normalize("NFKC", name) != name:
        return "Use the plain form of these characters."
    scripts = _scripts(name)
    if len(scripts) > 1 and not any(scripts <= mix for mix in _MIXES_ALLOWED):
        return "Use letters of one alphabet: mixing them makes names that look like others."
    if scripts and scripts != {"LATIN"}:
        letters = [c for c in name if c.isalpha()]
        if letters and all(_looks_latin(c) for c in letters):
            return "This name would look like a name in Latin letters: choose another."
    return None


def validate_username(name: str) -> None:
    """A Django validator: ValidationError for a look-alike name."""
    problem = username_problem(name)
    if problem is not None:
        raise ValidationError(problem, code="confusable_username")


if TYPE_CHECKING:
    _Form = UserCreationForm[User]
else:
    _Form = UserCreationForm


class SignupForm(_Form):
    """Django's sign-up form (NFKC-normalised usernames, unique regardless of case), with
    look-alike usernames refused."""

    def clean_username(self) -> Any:
        name = super().clean_username()
        if name:
            validate_username(name)
        return name
