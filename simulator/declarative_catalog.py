"""What a simulated iPhone or iPad knows of declarative management, as data: the declaration
Types it takes (from which iOS version, supervised only or not), the Types Apple defines for
other platforms only, and the status reasons it writes.

Taken from Apple's declarative schema (github.com/apple/device-management, declarative/),
hard-coded here: the simulator is a client and reads neither the portal's data nor Apple's
YAML at run time. iPadOS takes what iOS takes.
"""

from __future__ import annotations

from .state import DeviceState

PROTOCOL_VERSION = "1.0.0"

# Type -> (iOS version that introduced it, supervised devices only).
IOS_TYPES: dict[str, tuple[str, bool]] = {
    "com.apple.activation.simple": ("15.0", False),
    "com.apple.asset.credential.acme": ("17.0", False),
    "com.apple.asset.credential.certificate": ("17.0", False),
    "com.apple.asset.credential.identity": ("17.0", False),
    "com.apple.asset.credential.scep": ("17.0", False),
    "com.apple.asset.credential.userpassword": ("15.0", False),
    "com.apple.asset.data": ("17.0", False),
    "com.apple.asset.useridentity": ("15.0", False),
    "com.apple.configuration.account.caldav": ("15.0", False),
    "com.apple.configuration.account.carddav": ("15.0", False),
    "com.apple.configuration.account.exchange": ("15.0", False),
    "com.apple.configuration.account.google": ("15.0", False),
    "com.apple.configuration.account.ldap": ("15.0", False),
    "com.apple.configuration.account.mail": ("15.0", False),
    "com.apple.configuration.account.subscribed-calendar": ("15.0", False),
    "com.apple.configuration.app.managed": ("17.2", False),
    "com.apple.configuration.legacy.interactive": ("15.0", False),
    "com.apple.configuration.legacy": ("15.0", False),
    "com.apple.configuration.management.status-subscriptions": ("15.0", False),
    "com.apple.configuration.management.test": ("15.0", False),
    "com.apple.configuration.math.settings": ("18.0", True),
    "com.apple.configuration.passcode.settings": ("15.0", False),
    "com.apple.configuration.safari.extensions.settings": ("18.0", True),
    "com.apple.configuration.security.certificate": ("17.0", False),
    "com.apple.configuration.security.identity": ("17.0", False),
    "com.apple.configuration.security.passkey.attestation": ("17.0", False),
    "com.apple.configuration.softwareupdate.enforcement.specific": ("17.0", False),
    "com.apple.configuration.softwareupdate.settings": ("18.0", False),
    "com.apple.configuration.watch.enrollment": ("17.0", True),
    "com.apple.management.organization-info": ("15.0", False),
    "com.apple.management.properties": ("16.0", False),
    "com.apple.management.server-capabilities": ("15.0", False),
}
# Apple's Types that no iOS version takes (macOS only): Error.ConfigurationNotSupported, not
# Error.UnknownDeclarationType.
OTHER_PLATFORM_TYPES = frozenset(
    {
        "com.apple.configuration.diskmanagement.settings",
        "com.apple.configuration.screensharing.connection",
        "com.apple.configuration.screensharing.connection.group",
        "com.apple.configuration.screensharing.host.settings",
        "com.apple.configuration.services.background-tasks",
        "com.apple.configuration.services.configuration-files",
    }
)
KINDS = ("activation", "asset", "configuration", "management")
# What declaration-items calls each kind's array, and what management.declarations does.
MANIFEST_ARRAYS = {
    "activation": "Activations",
    "asset": "Assets",
    "configuration": "Configurations",
    "management": "Management",
}
STATUS_ARRAYS = {
    "activation": "activations",
    "asset": "assets",
    "configuration": "configurations",
    "management": "management",
}
# The status items a simulated device reports (besides management.declarations).
DEVICE_ITEMS = (
    "device.identifier.serial-number",
    "device.identifier.udid",
    "device.model.family",
    "device.model.identifier",
    "device.model.marketing-name",
    "device.model.number",
    "device.operating-system.build-version",
    "device.operating-system.family",
    "device.operating-system.marketing-name",
    "device.operating-system.version",
)
DECLARATIONS_ITEM = "management.declarations"
CAPABILITIES_ITEM = "management.client-capabilities"
STATUS_ITEMS = (CAPABILITIES_ITEM, DECLARATIONS_ITEM, *DEVICE_ITEMS)


