"""The APNs push certificate: the topic every enrolled device listens to.

Two ways in:

- import: the certificate Apple issued (PEM, with its key or a pending request holding the key;
  or a PKCS#12 file), checked and made the one active certificate;
- the vendor-CSR flow (certs/pushcert_csr.py): the portal makes the customer key and CSR (the
  key never leaves it), the MDM vendor wraps the CSR into the PushCertWebRequest file uploaded
  to https://identity.apple.com/pushcert, and importing the certificate Apple returns pairs it
  with the kept key (here).

A third, for trying the portal without Apple: a demo certificate the portal makes itself
(certs/pushcert_demo.py), recorded with `demo=True` and usable only with a local APNs stand-in.

The management command `mdm_pushcert` and the Certificates page are thin shells over these
functions: `import_files` takes what either of them was given.
"""

import datetime as dt
import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID, ObjectIdentifier
from django.db import transaction
from django.utils import timezone

from mdm_portal.audit import audit

from .models import PushCertificate, PushCertificateRequest

log = logging.getLogger(__name__)

TOPIC_PREFIX = "com.apple.mgmt."
# Apple's APNs environment markers (Apple WWDR Certification Practice Statement): a
# certificate valid for the sandbox carries the first, one valid for production the second,
# a "universal" certificate both. Apple itself points tools to these extensions rather than
# the subject's wording (Redth/PushSharp#747). MDM push certificates from
# identity.apple.com are production certificates (subject `UID=com.apple.mgmt.External.<uuid>,
# CN=APSP:<uuid>, C=US`) and only work against api.push.apple.com (Redth/PushSharp#405;
# Zentral's APNs client always uses the production host), so without either marker the
# subject decides: "APSP:" (or anything unrecognised) is production, only an explicit
# "Development" common name is development.
OID_APNS_DEVELOPMENT = ObjectIdentifier("1.2.840.113635.100.6.3.1")
OID_APNS_PRODUCTION = ObjectIdentifier("1.2.840.113635.100.6.3.2")
DEVELOPMENT_CN_PREFIXES = ("Apple Development IOS Push Services", "Apple Development")
# The organization in the subject of the portal's own demo certificates (self-signed): how an
# import recognises one, so that a demo certificate stays a demo one however it comes in.
DEMO_ORGANIZATION = "MDM Portal demo push certificate (not issued by Apple)"

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


class PushCertError(Exception):
    """A push certificate, key or request the portal refuses, with the reason.

    `field` names the input at fault ("certificate", "key", "password", "pkcs12", "csr",
    "vendor_cert", "vendor_key", "chain", "country", "digest"), so that a form shows the
    message next to it; None when no one input is.
    """

    def __init__(self, message: str, *, field: str | None = None):
        super().__init__(message)
        self.field = field


class TopicChangeRefused(PushCertError):
    """The new certificate has another topic: enrolled devices would stop receiving pushes."""

    def __init__(self, message: str, *, old_topic: str | None, new_topic: str, orphaned: int):
        super().__init__(message, field="certificate")
        self.old_topic = old_topic
        self.new_topic = new_topic
        self.orphaned = orphaned


# -- what the portal uses ------------------------------------------------------------------------


def active_push_certificate() -> PushCertificate | None:
    return PushCertificate.objects.filter(active=True).order_by("-created_at").first()


def active_topic() -> str | None:
    """The topic devices must use (read on every check-in: one column, no key decrypted)."""
    return (
        PushCertificate.objects.filter(active=True)
        .order_by("-created_at")
        .values_list("topic", flat=True)
        .first()
    )


# -- reading certificates and keys ---------------------------------------------------------------


@dataclass(frozen=True)
class PushCertInfo:
    """What the portal reads from a push certificate."""

    topic: str
    subject: str
    serial: str
    sha256: str
    not_before: dt.datetime
    not_after: dt.datetime
    development: bool

    @property
    def kind(self) -> str:
        return "development" if self.development else "production"


def _now() -> dt.datetime:
    return timezone.now()


def public_key_sha256(key) -> str:
    """SHA-256 (hex) of a public key's SubjectPublicKeyInfo: how a certificate finds its key."""
    if hasattr(key, "public_key"):
        key = key.public_key()
    der = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(der).hexdigest()


def topic_of(certificate: x509.Certificate) -> str:
    """The topic: the UID (0.9.2342.19200300.100.1.1) of the subject, `com.apple.mgmt.*`."""
    uids = certificate.subject.get_attributes_for_oid(NameOID.USER_ID)
    if not uids:
        raise PushCertError(
            "this is not an MDM push certificate: its subject has no UID attribute "
            f"(subject {certificate.subject.rfc4514_string()!r})",
            field="certificate",
        )
    topic = str(uids[0].value)
    if not topic.startswith(TOPIC_PREFIX):
        raise PushCertError(
            f"this is not an MDM push certificate: its topic {topic!r} does not start with "
            f"{TOPIC_PREFIX!r} (an app push certificate or a vendor certificate?)",
            field="certificate",
        )
    return topic


