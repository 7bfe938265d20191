"""The fleet simulator (simulator/, `mdm_simulate`) against a live portal over real HTTP:
enrollment through the profile and SCEP, the initial inventory, the summary's figures, the
state file, and clear failures."""

import json
import stat
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from certs.models import IssuedCertificate
from commands.catalog import NEVER_NOT_NOW
from commands.models import QueuedCommand, Status
from devices.models import Device, InventoryReport
from enrollment.links import device_enrollment
from enrollment.models import Enrollment
from simulator import SimulatorError, answers
from tests.api_support import token_client
from tests.simulator_support import in_thread, ready_to_enroll, statuses
from tests.ui_support import make_user

pytestmark = pytest.mark.django_db(transaction=True)

INITIAL = [
    "DeviceInformation",
    "SecurityInfo",
    "ProfileList",
    "InstalledApplicationList",
    "CertificateList",
]


def test_the_never_notnow_list_is_apples():
    assert answers.NEVER_NOT_NOW == NEVER_NOT_NOW


def test_devices_enroll_by_scep_and_answer_the_initial_inventory(portal):
    stats = portal.run(devices=5, concurrency=3)

    assert not stats.failed, stats.as_dict()
    devices = Device.objects.all()
    assert devices.count() == 5
    for device in devices:
        assert device.state == Device.State.ENROLLED
        assert device.push_token and device.push_magic and device.enrolled_at
        assert device_enrollment(device).token == portal.token
        assert statuses(device) == {kind: [Status.ACKNOWLEDGED] for kind in INITIAL}
        kinds = set(InventoryReport.objects.filter(device=device).values_list("kind", flat=True))
        assert kinds == set(INITIAL)
        assert device.serial_number.startswith("SIM") and device.os_version
    # Each identity came from SCEP (a PKCSReq with the profile's challenge), one per device,
    # with the profile's Subject, and is bound to its device.
    assert IssuedCertificate.objects.count() == 5
    for record in IssuedCertificate.objects.all():
        assert "MDM Identity" in record.subject and record.binding.device.udid

    # The summary counts what happened: per device a profile, GetCACaps + GetCACert +
    # PKIOperation, Authenticate + TokenUpdate, and six polls (Idle, then one answer per
    # command, the last one getting the empty 200).
    data = stats.as_dict()
    assert (data["devices"], data["enrolled"], data["enroll_failed"]) == (5, 5, 0)
    assert data["requests_by_kind"] == {"checkin": 10, "poll": 30, "profile": 5, "scep": 15}
    assert data["requests"] == 60 == len(stats.latencies)
    assert data["commands"] == {kind: {"Acknowledged": 5} for kind in sorted(INITIAL)}
    assert data["commands_answered"] == 25 and data["errors"] == {} and data["ok"]
    assert 0 < data["latency_ms"]["p50"] <= data["latency_ms"]["p95"] <= data["latency_ms"]["p99"]

    # The API and the UI show them.
    answer = token_client(make_user("viewer-sim", "viewer")).get("/api/v1/devices/")
    assert answer.status_code == 200
    listed = answer.json()
    rows = listed["results"] if isinstance(listed, dict) else listed
    assert {row["udid"] for row in rows} == set(devices.values_list("udid", flat=True))


def test_the_state_file_brings_back_the_same_devices(portal, tmp_path):
    state = tmp_path / "fleet.json"
    first = portal.run(devices=2, state=str(state))
    assert first.enrolled == 2 and not first.failed
    assert stat.S_IMODE(state.stat().st_mode) == 0o600
    udids = {d["udid"] for d in json.loads(state.read_text())["devices"]}
    assert udids == set(Device.objects.values_list("udid", flat=True))
    authenticated = {d.udid: d.authenticated_at for d in Device.objects.all()}

    device = Device.objects.first()
    QueuedCommand.objects.all().delete()
    from commands.queue import enqueue

    command = enqueue(device, "DeviceInformation", {"Queries": ["DeviceName"]})
    # One more device than before: the two come back as they were, one enrolls.
    second = portal.run(devices=3, state=str(state))
    assert not second.failed, second.as_dict()
    assert (second.restored, second.enrolled) == (2, 1)
    assert Device.objects.count() == 3
    for udid, when in authenticated.items():
        assert Device.objects.get(udid=udid).authenticated_at == when  # not enrolled again
    assert QueuedCommand.objects.get(command=command).status == Status.ACKNOWLEDGED
    assert len(json.loads(state.read_text())["devices"]) == 3


