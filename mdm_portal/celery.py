"""The Celery app: Redis as broker in production (REDIS_URL), else an embedded SQLite broker."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mdm_portal.settings")

app = Celery("mdm_portal")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
