"""A device in Setup Assistant (AwaitingConfiguration): after the initial inventory the portal
queues its library profiles, then DeviceConfigured, last and once per enrollment; the device
gets them in that order over the server URL, and acknowledging DeviceConfigured clears
awaiting_configuration. A device that does not wait gets no DeviceConfigured. Real check-in
and server-URL requests through Django, signed with Mdm-Signature."""

import pytest

from commands.models import QueuedCommand, Status
from devices.models import Device, DeviceGroup
from enrollment.library import assign, upload_profile
from mdm_portal.models import AuditEntry
from tests.library_support import mobileconfig, report_installed

INVENTORY = ["DeviceInformation", "SecurityInfo", "ProfileList", "InstalledApplicationList"]


@pytest.fixture
def profiles(ca):
    """Two library profiles: one for a group, one for a single device."""
    wifi = upload_profile(mobileconfig(), uploaded_by="tests")
    vpn = upload_profile(
        mobileconfig(identifier="com.example.vpn", uuid="0B1C2D3E-0000-4000-8000-00000000B001"),
        uploaded_by="tests",
    )
    return wifi, vpn


def arrive(sim, profiles, **token_keys) -> Device:
    """Authenticate, the library assignments of the device and its group, then TokenUpdate."""
    assert sim.authenticate().status == 200
    device = Device.objects.get(udid=sim.udid)
    group = DeviceGroup.objects.create(name="DEP iPhones")
    Device.objects.filter(pk=device.pk).update(group=group)
    device.refresh_from_db()
    wifi, vpn = profiles
    assign(wifi, group=group, by="tests")  # the device is pending: nothing is queued yet
    assign(vpn, device=device, by="tests")
    assert not QueuedCommand.objects.filter(device=device).exists()
    assert sim.token_update(**token_keys).status == 200
    device.refresh_from_db()
    return device


def queue(device: Device) -> list[str]:
    return list(
        QueuedCommand.objects.filter(device=device)
        .order_by("id")
        .values_list("request_type", flat=True)
    )


def drain(sim, answer=lambda request_type: "Acknowledged") -> list[str]:
    """Poll as the device does: Idle, then answer each command until an empty 200; returns
    the RequestTypes in the order they came."""
    delivered = []
    response = sim.idle()
    while response.status == 200 and response.body:
        command = response.plist()
        request_type = command["Command"]["RequestType"]
        delivered.append(request_type)
        response = sim.report(command["CommandUUID"], answer(request_type))
    assert response.status == 200, response.body
    return delivered


def configuration_order(device: Device) -> list[str]:
    """The queue with the profiles' InstallProfile named by their identifier."""
    names = []
    for row in (
        QueuedCommand.objects.filter(device=device)
        .order_by("id")
        .select_related("command__profile_link")
    ):
        if row.request_type == "InstallProfile":
            names.append(f"InstallProfile {row.command.profile_link.identifier}")
        else:
            names.append(row.request_type)
    return names


def test_configuration_then_device_configured_last(device, profiles):
    managed = arrive(device, profiles, AwaitingConfiguration=True)

    assert managed.awaiting_configuration is True
    assert configuration_order(managed) == [
        *INVENTORY,
        "CertificateList",
        "InstallProfile com.example.wifi",
        "InstallProfile com.example.vpn",
        "DeviceConfigured",
    ]
    entry = AuditEntry.objects.get(action="device.release_queued", target=device.udid)
    assert entry.details["profiles_queued"] == 2

    delivered = drain(device)

    assert delivered == queue(managed)  # the queue delivers in the order it was made
    assert delivered[-1] == "DeviceConfigured"
    managed.refresh_from_db()
    assert managed.awaiting_configuration is False
    assert set(QueuedCommand.objects.filter(device=managed).values_list("status", flat=True)) == {
        Status.ACKNOWLEDGED
    }


def test_a_second_token_update_with_the_flag_queues_no_second_release(device, profiles):
    managed = arrive(device, profiles, AwaitingConfiguration=True)
    assert device.token_update(AwaitingConfiguration=True).status == 200
    assert queue(managed).count("DeviceConfigured") == 1
    assert queue(managed).count("InstallProfile") == 2

    drain(device)
    assert device.token_update(AwaitingConfiguration=True).status == 200  # even after it

    assert queue(managed).count("DeviceConfigured") == 1
    assert AuditEntry.objects.filter(action="device.release_queued").count() == 1


def test_a_device_not_awaiting_configuration_gets_no_device_configured(device, profiles):
    managed = arrive(device, profiles)  # its DEP profile does not await: no flag

    assert managed.awaiting_configuration is False
    assert queue(managed) == [*INVENTORY, "CertificateList"]
    delivered = drain(device)
    assert "DeviceConfigured" not in delivered
    # Its library profiles come the usual way: after its first ProfileList.
    assert queue(managed).count("InstallProfile") == 2
    assert "DeviceConfigured" not in queue(managed)


def test_a_not_now_holds_device_configured_back_until_the_profile_is_answered(device, profiles):
    managed = arrive(device, profiles, AwaitingConfiguration=True)
    first_install = {"seen": False}

    def not_now_once(request_type: str) -> str:
        if request_type == "InstallProfile" and not first_install["seen"]:
            first_install["seen"] = True
            return "NotNow"
        return "Acknowledged"

    delivered = drain(device, not_now_once)
    # After the NotNow only commands that never answer NotNow may come: not the release.
    assert delivered[-1] == "InstallProfile" and "DeviceConfigured" not in delivered
    managed.refresh_from_db()
    assert managed.awaiting_configuration is True

    later = drain(device)  # the next Idle: the postponed profile, the other, then the release
    assert later == ["InstallProfile", "InstallProfile", "DeviceConfigured"]
    managed.refresh_from_db()
    assert managed.awaiting_configuration is False


def test_an_error_to_device_configured_leaves_the_device_waiting(device, profiles):
    managed = arrive(device, profiles, AwaitingConfiguration=True)

    drain(device, lambda t: "Error" if t == "DeviceConfigured" else "Acknowledged")

    managed.refresh_from_db()
    assert managed.awaiting_configuration is True
    row = QueuedCommand.objects.get(device=managed, request_type="DeviceConfigured")
    assert row.status == Status.ERROR
    # A new enrollment starts afresh: its own TokenUpdate says whether it waits.
    assert device.authenticate().status == 200
    managed.refresh_from_db()
    assert managed.awaiting_configuration is False


def test_a_new_enrollment_waits_and_is_released_again(device, profiles):
    managed = arrive(device, profiles, AwaitingConfiguration=True)
    drain(device)
    report_installed(profiles[0], managed)  # as its last ProfileList said
    report_installed(profiles[1], managed)

    # Erased and enrolled again from Setup Assistant: a new Authenticate, a new flag.
    assert device.authenticate().status == 200
    managed.refresh_from_db()
    assert managed.awaiting_configuration is False
    assert device.token_update(AwaitingConfiguration=True).status == 200

    rows = QueuedCommand.objects.filter(device=managed, request_type="DeviceConfigured")
    assert [r.status for r in rows.order_by("id")] == [Status.ACKNOWLEDGED, Status.QUEUED]
    # Its profiles again, although the earlier enrollment's inventory said it had them.
    pending = QueuedCommand.objects.filter(device=managed, status=Status.QUEUED)
    assert list(pending.order_by("id").values_list("request_type", flat=True))[-3:] == [
        "InstallProfile",
        "InstallProfile",
        "DeviceConfigured",
    ]
