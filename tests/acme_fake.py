"""A small strict ACME server in memory (an httpx transport) to test the simulator's ACME client
without the portal: it checks what RFC 8555 and device-attest-01 ask of a client and records
what it received, so the tests can look at the real requests.

Checked on every POST: Content-Type application/jose+json, a flattened JWS whose signature
verifies (jwcrypto) with the account key, a protected header with alg, nonce (one it issued,
used once), url (the request's) and exactly one of jwk (newAccount) or kid (the account URL).
Knobs: `bad_nonce_once` refuses the first POST with badNonce, `pending_polls` keeps the
authorization and the order "processing" for that many polls (with Retry-After: 0),
`already_valid` serves the authorization valid from the start, `refuse_challenge` answers the
challenge with a problem document.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import secrets
from dataclasses import dataclass, field

import cbor2
import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from jwcrypto import jwk, jws

from simulator.attestation import OID_FRESHNESS, OID_SERIAL, OID_UDID

BASE = "https://acme.test"
DIRECTORY = f"{BASE}/acme/directory"
PEM_CHAIN = "application/pem-certificate-chain"


def b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _extension(certificate: x509.Certificate, oid) -> bytes:
    return certificate.extensions.get_extension_for_oid(oid).value.value


def issuing_ca():
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Fake ACME CA")])
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return certificate, key


@dataclass
class FakeAcme:
    attestation_root: x509.Certificate | None = None  # None: no attestation expected
    bad_nonce_once: bool = False
    pending_polls: int = 0
    already_valid: bool = False
    refuse_challenge: bool = False
    nonces: set = field(default_factory=set)
    requests: list = field(default_factory=list)  # (method, path, protected, payload)
    account_key: jwk.JWK | None = None
    attested: dict = field(default_factory=dict)  # udid, serial, public key DER of the leaf
    csr: x509.CertificateSigningRequest | None = None
    authorization: str = "pending"
    order: str = "pending"
    token: str = field(default_factory=lambda: secrets.token_urlsafe(32))

    def __post_init__(self) -> None:
        self.ca, self.ca_key = issuing_ca()
        self._polls = {"authz": 0, "order": 0}
        if self.already_valid:
            self.authorization = "valid"

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    # -- HTTP ----------------------------------------------------------------------------------

    def _nonce(self) -> str:
        nonce = secrets.token_urlsafe(16)
        self.nonces.add(nonce)
        return nonce

    def _answer(self, status: int, document=None, **headers) -> httpx.Response:
        headers = {"Replay-Nonce": self._nonce(), **headers}
        if document is None:
            return httpx.Response(status, headers=headers)
        return httpx.Response(status, json=document, headers=headers)

    def _problem(self, status: int, kind: str, detail: str) -> httpx.Response:
        document = {"type": f"urn:ietf:params:acme:error:{kind}", "detail": detail}
        response = self._answer(status, document)
        response.headers["Content-Type"] = "application/problem+json"
        return response

    def handle(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if request.method == "GET" and path == "/acme/directory":
            return httpx.Response(
                200,
                json={
                    "newNonce": f"{BASE}/acme/new-nonce",
                    "newAccount": f"{BASE}/acme/new-account",
                    "newOrder": f"{BASE}/acme/new-order",
                },
            )
        if path == "/acme/new-nonce" and request.method in ("HEAD", "GET"):
            return self._answer(200 if request.method == "HEAD" else 204)
        if request.method != "POST":
            return httpx.Response(405)
        assert request.headers["content-type"] == "application/jose+json"
        protected, payload = self._verify(request)
        self.requests.append((request.method, path, protected, payload))
        if self.bad_nonce_once:
            self.bad_nonce_once = False
            return self._problem(400, "badNonce", "try again with this one")
        return self._route(request, path, payload)

    def _verify(self, request: httpx.Request) -> tuple[dict, dict | None]:
        body = json.loads(request.content)
        assert set(body) == {"protected", "payload", "signature"}, body  # flattened JSON
        protected = json.loads(b64decode(body["protected"]))
        assert protected["url"] == str(request.url)
        assert protected["nonce"] in self.nonces, "a nonce the server never gave, or used twice"
        self.nonces.discard(protected["nonce"])
        assert ("jwk" in protected) != ("kid" in protected), protected
        if "jwk" in protected:
            assert request.url.path == "/acme/new-account"
            assert set(protected["jwk"]) == {"kty", "crv", "x", "y"}
            key = jwk.JWK(**protected["jwk"])
            self.account_key = key
        else:
            assert protected["kid"] == f"{BASE}/acme/account/1"
            key = self.account_key
        signed = jws.JWS()
        signed.deserialize(request.content.decode())
        signed.verify(key, alg=protected["alg"])  # raises if the signature is wrong
        content = signed.payload
        return protected, (json.loads(content) if content else None)

    def _route(self, request, path: str, payload) -> httpx.Response:
        if path == "/acme/new-account":
            assert payload == {"termsOfServiceAgreed": True}
            location = f"{BASE}/acme/account/1"
            return self._answer(201, {"status": "valid"}, Location=location)
        if path == "/acme/new-order":
            assert payload["identifiers"][0]["type"] == "permanent-identifier"
            self.identifier = payload["identifiers"][0]["value"]
            return self._answer(201, self._order(), Location=f"{BASE}/acme/order/1")
        if path == "/acme/authz/1":
            assert payload is None  # POST-as-GET
            return self._authz()
        if path == "/acme/chall/1":
            return self._challenge(payload)
        if path == "/acme/order/1":
            assert payload is None
            return self._order_poll()
        if path == "/acme/order/1/finalize":
            return self._finalize(payload)
        if path == "/acme/cert/1":
            assert payload is None
            assert request.headers["accept"] == PEM_CHAIN
            headers = {"Replay-Nonce": self._nonce(), "Content-Type": PEM_CHAIN}
            return httpx.Response(200, content=self.chain_pem(), headers=headers)
        return self._problem(404, "malformed", f"no {path}")

    # -- resources -----------------------------------------------------------------------------

    def _order(self) -> dict:
        order = {
            "status": self.order,
            "identifiers": [{"type": "permanent-identifier", "value": "x"}],
            "authorizations": [f"{BASE}/acme/authz/1"],
            "finalize": f"{BASE}/acme/order/1/finalize",
        }
        if self.order == "valid":
            order["certificate"] = f"{BASE}/acme/cert/1"
        return order

    def _authz(self) -> httpx.Response:
        if self.authorization == "processing":
            self._polls["authz"] += 1
            if self._polls["authz"] > self.pending_polls:
                self.authorization = "valid"
        challenge = {
            "type": "device-attest-01",
            "url": f"{BASE}/acme/chall/1",
            "token": self.token,
            "status": "pending" if self.authorization == "pending" else "valid",
        }
        if self.authorization == "valid" and self.order == "pending":
            self.order = "ready"
        document = {"status": self.authorization, "challenges": [challenge]}
        if self.authorization == "processing":
            document["status"] = "pending"
            return self._answer(200, document, **{"Retry-After": "0"})
        return self._answer(200, document)

    def _challenge(self, payload: dict) -> httpx.Response:
        if self.refuse_challenge:
            return self._problem(403, "badAttestationStatement", "the attestation is not Apple's")
        if self.attestation_root is None:
            assert payload == {}
        else:
            self._check_attestation(payload)
        self.authorization = "processing"
        return self._answer(200, {"type": "device-attest-01", "status": "processing"})

    def _check_attestation(self, payload: dict) -> None:
        assert set(payload) == {"attObj"}
        decoded = cbor2.loads(b64decode(payload["attObj"]))
        assert decoded["fmt"] == "apple"
        leaf, intermediate = (x509.load_der_x509_certificate(c) for c in decoded["attStmt"]["x5c"])
        intermediate.verify_directly_issued_by(self.attestation_root)
        leaf.verify_directly_issued_by(intermediate)
        expected = hashlib.sha256(self.token.encode()).digest()
        assert _extension(leaf, OID_FRESHNESS) == expected
        self.attested = {
            "udid": _extension(leaf, OID_UDID).decode(),
            "serial": _extension(leaf, OID_SERIAL).decode(),
            "key": leaf.public_key().public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
            ),
        }

    def _finalize(self, payload: dict) -> httpx.Response:
        if self.order != "ready":
            return self._problem(403, "orderNotReady", f"the order is {self.order}")
        self.csr = x509.load_der_x509_csr(b64decode(payload["csr"]))
        assert self.csr.is_signature_valid
        self.order = "processing"
        return self._answer(200, self._order(), **{"Retry-After": "0"})

    def _order_poll(self) -> httpx.Response:
        if self.order == "processing":
            self._polls["order"] += 1
            if self._polls["order"] > self.pending_polls:
                self.order = "valid"
        if self.order == "processing":
            return self._answer(200, self._order(), **{"Retry-After": "0"})
        return self._answer(200, self._order())

    def chain_pem(self) -> bytes:
        """The certificate for the finalized CSR's key, then the CA."""
        now = dt.datetime.now(dt.UTC)
        leaf = (
            x509.CertificateBuilder()
            .subject_name(self.csr.subject)
            .issuer_name(self.ca.subject)
            .public_key(self.csr.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .sign(self.ca_key, hashes.SHA256())
        )
        pem = serialization.Encoding.PEM
        return leaf.public_bytes(pem) + self.ca.public_bytes(pem)
