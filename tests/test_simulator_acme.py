"""The fleet simulator's ACME side, without the portal: the JWS it signs, the attestation objects
its test attestation CA makes, the ACME payload it reads from a profile, its client against a
strict in-memory ACME server (tests/acme_fake.py), the device's refusal to enroll by ACME
without an attestation CA, its EC identity signing Mdm-Signature, and --make-attestation-ca."""

import asyncio
import base64
import hashlib
import json
import plistlib
import uuid
from io import StringIO

import cbor2
import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from django.core.management import call_command
from jwcrypto import jwk, jws

from certs.cms import verify_detached
from simulator import Options, SimulatorError, acme, run
from simulator import __main__ as simulator_main
from simulator import profile as profiles
from simulator.attestation import OID_FRESHNESS, OID_SERIAL, OID_UDID, AttestationCA
from simulator.device import NO_ATTESTATION_CA, ExchangeFailed, Fleet, SimulatedDevice
from simulator.identity import sign_detached
from simulator.report import Stats
from simulator.scep import self_signed
from simulator.state import new_device
from tests.acme_fake import DIRECTORY, FakeAcme, b64decode
from tests.simulator_support import in_thread

SUBJECT = [[["CN", "MDM Identity 1A2B3C4D"]], [["O", "Example Org"]]]


def spki(key) -> bytes:
    public = key.public_key() if hasattr(key, "public_key") else key
    return public.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def decoded(body: bytes) -> tuple[dict, bytes]:
    document = json.loads(body)
    assert set(document) == {"protected", "payload", "signature"}  # flattened JSON JWS
    return json.loads(b64decode(document["protected"])), b64decode(document["payload"])


# -- the JWS -------------------------------------------------------------------------------


def test_the_jws_verifies_with_the_account_key_and_carries_what_rfc8555_asks():
    account = acme.account_key()
    url = "https://mdm.example/acme/new-account"
    body = acme.jws_body(url, {"termsOfServiceAgreed": True}, key=account, nonce="N1")

    header, payload = decoded(body)
    assert header["alg"] == "ES256" and header["nonce"] == "N1" and header["url"] == url
    assert "kid" not in header
    assert header["jwk"] == {k: v for k, v in header["jwk"].items() if k in "kty crv x y"}
    assert jwk.JWK(**header["jwk"]).thumbprint() == jwk.JWK.from_pyca(account).thumbprint()
    assert json.loads(payload) == {"termsOfServiceAgreed": True}
    signed = jws.JWS()
    signed.deserialize(body.decode())
    signed.verify(jwk.JWK.from_pyca(account.public_key()), alg="ES256")
    other = jws.JWS()
    other.deserialize(body.decode())
    with pytest.raises(jws.InvalidJWSSignature):
        other.verify(jwk.JWK.from_pyca(acme.account_key().public_key()), alg="ES256")

    # With an account URL: kid, no jwk; POST-as-GET has an empty payload.
    kid = "https://mdm.example/acme/account/7"
    order = "https://mdm.example/acme/order/3"
    header, payload = decoded(acme.jws_body(order, None, key=account, nonce="N2", kid=kid))
    assert header == {"alg": "ES256", "nonce": "N2", "url": order, "kid": kid}
    assert payload == b""


# -- the attestation object ------------------------------------------------------------------


def test_the_attestation_object_is_fmt_apple_with_the_chain_to_the_root():
    authority = AttestationCA.create()
    key = ec.generate_private_key(ec.SECP384R1())
    token = "evaGxfADs6pSRb2LAv9IZf17Dt3juxGJ-PCt92wr-oA"
    data = authority.attestation_object(key.public_key(), udid="UDID-1", serial="SER1", token=token)

    obj = cbor2.loads(data)
    assert obj["fmt"] == "apple" and set(obj) == {"fmt", "attStmt", "authData"}
    leaf, intermediate = (x509.load_der_x509_certificate(c) for c in obj["attStmt"]["x5c"])
    intermediate.verify_directly_issued_by(authority.root)
    leaf.verify_directly_issued_by(intermediate)
    assert spki(leaf.public_key()) == spki(key)
    value = lambda oid: leaf.extensions.get_extension_for_oid(oid).value.value  # noqa: E731
    assert (value(OID_UDID), value(OID_SERIAL)) == (b"UDID-1", b"SER1")
    assert value(OID_FRESHNESS) == hashlib.sha256(token.encode()).digest()