def is_development(certificate: x509.Certificate) -> bool:
    oids = {extension.oid for extension in certificate.extensions}
    if OID_APNS_PRODUCTION in oids:
        return False  # production, or universal (both markers): production APNs works
    if OID_APNS_DEVELOPMENT in oids:
        return True
    names = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    common_name = str(names[0].value) if names else ""
    return common_name.startswith(DEVELOPMENT_CN_PREFIXES)


def is_demo(certificate: x509.Certificate) -> bool:
    """A demo certificate of the portal: self-signed, with DEMO_ORGANIZATION in its subject."""
    names = certificate.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    return certificate.issuer == certificate.subject and any(
        name.value == DEMO_ORGANIZATION for name in names
    )


def inspect_push_certificate(certificate: x509.Certificate) -> PushCertInfo:
    return PushCertInfo(
        topic=topic_of(certificate),
        subject=certificate.subject.rfc4514_string()[:500],
        serial=format(certificate.serial_number, "x"),
        sha256=certificate.fingerprint(hashes.SHA256()).hex(),
        not_before=certificate.not_valid_before_utc,
        not_after=certificate.not_valid_after_utc,
        development=is_development(certificate),
    )


def _password_bytes(password: str | bytes | None) -> bytes | None:
    if password is None or password in ("", b""):
        return None
    return password.encode() if isinstance(password, str) else password


def load_private_key(
    data: bytes, password: str | bytes | None = None, *, field: str = "key"
) -> PrivateKey:
    """A PEM (or DER) private key, optionally password protected. RSA or EC only.

    `field` is the input its refusals name (the push key, or the vendor's)."""
    loaders = (serialization.load_pem_private_key, serialization.load_der_private_key)
    if b"-----BEGIN" not in data:
        loaders = loaders[::-1]
    secret = _password_bytes(password)
    error: Exception | None = None
    for loader in loaders:
        try:
            try:
                key = loader(data, password=secret)
            except TypeError:
                if secret is None:
                    raise PushCertError(
                        "the private key is encrypted: give its password", field=field
                    ) from None
                key = loader(data, password=None)  # the password was for another file
            break
        except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
            error = error or exc
    else:
        raise PushCertError(f"cannot read the private key (wrong password?): {error}", field=field)
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise PushCertError("the private key must be RSA or EC", field=field)
    return key


def load_certificates(data: bytes, *, field: str = "certificate") -> list[x509.Certificate]:
    """The certificates of a PEM file (one or more) or of a DER file (one)."""
    try:
        if b"-----BEGIN" in data:
            return x509.load_pem_x509_certificates(data)
        return [x509.load_der_x509_certificate(data)]
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise PushCertError(f"cannot read the certificate: {exc}", field=field) from exc


def _leaf(certificates: list[x509.Certificate]) -> x509.Certificate:
    """The push certificate in a PEM file that may also hold Apple's chain."""
    for certificate in certificates:
        if certificate.subject.get_attributes_for_oid(NameOID.USER_ID):
            return certificate
    return certificates[0]


def load_pkcs12(data: bytes, password: str | bytes | None = None):
    """The certificate and key of a PKCS#12 file (the key may be absent)."""
    try:
        key, certificate, extra = pkcs12.load_key_and_certificates(data, _password_bytes(password))
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise PushCertError(
            "cannot open the PKCS#12 file: wrong password, or not a PKCS#12 file",
            field="password",
        ) from exc
    candidates = [c for c in [certificate, *(extra or [])] if c is not None]
    if not candidates:
        raise PushCertError("the PKCS#12 file holds no certificate", field="pkcs12")
    if key is not None and not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise PushCertError("the private key must be RSA or EC", field="pkcs12")
    return _leaf(candidates), key


def same_public_key(certificate: x509.Certificate, key: PrivateKey) -> bool:
    return public_key_sha256(certificate.public_key()) == public_key_sha256(key)


# -- import --------------------------------------------------------------------------------------


@dataclass
class ImportResult:
    certificate: PushCertificate
    previous: PushCertificate | None
    renewal: bool  # same topic as the certificate it replaces
    orphaned: int  # enrolled devices left on another topic (forced, or leaving a demo)
    request: PushCertificateRequest | None  # the pending request whose key was used
    replaced_demo: bool = False  # a real certificate took the place of a demo one


# How many enrolled devices listen to a topic other than the one given: a certificate for that
# topic could not wake them. Certificates know no device, so the caller (which may) counts.
OrphanCounter = Callable[[str], int]


