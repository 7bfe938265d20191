from django.db import migrations


def install(apps, schema_editor):
    from mdm_portal.schedule import install_default_schedule

    install_default_schedule(apps)


class Migration(migrations.Migration):
    dependencies = [
        ("mdm_portal", "0002_alert"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(install, migrations.RunPython.noop)]
