"""Configuration profiles as a device reads them: the enrollment profile it downloads (its
trust, its MDM payload and the identity that payload names: SCEP, ACME or PKCS#12), and the
profiles InstallProfile delivers.

A profile arrives as a plist, or as a CMS SignedData around one (what the portal sends); its
payloads may be encrypted to the device's identity (EncryptedPayloadContent). asn1crypto opens
the SignedData (and checks that its messageDigest covers the content), cryptography decrypts.
"""

from __future__ import annotations

import hashlib
import hmac
import plistlib
from dataclasses import dataclass, field

from asn1crypto import cms
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs7, pkcs12

TRUST_TYPES = ("com.apple.security.root", "com.apple.security.pkcs1")
_DIGESTS = {"sha1": hashlib.sha1, "sha256": hashlib.sha256, "sha512": hashlib.sha512}


class ProfileError(ValueError):
    """Not a profile a device could install."""


def unwrap(data: bytes) -> tuple[bytes, bool]:
    """(plist bytes, whether they were signed) of a profile as delivered."""
    data = bytes(data)
    if data.lstrip()[:1] == b"<" or data[:6] == b"bplist":
        return data, False
    try:
        info = cms.ContentInfo.load(data)
        if info["content_type"].native != "signed_data":
            raise ProfileError(f"a {info['content_type'].native}, not a signed profile")
        signed = info["content"]
        content = signed["encap_content_info"]["content"].native
    except (ValueError, TypeError, KeyError) as exc:
        raise ProfileError(f"neither a plist nor a CMS signed profile: {exc}") from None
    if not content:
        raise ProfileError("the signed profile carries no content")
    for signer in signed["signer_infos"]:
        _check_digest(signer, content)
    return content, True


def _check_digest(signer, content: bytes) -> None:
    """The signed messageDigest must be the content's: a profile altered on the way fails."""
    attributes = signer["signed_attrs"]
    if not attributes:
        return
    digest = _DIGESTS.get(signer["digest_algorithm"]["algorithm"].native)
    if digest is None:
        return
    expected = digest(content).digest()
    for attribute in attributes:
        carried = attribute["values"][0].native
        if attribute["type"].native == "message_digest" and not hmac.compare_digest(
            carried, expected
        ):
            raise ProfileError("the profile's signature does not cover its content")


def load(data: bytes) -> tuple[dict, bool]:
    """(profile dictionary, signed) of a delivered profile; ProfileError if unreadable."""
    content, signed = unwrap(data)
    try:
        profile = plistlib.loads(content)
    except Exception as exc:  # plistlib raises several kinds for bad input
        raise ProfileError(f"the profile is not a plist: {exc}") from None
    if not isinstance(profile, dict) or profile.get("PayloadType") != "Configuration":
        raise ProfileError("the plist is not a configuration profile")
    return profile, signed


def decrypt_payloads(profile: dict, certificate: x509.Certificate, key) -> list:
    """The profile's payloads, decrypted with the device's identity when they are encrypted."""
    if "EncryptedPayloadContent" not in profile:
        return list(profile.get("PayloadContent") or [])
    try:
        content = pkcs7.pkcs7_decrypt_der(
            bytes(profile["EncryptedPayloadContent"]), certificate, key, []
        )
        payloads = plistlib.loads(content)
    except Exception as exc:  # wrong recipient, bad envelope or plist
        raise ProfileError(f"the encrypted payloads cannot be read: {exc}") from None
    if not isinstance(payloads, list):
        raise ProfileError("the decrypted payload content is not an array")
    return payloads


def summary(profile: dict, payloads: list, *, encrypted: bool) -> dict:
    """What ProfileList reports of an installed profile (Apple's keys), kept in the state."""
    keys = ("PayloadIdentifier", "PayloadUUID", "PayloadDisplayName", "PayloadOrganization")
    entry = {key: str(profile.get(key, "")) for key in keys}
    entry["PayloadDescription"] = str(profile.get("PayloadDescription", ""))
    entry["PayloadVersion"] = int(profile.get("PayloadVersion", 1))
    entry["PayloadRemovalDisallowed"] = bool(profile.get("PayloadRemovalDisallowed", False))
    entry["IsEncrypted"] = encrypted
    entry["IsManaged"] = True
    entry["PayloadContent"] = [
        {
            "PayloadType": str(item.get("PayloadType", "")),
            "PayloadIdentifier": str(item.get("PayloadIdentifier", "")),
            "PayloadUUID": str(item.get("PayloadUUID", "")),
            "PayloadVersion": int(item.get("PayloadVersion", 1)),
            "PayloadDisplayName": str(item.get("PayloadDisplayName", "")),
        }
        for item in payloads
        if isinstance(item, dict)
    ]
    return entry


# Apple's rules for a com.apple.security.acme payload (mdm/profiles/com.apple.security.acme.yaml
# in Apple's schema): the curves ECSECPrimeRandom takes, those a hardware-bound key may use.
EC_SIZES = (192, 256, 384, 521)
HARDWARE_EC_SIZES = (256, 384)


@dataclass
class AcmePayload:
    """What a device takes from an ACME payload to get its identity."""

    directory_url: str
    client_identifier: str
    key_type: str  # "ECSECPrimeRandom" or "RSA"
    key_size: int  # the curve (256, 384 ...) or the RSA modulus
    hardware_bound: bool
    attest: bool  # the device must send Apple's attestation of its key in device-attest-01
    subject: list = field(default_factory=list)  # [[["CN", "x"]], [["O", "Org"]]]
    subject_alt_name: dict = field(default_factory=dict)  # rfc822Name, dNSName, ...
    uuid: str = ""