def import_push_certificate(
    certificate_data: bytes,
    key_data: bytes | None = None,
    *,
    password: str | bytes | None = None,
    orphaned_devices: OrphanCounter,
    force: bool = False,
    actor: object = "system",
    address: str | None = None,
    now: dt.datetime | None = None,
) -> ImportResult:
    """Import Apple's push certificate (PEM or DER) with its key (PEM, optionally encrypted).

    Without `key_data` the key comes from the same PEM file, or from the portal's own
    PushCertificateRequest whose key matches the certificate (the vendor-CSR flow).
    `orphaned_devices(topic)` counts the enrolled devices a certificate for `topic` would
    orphan (devices.topics.devices_on_other_topic).
    """
    certificates = load_certificates(certificate_data)
    key = None
    if key_data is not None:
        key = load_private_key(key_data, password)
    elif b"PRIVATE KEY-----" in certificate_data:
        key = load_private_key(certificate_data, password)  # certificate and key in one file
    return _import(
        _leaf(certificates),
        key,
        orphaned_devices=orphaned_devices,
        force=force,
        actor=actor,
        address=address,
        now=now,
        source="pem",
    )


def import_pkcs12(
    data: bytes,
    password: str | bytes | None = None,
    *,
    orphaned_devices: OrphanCounter,
    force: bool = False,
    actor: object = "system",
    address: str | None = None,
    now: dt.datetime | None = None,
) -> ImportResult:
    certificate, key = load_pkcs12(data, password)
    return _import(
        certificate,
        key,
        orphaned_devices=orphaned_devices,
        force=force,
        actor=actor,
        address=address,
        now=now,
        source="pkcs12",
    )


def _import(
    certificate: x509.Certificate,
    key: PrivateKey | None,
    *,
    orphaned_devices: OrphanCounter,
    force: bool,
    actor: object,
    address: str | None,
    now: dt.datetime | None,
    source: str,
) -> ImportResult:
    info = inspect_push_certificate(certificate)
    demo = is_demo(certificate)
    now = now or _now()
    if info.not_after <= now:
        raise PushCertError(
            f"the push certificate for {info.topic} expired on {info.not_after:%Y-%m-%d %H:%M} "
            "UTC: renew it at https://identity.apple.com/pushcert and import the new one",
            field="certificate",
        )
    if key is not None and not same_public_key(certificate, key):
        raise PushCertError(
            "the private key does not belong to this certificate (their public keys differ)",
            field="key",
        )
    request = PushCertificateRequest.objects.filter(
        public_key_sha256=public_key_sha256(certificate.public_key())
    ).first()
    if key is None:
        if request is None:
            raise PushCertError(
                "no private key for this certificate: give its key (or a PKCS#12 file holding "
                "both), or import the certificate Apple issued for a CSR the portal made "
                "(`mdm_pushcert csr`, or step 1 on the Certificates page)",
                field="key",
            )
        key = load_private_key(bytes(request.private_key_pem))

    with transaction.atomic():
        current = list(PushCertificate.objects.select_for_update().filter(active=True))
        previous = max(current, key=lambda c: c.created_at, default=None)
        renewal = previous is not None and previous.topic == info.topic
        # Leaving a demo certificate for a real one needs no --force: the devices enrolled
        # with it are simulated (or test) devices, which the demo expects to enroll again.
        replaced_demo = previous is not None and previous.demo and not demo
        orphaned = 0 if renewal else orphaned_devices(info.topic)
        if orphaned and not force and not replaced_demo:
            old = previous.topic if previous is not None else "another topic"
            raise TopicChangeRefused(
                f"REFUSED: this certificate's topic is {info.topic}, but {orphaned} enrolled "
                f"device(s) listen to {old}. Devices only accept pushes on the topic they "
                "enrolled with: after this import the portal could no longer wake them, and "
                "every one of them would have to enroll again. To renew, use the same Apple ID "
                "at https://identity.apple.com/pushcert and choose Renew on the existing "
                "certificate (same topic). Import with --force only if you mean to re-enroll "
                "them all.",
                old_topic=previous.topic if previous is not None else None,
                new_topic=info.topic,
                orphaned=orphaned,
            )
        PushCertificate.objects.filter(pk__in=[c.pk for c in current]).update(active=False)
        record = PushCertificate.objects.create(
            topic=info.topic,
            certificate_pem=certificate.public_bytes(serialization.Encoding.PEM).decode(),
            private_key_pem=key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),  # encrypted at rest by the model field
            ),
            sha256=info.sha256,
            serial=info.serial,
            subject=info.subject,
            not_before=info.not_before,
            not_after=info.not_after,
            development=info.development,
            demo=demo,
            active=True,
        )
        if request is not None and request.completed_at is None:
            request.completed_at = now
            request.save(update_fields=["completed_at"])
    audit(
        "pushcert.imported",
        actor=actor,
        target=info.topic,
        address=address,
        sha256=info.sha256,
        serial=info.serial,
        not_after=info.not_after.isoformat(),
        kind=info.kind,
        demo=demo,
        source=source,
        renewal=renewal,
        previous_topic=previous.topic if previous is not None else None,
        forced=bool(force and orphaned and not replaced_demo),
        replaced_demo=replaced_demo,
        orphaned_devices=orphaned,
        request=request.public_key_sha256 if request is not None else None,
    )
    if orphaned:
        log.warning("push certificate %s imported: %s", info.topic, orphan_warning(orphaned, demo))
    log.info("push certificate %s imported (%s, until %s)", info.topic, info.kind, info.not_after)
    return ImportResult(
        certificate=record,
        previous=previous,
        renewal=renewal,
        orphaned=orphaned,
        request=request,
        replaced_demo=replaced_demo,
    )


