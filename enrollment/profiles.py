"""Configuration profiles (.mobileconfig): reading, signing, and encrypting for one device."""

import datetime as dt
import plistlib
from xml.parsers.expat import ExpatError

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa

from certs.ca import PROFILE_SIGNING, active_ca, ca_certificate, server_credentials
from certs.cms import CMSError, encrypt_for, sign, signed_content
from devices.identities import current_identity


class ProfileError(ValueError):
    """The data is not a usable configuration profile; the message says why."""


def load_profile(data: bytes) -> dict:
    """The profile dictionary of an XML or binary plist, or of a CMS-signed profile."""
    if data[:1] == b"\x30":  # a DER SEQUENCE: a signed profile
        try:
            data = signed_content(data)
        except CMSError as exc:
            raise ProfileError(f"the signed profile cannot be read: {exc}") from None
    try:
        profile = plistlib.loads(data)
    except (plistlib.InvalidFileException, ExpatError, ValueError):
        raise ProfileError("not a property list (nor a signed one)") from None
    if not isinstance(profile, dict) or profile.get("PayloadType") != "Configuration":
        raise ProfileError("not a configuration profile (PayloadType must be Configuration)")
    return profile


def device_identity(device) -> x509.Certificate:
    """The device's current identity certificate (devices.identities), which must be in date
    and RSA for a profile to be encrypted to it."""
    now = dt.datetime.now(dt.UTC)
    record = current_identity(device)
    if record is None:
        raise ProfileError(f"{device.udid} has no current identity certificate")
    if not (record.not_before <= now < record.not_after):
        raise ProfileError(f"{device.udid}'s identity certificate is not in date")
    certificate = x509.load_pem_x509_certificate(record.certificate_pem.encode())
    if not isinstance(certificate.public_key(), rsa.RSAPublicKey):
        raise ProfileError(f"{device.udid}'s identity key is not RSA: CMS cannot encrypt to it")
    return certificate


def encrypt_payload_content(profile: dict, recipient: x509.Certificate) -> dict:
    """Replace PayloadContent by EncryptedPayloadContent, readable by `recipient` only."""
    encrypted = dict(profile)
    content = plistlib.dumps(encrypted.pop("PayloadContent", []))
    encrypted["EncryptedPayloadContent"] = encrypt_for(content, recipient)
    return encrypted


def sign_profile(profile: dict) -> bytes:
    """The profile as a DER CMS SignedData, signed by the portal's profile-signing identity."""
    certificate, key = server_credentials(PROFILE_SIGNING)
    return sign(plistlib.dumps(profile), certificate, key, chain=[ca_certificate(active_ca())])
