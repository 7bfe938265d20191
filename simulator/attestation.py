"""Apple-style device attestations, made by a test attestation CA instead of Apple.

A real device asks Apple for an attestation of its hardware-bound key: a certificate chain
(leaf, Apple Enterprise Attestation Sub CA, Apple Enterprise Attestation Root CA) whose leaf
holds the key and, in Apple's extensions, the device's serial number, UDID and the freshness
code (the nonce the ACME server asked for). The device sends it in device-attest-01 as a
WebAuthn attestation object of format "apple": CBOR {"fmt", "attStmt": {"x5c"}, "authData"}.

Here `AttestationCA` plays Apple: a root and an intermediate made on the spot (or loaded from
a folder), which a portal trusts through MDM_ACME_ATTESTATION_ROOTS. The extension values are
the raw bytes, as Apple's leaves carry them (what step-ca and Fleet read).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass
from pathlib import Path

import cbor2
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from .pem_files import load_pem, save_pem

OID_SERIAL = x509.ObjectIdentifier("1.2.840.113635.100.8.9.1")
OID_UDID = x509.ObjectIdentifier("1.2.840.113635.100.8.9.2")
OID_OS_VERSION = x509.ObjectIdentifier("1.2.840.113635.100.8.10.1")
OID_FRESHNESS = x509.ObjectIdentifier("1.2.840.113635.100.8.11.1")

FILES = ("root.pem", "root-key.pem", "intermediate.pem", "intermediate-key.pem")


def freshness_code(token: str) -> bytes:
    """The nonce a device-attest-01 challenge asks for: SHA-256 of its token."""
    return hashlib.sha256(token.encode()).digest()


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Test Attestation"),
        ]
    )


def _ca_certificate(subject, key, issuer, issuer_key, days: int) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .sign(issuer_key, hashes.SHA384())
    )


@dataclass
class AttestationCA:
    """A stand-in for Apple's attestation service: root, intermediate, and leaves on demand."""

    root: x509.Certificate
    root_key: ec.EllipticCurvePrivateKey
    intermediate: x509.Certificate
    intermediate_key: ec.EllipticCurvePrivateKey

    @classmethod
    def create(cls, name: str = "Test Enterprise Attestation", days: int = 3650) -> AttestationCA:
        root_key = ec.generate_private_key(ec.SECP384R1())
        root_name = _name(f"{name} Root CA")
        root = _ca_certificate(root_name, root_key, root_name, root_key, days)
        key = ec.generate_private_key(ec.SECP384R1())
        intermediate = _ca_certificate(_name(f"{name} Sub CA 1"), key, root_name, root_key, days)
        return cls(root, root_key, intermediate, key)

    @classmethod
    def load(cls, folder: str | Path) -> AttestationCA:
        """One saved by `save` (the simulator's --attestation-ca)."""
        files = load_pem(folder, FILES)
        return cls(*(files[name] for name in FILES))

    def save(self, folder: str | Path) -> Path:
        """Writes the four files; `root.pem` is what MDM_ACME_ATTESTATION_ROOTS points at."""
        parts = (self.root, self.root_key, self.intermediate, self.intermediate_key)
        save_pem(folder, dict(zip(FILES, parts, strict=True)))
        return Path(folder) / "root.pem"

    def leaf(
        self,
        public_key,
        *,
        udid: str,
        serial: str,
        nonce: bytes | None,
        os_version: str = "17.4",
        not_after: dt.datetime | None = None,
    ) -> x509.Certificate:
        """The attestation certificate of a device key. Leave `nonce` None to omit the
        freshness code, or pass other values to make the refusals a server must give."""
        now = dt.datetime.now(dt.UTC)
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(hashlib.sha256(udid.encode()).hexdigest()[:32]))
            .issuer_name(self.intermediate.subject)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(not_after or now + dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.UnrecognizedExtension(OID_SERIAL, serial.encode()), False)
            .add_extension(x509.UnrecognizedExtension(OID_UDID, udid.encode()), False)
            .add_extension(x509.UnrecognizedExtension(OID_OS_VERSION, os_version.encode()), False)
        )
        if nonce is not None:
            builder = builder.add_extension(x509.UnrecognizedExtension(OID_FRESHNESS, nonce), False)
        return builder.sign(self.intermediate_key, hashes.SHA384())

    def attestation_object(self, public_key, *, udid: str, serial: str, token: str) -> bytes:
        """What a device sends for device-attest-01 with challenge `token`: the CBOR object."""
        leaf = self.leaf(public_key, udid=udid, serial=serial, nonce=freshness_code(token))
        return attestation_object([leaf, self.intermediate])


def attestation_object(chain: list[x509.Certificate]) -> bytes:
    """A WebAuthn attestation object of format "apple" carrying `chain` (leaf first) as x5c."""
    x5c = [certificate.public_bytes(serialization.Encoding.DER) for certificate in chain]
    return cbor2.dumps({"fmt": "apple", "attStmt": {"x5c": x5c}, "authData": b""})
