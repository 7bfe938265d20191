"""The DEP device sync on the celery beat schedule: the entry is installed by a migration, its
task syncs the servers that are due, and one server's failure never stops another."""

import pytest
from django_celery_beat.models import PeriodicTask

from enrollment.dep_client import DepClient
from enrollment.dep_models import DepDevice, DepServer
from enrollment.schedule import SCHEDULE
from enrollment.tasks import sync_dep_server, sync_dep_servers
from mdm_portal.celery import app
from mdm_portal.models import AuditEntry
from tests.dep_support import make_server

pytestmark = pytest.mark.django_db


def test_the_dep_sync_is_scheduled_by_its_own_migration():
    app.loader.import_default_modules()
    for name, (task, seconds) in SCHEDULE.items():
        entry = PeriodicTask.objects.get(name=name)
        assert (entry.task, entry.interval.every, entry.enabled) == (task, seconds, True)
        assert task in app.tasks, f"{task} is not a registered Celery task"


def test_the_task_syncs_due_servers_and_one_failure_stops_no_other(dep, settings, monkeypatch):
    settings.MDM_DEP_SYNC_MINUTES = 30
    refused = make_server(dep, "a-refused", consumer_secret="revoked")
    crashing = make_server(dep, "b-crashing")
    fine = make_server(dep, "c-fine")
    make_server(None, "d-no-token")
    dep.add_device("C01")
    fetch = DepClient.fetch_devices

    def crash_for_one(self, *args, **kwargs):
        if self.server.name == "b-crashing":
            raise RuntimeError("a bug")
        return fetch(self, *args, **kwargs)

    monkeypatch.setattr(DepClient, "fetch_devices", crash_for_one)
    outcomes = {o["server"]: o for o in sync_dep_servers()}
    assert set(outcomes) == {"a-refused", "b-crashing", "c-fine"}  # no token: not due
    assert not outcomes["a-refused"]["ok"] and "401" in outcomes["a-refused"]["message"]
    assert not outcomes["b-crashing"]["ok"] and "RuntimeError" in outcomes["b-crashing"]["message"]
    assert outcomes["c-fine"]["ok"] and outcomes["c-fine"]["added"] == 1
    assert DepDevice.objects.get(serial_number="C01").server == fine
    for server in (refused, crashing):
        server.refresh_from_db()
        assert (server.last_sync_ok, server.failed_syncs) == (False, 1)
    assert sync_dep_servers() == []  # nobody is due again before MDM_DEP_SYNC_MINUTES
    DepServer.objects.update(last_sync_at=None)
    assert len(sync_dep_servers()) == 3  # the failed ones are tried again at their next turn


def test_a_sync_on_demand_runs_as_a_task_too(dep, dep_server):
    dep.add_device("C01")
    outcome = sync_dep_server.apply(args=[dep_server.pk, "alice"]).get()
    assert outcome["ok"] and outcome["added"] == 1
    assert AuditEntry.objects.get(action="dep.sync").actor == "alice"
    assert sync_dep_server.apply(args=[dep_server.pk + 1000]).get() is None
