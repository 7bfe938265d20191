"""mdm_push pushes now and prints each result."""

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from tests.apns_fixtures import apns_fixture  # noqa: F401

pytestmark = pytest.mark.django_db


def run(*args) -> str:
    out = StringIO()
    call_command("mdm_push", *args, stdout=out)
    return out.getvalue()


def test_push_named_devices_and_all(apns, make_device):
    enrolled = make_device(topic=apns.push_certificate.topic)
    enrolled.enroll()
    out = run(enrolled.udid)
    assert f"{enrolled.udid}: 200" in out
    assert "1 ok of 1 sent" in out
    assert apns.requests[-1].path == f"/3/device/{enrolled.token.hex()}"
    assert "1 ok of 1 sent" in run("--all")


def test_refusals(db):
    with pytest.raises(CommandError, match="unknown device"):
        run("NOPE")
    with pytest.raises(CommandError, match="UDIDs\\) or --all"):
        run()


def test_no_push_certificate_means_no_push(enrolled):
    out = run(enrolled.udid)
    assert "no push sent: no push certificate" in out