# -- the ACME payload in a profile -----------------------------------------------------------


def acme_payload(**overrides) -> dict:
    payload = {
        "PayloadType": "com.apple.security.acme",
        "PayloadVersion": 1,
        "PayloadIdentifier": "local.mdm-portal.enrollment.identity",
        "PayloadUUID": str(uuid.uuid4()).upper(),
        "PayloadDisplayName": "Device identity (ACME)",
        "DirectoryURL": "https://mdm.example/acme/directory",
        "ClientIdentifier": "one-time-secret",
        "KeyType": "ECSECPrimeRandom",
        "KeySize": 384,
        "HardwareBound": True,
        "Attest": True,
        "Subject": SUBJECT,
        "UsageFlags": 1,
    }
    payload.update(overrides)
    return {k: v for k, v in payload.items() if v is not None}


def enrollment_profile(identity: dict, *others: dict) -> bytes:
    mdm = {
        "PayloadType": "com.apple.mdm",
        "PayloadVersion": 1,
        "PayloadIdentifier": "local.mdm-portal.enrollment.mdm",
        "PayloadUUID": str(uuid.uuid4()).upper(),
        "ServerURL": "https://mdm.example/mdm/connect",
        "CheckInURL": "https://mdm.example/mdm/checkin",
        "Topic": "com.apple.mgmt.External.x",
        "IdentityCertificateUUID": identity["PayloadUUID"],
        "AccessRights": 8191,
        "SignMessage": True,
    }
    profile = {
        "PayloadType": "Configuration",
        "PayloadVersion": 1,
        "PayloadIdentifier": "local.mdm-portal.enrollment",
        "PayloadUUID": str(uuid.uuid4()).upper(),
        "PayloadContent": [*others, identity, mdm],
    }
    return plistlib.dumps(profile)


def test_a_profile_with_an_acme_identity_gives_the_device_what_it_needs():
    identity = acme_payload(SubjectAltName={"dNSName": "device.example"})
    decoy = acme_payload(ClientIdentifier="not-this-one")  # not the MDM payload's identity
    enrollment = profiles.read_enrollment_profile(enrollment_profile(identity, decoy))

    assert enrollment.scep is None and enrollment.pkcs12 is None
    found = enrollment.acme
    assert found.directory_url == "https://mdm.example/acme/directory"
    assert (found.client_identifier, found.key_type, found.key_size) == (
        "one-time-secret",
        "ECSECPrimeRandom",
        384,
    )
    assert found.hardware_bound and found.attest and found.subject == SUBJECT
    assert found.subject_alt_name == {"dNSName": "device.example"}
    assert found.uuid == identity["PayloadUUID"]
    unattested = profiles.read_enrollment_profile(enrollment_profile(acme_payload(Attest=False)))
    assert unattested.acme.attest is False
    no_attest_key = profiles.read_enrollment_profile(enrollment_profile(acme_payload(Attest=None)))
    assert no_attest_key.acme.attest is False  # Apple's default


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"ClientIdentifier": None}, "lacks ClientIdentifier"),
        ({"KeySize": 521}, "KeySize 521"),  # hardware-bound keys are P-256 or P-384
        ({"HardwareBound": False, "Attest": True, "KeySize": 256}, "not HardwareBound"),
        ({"KeyType": "RSA", "KeySize": 2048}, "never HardwareBound"),
        ({"KeyType": "DSA"}, "not RSA nor EC"),
        ({"Attest": "yes"}, "wrong type"),
    ],
)
def test_an_acme_payload_a_device_would_refuse_is_a_profile_error(overrides, message):
    with pytest.raises(profiles.ProfileError, match=message):
        profiles.read_enrollment_profile(enrollment_profile(acme_payload(**overrides)))


