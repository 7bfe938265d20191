"""The enrollment profile: trust, a device identity and the MDM payload, signed by the portal.

Following the seed ("Initial Profiles Should Contain Only The Basics"), the profile holds only:

- trust: our device-identity CA (`com.apple.security.root`) and, when the server's TLS chain is
  private (the portal's own server-TLS CA, or an `MDM_TLS_CERT_FILE` that leads to no public
  root), its CA certificates (self-signed roots as `com.apple.security.root`, other CA
  certificates as `com.apple.security.pkcs1`; certificate payloads install before the MDM one);
- the device identity, as the enrollment chose: an ACME payload (`com.apple.security.acme`, iOS
  16 / macOS 13.1 and later) with a fresh one-time ClientIdentifier, whose key the device makes
  in its hardware and, with attestation, proves to be there (recommended); a SCEP payload with
  a fresh one-time challenge (the key never leaves the device either: for older OS versions);
  or a PKCS#12 payload with a key and certificate made here;
- the MDM payload (`com.apple.mdm`), whose IdentityCertificateUUID points at that identity.

Key names follow Apple's device-management schema (`mdm/profiles/com.apple.mdm.yaml`,
`com.apple.security.acme.yaml`, `com.apple.security.scep.yaml`, `com.apple.security.pkcs12.yaml`,
`com.apple.security.root.yaml` in ../shared/apple-device-management, and
developer.apple.com/documentation/devicemanagement/scep).

Each profile handed out counts one use of the enrollment; the count is a conditional UPDATE, so
two downloads racing for the last use cannot both get a profile.
"""

import datetime as dt
import ipaddress
import logging
import re
import secrets
import uuid
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID
from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from certs.ca import CAError, active_ca, ca_certificate, issue_certificate, new_private_key
from certs.models import IssuedCertificate, PushCertificate, ScepChallenge
from certs.pushcert import active_push_certificate
from certs.server_tls import ServerTLSError, is_public, is_self_signed, served_chain
from commands.catalog import access_rights_error
from mdm_portal.audit import audit

from .links import issue_enrollment_challenge, link_certificate
from .models import Enrollment
from .profiles import sign_profile

log = logging.getLogger(__name__)

SCEP_NAME = "MDM Portal"
# The server supports bootstrap-token escrow (Set/GetBootstrapToken check-ins). Not
# "com.apple.mdm.per-user-connections" (no user channel here) nor "com.apple.mdm.token"
# (GetToken is not implemented): a capability the server does not honour must not be claimed.
SERVER_CAPABILITIES = ["com.apple.mdm.bootstraptoken"]
KEY_USAGE_SIGN_AND_ENCRYPT = 1 | 4  # signing + encryption: profiles can be encrypted to it
# ACME: a P-384 key, the largest a Secure Enclave makes (hardware-bound keys are P-256 or
# P-384); EC keys sign only (a profile cannot be encrypted to them).
ACME_KEY_TYPE, ACME_KEY_SIZE = "ECSECPrimeRandom", 384
KEY_USAGE_SIGN = 1

# PKCS#12 protection. The Password travels in the same profile as the PKCS#12 data, so the
# password-based encryption protects nothing against whoever holds the profile (the profile's
# own protection is TLS on the way and the device's keychain afterwards): the only thing the
# choice decides is whether the device can open it. Apple's Security framework historically
# reads only the PKCS#12 v1 ciphers (3DES, SHA-1 MAC) and several reports show it refusing
# PBES2/AES-256 containers (pyca/cryptography#7293, openssl/openssl#19871), while recent macOS
# imports OpenSSL 3's AES-256-CBC/PBKDF2-SHA256 default. So "compat" (3DES, SHA-1 MAC, 2048
# rounds, what `openssl pkcs12 -legacy`-era tools wrote) is the default; MDM_PKCS12_ENCRYPTION
# = "aes" gives AES-256-CBC with PBKDF2-HMAC-SHA256 and a SHA-256 MAC for fleets known to
# accept it.
PKCS12_ENCRYPTIONS = {
    "compat": (pkcs12.PBES.PBESv1SHA1And3KeyTripleDESCBC, hashes.SHA1()),  # noqa: S303
    "aes": (pkcs12.PBES.PBESv2SHA256AndAES256CBC, hashes.SHA256()),
}
PKCS12_KDF_ROUNDS = 2048


