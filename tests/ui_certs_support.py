"""Helpers for the Certificates pages' tests: a SCEP request left pending for approval, and
push certificates made by the APNs stand-in's test PKI (tests/apns_standin.py)."""

import datetime as dt
import re
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.serialization import pkcs12
from django.test import Client
from django.utils import timezone

from enrollment.links import issue_enrollment_challenge
from simulator import scep as sc
from tests.test_pushcert import FakeApple, _ca, new_key

PKI_MESSAGE = "application/x-pki-message"


@dataclass
class ScepRequester:
    """A device's side of one SCEP transaction, through Django's test client."""

    client: Client
    ca_cert: x509.Certificate
    recipient: x509.Certificate
    key: object
    csr: x509.CertificateSigningRequest
    signer: x509.Certificate
    transaction_id: str

    def _send(self, der: bytes):
        response = self.client.post("/scep?operation=PKIOperation", der, content_type=PKI_MESSAGE)
        assert response.status_code == 200, response.content
        return sc.read_cert_rep(response.content, self.signer, self.key, self.ca_cert)

    def request(self):
        der = sc.build_pkcs_req(
            self.csr, self.signer, self.key, self.recipient, transaction_id=self.transaction_id
        )
        return self._send(der)

    def poll(self):
        """(status, fail_info, certificate) of a GetCertInitial poll."""
        der = sc.build_cert_poll(
            self.csr.subject,
            self.signer,
            self.key,
            self.recipient,
            transaction_id=self.transaction_id,
        )
        return self._send(der)[:3]


def pending_scep_request(
    client: Client, *, challenge: str, common_name: str, transaction_id: str
) -> ScepRequester:
    """Send a PKCSReq under MDM_SCEP_MANUAL_APPROVAL; it is left PENDING."""
    response = client.get("/scep", {"operation": "GetCACert"})
    ca_cert, recipient = sc.split_ca_certs(response.content, response["Content-Type"])
    key = sc.make_key()
    csr = sc.make_scep_csr(key, common_name, challenge)
    requester = ScepRequester(
        client, ca_cert, recipient, key, csr, sc.signer_for(key, csr), transaction_id
    )
    assert requester.request()[0] == sc.PENDING
    return requester


def as_pkcs12(certificate_pem: bytes, key_pem: bytes, password: bytes) -> bytes:
    """A PKCS#12 file holding a push certificate and its key, as Keychain Access exports it."""
    certificate = x509.load_pem_x509_certificate(certificate_pem)
    key = serialization.load_pem_private_key(key_pem, None)
    return pkcs12.serialize_key_and_certificates(
        b"push", key, certificate, None, serialization.BestAvailableEncryption(password)
    )


def key_body(key_pem: bytes) -> str:
    """A line from the middle of a PEM key's base64: what must never appear in a page."""
    lines = key_pem.decode().strip().splitlines()
    return lines[len(lines) // 2]


def fake_apple() -> FakeApple:
    """A stand-in for Apple's root and WWDR intermediate, to issue vendor certificates."""
    root, root_key = _ca("Fake Apple Root CA")
    intermediate, intermediate_key = _ca("Fake Apple WWDR CA", root.subject, root_key)
    return FakeApple(root, intermediate, intermediate_key)


def vendor_identity(apple: FakeApple):
    """An MDM vendor's 'MDM CSR' certificate and key, issued by the fake Apple."""
    key = new_key()
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "MDM Vendor: Example Corp")])
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(apple.intermediate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(timezone.now() - dt.timedelta(days=1))
        .not_valid_after(timezone.now() + dt.timedelta(days=365))
        .sign(apple.intermediate_key, hashes.SHA256())
    )
    return certificate, key


def waiting_request(client, transaction_id: str, common_name: str, enrollment=None):
    """A SCEP request from a device, waiting for approval."""
    return pending_scep_request(
        client,
        challenge=issue_enrollment_challenge(enrollment),
        common_name=common_name,
        transaction_id=transaction_id,
    )


def field_errors(html: str, field_id: str) -> str:
    """The error list Django renders for one field (its id is `<field id>_error`)."""
    match = re.search(rf'<ul class="errorlist" id="{field_id}_error">(.*?)</ul>', html, re.S)
    return match.group(1) if match else ""


ADDRESS = "198.51.100.23"  # where the admin's requests come from, as the audit must record


def post_import(client, source: str, **files_and_fields):
    """POST one of the push-certificate import forms (its fields prefixed by `source`)."""
    data = {"source": source}
    for name, value in files_and_fields.items():
        data[f"{source}-{name}"] = value
    return client.post("/certificates/push/import/", data, REMOTE_ADDR=ADDRESS)
