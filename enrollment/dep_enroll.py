"""Enrollment from Setup Assistant (Automated Device Enrollment): `POST /dep/enroll`.

A device that Apple Business Manager assigned to one of our DEP servers, with one of our DEP
profiles, learns that profile's `url` (this portal's /dep/enroll) from Apple in Setup
Assistant and POSTs its MachineInfo there: a plist (UDID, SERIAL, PRODUCT, VERSION,
OS_VERSION, LANGUAGE; IMEI and MEID on phones) in a CMS SignedData signed with the device
identity Apple gave it (Content-Type application/pkcs7-signature). The portal verifies the
signature and that its signer leads to MDM_DEP_DEVICE_ROOTS (certs.device_statements), reads
the plist, finds the synced DEP device with that serial number and answers with the enrollment
profile of its DEP profile's enrollment: the same builder as /enroll/<token>/profile (a use
counted, the profile signed, `enrollment.profile_issued` audited with the DEP device's serial,
UDID and profile), the identity by that enrollment's delivery (ACME, SCEP or PKCS#12).

Refusals record nothing but one audit entry, `dep.enroll_refused` (reason, status, address):

- 400, the body is not a MachineInfo: empty, not a CMS SignedData carrying its content, the
  content not a plist dictionary, UDID, SERIAL, PRODUCT or VERSION missing, or a key of the wrong
  type. (OS_VERSION is optional: devices send it since iOS 17 and macOS 14.)
- 403, the sender is not proven to be a device we enroll: the signature does not verify (the
  content was altered, another key signed), the signer does not lead to a trusted root, the
  serial number is no DEP device of ours, the device was removed from our DEP servers, no
  DEP profile is assigned to it, or its enrollment is turned off, expired or used up.
- 413, the body is over MAX_MACHINE_INFO_BYTES; 503, the portal cannot enroll now (no push
  certificate, misconfigured, its device roots unreadable).

The signature is checked before the plist is read: nothing a sender we cannot trust wrote is
looked at, and the serial number of a forged MachineInfo is never the target of its refusal.
"""

import logging
from dataclasses import dataclass

from cryptography.hazmat.primitives import hashes

from certs.cms import BadSignature, CMSError, UntrustedSigner
from certs.device_statements import DeviceRootsUnavailable, verify_device_statement
from devices.models import Device
from devices.protocol import ProtocolError, check_body, check_keys, parse_plist
from mdm_portal.audit import audit

from .dep_models import DepDevice
from .mobileconfig import EnrollmentUnavailable, enrollment_profile_bytes

log = logging.getLogger("mdm.dep")

# A MachineInfo is a plist of a few hundred bytes and one or two certificates; 64 KiB leaves
# room for a longer chain without letting anyone make the portal parse megabytes.
MAX_MACHINE_INFO_BYTES = 64 * 1024
MACHINE_INFO_CONTENT_TYPE = "application/pkcs7-signature"

# Apple's other/machineinfo.yaml: key -> (plist type, required here).
MACHINE_INFO_KEYS: dict[str, tuple[str, bool]] = {
    "UDID": ("string", True),
    "SERIAL": ("string", True),
    "PRODUCT": ("string", True),
    "VERSION": ("string", True),
    "OS_VERSION": ("string", False),
    "LANGUAGE": ("string", False),
    "IMEI": ("string", False),
    "MEID": ("string", False),
    "SUPPLEMENTAL_BUILD_VERSION": ("string", False),
    "SUPPLEMENTAL_OS_VERSION_EXTRA": ("string", False),
    "SOFTWARE_UPDATE_DEVICE_ID": ("string", False),
    "MDM_CAN_REQUEST_SOFTWARE_UPDATE": ("boolean", False),
}
# Reasons an enrollment cannot hand out a profile that are the device's lot (403), not the
# portal's state (503).
_REFUSED_REASONS = {
    EnrollmentUnavailable.INACTIVE,
    EnrollmentUnavailable.EXPIRED,
    EnrollmentUnavailable.USED_UP,
}


@dataclass(frozen=True)
class MachineInfo:
    """What a verified MachineInfo says of the device ("" for what it leaves out)."""

    udid: str
    serial: str
    product: str
    version: str  # the build, e.g. 21F90
    os_version: str = ""
    language: str = ""
    imei: str = ""
    meid: str = ""
    signer_sha256: str = ""  # of the device identity that signed it


