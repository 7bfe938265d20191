"""Opening a SCEP pkcsPKIEnvelope (certs/scep_envelope.py): what is accepted, and how it refuses.

The envelopes are built here with asn1crypto and cryptography's primitives, independently of the
server's code, in the shapes clients send: wrapped in a ContentInfo or bare, DER or BER,
addressed to the RA or the CA, by issuer and serial number or by subject key identifier, among
other recipients.
"""

import os

import pytest
from asn1crypto import cms, core
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import padding, serialization
from cryptography.hazmat.primitives.asymmetric import padding as asym_padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from certs.scep_codec import FailInfo, ScepFailure, scep_keys
from certs.scep_envelope import open_envelope
from simulator import scep as sc

pytestmark = pytest.mark.django_db

# Bytes an S/MIME canonicalisation would change: the content must come back exactly.
CONTENT = b"line one\nline two\r\nend\x00\xff"
UNDECRYPTABLE = "the envelope could not be decrypted"


@pytest.fixture
def keys(ca):
    return scep_keys()


def _rid(certificate: x509.Certificate, by: str) -> cms.RecipientIdentifier:
    parsed = asn1_x509.Certificate.load(certificate.public_bytes(serialization.Encoding.DER))
    if by == "ski":
        return cms.RecipientIdentifier({"subject_key_identifier": parsed.key_identifier})
    return cms.RecipientIdentifier(
        {
            "issuer_and_serial_number": {
                "issuer": parsed.issuer,
                "serial_number": parsed.serial_number,
            }
        }
    )


def _ktri(certificate, content_key: bytes, by: str = "issuer", transport="rsaes_pkcs1v15"):
    encrypted_key = certificate.public_key().encrypt(content_key, asym_padding.PKCS1v15())
    return cms.RecipientInfo(
        {
            "ktri": {
                "version": "v2" if by == "ski" else "v0",
                "rid": _rid(certificate, by),
                "key_encryption_algorithm": {"algorithm": transport},
                "encrypted_key": encrypted_key,
            }
        }
    )


def enveloped(
    recipient: x509.Certificate,
    *,
    cipher: str = "aes256_cbc",
    key_length: int = 32,
    by: str = "issuer",
    transport: str = "rsaes_pkcs1v15",
    others: tuple[x509.Certificate, ...] = (),
    iv: bytes | None = None,
    padded: bytes | None = None,
    ciphertext: bytes | None = None,
) -> cms.EnvelopedData:
    """An EnvelopedData of CONTENT (AES-CBC) for `recipient`, after recipient infos for `others`.

    `padded` replaces the padded plaintext that is encrypted, `ciphertext` the encryption.
    """
    content_key, real_iv = os.urandom(key_length), os.urandom(16)
    if padded is None:
        padder = padding.PKCS7(128).padder()
        padded = padder.update(CONTENT) + padder.finalize()
    encryptor = Cipher(algorithms.AES(content_key), modes.CBC(real_iv)).encryptor()
    encrypted = encryptor.update(padded) + encryptor.finalize()
    recipients = [_ktri(other, os.urandom(key_length)) for other in others]
    recipients.append(_ktri(recipient, content_key, by, transport))
    return cms.EnvelopedData(
        {
            "version": "v2" if by == "ski" else "v0",
            "recipient_infos": recipients,
            "encrypted_content_info": {
                "content_type": "data",
                "content_encryption_algorithm": {
                    "algorithm": cipher,
                    "parameters": core.OctetString(real_iv if iv is None else iv),
                },
                "encrypted_content": encrypted if ciphertext is None else ciphertext,
            },
        }
    )


def wrapped(data: cms.EnvelopedData) -> bytes:
    return cms.ContentInfo({"content_type": "enveloped_data", "content": data}).dump()


def _indefinite(tag: int, contents: bytes) -> bytes:
    return bytes([tag, 0x80]) + contents + b"\x00\x00"


def ber(data: cms.EnvelopedData) -> bytes:
    """The ContentInfo in BER, with indefinite lengths, as a BER-encoding client sends it."""
    oid = core.ObjectIdentifier("1.2.840.113549.1.7.3").dump()
    return _indefinite(0x30, oid + _indefinite(0xA0, data.dump()))


def refusal(envelope: bytes, keys) -> tuple[FailInfo, str]:
    with pytest.raises(ScepFailure) as refused:
        open_envelope(envelope, keys)
    return refused.value.fail_info, refused.value.reason


def assert_undecryptable_with_a_wrong_key(envelope: bytes, keys) -> None:
    """Refused as undecryptable, or opened to garbage that the CSR parsing then refuses.

    RSA PKCS#1 v1.5 decryption does not tell a wrong content key (implicit rejection, against
    Bleichenbacher/Marvin): a wrong key decrypts the content to garbage, whose AES padding is
    valid about once in 256 tries.
    """
    try:
        content = open_envelope(envelope, keys)
    except ScepFailure as refused:
        assert (refused.fail_info, refused.reason) == (FailInfo.BAD_REQUEST, UNDECRYPTABLE)
    else:
        assert content != CONTENT


