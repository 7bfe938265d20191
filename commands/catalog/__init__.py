"""What the portal knows about each RequestType: the AccessRights it needs, NotNow behaviour.

The seed's AccessRights bits (MDM payload). The full catalog of every command is built on
this module; the queue and the check-in only use the functions below.
"""

from .device_queries import QUERY_RIGHTS

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

# Commands that count as done once delivered: the device may never be able to answer.
DELIVERED_WHEN_SENT = frozenset({"EraseDevice"})

# The AccessRights bits each command of the seed needs.
REQUIRED_RIGHTS: dict[str, int] = {
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


def required_rights(request_type: str, command: dict | None = None) -> int:
    """The AccessRights bits a command needs (0 when the catalog knows of none)."""
    rights = REQUIRED_RIGHTS.get(request_type, 0)
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
        needed = REQUIRED_RIGHTS[request_type]
        if access_rights & needed == needed:
            commands.append((request_type, {}))
    return commands
