"""A local APNs stand-in that wakes the simulated devices (--apns-listen HOST:PORT).

The portal pushes to it as it pushes to Apple (MDM_APNS_URL=https://HOST:PORT, trusting
MDM_APNS_CA_FILE=DIR/apns-cert.pem): `POST /3/device/<hex token>` over TLS + HTTP/2 with a
body {"mdm": PushMagic}. A token of one of our devices gets 200 with an apns-id, and that
device polls at once (as a real one does when the PushMagic is its own); any other token gets
400 {"reason": "BadDeviceToken"}, as APNs answers for a token it does not know.

No client certificate is asked for: Apple's APNs wants the push certificate, but a stand-in
that checked it would have to trust whatever the portal was given. The server certificate is
DIR/apns-cert.pem with DIR/apns-key.pem, a self-signed pair for 127.0.0.1 and localhost that
is made there when missing.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import os
import ssl
from collections.abc import Callable
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from .h2server import LeanServer

CERT_NAME = "apns-cert.pem"
KEY_NAME = "apns-key.pem"


def ensure_tls_pair(folder: Path) -> tuple[Path, Path]:
    """(certificate, key) files in `folder`, made (self-signed, 10 years) when missing."""
    certificate_path, key_path = folder / CERT_NAME, folder / KEY_NAME
    if certificate_path.exists() and key_path.exists():
        return certificate_path, key_path
    folder.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mdm_simulate APNs stand-in")])
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    descriptor = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
    certificate_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    return certificate_path, key_path


def server_context(folder: Path) -> ssl.SSLContext:
    certificate_path, key_path = ensure_tls_pair(folder)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(certificate_path, key_path)
    context.verify_mode = ssl.CERT_NONE  # no client certificate asked for (module docstring)
    context.set_alpn_protocols(["h2"])
    return context


def parse_listen(value: str) -> tuple[str, int]:
    """HOST:PORT (IPv6 as [::1]:PORT); ValueError when it is not one."""
    host, separator, port = value.rpartition(":")
    if not separator or not port.isdigit() or not host:
        raise ValueError(f"--apns-listen wants HOST:PORT, not {value!r}")
    return host.strip("[]"), int(port)


class APNsListener:
    """The stand-in: `wake(token, push_magic)` says whether the token is one of our devices
    (and wakes it when the PushMagic is its own)."""

    def __init__(self, wake: Callable[[str, str], bool]):
        self._wake = wake
        self._server = LeanServer(decide=self._decide)

    async def start(self, host: str, port: int, tls_dir: Path) -> int:
        return await self._server.start(server_context(tls_dir), host, port)

    async def close(self) -> None:
        await self._server.close()

    def _decide(self, token: bytes, body: bytes) -> tuple[int, str]:
        try:
            magic = str(json.loads(body).get("mdm", ""))
        except (ValueError, AttributeError):
            return 400, "PayloadEmpty"  # APNs' reason for a payload it cannot use
        if self._wake(token.decode("latin-1").lower(), magic):
            return 200, ""
        return 400, "BadDeviceToken"
