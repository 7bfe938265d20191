"""The vendor-CSR flow of the push certificate, step by step (README "Enrollment and
certificates"):

1. `create_push_csr`: the customer's RSA key and CSR, made inside the portal; the key never
   leaves it (encrypted at rest) and waits in a PushCertificateRequest;
2. `sign_push_csr`: the MDM vendor's step, the CSR signed with the vendor's "MDM CSR"
   certificate and key into the PushCertWebRequest file (the vendor key is used for this one
   signature and never stored);
3. the file is uploaded at https://identity.apple.com/pushcert (the same Apple ID at every
   renewal, so the topic stays the same);
4. the certificate Apple returns is imported (certs.pushcert.import_push_certificate), which
   pairs it with the kept key and completes the request.

The management command `mdm_pushcert csr|sign-csr` and the Certificates page call these.
"""

import base64
import datetime as dt
import plistlib

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID
from django.conf import settings
from django.db.models import QuerySet
from django.utils import timezone

from mdm_portal.audit import audit

from .models import PushCertificateRequest
from .pushcert import (
    PushCertError,
    load_certificates,
    load_private_key,
    public_key_sha256,
    same_public_key,
)

APPLE_PUSH_PORTAL = "https://identity.apple.com/pushcert"

# PushCertSignature: the digest the vendor signs the customer's CSR with.
# Apple's 2012 protocol reference (the seed) says SHA1withRSA. Apple's current page ("Setting
# Up Push Notifications for Your MDM Customers") says SHA256WithRSA, and since the MDM CSR
# signing certificates were reissued under the WWDR G3 intermediate (28 Jan 2021)
# identity.apple.com rejects SHA-1 signatures from them with "Certificate Signature
# Verification failed because the signature is invalid" (micromdm/micromdm#723). MicroMDM's
# mdmcertutil switched to SHA-256 in the fix (micromdm/micromdm#725, v1.8.0) and Zentral's
# `mdmcerts` signs with `openssl dgst -sha256`. So SHA-256 is the default; SHA-1 stays as an
# option for a vendor certificate issued before that change, whose signatures Apple still
# checks the old way (the MicroMDM maintainers observed the digest depends on the vendor
# certificate's issue date).
SIGNATURE_DIGESTS = {"sha256": hashes.SHA256, "sha1": hashes.SHA1}
DEFAULT_SIGNATURE_DIGEST = "sha256"


def pending_push_requests() -> QuerySet[PushCertificateRequest]:
    """The portal's CSRs whose certificate from Apple has not been imported yet, newest first
    (their keys are not read)."""
    return (
        PushCertificateRequest.objects.filter(completed_at__isnull=True)
        .defer("private_key_pem")
        .order_by("-created_at", "-pk")
    )


