"""Automated Device Enrollment end to end, against the DEP stand-in (tests/dep_standin.py) and a
live portal over real HTTP; nothing reaches Apple.

Apple's side: ABM lists two iPhones for our MDM server. The portal: a DEP server made and its
server token imported (made with the stand-in's OAuth credentials, enveloped to the server's
key as ABM does), a DEP profile that awaits configuration defined with Apple and set to be
auto-assigned, a sync that adds the devices and assigns them the profile. Then the devices,
simulated: from Setup Assistant each POSTs its MachineInfo, signed by a test device CA whose
root MDM_DEP_DEVICE_ROOTS trusts, to /dep/enroll, gets its identity by SCEP from the profile,
Authenticates, says AwaitingConfiguration in its TokenUpdate, answers the initial inventory and
its group's library profile, and is released by DeviceConfigured, acknowledged last.
"""

import pytest

from commands.models import QueuedCommand, Status
from devices.models import Device, DeviceGroup
from enrollment.dep_enroll import dep_device_for
from enrollment.dep_models import DepDevice
from enrollment.dep_profiles import profile_url, save_profile, set_auto_assign
from enrollment.dep_sync import sync_server
from enrollment.dep_tokens import create_server, import_token, token_certificate_pem
from enrollment.enrollments import EnrollmentSpec, create_enrollment
from enrollment.library import assign, upload_profile
from mdm_portal.models import AuditEntry
from simulator import Options, run
from simulator.device_ca import DeviceCA
from tests.dep_tokens_support import make_server_token
from tests.library_support import mobileconfig
from tests.simulator_support import in_thread, ready_to_enroll

pytestmark = pytest.mark.django_db(transaction=True)

SERIALS = ["F2LE2E0001AA", "F2LE2E0002AA"]
# Apple takes only an https url in a DEP profile, and the live test server speaks plain HTTP:
# the profile is defined with this public URL, and the devices are then pointed at the live
# server (the simulator's --url), as a TLS proxy in front of it would make them.
PUBLIC_URL = "https://mdm.example.org"


def test_devices_enroll_from_setup_assistant_and_are_released(dep, live_server, settings, tmp_path):
    for serial in SERIALS:
        dep.add_device(serial, model="iPhone 15 Pro", os="iOS", device_family="iPhone")
    settings.MDM_PUBLIC_URL = PUBLIC_URL
    ready_to_enroll()

    # The server token: the key pair for ABM, then the .p7m ABM envelopes to it.
    server = create_server("ABM", actor="tests")
    p7m = make_server_token(token_certificate_pem(server), **dep.credentials)
    server = import_token(server, p7m, actor="tests")

    # A DEP profile that sends devices to an enrollment (whose group has a library profile)
    # and keeps them in Setup Assistant until they are configured; auto-assigned.
    group = DeviceGroup.objects.create(name="DEP iPhones")
    spec = EnrollmentSpec(name="Setup Assistant", sign_message=True, group=group)
    enrollment = create_enrollment(spec, by="tests")
    assign(upload_profile(mobileconfig(), uploaded_by="tests"), group=group, by="tests")
    profile = save_profile(
        server,
        name="Supervised, await configuration",
        enrollment=enrollment,
        settings={"is_supervised": True, "await_device_configured": True},
        actor="tests",
    )
    set_auto_assign(server, profile, actor="tests")
    defined = dep.profiles[profile.profile_uuid]
    assert defined["url"] == profile_url() == f"{PUBLIC_URL}/dep/enroll"
    assert defined["await_device_configured"] is True

    outcome = sync_server(server, actor="tests")

    assert outcome.ok, outcome.message
    assert outcome.added == 2
    assert outcome.assigned == {serial: "SUCCESS" for serial in SERIALS}
    assert set(
        DepDevice.objects.filter(assigned_profile=profile).values_list("serial_number", flat=True)
    ) == set(SERIALS)

    # The devices, from Setup Assistant, against the live portal.
    settings.MDM_PUBLIC_URL = live_server.url
    folder = tmp_path / "device-ca"
    settings.MDM_DEP_DEVICE_ROOTS = str(DeviceCA.create().save(folder))
    options = Options(
        url=live_server.url,
        devices=len(SERIALS),
        concurrency=2,
        progress=False,
        setup_assistant=True,
        device_ca=str(folder),
        serials=SERIALS,
    )

    stats = in_thread(run, options)

    assert not stats.failed, stats.as_dict()
    assert (stats.enrolled, stats.released) == (2, 2)
    assert stats.requests_by_kind["dep"] == 2 and stats.requests_by_kind["scep"] > 0
    enrollment.refresh_from_db()
    assert enrollment.uses == 2
    issued = AuditEntry.objects.filter(action="enrollment.profile_issued", actor="dep")
    assert sorted(issued.values_list("details__dep_serial", flat=True)) == SERIALS
    for device in Device.objects.order_by("serial_number"):
        assert device.state == Device.State.ENROLLED and device.group == group
        assert dep_device_for(device).assigned_profile == profile
        # The TokenUpdate said AwaitingConfiguration (the release was queued for it) ...
        assert AuditEntry.objects.filter(action="device.release_queued", target=device.udid)
        # ... the configuration came first and DeviceConfigured last, all acknowledged ...
        rows = list(QueuedCommand.objects.filter(device=device).order_by("id"))
        kinds = [row.request_type for row in rows]
        assert kinds[-1] == "DeviceConfigured" and kinds.count("DeviceConfigured") == 1
        assert kinds.index("InstallProfile") < kinds.index("DeviceConfigured")
        assert {row.status for row in rows} == {Status.ACKNOWLEDGED}
        # ... and the device left Setup Assistant.
        assert device.awaiting_configuration is False
    assert Device.objects.count() == 2
