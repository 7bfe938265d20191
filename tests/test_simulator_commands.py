"""The fleet simulator's answers to commands, NotNow, and the APNs listener that wakes its
devices, against a live portal over real HTTP."""

import json
import plistlib
import socket
import ssl
import threading
import time
from pathlib import Path

import httpx
import pytest

from commands.models import QueuedCommand, Status
from commands.queue import enqueue
from devices.models import Device, InstalledProfile, InventoryReport
from tests.simulator_support import in_thread, statuses
from tests.ui_support import make_user

pytestmark = pytest.mark.django_db(transaction=True)

WIFI = {
    "PayloadType": "Configuration",
    "PayloadVersion": 1,
    "PayloadIdentifier": "com.example.sim.wifi",
    "PayloadUUID": "0B7A7D37-6B37-4C06-9C1F-2E2B5C5C1D12",
    "PayloadDisplayName": "Office Wi-Fi",
    "PayloadContent": [
        {
            "PayloadType": "com.apple.wifi.managed",
            "PayloadVersion": 1,
            "PayloadIdentifier": "com.example.sim.wifi.payload",
            "PayloadUUID": "4E0D2C3B-9A1B-4D52-8E7A-6C6F2F4E1A23",
            "SSID_STR": "Office",
        }
    ],
}
QUERIES = ["DeviceName", "BatteryLevel", "WiFiMAC", "IsSupervised", "SerialNumber"]


def enrolled_fleet(portal, tmp_path, count: int = 1) -> str:
    state = tmp_path / "fleet.json"
    assert not portal.run(devices=count, state=str(state)).failed
    QueuedCommand.objects.all().delete()  # the initial inventory, answered
    return str(state)


def result(device: Device, command) -> dict:
    row = QueuedCommand.objects.get(device=device, command=command)
    return plistlib.loads(row.result) if row.result else {}


def test_every_kind_of_command_gets_a_plausible_answer(portal, tmp_path):
    state = enrolled_fleet(portal, tmp_path)
    device = Device.objects.get()
    admin = make_user("sim-admin", "admin")
    info = enqueue(device, "DeviceInformation", {"Queries": QUERIES})
    security = enqueue(device, "SecurityInfo")
    enqueue(device, "InstallProfile", {"Payload": plistlib.dumps(WIFI)})
    listed = enqueue(device, "ProfileList")
    certificates = enqueue(device, "CertificateList")
    apps = enqueue(device, "InstalledApplicationList")
    lock = enqueue(device, "DeviceLock", {"Message": "Found? Call us"})
    remove = enqueue(device, "RemoveProfile", {"Identifier": WIFI["PayloadIdentifier"]})
    remove_again = enqueue(device, "RemoveProfile", {"Identifier": WIFI["PayloadIdentifier"]})
    listed_after = enqueue(device, "ProfileList")
    unknown = enqueue(device, "RefreshCellularPlans", {"eSIMServerURL": "https://esim.example"})
    erase = enqueue(device, "EraseDevice", user=admin)

    stats = portal.run(devices=1, state=state)

    assert not stats.failed, stats.as_dict()
    assert stats.restored == 1 and stats.erased == 1
    # DeviceInformation: exactly the queried keys, stored in the inventory and the device.
    answers = result(device, info)["QueryResponses"]
    assert sorted(answers) == sorted(QUERIES)
    report = InventoryReport.objects.get(device=device, kind="DeviceInformation").data
    assert {key: report[key] for key in QUERIES} == answers
    device.refresh_from_db()
    assert device.device_name == answers["DeviceName"] and device.serial_number.startswith("SIM")
    assert result(device, security)["SecurityInfo"]["PasscodePresent"] is True
    # InstallProfile, then ProfileList shows it; RemoveProfile takes it away.
    assert statuses(device)["InstallProfile"] == [Status.ACKNOWLEDGED]
    reported = [p["PayloadIdentifier"] for p in result(device, listed)["ProfileList"]]
    assert WIFI["PayloadIdentifier"] in reported and len(reported) == 2  # and the MDM profile
    after = [p["PayloadIdentifier"] for p in result(device, listed_after)["ProfileList"]]
    assert WIFI["PayloadIdentifier"] not in after and len(after) == 1
    installed = InstalledProfile.objects.filter(device=device)
    assert WIFI["PayloadIdentifier"] not in installed.values_list("identifier", flat=True)
    assert installed.count() == 1
    # The identity (from SCEP) and the profile's trust are the certificates it reports.
    entries = result(device, certificates)["CertificateList"]
    assert [e["IsIdentity"] for e in entries].count(True) == 1 and len(entries) >= 2
    assert result(device, apps)["InstalledApplicationList"][0]["Identifier"]
    # Errors as a device writes them: a profile it does not have, a command it does not know.
    row = QueuedCommand.objects.get(device=device, command=remove_again)
    assert (
        row.status == Status.ERROR and row.error_chain[0]["ErrorDomain"] == "MCProfileErrorDomain"
    )
    row = QueuedCommand.objects.get(device=device, command=unknown)
    assert row.status == Status.ERROR and row.error_chain[0]["ErrorCode"] == 12021
    for command in (lock, remove):
        assert QueuedCommand.objects.get(device=device, command=command).status == "acknowledged"
    # EraseDevice is answered, then the device is gone: the state file forgets it.
    assert QueuedCommand.objects.get(device=device, command=erase).status in (
        Status.ACKNOWLEDGED,
        Status.SENT,
    )
    assert json.loads(Path(state).read_text())["devices"] == []
    commands = stats.as_dict()["commands"]
    assert commands["RemoveProfile"] == {"Acknowledged": 1, "Error": 1}
    assert commands["RefreshCellularPlans"] == {"Error": 1}
    assert stats.as_dict()["commands_answered"] == 12


