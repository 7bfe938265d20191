"""Test support for enrollment from Setup Assistant: DEP rows made directly (a server, a
profile, devices as a sync would list them), a test device CA the portal trusts through
MDM_DEP_DEVICE_ROOTS, and MachineInfo bodies signed by it."""

import uuid

import pytest

from enrollment.dep_models import DepDevice, DepProfile, DepServer
from enrollment.enrollments import EnrollmentSpec, create_enrollment
from enrollment.models import Enrollment
from simulator.device_ca import DeviceCA, machine_info, sign_machine_info
from tests.dep_support import make_server
from tests.simulator_support import ready_to_enroll

SERIAL = "F2LDEP0001AB"


def dep_profile(
    server: DepServer, enrollment: Enrollment, *, await_configured: bool = True
) -> DepProfile:
    return DepProfile.objects.create(
        server=server,
        name=f"Setup Assistant ({enrollment.name})",
        enrollment=enrollment,
        settings={"is_supervised": True, "await_device_configured": await_configured},
    )


def dep_device(
    server: DepServer, serial: str, profile: DepProfile | None = None, *, removed: bool = False
) -> DepDevice:
    return DepDevice.objects.create(
        server=server,
        serial_number=serial,
        model="iPhone 15 Pro",
        os="iOS",
        device_family="iPhone",
        assigned_profile=profile,
        removed=removed,
        op_type="deleted" if removed else "added",
    )


def info_for(serial: str = SERIAL, **overrides) -> dict:
    info = machine_info(
        udid=str(uuid.uuid4()).upper(),
        serial=serial,
        product="iPhone15,2",
        build_version="21F90",
        os_version="17.5.1",
        imei="356789012345678",
    )
    return {**info, **overrides}


class DEP:
    """The portal side of a DEP test: a server, a profile sending devices to `enrollment`,
    and the device CA whose root MDM_DEP_DEVICE_ROOTS trusts."""

    def __init__(self, enrollment: Enrollment, authority: DeviceCA):
        self.enrollment = enrollment
        self.authority = authority
        self.server = make_server(None, name="ABM test")  # no token: nothing talks to Apple
        self.profile = dep_profile(self.server, enrollment)

    def device(self, serial: str = SERIAL, **kwargs) -> DepDevice:
        kwargs.setdefault("profile", self.profile)
        return dep_device(self.server, serial, **kwargs)

    def signed(self, info: dict | None = None) -> bytes:
        return self.authority.signed_machine_info(info or info_for())


@pytest.fixture
def device_ca(tmp_path, settings) -> DeviceCA:
    """A test device CA, trusted by the portal (MDM_DEP_DEVICE_ROOTS = its root.pem)."""
    authority = DeviceCA.create()
    settings.MDM_DEP_DEVICE_ROOTS = str(authority.save(tmp_path / "device-ca"))
    return authority


@pytest.fixture
def setup_dep(db, device_ca, settings) -> DEP:
    """A portal ready to enroll from Setup Assistant (CA, push certificate) with a SCEP
    enrollment behind its DEP profile."""
    settings.MDM_PUBLIC_URL = "https://mdm.example.org"
    ready_to_enroll()
    enrollment = create_enrollment(EnrollmentSpec(name="DEP iPhones"), by="tests")
    return DEP(enrollment, device_ca)


__all__ = ["DEP", "SERIAL", "device_ca", "info_for", "setup_dep", "sign_machine_info"]
