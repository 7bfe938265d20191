"""The catalog hooks that need enrollment, registered by EnrollmentConfig.ready: InstallProfile
payloads are signed (and encrypted for one device) by the portal, and every ProfileList answer
reconciles the device with the profile library. The queue itself knows no profile."""

import plistlib

from commands.catalog import CatalogError, Draft, Hook, register_hook
from devices.models import Device

from .library import reconcile_device
from .profiles import (
    ProfileError,
    device_identity,
    encrypt_payload_content,
    load_profile,
    sign_profile,
)


def install_profile(draft: Draft) -> dict:
    """Sign the profile (unless told not to), encrypting its content for one device if asked."""
    sign = draft.options.get("sign", True)
    encrypt = draft.options.get("encrypt", False)
    try:
        profile = load_profile(draft.command["Payload"])
        if encrypt:
            if len(draft.recipients) != 1:
                raise ProfileError("an encrypted profile is made for exactly one device")
            device = Device.objects.get(pk=draft.recipients[0].id)
            profile = encrypt_payload_content(profile, device_identity(device))
        elif not sign:
            return draft.command  # as given
        payload = sign_profile(profile) if sign else plistlib.dumps(profile)
    except ProfileError as exc:
        raise CatalogError(f"InstallProfile: {exc}") from None
    return {**draft.command, "Payload": payload}


def reconcile_profiles(device, report: dict) -> list[str]:
    """A ProfileList tells what is installed: queue the assigned profiles still missing."""
    reconcile_device(device)
    return []


INSTALL_PROFILE = Hook(check=install_profile)
PROFILE_LIST = Hook(on_acknowledged=reconcile_profiles)


def register() -> None:
    register_hook("InstallProfile", INSTALL_PROFILE)
    register_hook("ProfileList", PROFILE_LIST)