def create_push_csr(
    *,
    common_name: str | None = None,
    country: str | None = None,
    email: str | None = None,
    actor: object = "system",
    address: str | None = None,
) -> PushCertificateRequest:
    """The customer step: an RSA-2048 key and its CSR. The key stays here, encrypted at rest."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    attributes = [
        x509.NameAttribute(
            NameOID.COMMON_NAME,
            common_name or f"{getattr(settings, 'MDM_ORGANIZATION', 'MDM Portal')} MDM push",
        )
    ]
    if country:
        if len(country) != 2 or not country.isalpha():
            raise PushCertError(
                f"country must be a two-letter code, not {country!r}", field="country"
            )
        attributes.append(x509.NameAttribute(NameOID.COUNTRY_NAME, country.upper()))
    if email:
        attributes.append(x509.NameAttribute(NameOID.EMAIL_ADDRESS, email))
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name(attributes))
        .sign(key, hashes.SHA256())
    )
    request = PushCertificateRequest.objects.create(
        private_key_pem=key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),  # encrypted at rest by the model field
        ),
        csr_pem=csr.public_bytes(serialization.Encoding.PEM).decode(),
        public_key_sha256=public_key_sha256(key),
    )
    audit("pushcert.csr_created", actor=actor, target=request.public_key_sha256, address=address)
    return request


def _load_csr(data: bytes | str) -> x509.CertificateSigningRequest:
    if isinstance(data, str):
        data = data.encode()
    try:
        if b"-----BEGIN" in data:
            csr = x509.load_pem_x509_csr(data)
        else:
            csr = x509.load_der_x509_csr(data)
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise PushCertError(f"cannot read the CSR: {exc}", field="csr") from exc
    if not csr.is_signature_valid:
        raise PushCertError("the CSR's own signature does not verify", field="csr")
    return csr


def sign_push_csr(
    csr_pem: bytes | str,
    vendor_cert_pem: bytes | str,
    vendor_key_pem: bytes | str,
    *,
    chain_pem: bytes | str | None = None,
    digest: str = DEFAULT_SIGNATURE_DIGEST,
    vendor_key_password: str | bytes | None = None,
    actor: object = "system",
    address: str | None = None,
    now: dt.datetime | None = None,
) -> bytes:
    """The vendor step: the PushCertWebRequest file content to upload to identity.apple.com.

    base64 of an XML plist holding PushCertRequestCSR (the CSR's DER, base64),
    PushCertCertificateChain (PEM: the vendor's MDM signing certificate, then the chain given,
    e.g. Apple's WWDR intermediate and Apple Inc. Root) and PushCertSignature (base64 of the
    vendor key's PKCS#1 v1.5 signature over the CSR's DER with `digest`).
    The vendor certificate (Apple's mdm.cer) may be DER or PEM.
    """
    if digest not in SIGNATURE_DIGESTS:
        raise PushCertError(
            f"digest must be one of {', '.join(SIGNATURE_DIGESTS)}, not {digest!r}",
            field="digest",
        )

    def as_bytes(value: bytes | str) -> bytes:
        return value.encode() if isinstance(value, str) else value

    csr = _load_csr(csr_pem)
    csr_der = csr.public_bytes(serialization.Encoding.DER)
    vendor_certs = load_certificates(as_bytes(vendor_cert_pem), field="vendor_cert")
    vendor_cert = vendor_certs[0]
    vendor_key = load_private_key(as_bytes(vendor_key_pem), vendor_key_password, field="vendor_key")
    if not isinstance(vendor_key, rsa.RSAPrivateKey):
        raise PushCertError(
            "the vendor key must be RSA (Apple verifies an RSA signature)", field="vendor_key"
        )
    if not same_public_key(vendor_cert, vendor_key):
        raise PushCertError(
            "the vendor key does not belong to the vendor certificate", field="vendor_key"
        )
    now = now or timezone.now()
    if vendor_cert.not_valid_after_utc <= now:
        raise PushCertError(
            f"the vendor certificate expired on {vendor_cert.not_valid_after_utc:%Y-%m-%d}: Apple "
            "would answer 'the signing certificate is expired'; renew the MDM CSR certificate "
            "at developer.apple.com",
            field="vendor_cert",
        )
    chain = [vendor_cert, *vendor_certs[1:]]
    if chain_pem:
        chain += load_certificates(as_bytes(chain_pem), field="chain")
    seen: set[bytes] = set()
    chain_text = ""
    for certificate in chain:
        fingerprint = certificate.fingerprint(hashes.SHA256())
        if fingerprint in seen:
            continue
        seen.add(fingerprint)
        # cryptography writes PEM with 64-character lines, as Apple requires.
        chain_text += certificate.public_bytes(serialization.Encoding.PEM).decode()

    signature = vendor_key.sign(csr_der, padding.PKCS1v15(), SIGNATURE_DIGESTS[digest]())
    request = {
        "PushCertRequestCSR": base64.b64encode(csr_der).decode(),
        "PushCertCertificateChain": chain_text,
        "PushCertSignature": base64.b64encode(signature).decode(),
    }
    audit(
        "pushcert.csr_signed",
        actor=actor,
        target=vendor_cert.subject.rfc4514_string()[:255],
        address=address,
        digest=digest,
        csr_public_key_sha256=public_key_sha256(csr.public_key()),
        chain_length=len(seen),
    )
    return base64.b64encode(plistlib.dumps(request, fmt=plistlib.FMT_XML))


def verify_push_request(content: bytes) -> dict:
    """Decode a PushCertWebRequest file and check its signature (a self-check before upload)."""
    try:
        plist = plistlib.loads(base64.b64decode(content, validate=True))
        csr_der = base64.b64decode(plist["PushCertRequestCSR"])
        signature = base64.b64decode(plist["PushCertSignature"])
        vendor_cert = load_certificates(plist["PushCertCertificateChain"].encode())[0]
    except (ValueError, KeyError, TypeError, plistlib.InvalidFileException) as exc:
        raise PushCertError(f"not a PushCertWebRequest file: {exc}") from exc
    for name, algorithm in SIGNATURE_DIGESTS.items():
        try:
            vendor_cert.public_key().verify(signature, csr_der, padding.PKCS1v15(), algorithm())
        except InvalidSignature:
            continue
        return {**plist, "digest": name}
    raise PushCertError("PushCertSignature does not verify with the vendor certificate")
