"""A minimal ACME client for tests, on jwcrypto, that can also send what a real client never
would: a replayed nonce, another account's key, a wrong url, an unknown alg, no jwk or kid.

It speaks to the portal through Django's test client (origin http://testserver), so the
refusals need no live server; tests/test_acme_certbot.py drives a live one with certbot's
client. `device` makes what an Apple device sends: a key, a CSR and an attestation object
from the simulator's test attestation CA.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from django.test import Client
from jwcrypto import jwk, jws

from certs.challenges import create_challenge
from certs.models import ScepChallenge
from simulator.attestation import AttestationCA

ORIGIN = "http://testserver"
JOSE = "application/jose+json"


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def jws_body(
    key: jwk.JWK,
    protected: dict[str, Any],
    payload: dict[str, Any] | bytes | None,
) -> str:
    """A flattened JWS of `payload` (None: POST-as-GET's empty payload) signed by `key` with
    exactly the protected header given."""
    if payload is None:
        raw = b""
    elif isinstance(payload, bytes):
        raw = payload
    else:
        raw = json.dumps(payload).encode()
    token = jws.JWS(raw)
    token.allowed_algs = [protected["alg"]]
    token.add_signature(key, alg=protected["alg"], protected=json.dumps(protected))
    return token.serialize()


@dataclass
class AcmeTestClient:
    http: Client
    key: jwk.JWK = field(default_factory=lambda: jwk.JWK.generate(kty="EC", crv="P-256"))
    alg: str = "ES256"
    account_url: str = ""

    def url(self, path: str) -> str:
        return ORIGIN + path

    def directory(self) -> dict[str, str]:
        return self.http.get("/acme/directory").json()

    def nonce(self) -> str:
        return self.http.head("/acme/new-nonce")["Replay-Nonce"]

    def protected(self, target: str, **override: Any) -> dict[str, Any]:
        header: dict[str, Any] = {"alg": self.alg, "nonce": self.nonce(), "url": target}
        if self.account_url:
            header["kid"] = self.account_url
        else:
            header["jwk"] = self.key.export_public(as_dict=True)
        header.update(override)
        return {name: value for name, value in header.items() if value is not None}

    def post(
        self,
        target: str,
        payload: dict[str, Any] | bytes | None = None,
        *,
        key: jwk.JWK | None = None,
        **header: Any,
    ):
        """POST a JWS to `target` (an absolute URL), signed for it; `header` adds to or
        replaces protected header members (None removes one, `url=...` signs for another)."""
        body = jws_body(key or self.key, self.protected(target, **header), payload)
        path = target.removeprefix(ORIGIN)
        return self.http.post(path, data=body, content_type=JOSE)

    def new_account(self) -> str:
        response = self.post(self.url("/acme/new-account"), {"termsOfServiceAgreed": True})
        assert response.status_code in (200, 201), response.content
        self.account_url = response["Location"]
        return self.account_url

    def new_order(self, client_identifier: str):
        identifiers = [{"type": "permanent-identifier", "value": client_identifier}]
        return self.post(self.url("/acme/new-order"), {"identifiers": identifiers})

    def get(self, url: str):
        """POST-as-GET."""
        return self.post(url, None)

    def start_order(self, client_identifier: str) -> tuple[dict, dict]:
        """A new order and the device-attest-01 challenge of its authorization."""
        response = self.new_order(client_identifier)
        assert response.status_code == 201, response.content
        order = response.json()
        (authz_url,) = order["authorizations"]
        (challenge,) = self.get(authz_url).json()["challenges"]
        assert challenge["type"] == "device-attest-01"
        return order, challenge

    def finalize(self, order: dict, csr_der: bytes):
        return self.post(order["finalize"], {"csr": b64(csr_der)})


def problem_type(response) -> str:
    """The ACME error type of a problem document (without the urn prefix)."""
    assert response["Content-Type"] == "application/problem+json", response.content
    return response.json()["type"].removeprefix("urn:ietf:params:acme:error:")


@dataclass
class Device:
    """An Apple device of the test attestation CA: its key, UDID and serial number."""

    attestation: AttestationCA
    udid: str = "00008030-000A1B2C3D4E5F60"
    serial: str = "F2LXK0TESTQ1"
    key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP384R1())
    )

    def att_obj(self, token: str, *, public_key=None) -> str:
        """base64url(the attestation object) answering the challenge `token`."""
        obj = self.attestation.attestation_object(
            public_key or self.key.public_key(), udid=self.udid, serial=self.serial, token=token
        )
        return b64(obj)

    def csr_der(self, key=None) -> bytes:
        key = key or self.key
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "acme device")])
        csr = x509.CertificateSigningRequestBuilder().subject_name(name).sign(key, hashes.SHA256())
        return csr.public_bytes(serialization.Encoding.DER)


def client_identifier(*, attestation_required: bool = True, **kwargs) -> tuple[str, ScepChallenge]:
    """A one-time ClientIdentifier, as an enrollment profile would carry."""
    return create_challenge(
        purpose=ScepChallenge.Purpose.ACME, attestation_required=attestation_required, **kwargs
    )


@pytest.fixture
def attestation_ca(tmp_path, settings) -> AttestationCA:
    """A test stand-in for Apple's attestation CA, trusted by the portal for this test."""
    authority = AttestationCA.create()
    settings.MDM_ACME_ATTESTATION_ROOTS = str(authority.save(tmp_path / "attestation"))
    return authority


@pytest.fixture
def apple_device(attestation_ca) -> Device:
    return Device(attestation_ca)


@pytest.fixture
def acme(db, client) -> AcmeTestClient:
    """A registered account (ES256) talking to the portal through Django's test client."""
    acme_client = AcmeTestClient(client)
    acme_client.new_account()
    return acme_client
