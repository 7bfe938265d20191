"""Leave room on each page of the device table (PostgreSQL), so the sweeps' and the polls'
updates can stay on the same page (HOT updates) instead of rewriting every index."""

from django.db import migrations


def set_fillfactor(apps, schema_editor, value=70):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"ALTER TABLE devices_device SET (fillfactor = {int(value)})")


def reset_fillfactor(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("ALTER TABLE devices_device RESET (fillfactor)")


class Migration(migrations.Migration):
    dependencies = [("devices", "0004_device_inactive_since_device_last_push_at_and_more")]

    operations = [migrations.RunPython(set_fillfactor, reset_fillfactor)]