def read_machine_info(body: bytes) -> MachineInfo:
    """The MachineInfo in `body`, its signature and signer verified first. Raises
    ProtocolError (400, 403, 413 or 503, as the module says)."""
    check_body(body, MAX_MACHINE_INFO_BYTES)
    try:
        content, signer = verify_device_statement(body)
    except DeviceRootsUnavailable as exc:
        raise ProtocolError(503, str(exc)) from None
    except (BadSignature, UntrustedSigner) as exc:
        raise ProtocolError(403, f"MachineInfo: {exc}") from None
    except CMSError as exc:  # not a SignedData that carries its content
        raise ProtocolError(400, f"MachineInfo: {exc}") from None
    try:
        message = parse_plist(content)
    except ProtocolError as exc:
        raise ProtocolError(400, f"MachineInfo: the signed content: {exc.reason}") from None
    check_keys(message, MACHINE_INFO_KEYS, "MachineInfo")
    for key in ("UDID", "SERIAL"):
        if not message[key].strip() or len(message[key]) > 64:
            raise ProtocolError(400, f"MachineInfo: {key} must be 1 to 64 characters")
    return MachineInfo(
        udid=message["UDID"].strip(),
        serial=message["SERIAL"].strip(),
        product=message["PRODUCT"],
        version=message["VERSION"],
        os_version=message.get("OS_VERSION", ""),
        language=message.get("LANGUAGE", ""),
        imei=message.get("IMEI", ""),
        meid=message.get("MEID", ""),
        signer_sha256=signer.fingerprint(hashes.SHA256()).hex(),
    )


def dep_device_for_serial(serial: str) -> DepDevice | None:
    """The DEP device with this serial number (serials are compared without regard to case:
    Apple writes them in capitals, a device or a person may not)."""
    serial = (serial or "").strip()
    if not serial:
        return None
    return (
        DepDevice.objects.select_related("assigned_profile__enrollment", "server")
        .filter(serial_number__iexact=serial)
        .first()
    )


def dep_device_for(device: Device) -> DepDevice | None:
    """The DEP device (as Apple's sync lists it) with `device`'s serial number, if any."""
    return dep_device_for_serial(device.serial_number)


def _enrollable(info: MachineInfo) -> DepDevice:
    """The DEP device this MachineInfo may enroll as; ProtocolError 403 saying why not."""
    dep_device = dep_device_for_serial(info.serial)
    if dep_device is None:
        raise ProtocolError(
            403, f"serial number {info.serial} is not a device of this portal's DEP servers"
        )
    if dep_device.removed:
        raise ProtocolError(
            403,
            f"serial number {info.serial} was removed from this portal's DEP server "
            f"{dep_device.server.name!r}: it is no longer assigned to it",
        )
    if dep_device.assigned_profile is None:
        raise ProtocolError(
            403, f"serial number {info.serial} has no DEP profile assigned in this portal"
        )
    return dep_device


def serve_machine_info(body: bytes, *, client: str = "") -> bytes:
    """The signed enrollment profile for the device whose MachineInfo `body` is. Raises
    ProtocolError (audited as `dep.enroll_refused`, nothing else recorded)."""
    info = None
    try:
        info = read_machine_info(body)
        dep_device = _enrollable(info)
        profile = dep_device.assigned_profile
        try:
            return enrollment_profile_bytes(
                profile.enrollment,
                actor="dep",
                client=client,
                details={
                    "dep_serial": dep_device.serial_number,
                    "dep_udid": info.udid,
                    "dep_profile": profile.name,
                    "dep_server": dep_device.server.name,
                    "product": info.product,
                    "os_version": info.os_version,
                },
            )
        except EnrollmentUnavailable as exc:
            status = 403 if exc.reason in _REFUSED_REASONS else 503
            if status == 503:
                log.error("DEP enrollment of %s cannot be served: %s", info.serial, exc)
            message = f"enrollment {profile.enrollment.name!r}: {exc}"
            raise ProtocolError(status, message) from None
    except ProtocolError as exc:
        refused(exc, info, client)
        raise


def refused(exc: ProtocolError, info: MachineInfo | None, client: str) -> None:
    """The one record a refusal leaves: its audit entry (and a log line)."""
    log.info("POST /dep/enroll refused (%s): %s", exc.status, exc.reason)
    details = {"status": exc.status, "reason": exc.reason}
    if info is not None:  # only a verified MachineInfo names the device
        details.update({"udid": info.udid, "product": info.product})
    audit(
        "dep.enroll_refused",
        actor="device",
        target=info.serial if info is not None else "",
        address=client or None,
        **details,
    )
