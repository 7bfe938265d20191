"""The command catalog: every RequestType the portal knows, and the checks before queuing.

The definitions are data (schema.json, generated from Apple's schema by scripts/gen_catalog.py,
read by definitions.py); the seed's AccessRights bits and NotNow rules are below; the few
commands that need more have a hook (hooks.py). `prepare` is what commands.queue calls.
"""

from dataclasses import replace

from mdm_portal.plist import os_version

from .definitions import (
    DEFINITIONS,
    CatalogError,
    CommandDefinition,
    get_definition,
    validate_payload,
)
from .device_queries import QUERY_RIGHTS
from .hooks import HOOKS, AdminOnly, Draft, Hook, Recipient, register_hook

__all__ = [
    "ADMIN_ONLY",
    "AdminOnly",
    "DEFINITIONS",
    "HOOKS",
    "CatalogError",
    "CommandDefinition",
    "Draft",
    "Hook",
    "Recipient",
    "prepare",
    "register_hook",
]

INSPECT_PROFILES = 1
INSTALL_PROFILES = 2
LOCK_AND_PASSCODE = 4
ERASE = 8
DEVICE_INFORMATION = 16
NETWORK_INFORMATION = 32
INSPECT_PROVISIONING_PROFILES = 64
INSTALL_PROVISIONING_PROFILES = 128
INSPECT_APPLICATIONS = 256
RESTRICTIONS_QUERIES = 512
SECURITY_QUERIES = 1024
SETTINGS = 2048
APP_MANAGEMENT = 4096
ALL_RIGHTS = 8191

# The names Apple's schema gives the AccessRights, as the seed's bits.
RIGHT_NAMES: dict[str, int] = {
    "AllowInspection": INSPECT_PROFILES,
    "AllowInstallationRemoval": INSTALL_PROFILES,
    "AllowPasscodeRemovalAndLock": LOCK_AND_PASSCODE,
    "DeviceLockAndRemovePasscode": LOCK_AND_PASSCODE,
    "AllowDeviceErase": ERASE,
    "AllowQueryDeviceInformation": DEVICE_INFORMATION,
    "AllowQueryNetworkInformation": NETWORK_INFORMATION,
    "AllowProvisioningInspection": INSPECT_PROVISIONING_PROFILES,
    "AllowProvisioningInstallationRemoval": INSTALL_PROVISIONING_PROFILES,
    "AllowQueryApplications": INSPECT_APPLICATIONS,
    "QueryInstalledApps": INSPECT_APPLICATIONS,
    "AllowQueryRestrictions": RESTRICTIONS_QUERIES,
    "AllowQuerySecurity": SECURITY_QUERIES,
    "AllowSettings": SETTINGS,
    "AllowAppInstallation": APP_MANAGEMENT,
}

# What each AccessRights bit lets the organization do, in plain words (seed, MDM payload): the
# enrollment page tells device users, the staff UI labels its checkboxes with them.
ACCESS_RIGHTS_IN_WORDS: list[tuple[int, str]] = [
    (INSPECT_PROFILES, "see which configuration profiles are installed"),
    (
        INSTALL_PROFILES,
        "install and remove configuration profiles (settings such as Wi-Fi, VPN or e-mail)",
    ),
    (LOCK_AND_PASSCODE, "lock the device and remove its passcode"),
    (ERASE, "erase the device: everything on it is deleted"),
    (DEVICE_INFORMATION, "read device information such as its model, capacity and serial number"),
    (
        NETWORK_INFORMATION,
        "read network information such as its phone number, SIM and network addresses",
    ),
    (INSPECT_PROVISIONING_PROFILES, "see which app provisioning profiles are installed"),
    (INSTALL_PROVISIONING_PROFILES, "install and remove app provisioning profiles"),
    (INSPECT_APPLICATIONS, "see which apps are installed"),
    (RESTRICTIONS_QUERIES, "see which restrictions apply to the device"),
    (SECURITY_QUERIES, "check its security settings, such as whether a passcode is set"),
    (SETTINGS, "change device settings, such as its name or data roaming"),
    (APP_MANAGEMENT, "install, manage and remove apps"),
]

