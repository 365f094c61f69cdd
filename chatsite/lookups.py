"""`field__any_of=values`: `IN (...)` with the values as one array parameter on PostgreSQL.

psycopg binds parameters on the client, and parses a query's placeholders each time the query
text is new: `session_key__in` with thousands of keys made a new, long query at every call, and
parsing it was half of an idle process's CPU (docs/benchmarks.md). `= ANY(%s)` keeps the query
text the same whatever the number of values. Other databases get the plain `IN`.
"""

from __future__ import annotations

from typing import Any

from django.db.models import Field
from django.db.models.lookups import In


@Field.register_lookup
class AnyOf(In):
    lookup_name = "any_of"

    def as_postgresql(self, compiler: Any, connection: Any) -> tuple[str, list[Any]]:
        lhs, lhs_params = self.process_lhs(compiler, connection)
        values = [v for v in self.rhs if v is not None]
        return f"{lhs} = ANY(%s)", [*lhs_params, values]