def _version(text: str) -> tuple[int, ...]:
    parts = []
    for part in str(text).split("."):
        digits = "".join(c for c in part if c.isdigit())
        parts.append(int(digits or 0))
    return tuple(parts)


def kind_of(declaration_type: str) -> str | None:
    """The kind a Type names (com.apple.<kind>.…), or None."""
    parts = declaration_type.split(".")
    return parts[2] if len(parts) > 3 and parts[2] in KINDS else None


def unsupported(declaration_type: str, state: DeviceState) -> str | None:
    """Why this device cannot take a Type it knows (None: it can); KeyError when it does not
    know the Type at all (Error.UnknownDeclarationType)."""
    if declaration_type in OTHER_PLATFORM_TYPES:
        return f"{declaration_type} is not supported on {state.platform}"
    introduced, supervised_only = IOS_TYPES[declaration_type]
    if _version(state.os_version) < _version(introduced):
        return f"{declaration_type} needs {state.platform} {introduced}, not {state.os_version}"
    if supervised_only and not state.supervised:
        return f"{declaration_type} needs a supervised device"
    return None


def supported_types(state: DeviceState) -> dict[str, list[str]]:
    """The Types this device takes, by the kind arrays of management.client-capabilities."""
    found: dict[str, list[str]] = {STATUS_ARRAYS[kind]: [] for kind in KINDS}
    for name in sorted(IOS_TYPES):
        kind = kind_of(name)
        if kind is not None and unsupported(name, state) is None:
            found[STATUS_ARRAYS[kind]].append(name)
    return found


# -- status reasons (Apple's codes, declarationbase.yaml; descriptions as devices write them) --


def reason(code: str, description: str, **details) -> dict:
    item = {"code": code, "description": description}
    if details:
        item["details"] = details
    return item


def ids(identifier: str, token: str) -> dict:
    return {"Identifier": identifier, "ServerToken": token}


def not_referenced_by_activation(identifier: str, token: str) -> dict:
    return reason(
        "Info.NotReferencedByActivation",
        f"Configuration “{identifier}:{token}” is not referenced by an activation.",
        **ids(identifier, token),
    )


def not_referenced_by_configuration(identifier: str, token: str) -> dict:
    return reason(
        "Info.NotReferencedByConfiguration",
        f"Asset “{identifier}:{token}” is not referenced by a configuration.",
        **ids(identifier, token),
    )


def predicate_false(identifier: str, token: str, predicate: str) -> dict:
    return reason(
        "Info.Predicate",
        f"Activation “{identifier}:{token}” predicate evaluated to false.",
        **ids(identifier, token),
        Predicate=predicate,
    )


def predicate_error(code: str, identifier: str, token: str, predicate: str, why: str) -> dict:
    verb = "parsed" if code == "Error.UnableToParsePredicate" else "evaluated"
    return reason(
        code,
        f"Activation “{identifier}:{token}” predicate cannot be {verb}: {why}",
        **ids(identifier, token),
        Predicate=predicate,
    )


def missing_configurations(identifier: str, token: str, missing: list[str]) -> dict:
    return reason(
        "Error.MissingConfigurations",
        f"Activation “{identifier}:{token}” references missing configurations: "
        + ", ".join(missing),
        **ids(identifier, token),
        ConfigurationIdentifiers=missing,
    )


def missing_assets(identifier: str, token: str, missing: list[str]) -> dict:
    return reason(
        "Error.MissingAssets",
        f"Configuration “{identifier}:{token}” references assets that are missing or not "
        "loaded: " + ", ".join(missing),
        **ids(identifier, token),
        AssetIdentifiers=missing,
    )


def activation_failed(activation: str, token: str) -> dict:
    return reason(
        "Error.ActivationFailed",
        f"Activation “{activation}:{token}” failed.",
        **ids(activation, token),
    )


def configuration_failed(configuration: str, token: str) -> dict:
    return reason(
        "Error.ConfigurationFailed",
        f"Configuration “{configuration}:{token}” failed.",
        **ids(configuration, token),
    )


def not_supported(identifier: str, token: str, why: str) -> dict:
    return reason("Error.ConfigurationNotSupported", why, **ids(identifier, token))


def unknown_type(declaration_type: str) -> dict:
    return reason(
        "Error.UnknownDeclarationType",
        f"Declaration type “{declaration_type}” is not known.",
        UnknownDeclarationType=declaration_type,
    )


def error(code: str, description: str, why: str) -> dict:
    """A reason carrying an underlying error (Error.AssetCannotBeDownloaded, …)."""
    return reason(code, description, Error=why)
