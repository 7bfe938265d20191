"""The management commands, end to end with a simulated device."""

import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from certs.models import CertificateAuthority
from commands.models import QueuedCommand, Status
from devices.models import Device, DeviceGroup

pytestmark = pytest.mark.django_db


def run(*args) -> str:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def test_mdm_init_creates_the_ca_once_and_encrypts_its_key(db):
    from django.db import connection

    first = run("mdm_init")
    assert "created" in first
    second = run("mdm_init")
    assert "already present" in second
    assert CertificateAuthority.objects.count() == 1
    with connection.cursor() as cursor:
        cursor.execute("SELECT private_key_pem FROM certs_certificateauthority")
        (raw,) = cursor.fetchone()
    assert b"PRIVATE KEY" not in bytes(raw)
    assert b"PRIVATE KEY" in bytes(CertificateAuthority.objects.get().private_key_pem)


def test_mdm_init_demo_admin(db):
    out = run("mdm_init", "--demo-admin", "admin")
    assert "admin user created: admin / " in out
    assert "already exists" in run("mdm_init", "--demo-admin", "admin")


def test_mdm_init_rotates_secrets_to_the_newest_key(settings, enrolled):
    from cryptography.fernet import Fernet

    old = settings.MDM_SECRETS_KEY
    settings.MDM_SECRETS_KEY = f"{Fernet.generate_key().decode()},{old}"
    assert "re-encrypted" in run("mdm_init", "--rotate-secrets")
    settings.MDM_SECRETS_KEY = settings.MDM_SECRETS_KEY.split(",")[0]  # old key gone
    assert Device.objects.get(udid=enrolled.udid).unlock_token == enrolled.unlock_token
    assert CertificateAuthority.objects.get().private_key_pem


def test_enrolled_device_gets_device_information_from_mdm_enqueue_and_mdm_device_shows_it(
    device,
):
    device.enroll()  # authenticated by Mdm-Signature
    QueuedCommand.objects.filter(device__udid=device.udid).delete()
    uuid = run(
        "mdm_enqueue",
        device.udid,
        "DeviceInformation",
        "--json",
        '{"Queries": ["DeviceName", "OSVersion", "SerialNumber"]}',
    ).strip()
    command = device.idle().plist()
    assert command["CommandUUID"] == uuid
    assert command["Command"] == {
        "RequestType": "DeviceInformation",
        "Queries": ["DeviceName", "OSVersion", "SerialNumber"],
    }
    answer = {"DeviceName": "Finance iPad", "OSVersion": "17.5", "SerialNumber": "DMPXYZ123"}
    assert device.report(uuid, QueryResponses=answer).status == 200

    shown = json.loads(run("mdm_device", device.udid))
    assert shown["state"] == "enrolled"
    assert shown["name"] == "Finance iPad"
    assert shown["os_version"] == "17.5"
    assert shown["inventory"]["DeviceInformation"]["data"]["SerialNumber"] == "DMPXYZ123"
    assert shown["recent_commands"][0]["command_uuid"] == uuid
    assert shown["recent_commands"][0]["status"] == Status.ACKNOWLEDGED
    assert shown["enrolled_at"] and shown["last_seen_at"]
    assert "unlock" not in json.dumps(shown["inventory"])  # the token itself is never shown

    listed = [json.loads(line) for line in run("mdm_device", "--list").splitlines()]
    assert [row["udid"] for row in listed] == [device.udid]


def test_mdm_enqueue_to_all_and_to_a_group(make_device):
    sims = [make_device() for _ in range(3)]
    for sim in sims:
        sim.enroll()
    group = DeviceGroup.objects.create(name="Sales")
    Device.objects.filter(udid=sims[0].udid).update(group=group)
    uuid_all = run("mdm_enqueue", "--all", "ProfileList").strip()
    assert QueuedCommand.objects.filter(command__uuid=uuid_all).count() == 3
    uuid_group = run("mdm_enqueue", "--group", "Sales", "SecurityInfo").strip()
    rows = QueuedCommand.objects.filter(command__uuid=uuid_group)
    assert [r.device.udid for r in rows] == [sims[0].udid]
    Device.objects.filter(udid=sims[1].udid).update(token_invalid_at=timezone.now())
    Device.objects.filter(udid=sims[2].udid).update(platform="macOS")
    err = StringIO()
    call_command(
        "mdm_enqueue", "--filter", "platform=iOS", "DeviceLock", stdout=StringIO(), stderr=err
    )
    rows = QueuedCommand.objects.filter(request_type="DeviceLock")
    assert [r.device.udid for r in rows] == [sims[0].udid]
    assert "1 device(s) left out" in err.getvalue()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["NOPE", "ProfileList"], "unknown device"),
        (["ProfileList"], "name the devices"),
        (["--all", "ProfileList", "--json", "[1]"], "JSON object"),
        (["--all", "ProfileList", "--json", "{bad"], "not valid JSON"),
        (["--group", "Nobody", "ProfileList"], "no managed device"),
        (["--filter", "seen=often", "ProfileList"], "--filter: seen must be one of"),
        (["--filter", "platform=tvOS", "ProfileList"], "matches no managed device"),
    ],
)
def test_mdm_enqueue_refuses_clearly(enrolled, args, message):
    with pytest.raises(CommandError, match=message):
        run("mdm_enqueue", *args)


def test_mdm_enqueue_refuses_what_access_rights_forbid(enrolled):
    Device.objects.filter(udid=enrolled.udid).update(access_rights=1)
    with pytest.raises(CommandError, match="AccessRights"):
        run("mdm_enqueue", enrolled.udid, "EraseDevice")


def test_mdm_device_unknown(db):
    with pytest.raises(CommandError, match="unknown device"):
        run("mdm_device", "NOPE")


def test_admin_lists_devices_for_staff_only(client, enrolled):
    from django.contrib.auth import get_user_model

    assert client.get("/admin/devices/device/").status_code == 302  # login first
    admin = get_user_model().objects.create_superuser("root", "", "pw-for-tests-only")
    client.force_login(admin)
    page = client.get("/admin/devices/device/")
    assert page.status_code == 200
    assert enrolled.udid.encode() in page.content
    detail = client.get(
        f"/admin/devices/device/{Device.objects.get(udid=enrolled.udid).pk}/change/"
    )
    assert detail.status_code == 200
    assert b"unlock-token-blob" not in detail.content


def test_mdm_device_shows_every_answer_readably(enrolled):
    QueuedCommand.objects.filter(device__udid=enrolled.udid).delete()
    uuid = run("mdm_enqueue", enrolled.udid, "DeviceLock", "--json", '{"Message": "IT"}').strip()
    enrolled.idle()
    enrolled.report(uuid, MessageResult="Locked", Blob=b"\x00\x01")
    entry = json.loads(run("mdm_device", enrolled.udid))["recent_commands"][0]
    assert entry["status"] == "acknowledged"
    assert entry["result"] == {"MessageResult": "Locked", "Blob": "AAE="}