class EnrollmentUnavailable(Exception):
    """No profile can be handed out for this enrollment; `reason` says why, for the page."""

    INACTIVE = "inactive"
    EXPIRED = "expired"
    USED_UP = "used_up"
    NO_PUSH_CERTIFICATE = "no_push_certificate"
    MISCONFIGURED = "misconfigured"

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


def _misconfigured(message: str) -> EnrollmentUnavailable:
    return EnrollmentUnavailable(EnrollmentUnavailable.MISCONFIGURED, message)


def unavailable_reason(enrollment: Enrollment, now: dt.datetime | None = None) -> str | None:
    """Why the enrollment's link cannot be used (inactive, expired, used up), or None."""
    now = now or timezone.now()
    if not enrollment.active:
        return EnrollmentUnavailable.INACTIVE
    if enrollment.expires_at is not None and enrollment.expires_at <= now:
        return EnrollmentUnavailable.EXPIRED
    if enrollment.max_uses is not None and enrollment.uses >= enrollment.max_uses:
        return EnrollmentUnavailable.USED_UP
    return None


_REASON_MESSAGES = {
    EnrollmentUnavailable.INACTIVE: "this enrollment has been turned off",
    EnrollmentUnavailable.EXPIRED: "this enrollment has expired",
    EnrollmentUnavailable.USED_UP: "this enrollment has been used the maximum number of times",
}


def check_available(enrollment: Enrollment, *, renewal: bool = False) -> PushCertificate:
    """The active push certificate, or EnrollmentUnavailable when no profile can be made now.

    Cheap checks only (no use counted, nothing issued): the OTA page calls it too. A renewal
    for an enrolled device is not bound by the link's expiry or uses.
    """
    reason = None if renewal else unavailable_reason(enrollment)
    if reason is not None:
        raise EnrollmentUnavailable(reason, _REASON_MESSAGES[reason])
    push = active_push_certificate()
    if push is None:
        raise EnrollmentUnavailable(
            EnrollmentUnavailable.NO_PUSH_CERTIFICATE,
            "this portal has no push certificate yet: a profile without the right topic "
            "cannot work (import one with `mdm_pushcert`)",
        )
    if not push.topic.startswith("com.apple.mgmt."):
        raise _misconfigured(f"the push certificate's topic {push.topic!r} is not an MDM topic")
    error = access_rights_error(enrollment.access_rights)
    if error:
        raise _misconfigured(f"enrollment {enrollment.name!r}: {error}")
    return push


def _new_uuid() -> str:
    return str(uuid.uuid4()).upper()


def profile_identifier() -> str:
    """The enrollment profile's PayloadIdentifier: one per portal (reverse DNS of its host).

    Stable on purpose: installing a newer enrollment profile from the same portal updates the
    installed one instead of adding a second MDM payload, which a device refuses.
    """
    host = urlsplit(settings.MDM_PUBLIC_URL).hostname or "localhost"
    try:
        ipaddress.ip_address(host)
        base = "local.mdm-portal." + re.sub(r"[^0-9A-Za-z]+", "-", host)
    except ValueError:
        base = ".".join(reversed(host.lower().split(".")))
    return f"{base}.enrollment"


def _certificate_payload(
    payload_type: str, certificate: x509.Certificate, identifier: str, name: str
) -> dict:
    return {
        "PayloadType": payload_type,
        "PayloadVersion": 1,
        "PayloadIdentifier": identifier,
        "PayloadUUID": _new_uuid(),
        "PayloadDisplayName": name,
        "PayloadCertificateFileName": re.sub(r"[^0-9A-Za-z._-]+", "-", name) + ".cer",
        "PayloadContent": certificate.public_bytes(serialization.Encoding.DER),
    }


def _common_name(certificate: x509.Certificate) -> str:
    names = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(names[0].value) if names else certificate.subject.rfc4514_string()


def _is_ca(certificate: x509.Certificate) -> bool:
    try:
        return certificate.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        return False


