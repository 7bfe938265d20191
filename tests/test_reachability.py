"""Which devices can be pushed: the sweeps' filter and the reason each push gives agree."""

import uuid
from datetime import UTC, datetime

import pytest

from commands.apns import push_devices
from devices import reachability
from devices.models import Device

pytestmark = pytest.mark.django_db

A_DATE = datetime(2026, 3, 4, 5, 6, tzinfo=UTC)

# For each condition, the fields that make a device fail that one condition alone, and the
# reason that device must be given.
FAILING = {
    "managed": [
        ({"state": Device.State.PENDING}, "device is pending"),
        ({"state": Device.State.CHECKED_OUT}, "device is checked_out"),
    ],
    "token_update": [({"enrolled_at": None}, "no TokenUpdate yet")],
    "token_valid": [
        ({"token_invalid_at": A_DATE}, "push token invalid since 2026-03-04 05:06 UTC")
    ],
    "token_and_magic": [
        ({"push_token": ""}, "no push token or PushMagic"),
        ({"push_magic": ""}, "no push token or PushMagic"),
    ],
}
CASES = [(name, fields, why) for name, cases in FAILING.items() for fields, why in cases]


def new_device(**fields) -> Device:
    pushable = {
        "state": Device.State.ENROLLED,
        "enrolled_at": A_DATE,
        "push_token": uuid.uuid4().hex + uuid.uuid4().hex,
        "push_magic": str(uuid.uuid4()).upper(),
    }
    return Device.objects.create(udid=f"UDID-{uuid.uuid4()}", **{**pushable, **fields})


def verdict(target: Device) -> tuple[list[str], str]:
    """The conditions `target` fails, by the database, and the reason it is given."""
    ((row, why),) = reachability.with_reasons(Device.objects.filter(pk=target.pk), "id")
    assert row["id"] == target.pk
    return [c.name for c in reachability.CONDITIONS if not row[c.column]], why


def test_every_condition_has_a_case_here():
    assert list(FAILING) == [condition.name for condition in reachability.CONDITIONS]


def test_a_device_meeting_every_condition_is_pushable_with_no_reason():
    ready = new_device()
    assert list(reachability.pushable()) == [ready]
    assert verdict(ready) == ([], "")


@pytest.mark.parametrize(("condition", "fields", "why"), CASES, ids=[c[0] for c in CASES])
def test_a_device_failing_one_condition_is_filtered_out_with_its_reason(condition, fields, why):
    ready, failing = new_device(), new_device(**fields)
    assert list(reachability.pushable()) == [ready]
    assert verdict(failing) == ([condition], why)


def test_push_devices_skips_exactly_what_the_sweeps_leave_out():
    """No push certificate is needed to see the skipped ones: they never reach APNs."""
    fleet = [new_device(**fields) for _, fields, _ in CASES] + [new_device(), new_device()]

    summary = push_devices([d.pk for d in fleet], "manual")

    reachable = {d.udid for d in reachability.pushable()}
    skipped = {udid: why for udid, status, why in summary.results if why.startswith("skipped: ")}
    assert set(skipped) == {d.udid for d in fleet} - reachable
    assert [skipped[d.udid] for d in fleet[: len(CASES)]] == [f"skipped: {c[2]}" for c in CASES]
    assert summary.skipped == len(CASES)


def test_tokens_are_hex_at_the_source(device):
    """Why no condition checks the token is hexadecimal: the one writer stores Token.hex() of
    a key that must be data; a TokenUpdate whose Token is anything else changes nothing."""
    device.authenticate()
    assert device.token_update(Token="not hex, a string").status == 400
    assert Device.objects.get(udid=device.udid).push_token == ""
    assert device.token_update().status == 200
    assert Device.objects.get(udid=device.udid).push_token == device.token.hex()
