"""Apple device attestations as device-attest-01 checks them (certs/acme_attestation.py): the
chain to a trusted root, the freshness code, the attested UDID, serial number and key."""

import datetime as dt
import hashlib

import cbor2
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from certs.acme_attestation import AttestationError, verify_attestation
from certs.acme_problems import AcmeProblem
from simulator.attestation import AttestationCA, attestation_object, freshness_code

TOKEN = "evaGxfADs6pSRb2LAv9IZf17Dt3juxGJ-PCt92wr-oA"
UDID, SERIAL = "00008030-000A1B2C3D4E5F60", "F2LXK0TESTQ1"


@pytest.fixture
def trusted(tmp_path, settings) -> AttestationCA:
    authority = AttestationCA.create()
    settings.MDM_ACME_ATTESTATION_ROOTS = str(authority.save(tmp_path / "trusted"))
    return authority


@pytest.fixture
def key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP384R1())


def der(public_key) -> bytes:
    return public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def refusal(att_obj: bytes, token: str = TOKEN) -> str:
    with pytest.raises(AttestationError) as refused:
        verify_attestation(att_obj, token)
    assert refused.value.type == "badAttestationStatement"
    return refused.value.detail


def test_a_valid_attestation_proves_udid_serial_and_key(trusted, key):
    attested = verify_attestation(
        trusted.attestation_object(key.public_key(), udid=UDID, serial=SERIAL, token=TOKEN), TOKEN
    )
    assert (attested.udid, attested.serial) == (UDID, SERIAL)
    assert attested.public_key_der == der(key.public_key())
    # The freshness code is SHA-256 of the token, as Apple computes it.
    assert freshness_code(TOKEN) == hashlib.sha256(TOKEN.encode()).digest()


def test_a_chain_to_another_root_is_refused(trusted, key):
    other = AttestationCA.create(name="Other Attestation")
    att_obj = other.attestation_object(key.public_key(), udid=UDID, serial=SERIAL, token=TOKEN)
    assert "trusted root" in refusal(att_obj)


def test_a_chain_without_its_intermediate_is_refused(trusted, key):
    leaf = trusted.leaf(key.public_key(), udid=UDID, serial=SERIAL, nonce=freshness_code(TOKEN))
    assert "trusted root" in refusal(attestation_object([leaf]))


def test_an_expired_attestation_is_refused(trusted, key):
    now = dt.datetime.now(dt.UTC)
    leaf = trusted.leaf(
        key.public_key(),
        udid=UDID,
        serial=SERIAL,
        nonce=freshness_code(TOKEN),
        not_after=now - dt.timedelta(minutes=1),
    )
    assert "trusted root" in refusal(attestation_object([leaf, trusted.intermediate]))


def test_an_intermediate_that_is_no_ca_is_refused(trusted, key):
    now = dt.datetime.now(dt.UTC)
    not_a_ca = (
        x509.CertificateBuilder()
        .subject_name(trusted.intermediate.subject)
        .issuer_name(trusted.root.subject)
        .public_key(trusted.intermediate_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(trusted.root_key, hashes.SHA384())
    )
    leaf = trusted.leaf(key.public_key(), udid=UDID, serial=SERIAL, nonce=freshness_code(TOKEN))
    assert "trusted root" in refusal(attestation_object([leaf, not_a_ca]))


def test_the_nonce_must_be_the_hash_of_this_challenges_token(trusted, key):
    att_obj = trusted.attestation_object(
        key.public_key(), udid=UDID, serial=SERIAL, token="another-token"
    )
    assert "nonce" in refusal(att_obj)
    leaf = trusted.leaf(key.public_key(), udid=UDID, serial=SERIAL, nonce=TOKEN.encode())
    assert "nonce" in refusal(attestation_object([leaf, trusted.intermediate]))
    leaf = trusted.leaf(key.public_key(), udid=UDID, serial=SERIAL, nonce=None)
    assert "freshness code" in refusal(attestation_object([leaf, trusted.intermediate]))


@pytest.mark.parametrize(
    "att_obj, words",
    [
        (b"not cbor at all \xff\xff", "CBOR"),
        (cbor2.dumps([1, 2]), "CBOR map"),
        (cbor2.dumps({"fmt": "packed", "attStmt": {"x5c": [b"x"]}}), "format"),
        (cbor2.dumps({"fmt": "apple", "attStmt": {}}), "x5c"),
        (cbor2.dumps({"fmt": "apple", "attStmt": {"x5c": []}}), "x5c"),
        (cbor2.dumps({"fmt": "apple", "attStmt": {"x5c": ["text"]}}), "byte string"),
        (cbor2.dumps({"fmt": "apple", "attStmt": {"x5c": [b"\x30\x03abc"]}}), "DER"),
    ],
)
def test_what_is_no_apple_attestation_object_is_refused(trusted, att_obj, words):
    assert words in refusal(att_obj)


def test_the_roots_follow_the_setting_without_a_restart(tmp_path, settings, key):
    first, second = AttestationCA.create(), AttestationCA.create()
    att_obj = first.attestation_object(key.public_key(), udid=UDID, serial=SERIAL, token=TOKEN)
    settings.MDM_ACME_ATTESTATION_ROOTS = str(first.save(tmp_path / "first"))
    assert verify_attestation(att_obj, TOKEN).udid == UDID
    settings.MDM_ACME_ATTESTATION_ROOTS = str(second.save(tmp_path / "second"))
    refusal(att_obj)
    # The same path with new contents (a root replaced in place) is read again too.
    path = tmp_path / "first" / "root.pem"
    path.write_bytes(second.root.public_bytes(serialization.Encoding.PEM))
    settings.MDM_ACME_ATTESTATION_ROOTS = str(path)
    refusal(att_obj)


def test_apples_root_is_the_default(settings):
    path = settings.MDM_ACME_ATTESTATION_ROOTS
    assert path.endswith("certs/data/apple-enterprise-attestation-root-ca.pem")
    with open(path, "rb") as handle:
        root = x509.load_pem_x509_certificate(handle.read())
    assert "Apple Enterprise Attestation Root CA" in root.subject.rfc4514_string()


def test_unreadable_roots_are_the_servers_fault(settings, tmp_path, key):
    settings.MDM_ACME_ATTESTATION_ROOTS = str(tmp_path / "missing.pem")
    authority = AttestationCA.create()
    att_obj = authority.attestation_object(key.public_key(), udid=UDID, serial=SERIAL, token=TOKEN)
    with pytest.raises(AcmeProblem) as failed:
        verify_attestation(att_obj, TOKEN)
    assert failed.value.type == "serverInternal" and failed.value.status == 500
    assert not isinstance(failed.value, AttestationError)
