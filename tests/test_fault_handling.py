"""The pieces behind the fault tests, without services: the broker's circuit breaker, a webhook
trigger on a Redis cache that fails, and the 503 a database outage becomes (the real outages:
tests/test_fault_broker.py, test_fault_database.py, test_fault_worker.py)."""

import logging
from unittest import mock

import pytest
from django.db import IntegrityError, OperationalError
from django.test import Client

from mdm_portal import broker
from mdm_portal.roles import VIEWER


class FailingTask:
    def __init__(self):
        self.calls = []

    def apply_async(self, **options):
        self.calls.append(options)
        raise ConnectionRefusedError("broker down")


@pytest.fixture(autouse=True)
def no_pause():
    broker.resume()
    yield
    broker.resume()


def test_a_broker_failure_pauses_broker_calls_and_the_pause_ends(settings, caplog):
    settings.MDM_BROKER_PAUSE_SECONDS = 30
    task = FailingTask()
    with caplog.at_level(logging.WARNING, "mdm.broker"):
        assert broker.run_soon(task, "push", countdown=2) is False
        assert broker.run_soon(task, "push", countdown=2) is False  # paused: not even tried
    assert task.calls == [{"countdown": 2, "retry": False}]  # one attempt, no retries
    assert len(caplog.records) == 1 and "paused for 30s" in caplog.records[0].getMessage()
    broker.resume()
    broker.run_soon(task, "push")
    assert len(task.calls) == 2


def test_without_a_pause_every_call_tries_the_broker(settings):
    settings.MDM_BROKER_PAUSE_SECONDS = 0
    task = FailingTask()
    for _ in range(3):
        broker.run_soon(task, "push")
    assert len(task.calls) == 3


def test_a_webhook_trigger_on_a_failing_cache_does_not_fail_the_request(settings):
    from webhooks import outbox

    settings.MDM_BROKER_PAUSE_SECONDS = 30
    with mock.patch.object(outbox.cache, "add", side_effect=ConnectionError("redis down")):
        outbox.trigger_delivery()  # no exception: the periodic run delivers
    assert broker.paused()


@pytest.mark.django_db
def test_a_database_outage_in_a_view_is_a_503_with_retry_after_and_one_log_line(caplog):
    down = OperationalError('connection to server at "127.0.0.1" failed: Connection refused')
    with (
        mock.patch("certs.views._serve", side_effect=down),
        caplog.at_level(logging.INFO),
    ):
        response = Client().get("/scep", {"operation": "GetCACert"})
    assert response.status_code == 503
    assert response["Retry-After"].isdigit()
    assert response["Content-Type"].startswith("text/plain")
    records = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert [r.name for r in records] == ["mdm.unavailable"]  # not django.request as well
    assert "Connection refused" in records[0].getMessage() and not records[0].exc_info


@pytest.mark.django_db
def test_the_api_gets_its_503_as_json(api):
    down = OperationalError("the database system is shutting down")
    with mock.patch("rest_framework.views.APIView.initial", side_effect=down):
        response = api[VIEWER].get("/api/v1/devices/")
    assert response.status_code == 503
    assert response.json() == {"error": "the database is unavailable, retry later", "detail": None}
    assert response["Retry-After"].isdigit()


@pytest.mark.django_db
def test_other_database_errors_stay_500s():
    with mock.patch("certs.views._serve", side_effect=IntegrityError("a bug")):
        response = Client(raise_request_exception=False).get("/scep")
    assert response.status_code == 500
