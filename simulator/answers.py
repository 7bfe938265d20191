"""What a simulated device answers to each command: the result a real iPhone or iPad sends.

`answer(device, command, not_now_rate)` returns the status and the result keys and changes
the device as the command would (InstallProfile adds to what ProfileList reports, RemoveProfile
takes away, EraseDevice wipes it). Commands the device does not know get the Error a real
device sends, with an ErrorChain.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import random
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID

from . import profile as profiles
from .state import DeviceState

# Commands Apple says a device never answers with NotNow (the protocol reference's Error
# Handling; the portal's commands/catalog NEVER_NOT_NOW holds the same list). Data, not an
# import: the simulator is a client and knows nothing of the server's code.
NEVER_NOT_NOW = frozenset(
    {
        "DeviceInformation",
        "ProfileList",
        "DeviceLock",
        "EraseDevice",
        "ClearPasscode",
        "CertificateList",
        "ProvisioningProfileList",
        "InstalledApplicationList",
        "Restrictions",
    }
)

# Commands acknowledged with no result of their own (they change nothing we report).
ACKNOWLEDGED = frozenset(
    {
        "ClearPasscode",
        "ClearRestrictionsPassword",
        "DisableLostMode",
        "EnableLostMode",
        "InstallProvisioningProfile",
        "PlayLostModeSound",
        "RemoveApplication",
        "RemoveProvisioningProfile",
        "RestartDevice",
        "ScheduleOSUpdateScan",
        "Settings",
        "ShutDownDevice",
    }
)

# Built-in apps every simulated device reports (Identifier, Name, ShortVersion, size in bytes).
BUILT_IN_APPS = [
    ("com.apple.mobilesafari", "Safari", "17.5", 12_400_000),
    ("com.apple.mobilemail", "Mail", "17.5", 9_800_000),
    ("com.apple.MobileSMS", "Messages", "17.5", 15_100_000),
    ("com.apple.camera", "Camera", "17.5", 6_300_000),
    ("com.apple.Preferences", "Settings", "17.5", 4_700_000),
]


@dataclass
class Answer:
    status: str  # Acknowledged, Error, NotNow
    result: dict = field(default_factory=dict)


def error(code: int, domain: str, text: str) -> Answer:
    """An Error with an ErrorChain as a device writes it."""
    entry = {
        "ErrorCode": code,
        "ErrorDomain": domain,
        "LocalizedDescription": text,
        "USEnglishDescription": text,
    }
    return Answer("Error", {"ErrorChain": [entry]})


def answer(device: DeviceState, command: dict, not_now_rate: float = 0.0) -> Answer:
    """The device's answer to `command` (the Command dictionary), changing the device."""
    request_type = str(command.get("RequestType", ""))
    if request_type not in NEVER_NOT_NOW and not_now_rate and random.random() < not_now_rate:
        return Answer("NotNow")
    handler = HANDLERS.get(request_type)
    if handler is not None:
        return handler(device, command)
    if request_type in ACKNOWLEDGED:
        return Answer("Acknowledged")
    return error(12021, "MCMDMErrorDomain", f"Unknown command “{request_type}”.")


# -- the query commands ------------------------------------------------------------------------


def query_value(device: DeviceState, key: str):
    """A plausible value for one DeviceInformation query."""
    known = {
        "UDID": device.udid,
        "DeviceName": device.name,
        "SerialNumber": device.serial,
        "ProductName": device.product,
        "ModelName": device.model_name,
        "Model": device.model,
        "ModelNumber": device.model.split("/")[0],
        "OSVersion": device.os_version,
        "BuildVersion": device.build_version,
        "DeviceCapacity": float(device.capacity_gb),
        "AvailableDeviceCapacity": round(device.capacity_gb * 0.62, 2),
        "BatteryLevel": 0.81,
        "IMEI": device.imei,
        "MEID": device.imei[:14],
        "IsSupervised": device.supervised,
        "IsMultiUser": False,
        "IsActivationLockEnabled": False,
        "IsDeviceLocatorServiceEnabled": True,
        "IsCloudBackupEnabled": True,
        "IsMDMLostModeEnabled": False,
        "WiFiMAC": _mac(device.udid, 0),
        "BluetoothMAC": _mac(device.udid, 1),
        "EthernetMAC": _mac(device.udid, 2),
        "LocalHostName": device.name.replace(" ", "-"),
        "HostName": device.name.replace(" ", "-") + ".local",
        "CellularTechnology": 3,
        "AwaitingConfiguration": False,
        "MDMOptions": {},
        "OrganizationInfo": {},
        "LastCloudBackupDate": dt.datetime(2024, 6, 1, 3, 0, 0),
        "ServiceSubscriptions": [],
        "OSUpdateSettings": {"AutomaticOSInstallationEnabled": True},
        "SupplementalBuildVersion": device.build_version,
        "TimeZone": "Europe/Berlin",
    }
    if key in known:
        return known[key]
    # Apple adds queries over the years; a device answers each with a value of its type.
    if key.startswith(("Is", "Has")) or key.endswith("Enabled"):
        return False
    if key.endswith(("Capacity", "Level")):
        return 0.0
    return ""


