"""Indexes for the device list (/devices/) at fleet scale: one per sort, each ending with the
primary key (the single-column indexes on serial_number and platform become their prefixes),
and on PostgreSQL a trigram index for the search box (pg_trgm; skipped, with a warning, where
the extension cannot be created: the search then scans the table)."""

import logging

from django.db import migrations, models, transaction

log = logging.getLogger(__name__)

SEARCH_INDEX = "device_search_trgm"
SEARCHED = ("device_name", "serial_number", "udid", "model_name", "model", "product_name")


def search_index_sql(schema_editor, model) -> str:
    """A GIN trigram index on UPPER() of devices.selection.search_text(), compiled by Django
    so it is the very expression icontains compares (repeated here so that the migration
    never changes meaning). Written out because Django puts an expression's operator class
    inside the expression's parentheses, which PostgreSQL refuses."""
    from django.db.models import Value
    from django.db.models.functions import Concat, Upper
    from django.db.models.sql import Query

    parts = []
    for name in SEARCHED:
        parts += [name, Value("\x1f")]
    query = Query(model, alias_cols=False)
    compiler = query.get_compiler(connection=schema_editor.connection)
    expression = Upper(Concat(*parts[:-1])).resolve_expression(query)
    sql, params = expression.as_sql(compiler, schema_editor.connection)
    sql = sql % tuple(schema_editor.quote_value(param) for param in params)
    table = schema_editor.quote_name(model._meta.db_table)
    return f"CREATE INDEX {SEARCH_INDEX} ON {table} USING gin (({sql}) gin_trgm_ops)"


def add_search_index(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    try:
        with transaction.atomic(using=schema_editor.connection.alias):
            schema_editor.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    except Exception as exc:  # any refusal: the list works without the index
        log.warning("pg_trgm is not available (%s): the device search scans the table", exc)
        return
    schema_editor.execute(search_index_sql(schema_editor, apps.get_model("devices", "Device")))


def drop_search_index(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"DROP INDEX IF EXISTS {SEARCH_INDEX}")


class Migration(migrations.Migration):
    dependencies = [
        ("devices", "0009_daily_activity"),
    ]

    operations = [
        migrations.AlterField(
            model_name="device",
            name="platform",
            field=models.CharField(blank=True, max_length=16),
        ),
        migrations.AlterField(
            model_name="device",
            name="serial_number",
            field=models.CharField(blank=True, max_length=64),
        ),
        migrations.AddIndex(
            model_name="device",
            index=models.Index(fields=["device_name", "id"], name="device_by_name"),
        ),
        migrations.AddIndex(
            model_name="device",
            index=models.Index(fields=["serial_number", "id"], name="device_by_serial"),
        ),
        migrations.AddIndex(
            model_name="device",
            index=models.Index(fields=["model_name", "product_name", "id"], name="device_by_model"),
        ),
        migrations.AddIndex(
            model_name="device",
            index=models.Index(fields=["platform", "os_version", "id"], name="device_by_os"),
        ),
        migrations.AddIndex(
            model_name="device",
            index=models.Index(fields=["state", "id"], name="device_by_state"),
        ),
        migrations.AddIndex(
            model_name="device",
            index=models.Index(fields=["last_seen_at", "id"], name="device_by_last_seen"),
        ),
        migrations.RunPython(add_search_index, drop_search_index),
    ]
