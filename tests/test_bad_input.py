"""Bad input gets a clear 4xx, is logged, and changes nothing."""

import plistlib

import pytest

from commands.models import QueuedCommand
from devices.models import Device

pytestmark = pytest.mark.django_db


def snapshot():
    return (
        list(Device.objects.values().order_by("id")),
        list(QueuedCommand.objects.values("id", "status", "sent_count").order_by("id")),
    )


@pytest.mark.parametrize("path", ["/mdm/checkin", "/mdm/connect"])
@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b"this is not a plist", b"not a property list"),
        (b"<?xml version='1.0'?><plist><dict><key>x</key>", b"not a property list"),
        (plistlib.dumps(["an", "array"]), b"not a dictionary"),
        (plistlib.dumps("a string"), b"not a dictionary"),
        (b"", b"empty body"),
    ],
)
def test_bodies_that_are_not_plist_dicts_are_400(enrolled, path, body, problem, caplog):
    before = snapshot()
    response = enrolled.put_raw(path, body)
    assert response.status == 400
    assert problem in response.body
    assert snapshot() == before
    assert any("refused with 400" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize(
    ("report", "problem"),
    [
        ({}, b"required key Status"),
        ({"Status": 1}, b"Status must be <string>"),
        ({"Status": "Done"}, b"unknown Status"),
        ({"Status": "Acknowledged"}, b"must carry its CommandUUID"),
        ({"Status": "NotNow"}, b"must carry its CommandUUID"),
        ({"Status": "Acknowledged", "CommandUUID": 7}, b"CommandUUID must be <string>"),
        ({"Status": "Error", "CommandUUID": "x", "ErrorChain": "oops"}, b"ErrorChain"),
    ],
)
def test_malformed_command_reports_are_400(enrolled, report, problem):
    head = enrolled.idle().plist()["CommandUUID"]
    before = snapshot()
    response = enrolled.put("/mdm/connect", {"UDID": enrolled.udid, **report})
    assert response.status == 400
    assert problem in response.body
    assert snapshot() == before
    assert head


def test_report_without_udid_is_400(enrolled):
    response = enrolled.put("/mdm/connect", {"Status": "Idle"})
    assert response.status == 400
    response = enrolled.put("/mdm/connect", {"Status": "Idle", "UDID": 12})
    assert response.status == 400


@pytest.mark.parametrize(
    ("path", "setting"),
    [
        ("/mdm/checkin", "MDM_CHECKIN_MAX_BYTES"),
        ("/mdm/connect", "MDM_CONNECT_MAX_BYTES"),
    ],
)
def test_oversized_body_is_413(settings, enrolled, path, setting):
    setattr(settings, setting, 2048)
    before = snapshot()
    message = {"UDID": enrolled.udid, "Status": "Idle", "Padding": "x" * 4096}
    if path == "/mdm/checkin":
        message = {"MessageType": "CheckOut", "UDID": enrolled.udid, "Topic": "t" * 4096}
    response = enrolled.put(path, message)
    assert response.status == 413
    assert snapshot() == before


def test_server_url_allows_bigger_bodies_than_check_in(settings):
    assert settings.MDM_CONNECT_MAX_BYTES > settings.MDM_CHECKIN_MAX_BYTES


@pytest.mark.parametrize("path", ["/mdm/checkin", "/mdm/connect"])
@pytest.mark.parametrize("method", ["get", "post", "delete"])
def test_wrong_method_is_405(client, ca, path, method):
    response = getattr(client, method)(path)
    assert response.status_code == 405
    assert response["Allow"] == "PUT"


def test_refusals_are_plain_text_not_html(enrolled):
    response = enrolled.put_raw("/mdm/connect", b"garbage")
    assert response.body.decode().startswith("the body is not a property list")