def _mac(udid: str, salt: int) -> str:
    digits = udid.replace("-", "").lower()
    octets = [digits[i : i + 2] for i in range(salt * 2, salt * 2 + 10, 2)]
    return ":".join(["02", *octets])


def _device_information(device: DeviceState, command: dict) -> Answer:
    queries = command.get("Queries") or []
    return Answer(
        "Acknowledged", {"QueryResponses": {q: query_value(device, str(q)) for q in queries}}
    )


def _security_info(device: DeviceState, command: dict) -> Answer:
    info = {
        "HardwareEncryptionCaps": 3,
        "PasscodePresent": True,
        "PasscodeCompliant": True,
        "PasscodeCompliantWithProfiles": True,
        "PasscodeLockGracePeriodEnforced": 0,
        "FDE_Enabled": False,
    }
    return Answer("Acknowledged", {"SecurityInfo": info})


def _profile_list(device: DeviceState, command: dict) -> Answer:
    installed = [device.enrollment_profile] if device.enrollment_profile else []
    return Answer("Acknowledged", {"ProfileList": installed + list(device.profiles)})


def _installed_applications(device: DeviceState, command: dict) -> Answer:
    apps = [
        {
            "Identifier": identifier,
            "Name": name,
            "ShortVersion": version,
            "Version": version.replace(".", ""),
            "BundleSize": size,
            "DynamicSize": size // 10,
            "IsValidated": True,
        }
        for identifier, name, version, size in BUILT_IN_APPS
    ]
    wanted = command.get("Identifiers")
    if wanted:
        apps = [app for app in apps if app["Identifier"] in wanted]
    if command.get("ManagedAppsOnly"):
        apps = []
    return Answer("Acknowledged", {"InstalledApplicationList": apps})


def _certificate_list(device: DeviceState, command: dict) -> Answer:
    entries = []
    certificate = device.certificate
    if certificate is not None:
        entries.append(_certificate_entry(certificate, identity=True))
    for text in device.trust_pem:
        entries.append(_certificate_entry(x509.load_pem_x509_certificate(text.encode()), False))
    for outcome in device.declarative.assets.values():  # ACME / SCEP credential assets
        if outcome.get("certificate_pem"):
            issued = x509.load_pem_x509_certificate(outcome["certificate_pem"].encode())
            entries.append(_certificate_entry(issued, identity=True))
    return Answer("Acknowledged", {"CertificateList": entries})


def _certificate_entry(certificate: x509.Certificate, identity: bool) -> dict:
    names = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return {
        "CommonName": str(names[0].value) if names else certificate.subject.rfc4514_string(),
        "Data": certificate.public_bytes(serialization.Encoding.DER),
        "IsIdentity": identity,
    }


def _empty_list(key: str):
    def handler(device: DeviceState, command: dict) -> Answer:
        return Answer("Acknowledged", {key: {} if key == "ManagedApplicationList" else []})

    return handler


def _restrictions(device: DeviceState, command: dict) -> Answer:
    result: dict = {"GlobalRestrictions": {"restrictedBool": {}, "restrictedValue": {}}}
    if command.get("ProfileRestrictions"):
        result["ProfileRestrictions"] = {}
    return Answer("Acknowledged", result)


# -- commands that change the device -----------------------------------------------------------


