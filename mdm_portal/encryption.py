"""Secrets at rest: private keys, UnlockTokens and bootstrap tokens are stored Fernet-encrypted.

The keys come from MDM_SECRETS_KEY (comma separated, newest first), so a key can be rotated:
MultiFernet decrypts with any of them and encrypts with the first.
"""

from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import models


@lru_cache(maxsize=4)
def _fernet_for(keys: str) -> MultiFernet:
    fernets = []
    for key in (k.strip() for k in keys.split(",")):
        if not key:
            continue
        try:
            fernets.append(Fernet(key.encode()))
        except ValueError as exc:
            raise ImproperlyConfigured(
                "MDM_SECRETS_KEY must hold Fernet keys (32 url-safe base64 bytes), e.g. from "
                "python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key())'"
            ) from exc
    if not fernets:
        raise ImproperlyConfigured("MDM_SECRETS_KEY is empty")
    return MultiFernet(fernets)


def fernet() -> MultiFernet:
    return _fernet_for(settings.MDM_SECRETS_KEY)


def encrypt(plaintext: bytes) -> bytes:
    return fernet().encrypt(plaintext)


def decrypt(token: bytes) -> bytes:
    try:
        return fernet().decrypt(bytes(token))
    except InvalidToken as exc:
        raise ImproperlyConfigured(
            "a secret stored in the database cannot be decrypted with MDM_SECRETS_KEY "
            "(wrong or rotated-away key)"
        ) from exc


def rotate(token: bytes) -> bytes:
    """Re-encrypt a stored secret with the newest key."""
    return fernet().rotate(bytes(token))


class EncryptedBinaryField(models.BinaryField):
    """Bytes encrypted with MDM_SECRETS_KEY in the database, plain bytes in Python.

    None and empty bytes are stored as NULL: "no secret" needs no ciphertext.
    """

    def get_db_prep_value(self, value, connection, prepared=False):
        if value is None or value == b"":
            return None
        return super().get_db_prep_value(encrypt(bytes(value)), connection, prepared)

    def from_db_value(self, value, expression, connection):
        if value is None:
            return None
        return decrypt(bytes(value))

    def deconstruct(self):
        name, path, args, kwargs = super().deconstruct()
        return name, "mdm_portal.encryption.EncryptedBinaryField", args, kwargs
