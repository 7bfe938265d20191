"""Secrets in what devices answer: hidden wherever a person reads an answer (the UI, the API).

Some answers carry a secret: the UnlockToken command returns the device's master passcode,
ActivationLockBypassCode unlocks Activation Lock, SecurityInfo carries the FileVault personal
recovery key (encrypted, but still the key), ManagedApplicationList unused redemption codes.
The names come from Apple's schema (the commands' response keys). The stored data keeps them
(the portal may need them); what is shown replaces each value with HIDDEN.
"""

from typing import Any

SECRET_KEYS = frozenset(
    {
        "ActivationLockBypassCode",
        "BootstrapToken",
        "EncryptedNewRecoveryKey",
        "FDE_PersonalRecoveryKeyCMS",
        "FDE_PersonalRecoveryKeyDeviceKey",
        "ProductKey",
        "PushToken",
        "UnlockToken",
        "UnusedRedemptionCode",
    }
)
HIDDEN = "(hidden)"


def redacted(value: Any) -> Any:
    """`value` (JSON-safe data) with the value of every secret key, at any depth, hidden."""
    if isinstance(value, dict):
        return {
            key: HIDDEN if key in SECRET_KEYS else redacted(item) for key, item in value.items()
        }
    if isinstance(value, list):
        return [redacted(item) for item in value]
    return value