def stranger() -> x509.Certificate:
    key = sc.make_key()
    return sc.self_signed(key, sc.make_scep_csr(key, "stranger").subject)


# ------------------------------------------------------------------ accepted


@pytest.mark.parametrize(
    ("cipher", "key_length"), [("aes128_cbc", 16), ("aes192_cbc", 24), ("aes256_cbc", 32)]
)
def test_every_accepted_cipher_opens_to_the_exact_content(keys, cipher, key_length):
    envelope = wrapped(enveloped(keys.ra_cert, cipher=cipher, key_length=key_length))
    assert open_envelope(envelope, keys) == CONTENT


@pytest.mark.parametrize("cipher", ["aes128_cbc", "aes192_cbc", "aes256_cbc"])
def test_a_bare_or_ber_envelope_opens_too(keys, cipher):
    key_length = {"aes128_cbc": 16, "aes192_cbc": 24, "aes256_cbc": 32}[cipher]
    data = enveloped(keys.ra_cert, cipher=cipher, key_length=key_length)
    assert open_envelope(data.dump(), keys) == CONTENT
    assert open_envelope(ber(data), keys) == CONTENT


@pytest.mark.parametrize("cipher", ["aes128_cbc", "aes256_cbc"])
def test_recipients_by_key_identifier_to_the_ca_or_among_others(keys, cipher):
    key_length = 16 if cipher == "aes128_cbc" else 32
    for data in (
        enveloped(keys.ra_cert, cipher=cipher, key_length=key_length, by="ski"),
        enveloped(keys.ca_cert, cipher=cipher, key_length=key_length),
        enveloped(keys.ra_cert, cipher=cipher, key_length=key_length, others=(stranger(),)),
    ):
        assert open_envelope(wrapped(data), keys) == CONTENT


def test_the_sample_client_envelope_opens(keys):
    assert open_envelope(sc.envelope(CONTENT, keys.ra_cert, "aes128"), keys) == CONTENT


# ------------------------------------------------------------------ refused


def test_algorithms_not_accepted_are_bad_alg(keys):
    for cipher in ("des", "des3"):
        fail_info, reason = refusal(sc.envelope(CONTENT, keys.ra_cert, cipher), keys)
        assert fail_info == FailInfo.BAD_ALG and "content encryption" in reason
    oaep = wrapped(enveloped(keys.ra_cert, transport="rsaes_oaep"))
    assert refusal(oaep, keys) == (FailInfo.BAD_ALG, "key transport 'rsaes_oaep' is not accepted")


def test_an_envelope_for_someone_else_or_no_envelope_is_a_bad_request(keys):
    assert refusal(wrapped(enveloped(stranger())), keys) == (
        FailInfo.BAD_REQUEST,
        "the envelope is not encrypted to this server",
    )
    assert refusal(b"not an envelope", keys) == (
        FailInfo.BAD_REQUEST,
        "the content is not a CMS EnvelopedData",
    )


@pytest.mark.parametrize(
    "broken",
    [
        {"padded": bytes(32)},  # padding byte 0: never valid
        {"ciphertext": os.urandom(17)},  # not whole blocks
        {"ciphertext": b""},
        {"iv": os.urandom(8)},
    ],
)
def test_every_decryption_failure_reads_the_same(keys, broken):
    for cipher, key_length in (("aes128_cbc", 16), ("aes192_cbc", 24), ("aes256_cbc", 32)):
        envelope = wrapped(enveloped(keys.ra_cert, cipher=cipher, key_length=key_length, **broken))
        assert refusal(envelope, keys) == (FailInfo.BAD_REQUEST, UNDECRYPTABLE)


@pytest.mark.parametrize(
    ("cipher", "key_length"),
    [("aes128_cbc", 32), ("aes192_cbc", 32), ("aes256_cbc", 16), ("aes256_cbc", 24)],
)
def test_a_content_key_of_the_wrong_length_is_a_wrong_key(keys, cipher, key_length):
    envelope = wrapped(enveloped(keys.ra_cert, cipher=cipher, key_length=key_length))
    assert_undecryptable_with_a_wrong_key(envelope, keys)


def test_a_tampered_content_key_is_a_wrong_key(keys):
    data = enveloped(keys.ra_cert)
    ktri = data["recipient_infos"][0].chosen
    encrypted_key = bytearray(ktri["encrypted_key"].native)
    encrypted_key[10] ^= 0x01
    ktri["encrypted_key"] = bytes(encrypted_key)
    envelope = cms.ContentInfo({"content_type": "enveloped_data", "content": data}).dump(force=True)
    assert_undecryptable_with_a_wrong_key(envelope, keys)
