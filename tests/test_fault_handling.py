"""The pieces behind the fault tests, without services: the broker's circuit breaker and a
webhook trigger on a Redis cache that fails (the real outage: tests/test_fault_broker.py)."""

import logging
from unittest import mock

import pytest

from mdm_portal import broker


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
