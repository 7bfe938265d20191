from django.db import migrations


def install(apps, schema_editor):
    from mdm_portal.schedule import install_schedule
    from webhooks.schedule import SCHEDULE

    install_schedule(apps, SCHEDULE)


class Migration(migrations.Migration):
    dependencies = [
        ("webhooks", "0001_initial"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(install, migrations.RunPython.noop)]