def tls_trust_certificates() -> list[x509.Certificate]:
    """The CA certificates of the server's TLS chain that devices must be given: none for a
    chain that leads to a public root. A chain file that cannot be read is an error."""
    try:
        chain = served_chain()
    except ServerTLSError as exc:
        raise _misconfigured(str(exc)) from None
    if is_public(chain):
        return []
    # A leaf issued by a CA: the server presents it itself; trusting its issuers suffices.
    # A self-signed server certificate is its own root.
    return [c for c in chain if is_self_signed(c) or _is_ca(c)]


def trust_payloads(identifier: str) -> list[dict]:
    """Root/intermediate payloads: our CA, then the server's TLS chain (roots first)."""
    try:
        ca = ca_certificate(active_ca())
    except CAError as exc:
        raise _misconfigured(str(exc)) from None
    payloads = [
        _certificate_payload(
            "com.apple.security.root", ca, f"{identifier}.trust.ca", _common_name(ca)
        )
    ]
    seen = {ca.fingerprint(hashes.SHA256())}
    roots, intermediates = [], []
    for certificate in tls_trust_certificates():
        fingerprint = certificate.fingerprint(hashes.SHA256())
        if fingerprint in seen:
            continue
        seen.add(fingerprint)
        # A private root (or a self-signed server certificate), else an intermediate.
        (roots if is_self_signed(certificate) else intermediates).append(certificate)
    for index, certificate in enumerate(roots):
        payloads.append(
            _certificate_payload(
                "com.apple.security.root",
                certificate,
                f"{identifier}.trust.tls-root.{index}",
                _common_name(certificate),
            )
        )
    for index, certificate in enumerate(intermediates):
        payloads.append(
            _certificate_payload(
                "com.apple.security.pkcs1",
                certificate,
                f"{identifier}.trust.tls-intermediate.{index}",
                _common_name(certificate),
            )
        )
    return payloads


def _identity_common_name() -> str:
    return f"MDM Identity {secrets.token_hex(4).upper()}"


def scep_payload(enrollment: Enrollment, identifier: str, device=None) -> dict:
    """The SCEP payload, with a fresh one-time challenge bound to the enrollment (and device)."""
    return {
        "PayloadType": "com.apple.security.scep",
        "PayloadVersion": 1,
        "PayloadIdentifier": f"{identifier}.identity",
        "PayloadUUID": _new_uuid(),
        "PayloadDisplayName": "Device identity (SCEP)",
        "PayloadDescription": "Asks the portal's certificate authority for this device's identity",
        "PayloadContent": {
            "URL": settings.MDM_PUBLIC_URL + "/scep",
            "Name": SCEP_NAME,
            "Challenge": issue_enrollment_challenge(enrollment, device=device),
            "Keysize": 2048,
            "Key Type": "RSA",
            "Key Usage": KEY_USAGE_SIGN_AND_ENCRYPT,
            "Subject": [
                [["CN", _identity_common_name()]],
                [["O", settings.MDM_ORGANIZATION]],
            ],
        },
    }


def acme_payload(enrollment: Enrollment, identifier: str, device=None) -> dict:
    """The ACME payload: the device asks our ACME server (`/acme/directory`) for its identity
    with a fresh one-time ClientIdentifier bound to the enrollment (and device).

    With attestation (the default) the key is hardware-bound and the device attests it: the
    server then knows which device holds it, and its Authenticate must be that device.
    Without, HardwareBound and Attest are false, as Apple requires on Macs that cannot attest
    (before macOS 14, or without Apple silicon or a T2 chip).
    """
    attest = bool(enrollment.acme_attestation)
    return {
        "PayloadType": "com.apple.security.acme",
        "PayloadVersion": 1,
        "PayloadIdentifier": f"{identifier}.identity",
        "PayloadUUID": _new_uuid(),
        "PayloadDisplayName": "Device identity (ACME)",
        "PayloadDescription": (
            "Asks the portal's ACME server for this device's identity"
            + (", attested by the device's hardware" if attest else "")
        ),
        "DirectoryURL": settings.MDM_PUBLIC_URL + "/acme/directory",
        "ClientIdentifier": issue_enrollment_challenge(
            enrollment, device=device, purpose=ScepChallenge.Purpose.ACME
        ),
        "KeyType": ACME_KEY_TYPE,
        "KeySize": ACME_KEY_SIZE,
        "HardwareBound": attest,
        "Attest": attest,
        "Subject": [
            [["CN", _identity_common_name()]],
            [["O", settings.MDM_ORGANIZATION]],
        ],
        "UsageFlags": KEY_USAGE_SIGN,
    }