# Commands the device is guaranteed to execute: they never answer NotNow (seed, Error Handling).
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

# Keys only the server supplies, at delivery (hooks.py): validated as present, never queued.
SERVER_SUPPLIED_KEYS: dict[str, dict[str, object]] = {"ClearPasscode": {"UnlockToken": b"\0"}}

# Commands only an administrator may queue (roles: mdm_portal/roles.py): they wipe the device
# or use its escrowed UnlockToken. Their hooks refuse anyone else (AdminOnly, which enqueue
# raises as EnqueueForbidden: a 403 in the API), and the UI offers them to administrators
# only; raw commands are administrators' too.
ADMIN_ONLY = frozenset({"ClearPasscode", "EraseDevice"})

# Commands that count as done once delivered: the device may never be able to answer.
DELIVERED_WHEN_SENT = frozenset({"EraseDevice"})

# The AccessRights bits the seed (2011 protocol) gives its commands; they add to the schema's.
SEED_RIGHTS: dict[str, int] = {
    "ProfileList": INSPECT_PROFILES,
    "InstallProfile": INSTALL_PROFILES,
    "RemoveProfile": INSTALL_PROFILES,
    "ProvisioningProfileList": INSPECT_PROVISIONING_PROFILES,
    "InstallProvisioningProfile": INSTALL_PROVISIONING_PROFILES,
    "RemoveProvisioningProfile": INSTALL_PROVISIONING_PROFILES,
    "CertificateList": INSPECT_PROFILES,
    "InstalledApplicationList": INSPECT_APPLICATIONS,
    "DeviceInformation": 0,  # per query, see QUERY_RIGHTS
    "SecurityInfo": SECURITY_QUERIES,
    "DeviceLock": LOCK_AND_PASSCODE,
    "ClearPasscode": LOCK_AND_PASSCODE,
    "EraseDevice": ERASE,
    "Restrictions": RESTRICTIONS_QUERIES,
    "InstallApplication": APP_MANAGEMENT,
    "ApplyRedemptionCode": APP_MANAGEMENT,
    "ManagedApplicationList": APP_MANAGEMENT,
    "RemoveApplication": APP_MANAGEMENT,
    "Settings": SETTINGS,
}


def access_rights_error(access_rights: int) -> str | None:
    """Why an AccessRights value is invalid per the seed, or None if it is valid."""
    if access_rights <= 0 or access_rights > ALL_RIGHTS:
        return f"AccessRights must be between 1 and {ALL_RIGHTS}"
    if access_rights & INSTALL_PROFILES and not access_rights & INSPECT_PROFILES:
        return "AccessRights 2 (install/remove profiles) requires 1 (inspect profiles)"
    if access_rights & INSTALL_PROVISIONING_PROFILES and not (
        access_rights & INSPECT_PROVISIONING_PROFILES
    ):
        return "AccessRights 128 (install provisioning profiles) requires 64 (inspect them)"
    return None


def never_not_now(request_type: str) -> bool:
    return request_type in NEVER_NOT_NOW


def required_rights(request_type: str, command: dict | None = None, platform: str = "") -> int:
    """The AccessRights bits a command needs on `platform` (all platforms when unknown)."""
    rights = SEED_RIGHTS.get(request_type, 0)
    definition = DEFINITIONS.get(request_type)
    if definition is not None:
        for name, support in definition.platforms.items():
            if support.introduced is None or (platform and name != platform):
                continue
            rights |= RIGHT_NAMES.get(support.access_right or "", 0)
    if request_type == "DeviceInformation" and command:
        for query in command.get("Queries") or []:
            rights |= QUERY_RIGHTS.get(query, 0)
    if request_type == "Restrictions" and command and command.get("ProfileRestrictions"):
        rights |= INSPECT_PROFILES
    return rights


def allowed_queries(access_rights: int) -> list[str]:
    """Every DeviceInformation query the rights allow, in a stable order."""
    return sorted(q for q, bit in QUERY_RIGHTS.items() if bit & access_rights == bit)


