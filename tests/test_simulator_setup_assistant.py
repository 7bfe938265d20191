"""The simulator's Setup Assistant mode against a live portal over real HTTP: devices POST
their MachineInfo (signed by a test device CA the portal trusts) to /dep/enroll, get their
identity by SCEP from the profile, Authenticate, say AwaitingConfiguration in TokenUpdate,
answer their configuration and are released by DeviceConfigured. The DEP rows are made
directly here (tests/test_dep_end_to_end.py syncs them from the DEP stand-in)."""

import plistlib

import pytest
from django.core.management import call_command

from certs.cms import UntrustedSigner, verify_signed_data
from commands.models import QueuedCommand, Status
from devices.models import Device, DeviceGroup
from enrollment.dep_enroll import dep_device_for
from enrollment.enrollments import EnrollmentSpec, create_enrollment
from enrollment.library import assign, upload_profile
from simulator import Options, SimulatorError, run
from simulator.__main__ import main as simulator_main
from simulator.device_ca import DeviceCA
from tests.dep_enroll_support import dep_device, dep_profile, info_for
from tests.dep_support import make_server
from tests.library_support import mobileconfig
from tests.simulator_support import in_thread, ready_to_enroll

pytestmark = pytest.mark.django_db(transaction=True)

SERIALS = ["F2LSIM0001AA", "F2LSIM0002AA"]


@pytest.fixture
def setup_assistant_portal(live_server, settings, tmp_path):
    """A live portal whose DEP server lists SERIALS with a DEP profile that awaits
    configuration, sending them to a SCEP enrollment whose group has a library profile; it
    trusts the test device CA in tmp_path/device-ca."""
    settings.MDM_PUBLIC_URL = live_server.url
    folder = tmp_path / "device-ca"
    settings.MDM_DEP_DEVICE_ROOTS = str(DeviceCA.create().save(folder))
    ready_to_enroll()
    group = DeviceGroup.objects.create(name="DEP iPhones")
    spec = EnrollmentSpec(name="Setup Assistant", sign_message=True, group=group)
    enrollment = create_enrollment(spec, by="tests")
    assign(upload_profile(mobileconfig(), uploaded_by="tests"), group=group, by="tests")
    server = make_server(None)  # rows made directly: this test talks to no DEP API
    profile = dep_profile(server, enrollment)
    for serial in SERIALS:
        dep_device(server, serial, profile)
    return live_server.url, folder


def options(url: str, folder, **fields) -> Options:
    defaults = {
        "devices": len(SERIALS),
        "concurrency": 2,
        "progress": False,
        "setup_assistant": True,
        "device_ca": str(folder),
        "serials": SERIALS,
    }
    return Options(url=url, **{**defaults, **fields})


def test_devices_enroll_from_setup_assistant_and_are_released(setup_assistant_portal, tmp_path):
    url, folder = setup_assistant_portal
    state = tmp_path / "fleet.json"

    stats = in_thread(run, options(url, folder, state=str(state)))

    assert not stats.failed, stats.as_dict()
    assert (stats.enrolled, stats.released) == (2, 2)
    assert stats.requests_by_kind["dep"] == 2 and "profile" not in stats.requests_by_kind
    assert stats.requests_by_kind["scep"] > 0
    assert stats.commands[("DeviceConfigured", "Acknowledged")] == 2
    assert stats.commands[("InstallProfile", "Acknowledged")] == 2
    devices = Device.objects.order_by("serial_number")
    assert list(devices.values_list("serial_number", flat=True)) == SERIALS
    for device in devices:
        assert device.state == Device.State.ENROLLED
        assert device.awaiting_configuration is False
        assert dep_device_for(device).serial_number == device.serial_number
        rows = list(QueuedCommand.objects.filter(device=device).order_by("id"))
        assert rows[-1].request_type == "DeviceConfigured"
        assert {row.status for row in rows} == {Status.ACKNOWLEDGED}
        # The library profile came before the release, not after the first ProfileList.
        kinds = [row.request_type for row in rows]
        assert kinds.index("InstallProfile") < kinds.index("DeviceConfigured")
        assert kinds.count("InstallProfile") == 1
    # A restored fleet polls as managed devices do: nothing more to release.
    again = in_thread(run, options(url, folder, state=str(state)))
    assert not again.failed, again.as_dict()
    assert (again.restored, again.enrolled, again.released) == (2, 0, 0)