def test_notnow_leaves_the_command_until_the_next_idle(portal, tmp_path):
    state = enrolled_fleet(portal, tmp_path)
    device = Device.objects.get()
    install = enqueue(device, "InstallProfile", {"Payload": plistlib.dumps(WIFI)})
    info = enqueue(device, "DeviceInformation", {"Queries": ["DeviceName"]})

    stats = portal.run(devices=1, state=state, not_now_rate=1.0)

    # InstallProfile may wait; DeviceInformation never answers NotNow and is still sent.
    assert not stats.failed
    assert stats.as_dict()["commands"] == {
        "DeviceInformation": {"Acknowledged": 1},
        "InstallProfile": {"NotNow": 1},
    }
    assert QueuedCommand.objects.get(command=install).status == Status.NOT_NOW
    assert QueuedCommand.objects.get(command=info).status == Status.ACKNOWLEDGED

    # The next Idle gets it again; this time the device installs it.
    again = portal.run(devices=1, state=state)
    assert again.as_dict()["commands"] == {"InstallProfile": {"Acknowledged": 1}}
    row = QueuedCommand.objects.get(command=install)
    assert row.status == Status.ACKNOWLEDGED and row.sent_count == 2


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_a_push_to_the_apns_listener_wakes_the_device(portal, tmp_path):
    port = _free_port()
    tls = tmp_path / "apns"
    options = portal.options(
        devices=1,
        duration=6,
        poll_interval=60,  # no poll but the pushed one within the run
        apns_listen=f"127.0.0.1:{port}",
        apns_tls_dir=str(tls),
    )
    outcome = {}
    runner = threading.Thread(target=lambda: outcome.update(stats=_run(options)))
    runner.start()
    try:
        device = _wait(lambda: Device.objects.filter(state=Device.State.ENROLLED).first())
        _wait(lambda: not QueuedCommand.objects.exclude(status=Status.ACKNOWLEDGED).exists())
        command = enqueue(device, "DeviceInformation", {"Queries": ["BatteryLevel"]})
        assert (tls / "apns-cert.pem").exists() and (tls / "apns-key.pem").exists()
        trust = ssl.create_default_context(cafile=tls / "apns-cert.pem")
        with httpx.Client(http2=True, verify=trust, timeout=5) as client:
            url = f"https://127.0.0.1:{port}/3/device/"
            headers = {"apns-topic": device.topic or "com.apple.mgmt.x", "apns-push-type": "mdm"}
            body = json.dumps({"mdm": device.push_magic})
            pushed = client.post(url + device.push_token, content=body, headers=headers)
            assert pushed.http_version == "HTTP/2" and pushed.status_code == 200
            assert pushed.headers["apns-id"]
            stranger = client.post(url + "ab" * 32, content=body, headers=headers)
            assert stranger.status_code == 400
            assert stranger.json() == {"reason": "BadDeviceToken"}
        row = _wait(
            lambda: QueuedCommand.objects.filter(
                command=command, status=Status.ACKNOWLEDGED
            ).first()
        )
        assert row.answered_at
    finally:
        runner.join(20)
    stats = outcome["stats"]
    assert (stats.pushes, stats.wakeups, stats.unknown_pushes) == (1, 1, 1)
    assert not stats.failed, stats.as_dict()


def _run(options):
    from simulator import run

    return in_thread(run, options)


def _wait(condition, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    pytest.fail("timed out")


def test_apns_knows_a_token_before_the_device_read_its_tokenupdate_answer():
    """A push can arrive between the portal committing a TokenUpdate and the device reading
    the answer: APNs accepts it (a BadDeviceToken would make the portal stop pushing to a
    device that is fine), and the device is woken."""
    import asyncio
    from types import SimpleNamespace

    from simulator.report import Stats
    from simulator.runner import waker

    device = SimpleNamespace(
        state=SimpleNamespace(enrolled=False, erased=False, push_magic="MAGIC"),
        wake=asyncio.Event(),
    )
    stats = Stats()
    wake = waker(stats, {"ab" * 32: device})
    assert wake("ab" * 32, "MAGIC") is True and device.wake.is_set()
    assert wake("cd" * 32, "MAGIC") is False
    assert (stats.pushes, stats.unknown_pushes) == (1, 1)
