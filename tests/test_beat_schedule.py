"""The beat schedule lives in the database: defaults installed once, admins' changes kept."""

import pytest
from django.apps import apps as django_apps
from django_celery_beat.models import IntervalSchedule, PeriodicTask
from django_celery_beat.schedulers import DatabaseScheduler

from mdm_portal.celery import app
from mdm_portal.schedule import DEFAULT_SCHEDULE, install_default_schedule

pytestmark = pytest.mark.django_db


def test_every_default_entry_is_in_the_database_and_its_task_exists():
    tasks = {t.name: t for t in PeriodicTask.objects.all()}
    app.loader.import_default_modules()
    for name, (task, seconds) in DEFAULT_SCHEDULE.items():
        assert tasks[name].task == task
        assert tasks[name].interval.every == seconds
        assert task in app.tasks, f"{task} is not a registered Celery task"


@pytest.mark.django_db(transaction=True)
def test_an_admins_change_survives_beat_starting():
    # The entries come from a migration, which a transactional test run before this one (a
    # live server's) flushed away: put back what is missing, as the migration does.
    install_default_schedule(django_apps)
    entry = PeriodicTask.objects.get(name="inactivity sweep")
    entry.interval, _ = IntervalSchedule.objects.get_or_create(every=600, period="seconds")
    entry.enabled = False
    entry.save()
    scheduler = DatabaseScheduler(app=app, lazy=False)
    scheduler.setup_schedule()
    entry.refresh_from_db()
    assert entry.interval.every == 600 and entry.enabled is False
    assert "inactivity sweep" not in scheduler.schedule  # disabled entries are not run
    assert "push due devices" in scheduler.schedule


def test_the_webhook_deliveries_are_scheduled_by_their_own_migration():
    from webhooks.schedule import SCHEDULE

    app.loader.import_default_modules()
    for name, (task, seconds) in SCHEDULE.items():
        entry = PeriodicTask.objects.get(name=name)
        assert (entry.task, entry.interval.every, entry.enabled) == (task, seconds, True)
        assert task in app.tasks, f"{task} is not a registered Celery task"
