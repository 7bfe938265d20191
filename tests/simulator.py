"""A simulated Apple device for the tests: its own key, a CSR, a certificate from our CA, and
the messages. (The fleet simulator, `mdm_simulate`, is the package simulator/: a client over
real HTTP that enrolls through the profile and SCEP; this one is given its certificate.)

It speaks the check-in and server-URL protocol as a device does: XML plists over PUT, signed
with an `Mdm-Signature` (a CMS detached signature made by cryptography's PKCS7 builder), or
with its certificate passed in the TLS proxy's header. `send` is any callable that performs
the HTTP request (Django's test client, or httpx against a live server).
"""

import plistlib
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

# The signing helpers are the fleet simulator's (simulator/identity.py); tests import them
# from here too.
from simulator.identity import (  # noqa: F401 - re-exported
    CHECKIN_CT,
    CONNECT_CT,
    escaped_pem,
    rfc9440,
    sign_detached,
)

TOPIC = "com.apple.mgmt.External.0f4a6a4c-8c2b-4a8e-9f6e-3c1a2b3c4d5e"


@dataclass
class Response:
    status: int
    body: bytes

    def plist(self) -> dict:
        return plistlib.loads(self.body)


def make_key(kind: str = "rsa"):
    if kind == "ec":
        return ec.generate_private_key(ec.SECP256R1())
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def make_csr(key, common_name: str) -> x509.CertificateSigningRequest:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    return x509.CertificateSigningRequestBuilder().subject_name(name).sign(key, hashes.SHA256())


Sender = Callable[[str, bytes, dict[str, str]], Response]


def client_sender(client) -> Sender:
    """A Sender that goes through Django's full request handling with a test `Client`."""

    def send(path: str, body: bytes, headers: dict[str, str]) -> Response:
        headers = dict(headers)
        content_type = headers.pop("Content-Type", "application/octet-stream")
        response = client.generic("PUT", path, body, content_type=content_type, headers=headers)
        return Response(response.status_code, response.content)

    return send


@dataclass
class SimulatedDevice:
    send: Sender
    certificate: x509.Certificate
    key: object
    udid: str = field(default_factory=lambda: str(uuid.uuid4()).upper())
    topic: str = TOPIC
    token: bytes = field(default_factory=lambda: uuid.uuid4().bytes * 2)
    push_magic: str = field(default_factory=lambda: str(uuid.uuid4()).upper())
    unlock_token: bytes | None = b"unlock-token-blob"
    # "signature" (Mdm-Signature), "header" (proxy client-cert header), or None (nothing).
    auth: str | None = "signature"
    cert_header: str = "X-Ssl-Client-Cert"
    header_format: str = "pem"  # "pem" (URL-escaped) or "rfc9440"

    def headers(self, body: bytes, content_type: str) -> dict[str, str]:
        headers = {"Content-Type": content_type}
        if self.auth == "signature":
            headers["Mdm-Signature"] = sign_detached(body, self.certificate, self.key)
        elif self.auth == "header":
            value = (
                rfc9440(self.certificate)
                if self.header_format == "rfc9440"
                else escaped_pem(self.certificate)
            )
            headers[self.cert_header] = value
        return headers

    def put(self, path: str, message: dict, content_type: str = CONNECT_CT) -> Response:
        return self.put_raw(path, plistlib.dumps(message), content_type)

    def put_raw(self, path: str, body: bytes, content_type: str = CONNECT_CT) -> Response:
        """Send `body` as it is, signed (or certified) as this device."""
        return self.send(path, body, self.headers(body, content_type))

    def checkin(self, message_type: str, path: str = "/mdm/checkin", **keys) -> Response:
        message = {"MessageType": message_type, "UDID": self.udid, **keys}
        return self.put(path, message, CHECKIN_CT)

    def authenticate(self, **keys) -> Response:
        defaults = {
            "Topic": self.topic,
            "DeviceName": "Test iPhone",
            "Model": "MN9N3LL/A",
            "ModelName": "iPhone",
            "OSVersion": "17.4",
            "BuildVersion": "21E219",
            "ProductName": "iPhone15,2",
            "SerialNumber": "F2LXK0ABCDEF",
        }
        return self.checkin("Authenticate", **{**defaults, **keys})

    def token_update(self, **keys) -> Response:
        message = {"Topic": self.topic, "Token": self.token, "PushMagic": self.push_magic}
        if self.unlock_token is not None:
            message["UnlockToken"] = self.unlock_token
        return self.checkin("TokenUpdate", **{**message, **keys})

    def enroll(self) -> None:
        for response in (self.authenticate(), self.token_update()):
            assert response.status == 200, response.body

    def idle(self) -> Response:
        return self.put("/mdm/connect", {"UDID": self.udid, "Status": "Idle"})

    def report(self, command_uuid: str, status: str = "Acknowledged", **result) -> Response:
        message = {"UDID": self.udid, "Status": status, "CommandUUID": command_uuid, **result}
        return self.put("/mdm/connect", message)