def orphan_warning(orphaned: int, replaced_demo: bool) -> str:
    """What a person must know when an import leaves enrolled devices on the old topic (the
    command, the page and the log say the same)."""
    if replaced_demo:
        return (
            f"{orphaned} device(s) enrolled with the demo push certificate listen to its topic and "
            "can no longer be woken: they must enroll again (simulated devices: start the "
            "simulator with a new --state file)"
        )
    return (
        f"{orphaned} enrolled device(s) listen to another topic and can no longer be woken: "
        "they must enroll again"
    )


def import_files(
    *,
    certificate: bytes | None = None,
    key: bytes | None = None,
    pkcs12_data: bytes | None = None,
    password: str | None = None,
    orphaned_devices: OrphanCounter,
    force: bool = False,
    actor: object = "system",
    address: str | None = None,
) -> ImportResult:
    """Import what a person gave (the command's options, the upload form's files): a PKCS#12
    file with its password, or a certificate with its key (or none: the key in the same PEM
    file, or the portal's own CSR's). `password` opens the PKCS#12 file or the key."""
    if pkcs12_data is not None:
        if certificate is not None or key is not None:
            raise PushCertError(
                "give a PKCS#12 file alone (it holds its own key), or a certificate with its key",
                field="key" if key is not None else "certificate",
            )
        return import_pkcs12(
            pkcs12_data,
            password,
            orphaned_devices=orphaned_devices,
            force=force,
            actor=actor,
            address=address,
        )
    if certificate is None:
        raise PushCertError(
            "give the push certificate (PEM or DER), or a PKCS#12 file", field="certificate"
        )
    return import_push_certificate(
        certificate,
        key,
        password=password,
        orphaned_devices=orphaned_devices,
        force=force,
        actor=actor,
        address=address,
    )


def describe_import(result: ImportResult) -> list[str]:
    """What an import did, in a few lines for a person (the command prints them, the UI shows
    them): topic and kind, validity, what it replaced, which key it paired with."""
    cert = result.certificate
    kind = "development" if cert.development else "production"
    lines = [
        f"imported push certificate {cert.topic} ({kind})",
        f"valid until {cert.not_after:%Y-%m-%d %H:%M} UTC",
        f"sha256 {cert.sha256}",
    ]
    if cert.demo:
        lines.append("DEMO certificate: pushes go only to the local APNs stand-in (MDM_APNS_URL)")
    if result.previous is not None:
        what = "renewal of" if result.renewal else "REPLACES"
        demo = "the demo certificate " if result.replaced_demo else ""
        lines.append(f"{what} {demo}{result.previous.topic} (sha256 {result.previous.sha256})")
    if result.request is not None:
        lines.append("paired with the key of the portal's own CSR")
    return lines


def push_certificate_status(now: dt.datetime | None = None) -> dict | None:
    """The active push certificate as the `show` command and the UI present it. Whether the
    portal holds its key is read without decrypting (or returning) the key."""
    cert = (
        PushCertificate.objects.filter(active=True)
        .defer("private_key_pem")
        .order_by("-created_at")
        .first()
    )
    if cert is None:
        return None
    now = now or _now()
    return {
        "topic": cert.topic,
        "kind": "development" if cert.development else "production",
        "demo": cert.demo,
        "subject": cert.subject,
        "serial": cert.serial,
        "sha256": cert.sha256,
        "not_before": cert.not_before,
        "not_after": cert.not_after,
        "days_left": (cert.not_after - now) // dt.timedelta(days=1),
        "expired": cert.not_after <= now,
        "imported_at": cert.created_at,
        "key_present": PushCertificate.objects.filter(
            pk=cert.pk, private_key_pem__isnull=False
        ).exists(),
    }
