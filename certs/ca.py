"""The device-identity CA: created once by `mdm_init`, then issues device certificates from CSRs."""

import datetime as dt
import logging
from functools import lru_cache

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from django.conf import settings
from django.db import IntegrityError, transaction

from mdm_portal.audit import audit

from .models import CertificateAuthority, IssuedCertificate, ScepChallenge, ServerIdentity
from .signals import certificate_issued

log = logging.getLogger(__name__)

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


class CAError(Exception):
    """The CA is missing, or a request to it cannot be honoured."""


def sha256_hex(certificate: x509.Certificate) -> str:
    return certificate.fingerprint(hashes.SHA256()).hex()


def new_private_key(key_type: str) -> PrivateKey:
    if key_type == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    if key_type == "ec":
        return ec.generate_private_key(ec.SECP256R1())
    raise CAError(f"unsupported key type {key_type!r}: use 'rsa' or 'ec'")


def private_key_pem(key: PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),  # encrypted at rest by the model field
    )


def key_usage(**allowed: bool) -> x509.KeyUsage:
    """digitalSignature plus the usages named in `allowed`; everything else off."""
    flags = dict.fromkeys(
        (
            "content_commitment",
            "key_encipherment",
            "data_encipherment",
            "key_agreement",
            "key_cert_sign",
            "crl_sign",
            "encipher_only",
            "decipher_only",
        ),
        False,
    )
    return x509.KeyUsage(digital_signature=True, **{**flags, **allowed})


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def ensure_ca(*, actor: object = "mdm_init") -> tuple[CertificateAuthority, bool]:
    """Return the active CA, creating it on first call. Idempotent: never replaces a CA."""
    with transaction.atomic():
        existing = CertificateAuthority.objects.select_for_update().filter(active=True).first()
        if existing is not None:
            return existing, False
        ca = _create_ca()
    audit("ca.created", actor=actor, target=ca.name, sha256=ca.sha256)
    log.info("created device-identity CA %s (sha256 %s)", ca.name, ca.sha256)
    return ca, True


def self_signed_ca(
    key: PrivateKey, name: x509.Name, critical_extensions: tuple[x509.ExtensionType, ...] = ()
) -> x509.Certificate:
    """A root for `key`, valid MDM_CA_VALIDITY_DAYS, that signs end certificates only (path
    length 0), with `critical_extensions` too (the server-TLS CA's name constraints)."""
    now = _now()
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=settings.MDM_CA_VALIDITY_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(key_usage(key_cert_sign=True, crl_sign=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    for extension in critical_extensions:
        builder = builder.add_extension(extension, critical=True)
    return builder.sign(key, hashes.SHA256())


def _create_ca() -> CertificateAuthority:
    key = new_private_key(settings.MDM_CA_KEY_TYPE)
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, settings.MDM_CA_COMMON_NAME),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "MDM Portal"),
        ]
    )
    certificate = self_signed_ca(key, name)
    return CertificateAuthority.objects.create(
        name=settings.MDM_CA_COMMON_NAME,
        certificate_pem=certificate.public_bytes(serialization.Encoding.PEM).decode(),
        private_key_pem=private_key_pem(key),
        sha256=sha256_hex(certificate),
        not_before=certificate.not_valid_before_utc,
        not_after=certificate.not_valid_after_utc,
    )


def active_ca() -> CertificateAuthority:
    # The key stays undecrypted until it is asked for (ca_private_key): most callers only
    # need the certificate, and decrypting it is most of the cost of reading the row.
    ca = CertificateAuthority.objects.defer("private_key_pem").filter(active=True).first()
    if ca is None:
        raise CAError("no device-identity CA yet: run `python manage.py mdm_init`")
    return ca


@lru_cache(maxsize=16)
def _parse_certificate(pem: str) -> x509.Certificate:
    return x509.load_pem_x509_certificate(pem.encode())