def initial_inventory_commands(access_rights: int) -> list[tuple[str, dict]]:
    """The commands queued by an enrollment's first TokenUpdate, limited to what rights allow."""
    commands = [("DeviceInformation", {"Queries": allowed_queries(access_rights)})]
    for request_type in (
        "SecurityInfo",
        "ProfileList",
        "InstalledApplicationList",
        "CertificateList",
    ):
        needed = SEED_RIGHTS[request_type]
        if access_rights & needed == needed:
            commands.append((request_type, {}))
    return commands


def _check_platforms(definition: CommandDefinition, recipients: list[Recipient]) -> None:
    """Refuse devices whose platform or OS version the command does not support."""
    for recipient in recipients:
        if not recipient.platform:
            continue  # not reported yet: the device will say if it cannot
        support = definition.platforms.get(recipient.platform)
        name = definition.request_type
        if support is None or support.introduced is None:
            raise CatalogError(
                f"{name} is not supported on {recipient.platform} ({recipient.udid})"
            )
        if not support.device_channel:
            raise CatalogError(
                f"{name} needs the user channel on {recipient.platform}, which this server does not"
                f" support ({recipient.udid})"
            )
        running = os_version(recipient.os_version)  # None: not reported yet, or unreadable
        if running is not None and running < (os_version(support.introduced) or ()):
            raise CatalogError(
                f"{name} needs {recipient.platform} {support.introduced} or later; "
                f"{recipient.udid} runs {recipient.os_version}"
            )


def _check_rights(request_type: str, command: dict | None, recipients: list[Recipient]) -> None:
    lacking: dict[int, list[str]] = {}
    for recipient in recipients:
        needed = required_rights(request_type, command, recipient.platform)
        if recipient.access_rights & needed != needed:
            lacking.setdefault(needed, []).append(recipient.udid)
    for needed, udids in lacking.items():
        raise CatalogError(
            f"{request_type} needs AccessRights {needed}, which {len(udids)} device(s) "
            "were not enrolled with: " + ", ".join(udids[:5])
        )


def unavailable_reason(request_type: str, recipient: Recipient) -> str | None:
    """Why the catalog would refuse `request_type` for this device before any key is looked
    at (platform, OS version, AccessRights), or None: what a page uses to offer a command."""
    try:
        _check_platforms(get_definition(request_type), [recipient])
        _check_rights(request_type, None, [recipient])
    except CatalogError as exc:
        return str(exc)
    return None


def prepare(draft: Draft, *, raw: bool = False) -> dict:
    """Check a command against the catalog and its recipients; return the command to queue.

    Raises CatalogError naming the problem. A raw command skips what the catalog cannot know
    (unknown RequestTypes and keys), never the AccessRights or the safety hooks.
    """
    hook = HOOKS.get(draft.request_type, Hook())
    command = draft.command
    if not raw:
        definition = get_definition(draft.request_type)
        body = {k: v for k, v in command.items() if k != "RequestType"}
        body = {**SERVER_SUPPLIED_KEYS.get(draft.request_type, {}), **body}
        validate_payload(definition, body)
        _check_platforms(definition, draft.recipients)
        # Key-level support differs by platform and version: check each distinct pair once.
        for platform, os_version in {(r.platform, r.os_version) for r in draft.recipients}:
            if platform:
                validate_payload(definition, body, platform=platform, os_version=os_version or None)
    # The command's own right first (before a hook does costly work such as signing), then
    # again with what the hook made of it (DeviceInformation's queries have rights of their own).
    _check_rights(draft.request_type, None, draft.recipients)
    if hook.check and (not raw or hook.enforced_when_raw):
        command = hook.check(replace(draft, command=command))
    _check_rights(draft.request_type, command, draft.recipients)
    return command


def uses_device(request_type: str) -> bool:
    """Whether this type's hooks read the device when it is sent or answered (the server-URL
    loop loads the whole device row only then)."""
    hook = HOOKS.get(request_type)
    return bool(hook and (hook.before_send or hook.on_acknowledged))


def before_send(device, request_type: str, command: dict) -> dict:
    hook = HOOKS.get(request_type)
    if hook and hook.before_send:
        hook.before_send(device, command)
    return command


def on_acknowledged(device, request_type: str, report: dict) -> list[str]:
    hook = HOOKS.get(request_type)
    return hook.on_acknowledged(device, report) if hook and hook.on_acknowledged else []