def read_acme_payload(payload: dict) -> AcmePayload:
    """The ACME payload's settings (keys of the payload itself, not of a PayloadContent as in
    SCEP's), checked as a device checks them; ProfileError if a device would refuse it."""
    missing = [
        key
        for key in ("DirectoryURL", "ClientIdentifier", "KeyType", "KeySize", "HardwareBound")
        if key not in payload
    ]
    if missing:
        raise ProfileError(f"the ACME payload lacks {', '.join(missing)}")
    key_type, key_size = str(payload["KeyType"]), payload["KeySize"]
    hardware_bound, attest = payload["HardwareBound"], payload.get("Attest", False)
    if not isinstance(key_size, int) or not all(
        isinstance(v, bool) for v in (hardware_bound, attest)
    ):
        raise ProfileError("the ACME payload's KeySize, HardwareBound or Attest has a wrong type")
    if key_type == "ECSECPrimeRandom":
        allowed = HARDWARE_EC_SIZES if hardware_bound else EC_SIZES
        if key_size not in allowed:
            raise ProfileError(f"the ACME payload's KeySize {key_size} is not one of {allowed}")
    elif key_type == "RSA":
        if hardware_bound or not (1024 <= key_size <= 4096 and key_size % 8 == 0):
            raise ProfileError("an ACME RSA key is 1024-4096 bits and never HardwareBound")
    else:
        raise ProfileError(f"the ACME payload's KeyType {key_type!r} is not RSA nor EC")
    if attest and not hardware_bound:
        raise ProfileError("the ACME payload asks to Attest a key that is not HardwareBound")
    return AcmePayload(
        directory_url=str(payload["DirectoryURL"]),
        client_identifier=str(payload["ClientIdentifier"]),
        key_type=key_type,
        key_size=key_size,
        hardware_bound=hardware_bound,
        attest=attest,
        subject=list(payload.get("Subject") or []),
        subject_alt_name=dict(payload.get("SubjectAltName") or {}),
        uuid=str(payload.get("PayloadUUID", "")),
    )


@dataclass
class EnrollmentProfile:
    """What a device takes from its enrollment profile."""

    profile: dict
    signed: bool
    mdm: dict
    scep: dict | None = None  # the SCEP payload's PayloadContent
    pkcs12: tuple[x509.Certificate, object] | None = None  # identity in a PKCS#12 payload
    acme: AcmePayload | None = None  # identity from an ACME server
    trust: list[x509.Certificate] = field(default_factory=list)

    @property
    def server_url(self) -> str:
        return str(self.mdm["ServerURL"])

    @property
    def checkin_url(self) -> str:
        return str(self.mdm.get("CheckInURL") or self.mdm["ServerURL"])


def read_enrollment_profile(data: bytes) -> EnrollmentProfile:
    """The enrollment profile's MDM, identity and trust payloads; ProfileError if unusable."""
    profile, signed = load(data)
    payloads = [p for p in profile.get("PayloadContent") or [] if isinstance(p, dict)]
    by_type: dict[str, list[dict]] = {}
    for payload in payloads:
        by_type.setdefault(str(payload.get("PayloadType")), []).append(payload)
    mdm = (by_type.get("com.apple.mdm") or [None])[0]
    if mdm is None or not mdm.get("ServerURL") or not mdm.get("Topic"):
        raise ProfileError("the profile has no MDM payload with a ServerURL and a Topic")
    result = EnrollmentProfile(profile=profile, signed=signed, mdm=mdm)
    identity_uuid = mdm.get("IdentityCertificateUUID")
    for payload in by_type.get("com.apple.security.scep", []):
        if identity_uuid in (None, payload.get("PayloadUUID")):
            result.scep = payload.get("PayloadContent") or {}
    for payload in by_type.get("com.apple.security.pkcs12", []):
        if identity_uuid in (None, payload.get("PayloadUUID")):
            result.pkcs12 = _pkcs12_identity(payload)
    for payload in by_type.get("com.apple.security.acme", []):
        if identity_uuid in (None, payload.get("PayloadUUID")):
            result.acme = read_acme_payload(payload)
    if result.scep is None and result.pkcs12 is None and result.acme is None:
        raise ProfileError(
            "the MDM payload's identity (SCEP, ACME or PKCS#12) is not in the profile"
        )
    for payload_type in TRUST_TYPES:
        for payload in by_type.get(payload_type, []):
            result.trust.append(_certificate(payload))
    return result


def _certificate(payload: dict) -> x509.Certificate:
    content = bytes(payload.get("PayloadContent") or b"")
    try:
        if content.lstrip().startswith(b"-----BEGIN"):
            return x509.load_pem_x509_certificate(content)
        return x509.load_der_x509_certificate(content)
    except ValueError as exc:
        name = payload.get("PayloadIdentifier")
        raise ProfileError(f"certificate payload {name}: {exc}") from None


def _pkcs12_identity(payload: dict) -> tuple[x509.Certificate, object]:
    password = payload.get("Password")
    try:
        key, certificate, _extra = pkcs12.load_key_and_certificates(
            bytes(payload.get("PayloadContent") or b""), password.encode() if password else None
        )
    except ValueError as exc:
        raise ProfileError(f"the PKCS#12 identity cannot be opened: {exc}") from None
    if key is None or certificate is None:
        raise ProfileError("the PKCS#12 payload lacks its key or certificate")
    return certificate, key


def pem(certificate: x509.Certificate) -> str:
    return certificate.public_bytes(serialization.Encoding.PEM).decode()