def ca_certificate(ca: CertificateAuthority) -> x509.Certificate:
    # Parsed once per process: every device request checks its chain against it.
    return _parse_certificate(ca.certificate_pem)


def load_stored_key(pem: bytes) -> PrivateKey:
    """A private key from our own encrypted storage.

    Fernet authenticates what it decrypts, so the key is the one we stored: cryptography's
    RSA consistency check (about 35 ms per load) adds nothing here.
    """
    return serialization.load_pem_private_key(
        bytes(pem), password=None, unsafe_skip_rsa_key_validation=True
    )


_ca_keys: dict[tuple[int, str], PrivateKey] = {}


def ca_private_key(ca: CertificateAuthority) -> PrivateKey:
    """The CA's key, decrypted once per process (a CA's key never changes; a new CA has
    another fingerprint)."""
    cache_key = (ca.pk, ca.sha256)
    key = _ca_keys.get(cache_key)
    if key is None:
        key = _ca_keys[cache_key] = load_stored_key(ca.private_key_pem)
    return key


def issue_certificate(
    csr: x509.CertificateSigningRequest,
    *,
    validity_days: int | None = None,
    challenge: ScepChallenge | None = None,
    renews: IssuedCertificate | None = None,
    delivery: str = "",
    attested: dict[str, str] | None = None,
    actor: object = "ca",
) -> tuple[x509.Certificate, IssuedCertificate]:
    """Issue a device identity certificate for `csr` and record it.

    `delivery` is how it reaches the device ("scep", "acme", "pkcs12"); `attested` what a
    device attestation proved about the device holding the key (`udid`, `serial`), which its
    Authenticate must then match.

    The certificate is for TLS client authentication and CMS signing (clientAuth,
    digitalSignature; keyEncipherment too for RSA keys, so profiles can be encrypted to it).
    `challenge` (the SCEP challenge that authorised it) and `renews` (the certificate it
    renews) go out with `certificate_issued`, in the same transaction: the layers above bind
    the certificate to a device and an enrollment from them.
    """
    if not csr.is_signature_valid:
        raise CAError("the CSR's signature does not verify")
    public_key = csr.public_key()
    if not isinstance(public_key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey):
        raise CAError("only RSA and EC keys are accepted")
    if isinstance(public_key, rsa.RSAPublicKey) and public_key.key_size < 2048:
        raise CAError("RSA keys must be at least 2048 bits")
    ca = active_ca()
    issuer = ca_certificate(ca)
    days = validity_days or settings.MDM_DEVICE_CERT_VALIDITY_DAYS
    with transaction.atomic():
        certificate, record = _record_new_certificate(
            csr, ca, issuer, days, delivery=delivery, attested=attested or {}
        )
        certificate_issued.send(
            IssuedCertificate, certificate=record, challenge=challenge, renews=renews
        )
    audit(
        "certificate.issued",
        actor=actor,
        target=record.subject,
        serial=record.serial,
        sha256=record.sha256,
        renews=renews.serial if renews is not None else None,
    )
    return certificate, record


def _record_new_certificate(
    csr: x509.CertificateSigningRequest,
    ca: CertificateAuthority,
    issuer: x509.Certificate,
    days: int,
    *,
    delivery: str,
    attested: dict[str, str],
) -> tuple[x509.Certificate, IssuedCertificate]:
    # Random 159-bit serials; the unique constraint catches the (astronomically rare) repeat.
    for _attempt in range(3):
        certificate = _build_certificate(csr, issuer, ca_private_key(ca), days)
        try:
            with transaction.atomic():
                record = IssuedCertificate.objects.create(
                    authority=ca,
                    serial=format(certificate.serial_number, "x"),
                    subject=certificate.subject.rfc4514_string()[:500],
                    sha256=sha256_hex(certificate),
                    certificate_pem=certificate.public_bytes(serialization.Encoding.PEM).decode(),
                    not_before=certificate.not_valid_before_utc,
                    not_after=certificate.not_valid_after_utc,
                    delivery=delivery,
                    attested_udid=attested.get("udid", ""),
                    attested_serial=attested.get("serial", ""),
                )
        except IntegrityError:
            continue
        return certificate, record
    raise CAError("could not allocate a unique serial number")


