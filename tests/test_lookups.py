"""`any_of` (chatsite/lookups.py): the rows of `__in`, in one query text whatever the count."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.db import connection

import chatsite.lookups  # noqa: F401  (registers `any_of`)

pytestmark = pytest.mark.django_db


def test_any_of_finds_what_in_finds() -> None:
    users = [User.objects.create_user(f"user{i}") for i in range(6)]
    wanted = {users[1].pk, users[4].pk, 999_999}
    assert set(User.objects.filter(pk__any_of=wanted)) == set(User.objects.filter(pk__in=wanted))
    names = {"user2", "user3", "nobody"}
    found = User.objects.filter(username__any_of=names).values_list("username", flat=True)
    assert sorted(found) == ["user2", "user3"]
    assert list(User.objects.filter(pk__any_of=set())) == []


def test_on_postgresql_the_query_text_does_not_grow_with_the_values() -> None:
    if connection.vendor != "postgresql":
        pytest.skip("the array form is PostgreSQL's; elsewhere `any_of` is `IN`")
    texts = []
    for count in (3, 3000):
        query = User.objects.filter(pk__any_of=set(range(count))).query
        sql, params = query.get_compiler(connection=connection).as_sql()
        texts.append(sql)
        assert len(params) == 1 and len(params[0]) == count  # one array parameter
    assert "= ANY(%s)" in texts[0] and texts[0] == texts[1]