# -- the client against a strict server --------------------------------------------------------


def enroll(fake: FakeAcme, attestation=None, key=None, sleeps=None):
    key = key or ec.generate_private_key(ec.SECP384R1())

    async def flow():
        async with httpx.AsyncClient(transport=fake.transport()) as http:

            async def sleep(seconds):
                if sleeps is not None:
                    sleeps.append(seconds)

            client = acme.AcmeClient(http.request, DIRECTORY, sleep=sleep)
            subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "MDM Identity X")])
            return await client.enroll("one-time-secret", key, subject, attestation=attestation)

    return in_thread(asyncio.run, flow()), key


def test_an_attested_enrollment_follows_rfc8555_and_device_attest_01():
    authority = AttestationCA.create()
    fake = FakeAcme(attestation_root=authority.root, bad_nonce_once=True, pending_polls=2)
    device_key = ec.generate_private_key(ec.SECP384R1())

    def attestation(token: str) -> bytes:
        return authority.attestation_object(
            device_key.public_key(), udid="UDID-7", serial="SERIAL7", token=token
        )

    sleeps = []
    leaf, key = enroll(fake, attestation, device_key, sleeps)

    assert spki(leaf.public_key()) == spki(device_key)
    assert fake.identifier == "one-time-secret"
    assert fake.attested == {"udid": "UDID-7", "serial": "SERIAL7", "key": spki(device_key)}
    assert spki(fake.csr.public_key()) == spki(device_key)  # the attested key is certified
    assert fake.csr.subject.rfc4514_string() == "CN=MDM Identity X"
    paths = [path for _method, path, _header, _payload in fake.requests]
    # badNonce on the first POST: sent once more, with the nonce the refusal carried.
    assert paths[:2] == ["/acme/new-account", "/acme/new-account"]
    assert paths[2:5] == ["/acme/new-order", "/acme/authz/1", "/acme/chall/1"]
    assert paths[-1] == "/acme/cert/1" and "/acme/order/1/finalize" in paths
    headers = [header for _method, _path, header, _payload in fake.requests]
    assert all("kid" in h and "jwk" not in h for h in headers[2:])
    assert len({h["nonce"] for h in headers}) == len(headers)  # each nonce used once
    # The server's Retry-After: 0 was honoured (not the default delay), twice per resource.
    assert sleeps == [0.0] * 4


def test_without_attest_the_challenge_is_answered_with_an_empty_object():
    fake = FakeAcme(attestation_root=None)
    leaf, key = enroll(fake)
    assert spki(leaf.public_key()) == spki(key)
    challenge = [p for _m, path, _h, p in fake.requests if path == "/acme/chall/1"]
    assert challenge == [{}]


def test_an_authorization_already_valid_is_not_challenged():
    fake = FakeAcme(already_valid=True)
    leaf, _key = enroll(fake)
    assert "/acme/chall/1" not in [path for _m, path, _h, _p in fake.requests]
    assert leaf is not None


def test_a_problem_document_is_an_acme_error_with_its_type_and_detail():
    fake = FakeAcme(refuse_challenge=True)
    with pytest.raises(acme.AcmeError) as caught:
        enroll(fake)
    error = caught.value
    assert error.step == "challenge" and error.status == 403
    assert error.problem_type == "urn:ietf:params:acme:error:badAttestationStatement"
    assert str(error) == "challenge: badAttestationStatement (the attestation is not Apple's)"


# -- the simulated device ----------------------------------------------------------------------


def device_with(fake: FakeAcme | None, attestation_ca=None) -> SimulatedDevice:
    fleet = Fleet(url="https://acme.test", token="t", stats=Stats(), attestation_ca=attestation_ca)
    if fake is not None:
        # Every request of the device goes to the fake server (trust and identity aside).
        fleet.client = lambda *args, **kwargs: httpx.AsyncClient(transport=fake.transport())
    return SimulatedDevice(new_device(0), fleet)