def _install_profile(device: DeviceState, command: dict) -> Answer:
    payload = command.get("Payload") or b""
    try:
        # Data in the plist; a JSON-minded server might send base64 text instead.
        payload = base64.b64decode(payload) if isinstance(payload, str) else bytes(payload)
        profile, _signed = profiles.load(payload)
        payloads = profiles.decrypt_payloads(profile, device.certificate, device.key)
    except profiles.ProfileError as exc:
        return error(1000, "MCProfileErrorDomain", f"The profile could not be installed: {exc}")
    identifier = str(profile.get("PayloadIdentifier", ""))
    if not identifier:
        return error(1000, "MCProfileErrorDomain", "The profile has no PayloadIdentifier.")
    entry = profiles.summary(profile, payloads, encrypted="EncryptedPayloadContent" in profile)
    # Installing a profile with an identifier already installed replaces it, as on a device.
    device.profiles = [p for p in device.profiles if p["PayloadIdentifier"] != identifier]
    device.profiles.append(entry)
    return Answer("Acknowledged")


def _remove_profile(device: DeviceState, command: dict) -> Answer:
    identifier = str(command.get("Identifier", ""))
    if device.enrollment_profile.get("PayloadIdentifier") == identifier:
        return error(
            12038, "MCMDMErrorDomain", "The MDM profile cannot be removed with RemoveProfile."
        )
    kept = [p for p in device.profiles if p["PayloadIdentifier"] != identifier]
    if len(kept) == len(device.profiles):
        return error(1003, "MCProfileErrorDomain", f"The profile “{identifier}” is not installed.")
    device.profiles = kept
    return Answer("Acknowledged")


def _device_lock(device: DeviceState, command: dict) -> Answer:
    return Answer("Acknowledged")


def _erase_device(device: DeviceState, command: dict) -> Answer:
    # The answer may or may not reach the portal; after it the device is wiped and unmanaged.
    device.erased = True
    return Answer("Acknowledged")


def _available_os_updates(device: DeviceState, command: dict) -> Answer:
    return Answer("Acknowledged", {"AvailableOSUpdates": []})


def _os_update_status(device: DeviceState, command: dict) -> Answer:
    return Answer("Acknowledged", {"OSUpdateStatus": []})


def _device_location(device: DeviceState, command: dict) -> Answer:
    return error(12067, "MCMDMErrorDomain", "The device is not in Lost Mode.")


def _device_configured(device: DeviceState, command: dict) -> Answer:
    """Setup Assistant goes on; a device that is not waiting answers an error (Apple: it
    "only works on devices ... set to await configuration")."""
    if not device.awaiting_configuration:
        return error(12070, "MCMDMErrorDomain", "The device is not awaiting configuration.")
    device.awaiting_configuration = False
    return Answer("Acknowledged")


def _declarative_management(device: DeviceState, command: dict) -> Answer:
    """Acknowledged, and a declarative sync is due (simulator/declarative.py runs it after
    the poll); Data, when given, must be the JSON SyncTokens."""
    data = command.get("Data")
    if data is not None:
        try:
            tokens = json.loads(data if isinstance(data, str) else bytes(data))["SyncTokens"]
            if not isinstance(tokens.get("DeclarationsToken"), str):
                raise TypeError("no DeclarationsToken")
        except (TypeError, ValueError, KeyError, AttributeError):
            return error(
                1000, "RMErrorDomain", "The declarative management data is not valid SyncTokens."
            )
    device.declarative.sync_due = True
    return Answer("Acknowledged")


def _install_application(device: DeviceState, command: dict) -> Answer:
    identifier = command.get("Identifier") or ""
    return Answer("Acknowledged", {"Identifier": identifier, "State": "Queued"})


HANDLERS = {
    "DeviceInformation": _device_information,
    "SecurityInfo": _security_info,
    "ProfileList": _profile_list,
    "InstalledApplicationList": _installed_applications,
    "CertificateList": _certificate_list,
    "ProvisioningProfileList": _empty_list("ProvisioningProfileList"),
    "ManagedApplicationList": _empty_list("ManagedApplicationList"),
    "Restrictions": _restrictions,
    "InstallProfile": _install_profile,
    "RemoveProfile": _remove_profile,
    "DeviceLock": _device_lock,
    "EraseDevice": _erase_device,
    "AvailableOSUpdates": _available_os_updates,
    "OSUpdateStatus": _os_update_status,
    "DeviceLocation": _device_location,
    "InstallApplication": _install_application,
    "DeviceConfigured": _device_configured,
    "DeclarativeManagement": _declarative_management,
}
