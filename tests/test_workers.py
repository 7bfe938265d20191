"""A real Celery worker runs the queue's retention task: on Redis, and on the embedded broker."""

import os
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
from celery import Celery
from django.conf import settings
from django.db import connection
from django.utils import timezone
from django_celery_results.models import TaskResult

from commands.models import ArchivedCommand, QueuedCommand, Status
from commands.queue import enqueue
from devices.models import Device

ROOT = Path(__file__).resolve().parent.parent
TASK = "commands.tasks.archive_answered_commands"


def database_url() -> str:
    db = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{db['NAME']}"
    return f"postgres://{db['USER']}:{db['PASSWORD']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"


def start_worker(
    broker_env: dict[str, str], data_dir: Path, log_path: Path | None = None, **extra_env: str
) -> subprocess.Popen:
    """A real Celery worker process on the test database, with the broker `broker_env` names.

    Without REDIS_URL the worker uses the embedded broker in its MDM_DATA_DIR (`data_dir`).
    """
    env = {
        **os.environ,
        **broker_env,
        **extra_env,
        "DATABASE_URL": database_url(),
        "SECRET_KEY": settings.SECRET_KEY,
        "MDM_SECRETS_KEY": settings.MDM_SECRETS_KEY,
        "MDM_DATA_DIR": str(data_dir),
    }
    if "REDIS_URL" not in broker_env:
        env.pop("REDIS_URL", None)
    command = [sys.executable, "-m", "celery", "-A", "mdm_portal", "worker", "--pool=solo"]
    command += ["--without-mingle", "--without-gossip", "--without-heartbeat", "-l", "info"]
    log = open(log_path or data_dir / "worker.log", "wb")  # noqa: SIM115 - closed with the process
    return subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)


def old_answered_rows(count: int) -> None:
    Device.objects.bulk_create(
        Device(udid=f"W-{i}", state=Device.State.ENROLLED) for i in range(count)
    )
    enqueue(Device.objects.all(), "ProfileList", queued_by="tests")
    long_ago = timezone.now() - timedelta(days=settings.MDM_QUEUE_RETENTION_DAYS + 1)
    QueuedCommand.objects.update(status=Status.ACKNOWLEDGED, answered_at=long_ago)


def run_task_through_worker(broker_url: str, broker_env: dict, tmp_path: Path) -> None:
    old_answered_rows(25)
    worker = start_worker(broker_env, tmp_path)
    try:
        # Not the current app: shared tasks queued later in this process (other tests) would
        # go to this test's broker.
        client = Celery(broker=broker_url, set_as_current=False)
        sent = client.send_task(TASK)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            done = TaskResult.objects.filter(task_id=sent.id, status="SUCCESS").first()
            if done is not None:
                break
            assert worker.poll() is None, (tmp_path / "worker.log").read_text()[-3000:]
            time.sleep(0.25)
        else:
            pytest.fail(
                "the worker did not run the task:\n" + (tmp_path / "worker.log").read_text()[-3000:]
            )
    finally:
        worker.terminate()
        worker.wait(timeout=30)
    assert ArchivedCommand.objects.count() == 25
    assert not QueuedCommand.objects.exists()
    assert '"archived": 25' in done.result


@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
def test_worker_on_redis_archives_answered_commands(tmp_path):
    run_task_through_worker(settings.REDIS_URL, {"REDIS_URL": settings.REDIS_URL}, tmp_path)


@pytest.mark.django_db(transaction=True)
def test_worker_on_the_embedded_broker_archives_answered_commands(tmp_path):
    # With no REDIS_URL the worker uses the embedded broker in its data folder (MDM_DATA_DIR).
    broker = f"sqla+sqlite:///{tmp_path / 'celery-broker.sqlite3'}"
    run_task_through_worker(broker, {}, tmp_path)
    assert (tmp_path / "celery-broker.sqlite3").stat().st_size > 0