def test_a_serial_the_portal_does_not_enroll_is_refused(setup_assistant_portal):
    url, folder = setup_assistant_portal

    stats = in_thread(run, options(url, folder, devices=1, serials=["C02NOTOURS01"]))

    assert stats.failed and stats.enroll_failed == 1
    (error,) = stats.errors
    assert error.startswith("dep: MachineInfo HTTP 403 (serial number C02NOTOURS01 is not")
    assert not Device.objects.exists()


def test_a_device_ca_the_portal_does_not_trust_is_refused(setup_assistant_portal, tmp_path):
    url, _folder = setup_assistant_portal
    other = tmp_path / "other-ca"
    DeviceCA.create(name="Untrusted Device CA").save(other)

    stats = in_thread(run, options(url, other, devices=1))

    assert stats.enroll_failed == 1
    (error,) = stats.errors
    assert "HTTP 403" in error and "does not lead to a trusted root" in error


def test_the_simulators_machine_info_verifies_with_the_portals_function():
    authority = DeviceCA.create()
    info = info_for("F2LSIM0009AA")

    content, signer = verify_signed_data(authority.signed_machine_info(info), [authority.root])

    assert plistlib.loads(content) == info
    assert signer.issuer == authority.root.subject
    with pytest.raises(UntrustedSigner):
        verify_signed_data(authority.signed_machine_info(info), [DeviceCA.create().root])


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"device_ca": None}, "--setup-assistant needs --device-ca DIR"),
        ({"devices": 3}, "--serials gives 2 serial numbers for 3 devices"),
        ({"serials": ["A1", "A1"]}, "--serials lists a serial number twice"),
        ({"device_ca": "/nonexistent"}, "--device-ca /nonexistent"),
    ],
)
def test_setup_assistant_options_are_checked(tmp_path, fields, message):
    folder = tmp_path / "ca"
    DeviceCA.create().save(folder)
    with pytest.raises(SimulatorError, match=message):
        run(options("http://127.0.0.1:9", folder, **fields))


def test_make_device_ca_writes_one_and_keeps_it(tmp_path, capsys):
    folder = tmp_path / "device-ca"
    assert simulator_main(["--make-device-ca", str(folder)]) == 0
    first = (folder / "root.pem").read_bytes()
    out = capsys.readouterr().out
    assert f"MDM_DEP_DEVICE_ROOTS={(folder / 'root.pem').resolve()}" in out
    call_command("mdm_simulate", "--make-device-ca", str(folder))
    assert (folder / "root.pem").read_bytes() == first  # kept: the portal may trust it already
    assert "kept the device CA" in capsys.readouterr().out
    assert DeviceCA.load(folder).root.public_bytes  # loadable


def test_the_command_line_takes_the_serials_and_counts_the_devices_by_them(tmp_path, capsys):
    import argparse

    from simulator.cli import add_arguments, options_from

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    argv = ["--url", "http://127.0.0.1:9", "--setup-assistant", "--serials", "A1, A2,A3"]
    values = vars(parser.parse_args([*argv, "--device-ca", str(tmp_path)]))
    chosen = options_from(values)
    assert (chosen.devices, chosen.serials, chosen.setup_assistant) == (3, ["A1", "A2", "A3"], True)
    assert options_from(vars(parser.parse_args(["--url", "http://x"]))).devices == 10

    assert simulator_main(argv) == 2  # no --device-ca: refused before anything runs
    assert "--setup-assistant needs --device-ca DIR" in capsys.readouterr().err
