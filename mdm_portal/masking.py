"""Which keys hold secrets, for every page that shows a plist (profiles, commands, results):
one rule, so what is hidden in a profile is hidden in a command too.

A key holds a secret when its name (any case) contains one of the words of SECRET_WORDS
(passwords, passcodes, shared secrets, SCEP challenges, tokens, private keys, credentials, the
FileVault recovery key SecurityInfo reports as FDE_PersonalRecoveryKeyCMS) or
ends with one of SECRET_ENDINGS (EraseDevice's and DeviceLock's `PIN`, password hashes, bypass
and redemption codes, recovery and product keys, the ACME payload's one-time
`ClientIdentifier`). Only text and data are masked: a boolean or a number under such a key
(`PINRequiredForDeviceLock`) says nothing secret.
"""

import re

MASKED = "•••••• (hidden)"
SECRET_WORDS = re.compile(
    r"password|passphrase|passcode|secret|psk|challenge|token|privatekey|pincode|credential"
    r"|recoverykey",
    re.IGNORECASE,
)
SECRET_ENDINGS = (
    "pin",
    "hash",
    "bypasscode",
    "redemptioncode",
    "recoverykey",
    "productkey",
    "clientidentifier",
)


def is_secret_key(key: str) -> bool:
    return bool(SECRET_WORDS.search(key)) or key.lower().endswith(SECRET_ENDINGS)


def masked(value):
    """JSON-safe data (a device's answer, its inventory) with the text under every secret key,
    at any depth, replaced by MASKED."""
    if isinstance(value, dict):
        return {
            key: MASKED
            if is_secret_key(str(key)) and isinstance(item, str) and item
            else masked(item)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [masked(item) for item in value]
    return value
