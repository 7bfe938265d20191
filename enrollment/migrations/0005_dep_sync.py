from django.db import migrations, models


def install(apps, schema_editor):
    from enrollment.schedule import SCHEDULE
    from mdm_portal.schedule import install_schedule

    install_schedule(apps, SCHEDULE)


class Migration(migrations.Migration):
    dependencies = [
        ("enrollment", "0004_dep"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [
        # A fetch cut short goes on fetching at the next run (enrollment/dep_sync.py).
        migrations.AddField(
            model_name="depserver",
            name="fetch_more",
            field=models.BooleanField(default=False),
        ),
        # The DEP device sync beat entry (enrollment/schedule.py).
        migrations.RunPython(install, migrations.RunPython.noop),
    ]