def identity_in_words(enrollment: Enrollment) -> str:
    """How the device gets its identity, for the profile's description and the pages."""
    if enrollment.identity == Enrollment.Identity.ACME:
        if enrollment.acme_attestation:
            return (
                "requested over ACME: its key is made in the device's hardware, never leaves "
                "it, and the hardware attests which device it is"
            )
        return "requested over ACME without hardware attestation: its key never leaves the device"
    if enrollment.identity == Enrollment.Identity.PKCS12:
        return "made by the server and carried in the profile (PKCS#12)"
    return "requested over SCEP: its key never leaves the device"


def _pkcs12_encryption(password: bytes):
    choice = getattr(settings, "MDM_PKCS12_ENCRYPTION", "") or "compat"
    if choice not in PKCS12_ENCRYPTIONS:
        raise _misconfigured(
            f"MDM_PKCS12_ENCRYPTION must be one of {', '.join(PKCS12_ENCRYPTIONS)}, not {choice!r}"
        )
    algorithm, mac = PKCS12_ENCRYPTIONS[choice]
    return (
        serialization.PrivateFormat.PKCS12.encryption_builder()
        .kdf_rounds(PKCS12_KDF_ROUNDS)
        .key_cert_algorithm(algorithm)
        .hmac_hash(mac)
        .build(password)
    )


def pkcs12_payload(
    enrollment: Enrollment, identifier: str, key, *, actor: object, device=None
) -> tuple[dict, IssuedCertificate]:
    """A PKCS#12 payload: `key` and the certificate our CA issues for it (recorded)."""
    common_name = _identity_common_name()
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, settings.MDM_ORGANIZATION),
        ]
    )
    csr = x509.CertificateSigningRequestBuilder().subject_name(subject).sign(key, hashes.SHA256())
    certificate, record = issue_certificate(csr, delivery="pkcs12", actor=actor)
    link_certificate(record, enrollment, device)
    password = secrets.token_urlsafe(24)
    data = pkcs12.serialize_key_and_certificates(
        common_name.encode(), key, certificate, None, _pkcs12_encryption(password.encode())
    )
    payload = {
        "PayloadType": "com.apple.security.pkcs12",
        "PayloadVersion": 1,
        "PayloadIdentifier": f"{identifier}.identity",
        "PayloadUUID": _new_uuid(),
        "PayloadDisplayName": "Device identity (PKCS#12)",
        "PayloadDescription": "This device's identity certificate and key",
        "PayloadCertificateFileName": "identity.p12",
        "PayloadContent": data,
        "Password": password,
    }
    return payload, record


def mdm_payload(
    enrollment: Enrollment, identifier: str, identity_uuid: str, push: PushCertificate
) -> dict:
    payload = {
        "PayloadType": "com.apple.mdm",
        "PayloadVersion": 1,
        "PayloadIdentifier": f"{identifier}.mdm",
        "PayloadUUID": _new_uuid(),
        "PayloadDisplayName": "Device management",
        "PayloadDescription": f"Lets {settings.MDM_ORGANIZATION} manage this device",
        "IdentityCertificateUUID": identity_uuid,
        "Topic": push.topic,
        "ServerURL": settings.MDM_PUBLIC_URL + "/mdm/connect",
        "CheckInURL": settings.MDM_PUBLIC_URL + "/mdm/checkin",
        "SignMessage": bool(enrollment.sign_message),
        "CheckOutWhenRemoved": bool(enrollment.check_out_when_removed),
        "AccessRights": enrollment.access_rights,
        "ServerCapabilities": list(SERVER_CAPABILITIES),
    }
    if push.development:
        payload["UseDevelopmentAPNS"] = True
    return payload