def _build_certificate(
    csr: x509.CertificateSigningRequest,
    issuer: x509.Certificate,
    issuer_key: PrivateKey,
    days: int,
) -> x509.Certificate:
    public_key = csr.public_key()
    now = _now()
    not_after = min(now + dt.timedelta(days=days), issuer.not_valid_after_utc)
    is_rsa = isinstance(public_key, rsa.RSAPublicKey)
    issuer_ski = issuer.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    return (
        x509.CertificateBuilder()
        .subject_name(csr.subject)
        .issuer_name(issuer.subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(key_usage(key_encipherment=is_rsa), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(issuer_ski),
            critical=False,
        )
        .sign(issuer_key, hashes.SHA256())
    )


def revoke(record: IssuedCertificate, *, reason: str, actor: object = "system") -> None:
    if record.revoked_at is None:
        record.revoked_at = _now()
        record.revocation_reason = reason[:200]
        record.save(update_fields=["revoked_at", "revocation_reason"])
        audit("certificate.revoked", actor=actor, target=record.subject, serial=record.serial)


PROFILE_SIGNING = "profile-signing"


def ensure_server_identity(purpose: str, *, actor: object = "mdm_init") -> ServerIdentity:
    """The server's own certificate for `purpose`, issued by our CA on first use."""
    # Read without a lock: every enrollment profile is signed with it, and a row lock held
    # to the end of each profile's transaction would sign them one at a time.
    existing = ServerIdentity.objects.filter(purpose=purpose).first()
    if existing is not None:
        return existing
    try:
        identity, certificate = _create_server_identity(purpose)
    except IntegrityError:  # made at the same moment by another request: theirs will do
        return ServerIdentity.objects.get(purpose=purpose)
    audit("server_identity.created", actor=actor, target=purpose, sha256=sha256_hex(certificate))
    return identity


def _create_server_identity(purpose: str) -> tuple[ServerIdentity, x509.Certificate]:
    with transaction.atomic():
        ca = active_ca()
        key = new_private_key("rsa")
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"MDM Portal {purpose}")])
        csr = x509.CertificateSigningRequestBuilder().subject_name(name).sign(key, hashes.SHA256())
        issuer = ca_certificate(ca)
        certificate = (
            x509.CertificateBuilder()
            .subject_name(csr.subject)
            .issuer_name(issuer.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(_now() - dt.timedelta(minutes=5))
            .not_valid_after(issuer.not_valid_after_utc)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(key_usage(), critical=True)
            .sign(ca_private_key(ca), hashes.SHA256())
        )
        identity = ServerIdentity.objects.create(
            purpose=purpose,
            certificate_pem=certificate.public_bytes(serialization.Encoding.PEM).decode(),
            private_key_pem=private_key_pem(key),
            not_after=certificate.not_valid_after_utc,
        )
    return identity, certificate


_credentials: dict[str, tuple[tuple[int, str], x509.Certificate, PrivateKey]] = {}


def server_credentials(purpose: str) -> tuple[x509.Certificate, PrivateKey]:
    """The certificate and key of `purpose`, parsed once per process for each certificate the
    row holds (a renewal writes a new certificate, so it is parsed again)."""
    identity = ensure_server_identity(purpose, actor="system")
    version = (identity.pk, identity.certificate_pem)
    cached = _credentials.get(purpose)
    if cached is None or cached[0] != version:
        certificate = x509.load_pem_x509_certificate(identity.certificate_pem.encode())
        cached = (version, certificate, load_stored_key(identity.private_key_pem))
        _credentials[purpose] = cached
    return cached[1], cached[2]
