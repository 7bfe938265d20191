"""Filling a benchmark's throwaway database with devices: one INSERT ... SELECT over
generate_series (PostgreSQL), whatever the count."""

from django.db import connection


def insert_devices(count: int, generated: dict[str, str], now) -> None:
    """Insert `count` devices; `generated` maps a column (attname) to its SQL expression over
    `n` (1..count), where each `%s` stands for `now`. Other columns get their defaults."""
    from devices.models import Device

    columns, values, params = [], [], []
    for field in Device._meta.concrete_fields:
        if field.primary_key:
            continue
        columns.append(field.column)
        if field.attname in generated:
            values.append(generated[field.attname])
            params += [now] * generated[field.attname].count("%s")
        else:
            values.append("%s")
            value = field.get_default() if field.has_default() or not field.null else None
            params.append(now if field.name == "created_at" else value)
    sql = (
        f"INSERT INTO {Device._meta.db_table} ({', '.join(columns)}) "  # noqa: S608
        f"SELECT {', '.join(values)} FROM generate_series(1, %s) AS n"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [*params, count])