def _consume_use(enrollment: Enrollment) -> None:
    """Count one profile handed out, only while the enrollment is usable (one statement)."""
    now = timezone.now()
    counted = (
        Enrollment.objects.filter(pk=enrollment.pk, active=True)
        .filter(Q(expires_at__isnull=True) | Q(expires_at__gt=now))
        .filter(Q(max_uses__isnull=True) | Q(uses__lt=F("max_uses")))
        .update(uses=F("uses") + 1)
    )
    try:
        enrollment.refresh_from_db(fields=["uses", "active", "expires_at", "max_uses"])
    except Enrollment.DoesNotExist:  # deleted meanwhile
        raise EnrollmentUnavailable(
            EnrollmentUnavailable.INACTIVE, _REASON_MESSAGES[EnrollmentUnavailable.INACTIVE]
        ) from None
    if not counted:
        reason = unavailable_reason(enrollment, now) or EnrollmentUnavailable.USED_UP
        raise EnrollmentUnavailable(reason, _REASON_MESSAGES[reason])


def build_enrollment_profile(
    enrollment: Enrollment, *, actor: object = "ota", client: str = "", for_device=None
) -> dict:
    """The enrollment profile (unsigned), counting one use. Raises EnrollmentUnavailable.

    `for_device` makes a renewal profile for an enrolled device: no use is counted and the
    new identity binds to that device.
    """
    return _issue(enrollment, actor=actor, client=client, for_device=for_device)


def enrollment_profile_bytes(
    enrollment: Enrollment, *, actor: object = "ota", client: str = "", details: dict | None = None
) -> bytes:
    """The signed enrollment profile (DER CMS). The use is counted only if signing succeeds.
    `details` go into its audit entry (the DEP device it was served to, say)."""
    return _issue(
        enrollment,
        actor=actor,
        client=client,
        for_device=None,
        finish=sign_profile,
        details=details,
    )


def _issue(enrollment: Enrollment, *, actor, client: str, for_device, finish=None, details=None):
    """Build the profile, `finish` it (sign it), then count the use: last, because every
    device of an enrollment counts on the same row, which stays locked until the commit (so
    the profiles of many devices are built and signed side by side, not one after another)."""
    push = check_available(enrollment, renewal=for_device is not None)
    if not settings.MDM_PUBLIC_URL.startswith("https://"):
        log.warning("MDM_PUBLIC_URL is not https: devices will refuse this enrollment profile")
    if not enrollment.sign_message and not settings.MDM_CLIENT_CERT_HEADER:
        log.warning(
            "enrollment %r: SignMessage is off and no TLS proxy forwards client certificates "
            "(MDM_CLIENT_CERT_HEADER): its devices cannot prove who they are",
            enrollment.name,
        )
    identifier = profile_identifier()
    trust = trust_payloads(identifier)
    # The key is made before the transaction: RSA generation must not hold the write lock.
    key = new_private_key("rsa") if enrollment.identity == Enrollment.Identity.PKCS12 else None
    with transaction.atomic():
        record = None
        if key is not None:
            identity, record = pkcs12_payload(
                enrollment, identifier, key, actor=actor, device=for_device
            )
        elif enrollment.identity == Enrollment.Identity.ACME:
            identity = acme_payload(enrollment, identifier, device=for_device)
        else:
            identity = scep_payload(enrollment, identifier, device=for_device)
        mdm = mdm_payload(enrollment, identifier, identity["PayloadUUID"], push)
        organization = settings.MDM_ORGANIZATION
        profile = {
            "PayloadType": "Configuration",
            "PayloadVersion": 1,
            "PayloadIdentifier": identifier,
            "PayloadUUID": _new_uuid(),
            "PayloadDisplayName": f"{organization} device management",
            "PayloadOrganization": organization,
            "PayloadDescription": (
                f"Enrolls this device in {organization}'s device management: it installs "
                f"trust certificates, a device identity ({identity_in_words(enrollment)}), "
                "and lets the organization manage the device."
            ),
            "PayloadContent": [*trust, identity, mdm],
        }
        result = finish(profile) if finish is not None else profile
        if for_device is None:
            _consume_use(enrollment)
        audit(
            "enrollment.profile_issued",
            actor=actor,
            target=enrollment.name,
            address=client or None,
            enrollment=enrollment.pk,
            identity=enrollment.identity,
            acme_attestation=enrollment.acme_attestation
            if enrollment.identity == Enrollment.Identity.ACME
            else None,
            profile_uuid=profile["PayloadUUID"],
            identity_payload_uuid=identity["PayloadUUID"],
            certificate_serial=record.serial if record is not None else None,
            topic=push.topic,
            access_rights=enrollment.access_rights,
            uses=enrollment.uses,
            client=client,
            **(details or {}),
        )
    return result
