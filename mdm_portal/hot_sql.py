"""Statements of the device hot path: fixed SQL text, prepared once per connection.

The server-URL loop runs the same few statements for every request of every device. Building
them with the ORM costs more than running them, so they are written once as SQL and, on
PostgreSQL, sent as server-side prepared statements (psycopg plans each one once per
connection, then only binds parameters). Elsewhere (SQLite) Django's own cursor runs them.

Errors come out as Django's database exceptions (the 503 middleware and transactions see
them as for any other query), and the statements appear in Django's query log when it is on
(tests count statements with CaptureQueriesContext).
"""

import time
from collections.abc import Sequence

from django.db import connection


def _logged(sql: str, params: Sequence, started: float) -> None:
    if connection.queries_logged:
        connection.queries_log.append(
            {"sql": f"{sql} -- {list(params)!r}", "time": f"{time.monotonic() - started:.3f}"}
        )


def fetch(sql: str, params: Sequence = ()) -> list[tuple]:
    """Run one statement (`%s` placeholders) and return its rows (RETURNING rows included)."""
    if connection.vendor == "postgresql":
        started = time.monotonic()
        rows = _fetch_prepared(sql, params)
        _logged(sql, params, started)  # Django's cursor, below, logs its own
        return rows
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall() if cursor.description else []


def _fetch_prepared(sql: str, params: Sequence) -> list[tuple]:
    import psycopg  # noqa: PLC0415 - only on PostgreSQL

    connection.ensure_connection()
    # A server-binding cursor on Django's own connection (Django's cursors bind on the client,
    # which cannot prepare): the same transaction, and a plan kept per connection.
    with connection.wrap_database_errors, psycopg.Cursor(connection.connection) as cursor:
        cursor.execute(sql, params, prepare=True)
        return cursor.fetchall() if cursor.description else []


_converters: dict[tuple, list] = {}


def instance(model, field_names: Sequence[str], values: Sequence):
    """A model instance from a row of `field_names` (attnames), the others deferred: values
    are converted as the ORM would (SQLite returns dates as text), and saving it with
    update_fields writes only those."""
    key = (model, tuple(field_names), connection.vendor)
    converters = _converters.get(key)
    if converters is None:
        from django.db.models.expressions import Col  # noqa: PLC0415

        converters = []
        for name in field_names:
            field = model._meta.get_field(name)  # a name or an attname ("device_id")
            column = Col(model._meta.db_table, field)
            functions = connection.ops.get_db_converters(column)
            converters.append((column, functions + field.get_db_converters(connection)))
        _converters[key] = converters
    converted = []
    for value, (column, functions) in zip(values, converters, strict=True):
        for function in functions:
            value = function(value, column, connection)
        converted.append(value)
    # from_db takes a partial row in the model's field order.
    by_name = dict(zip(field_names, converted, strict=True))
    names = [f.attname for f in model._meta.concrete_fields if f.attname in by_name]
    return model.from_db(connection.alias, names, [by_name[name] for name in names])
