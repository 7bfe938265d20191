"""The default celery beat schedule, installed once into the database (django-celery-beat).

After that the database is the truth: an admin changes an interval or disables a task in the
admin site, and neither a restart nor an upgrade puts the default back.
"""

DEFAULT_SCHEDULE: dict[str, tuple[str, int]] = {
    # name: (task, every N seconds)
    "push due devices": ("commands.tasks.push_due_devices", 60),
    "archive answered commands": ("commands.tasks.archive_answered_commands", 3600),
    "expire unanswered commands": ("commands.tasks.expire_commands", 3600),
    "inactivity sweep": ("commands.tasks.inactivity_sweep", 3600),
    "NotNow sweep": ("commands.tasks.not_now_sweep", 900),
    "certificate expiry sweep": ("commands.tasks.certificate_expiry_sweep", 6 * 3600),
    "renew device identities": ("enrollment.tasks.renew_device_identities", 6 * 3600),
}


def install_default_schedule(apps) -> int:
    """Create the default entries that are missing; return how many were created."""
    return install_schedule(apps, DEFAULT_SCHEDULE)


def install_schedule(apps, entries: dict[str, tuple[str, int]]) -> int:
    """Create the `entries` (name: (task, every N seconds)) that are missing, from a migration
    (an app that comes later installs its own entries with its own migration)."""
    interval_model = apps.get_model("django_celery_beat", "IntervalSchedule")
    task_model = apps.get_model("django_celery_beat", "PeriodicTask")
    created = 0
    for name, (task, seconds) in entries.items():
        if task_model.objects.filter(name=name).exists():
            continue
        every, _ = interval_model.objects.get_or_create(every=seconds, period="seconds")
        task_model.objects.create(name=name, task=task, interval=every, enabled=True)
        created += 1
    return created
