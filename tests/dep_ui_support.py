"""Rows for the Automated Device Enrollment page and API tests: DEP servers, profiles and
devices made directly (as a sync would leave them), and enrolled portal devices with a serial."""

import datetime as dt

from django.utils import timezone

from devices.models import Device
from enrollment.dep_models import DepDevice, DepProfile, DepServer
from enrollment.dep_tokens import create_server
from enrollment.enrollments import EnrollmentSpec, create_enrollment


def make_server(name: str = "Main office", **fields) -> DepServer:
    """A DEP server with its own key (enrollment.dep_tokens), and `fields` set as a sync
    or an import would have left them."""
    server = create_server(name, actor="tests")
    if fields:
        DepServer.objects.filter(pk=server.pk).update(**fields)
        server.refresh_from_db()
    return server


def with_token(server: DepServer, *, days_left: float = 300, **fields) -> DepServer:
    """Mark a token imported that lapses in `days_left` days (the secrets are stand-ins)."""
    now = timezone.now()
    values = {
        "consumer_key": "CK_stand_in",
        "consumer_secret": b"CS-SECRET-stand-in",
        "access_token": "AT_stand_in",
        "access_secret": b"AS-SECRET-stand-in",
        "session_token": b"SESSION-SECRET-stand-in",
        "access_token_expiry": now + dt.timedelta(days=days_left),
        "token_imported_at": now,
        **fields,
    }
    DepServer.objects.filter(pk=server.pk).update(**values)
    server.refresh_from_db()
    return server


def make_enrollment(name: str = "Staff"):
    return create_enrollment(EnrollmentSpec(name), by="tests")


def make_profile(server: DepServer, name: str = "Staff iPhones", enrollment=None, **settings):
    """A DEP profile as save_profile leaves it once Apple defined it (a made-up uuid: Apple
    is not asked; tests that assign it define it with the stand-in through save_profile)."""
    return DepProfile.objects.create(
        server=server,
        name=name,
        enrollment=enrollment or make_enrollment(f"{name} enrollment"),
        settings={"is_supervised": True, "is_mdm_removable": False, **settings},
        profile_uuid=f"UUID-{name.upper().replace(' ', '-')}",
        defined_at=timezone.now(),
    )


def make_dep_devices(server: DepServer, serials: list[str], **fields) -> list[DepDevice]:
    defaults = {"model": "iPhone 15", "description": "IPHONE 15 BLACK 128GB", "os": "iOS"}
    return [
        DepDevice.objects.create(server=server, serial_number=serial, **{**defaults, **fields})
        for serial in serials
    ]


def enrolled_device(serial: str, udid: str | None = None, **fields) -> Device:
    """A portal device with this serial, enrolled (or in `state`)."""
    now = timezone.now()
    values = {
        "state": Device.State.ENROLLED,
        "enrolled_at": now,
        "authenticated_at": now,
        "device_name": f"Device {serial}",
        **fields,
    }
    return Device.objects.create(udid=udid or f"UDID-{serial}", serial_number=serial, **values)