def test_a_device_the_portal_no_longer_manages_enrolls_again(portal, tmp_path):
    state = tmp_path / "fleet.json"
    portal.run(devices=1, state=str(state))
    device = Device.objects.get()
    Device.objects.filter(pk=device.pk).update(state=Device.State.CHECKED_OUT)

    again = portal.run(devices=1, state=str(state))

    assert not again.failed, again.as_dict()
    assert again.reenrolled == 1 and again.errors == {"poll: HTTP 401 (re-enrolled)": 1}
    device.refresh_from_db()
    assert device.state == Device.State.ENROLLED
    assert device.bindings.count() == 2  # a new identity from a new SCEP enrollment


def test_mdm_simulate_makes_its_enrollment_and_writes_the_summary(live_server, settings, tmp_path):
    # The portal fixture's setup without its enrollment: the command makes "Simulated devices".
    settings.MDM_PUBLIC_URL = live_server.url
    ready_to_enroll()
    out = StringIO()
    summary = tmp_path / "summary.json"
    in_thread(
        call_command,
        "mdm_simulate",
        "--url",
        live_server.url,
        "--devices",
        "2",
        "--concurrency",
        "2",
        "--no-progress",
        "--json",
        str(summary),
        stdout=out,
    )
    enrollment = Enrollment.objects.get(name="Simulated devices")
    assert enrollment.sign_message and enrollment.uses == 2
    assert {device_enrollment(d).pk for d in Device.objects.all()} == {enrollment.pk}
    text = out.getvalue()
    assert "devices: 2  enrolled: 2" in text and "result: OK" in text
    data = json.loads(summary.read_text())
    assert data["enrolled"] == 2 and data["commands_answered"] == 10 and data["ok"]

    # A second run reuses it.
    in_thread(
        call_command, "mdm_simulate", "--url", live_server.url, "--devices", "1", "--no-progress"
    )
    assert Enrollment.objects.filter(name="Simulated devices").count() == 1


def test_a_wrong_token_or_url_is_a_clear_error(portal):
    with pytest.raises(CommandError, match="no enrollment has this token"):
        in_thread(
            call_command,
            "mdm_simulate",
            "--url",
            portal.url,
            "--enrollment",
            "nope",
            "--no-progress",
        )
    with pytest.raises(SimulatorError, match="cannot reach the portal"):
        portal.__class__("http://127.0.0.1:9", portal.token).run(devices=1)
    with pytest.raises(CommandError, match="--url must be"):
        in_thread(
            call_command, "mdm_simulate", "--url", "ftp://x", "--enrollment", "t", "--no-progress"
        )
    assert Device.objects.count() == 0


def test_a_used_up_link_fails_the_run(portal):
    Enrollment.objects.filter(token=portal.token).update(max_uses=1)
    stats = portal.run(devices=2, concurrency=1)
    assert stats.failed and (stats.enrolled, stats.enroll_failed) == (1, 1)
    assert stats.errors == {"profile: HTTP 410": 1}
    # Now even the enrollment page says so: a clear error before any key is made.
    with pytest.raises(CommandError, match="turned off, expired or used up"):
        in_thread(
            call_command,
            "mdm_simulate",
            "--url",
            portal.url,
            "--enrollment",
            portal.token,
            "--no-progress",
        )
