"""Apple-style device identities and the MachineInfo they sign, made by a test device CA.

At activation Apple gives every device an identity certificate, issued by the "Apple iPhone
Device CA" (subject CN: a UUID). In Setup Assistant an Automated Device Enrollment device
POSTs its MachineInfo (a plist: UDID, SERIAL, PRODUCT, VERSION, OS_VERSION, LANGUAGE, IMEI on
a phone) to the DEP profile's URL as an attached CMS SignedData signed with that identity
(Content-Type application/pkcs7-signature); the server answers with the enrollment profile.

Here `DeviceCA` plays Apple's device CA: a root made on the spot (or loaded from a folder)
that a portal trusts through MDM_DEP_DEVICE_ROOTS. It issues each simulated device a
certificate for a key of its own (P-256: cheap to make for a fleet; Apple's are RSA) and
signs the device's MachineInfo with cryptography's PKCS7SignatureBuilder.
"""

from __future__ import annotations

import datetime as dt
import plistlib
import uuid
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs7
from cryptography.x509.oid import NameOID

from .pem_files import load_pem, save_pem

FILES = ("root.pem", "root-key.pem")
MACHINE_INFO_CT = "application/pkcs7-signature"


def _name(common_name: str, unit: str = "Test iPhone") -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "US"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Test Devices Inc."),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, unit),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _key_usage(*, signing: bool, ca: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=signing,
        content_commitment=False,
        key_encipherment=signing,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


@dataclass
class DeviceCA:
    """A stand-in for the Apple iPhone Device CA: a root, and device identities on demand."""

    root: x509.Certificate
    root_key: ec.EllipticCurvePrivateKey

    @classmethod
    def create(cls, name: str = "Test iPhone Device CA", days: int = 3650) -> DeviceCA:
        key = ec.generate_private_key(ec.SECP256R1())
        subject = _name(name)
        now = dt.datetime.now(dt.UTC)
        root = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(hours=1))
            .not_valid_after(now + dt.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(_key_usage(signing=True, ca=True), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
            .sign(key, hashes.SHA256())
        )
        return cls(root, key)

    @classmethod
    def load(cls, folder: str | Path) -> DeviceCA:
        """One saved by `save` (the simulator's --device-ca)."""
        files = load_pem(folder, FILES)
        return cls(files["root.pem"], files["root-key.pem"])

    def save(self, folder: str | Path) -> Path:
        """Writes root.pem (what MDM_DEP_DEVICE_ROOTS points at) and root-key.pem (0600)."""
        save_pem(folder, {"root.pem": self.root, "root-key.pem": self.root_key})
        return Path(folder) / "root.pem"

    def device_identity(
        self, days: int = 365
    ) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
        """A new device identity: a key and its certificate (subject CN a UUID, as Apple's)."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.UTC)
        certificate = (
            x509.CertificateBuilder()
            .subject_name(
                x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, str(uuid.uuid4()).upper())])
            )
            .issuer_name(self.root.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_key_usage(signing=True, ca=False), critical=True)
            .sign(self.root_key, hashes.SHA256())
        )
        return key, certificate

    def signed_machine_info(self, info: dict) -> bytes:
        """`info` as a device in Setup Assistant sends it, signed by a new device identity."""
        key, certificate = self.device_identity()
        return sign_machine_info(info, key, certificate)


def sign_machine_info(info: dict, key, certificate: x509.Certificate, chain=()) -> bytes:
    """MachineInfo as an attached CMS SignedData (DER) signed by `key`, carrying `certificate`
    (and `chain`): the body a device POSTs to the DEP profile's URL."""
    return sign_statement(plistlib.dumps(info), key, certificate, chain)


def sign_statement(content: bytes, key, certificate: x509.Certificate, chain=()) -> bytes:
    """`content` as an attached CMS SignedData (DER), signed by `key` with SHA-256."""
    builder = pkcs7.PKCS7SignatureBuilder().set_data(content)
    builder = builder.add_signer(certificate, key, hashes.SHA256())
    for extra in chain:
        builder = builder.add_certificate(extra)
    # Binary: the content's exact bytes, no S/MIME line-ending canonicalisation.
    return builder.sign(serialization.Encoding.DER, [pkcs7.PKCS7Options.Binary])


def machine_info(
    *,
    udid: str,
    serial: str,
    product: str,
    build_version: str,
    os_version: str,
    imei: str = "",
    language: str = "en",
) -> dict:
    """The MachineInfo keys a device sends (Apple's other/machineinfo.yaml)."""
    info = {
        "UDID": udid,
        "SERIAL": serial,
        "PRODUCT": product,
        "VERSION": build_version,
        "OS_VERSION": os_version,
        "LANGUAGE": language,
    }
    if imei:
        info["IMEI"] = imei
    return info