def test_a_device_attests_its_own_udid_and_serial_and_counts_its_acme_requests():
    authority = AttestationCA.create()
    fake = FakeAcme(attestation_root=authority.root)
    device = device_with(fake, authority)
    payload = profiles.read_acme_payload(acme_payload(DirectoryURL=DIRECTORY))

    certificate, key = in_thread(asyncio.run, device._acme(payload))

    assert isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name == "secp384r1"
    assert spki(certificate.public_key()) == spki(key)
    assert fake.attested["udid"] == device.state.udid
    assert fake.attested["serial"] == device.state.serial
    assert fake.csr.subject.rfc4514_string() == "O=Example Org,CN=MDM Identity 1A2B3C4D"
    assert device.stats.requests_by_kind["acme"] == len(fake.requests) + 2  # + directory, nonce
    assert not device.stats.errors
    # The EC identity is kept and presented like a SCEP one (--state, --client-cert).
    device.state.set_identity(key, certificate)
    assert device.fleet._context((), device.state) is not None  # ssl takes the EC key
    assert "BEGIN PRIVATE KEY" in device.state.key_pem


def test_a_device_without_an_attestation_ca_says_what_to_pass():
    device = device_with(None)
    payload = profiles.read_acme_payload(acme_payload())
    with pytest.raises(ExchangeFailed):
        in_thread(asyncio.run, device._acme(payload))
    assert dict(device.stats.errors) == {NO_ATTESTATION_CA: 1}
    assert "--attestation-ca" in NO_ATTESTATION_CA
    assert "MDM_ACME_ATTESTATION_ROOTS" in NO_ATTESTATION_CA


def test_a_refused_acme_enrollment_is_counted_by_its_error():
    device = device_with(FakeAcme(refuse_challenge=True), AttestationCA.create())
    payload = profiles.read_acme_payload(acme_payload(DirectoryURL=DIRECTORY))
    with pytest.raises(ExchangeFailed):
        in_thread(asyncio.run, device._acme(payload))
    assert dict(device.stats.errors) == {
        "acme: challenge: badAttestationStatement (the attestation is not Apple's)": 1
    }
    assert device.stats.failed


def test_an_ec_identity_signs_the_mdm_signature():
    key = ec.generate_private_key(ec.SECP384R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "MDM Identity EC")])
    certificate = self_signed(key, name)
    body = plistlib.dumps({"MessageType": "Authenticate", "UDID": "X"})
    signature = base64.b64decode(sign_detached(body, certificate, key))
    assert verify_detached(signature, body) == certificate  # the portal's own verifier
    with pytest.raises(Exception, match="does not"):
        verify_detached(signature, body + b" ")


# -- the command line --------------------------------------------------------------------------


def test_make_attestation_ca_writes_one_and_keeps_it(tmp_path, capsys):
    folder = tmp_path / "attestation"
    assert simulator_main.main(["--make-attestation-ca", str(folder)]) == 0
    out = capsys.readouterr().out
    assert "made a test attestation CA" in out
    assert f"MDM_ACME_ATTESTATION_ROOTS={(folder / 'root.pem').resolve()}" in out
    root = (folder / "root.pem").read_bytes()
    assert AttestationCA.load(folder).root.public_bytes(serialization.Encoding.PEM) == root
    assert (folder / "root-key.pem").stat().st_mode & 0o077 == 0

    text = StringIO()
    call_command("mdm_simulate", "--make-attestation-ca", str(folder), stdout=text)
    assert "kept the attestation CA" in text.getvalue()
    assert (folder / "root.pem").read_bytes() == root  # a root the portal trusts stays


def test_a_bad_attestation_ca_or_no_url_is_a_clear_error(tmp_path):
    with pytest.raises(SimulatorError, match="--attestation-ca .* lacks root.pem"):
        run(Options(url="http://127.0.0.1:9", enrollment="t", attestation_ca=str(tmp_path)))
    with pytest.raises(SimulatorError, match="--url is required"):
        run(Options(url=None, enrollment="t"))
    assert simulator_main.main(["--devices", "1"]) == 2
