"""The key pair behind an Automated Device Enrollment server token, and opening the token.

The token PKI exchange (Apple Business Manager / School Manager): the portal makes an RSA key
and a self-signed certificate for it (`create_token_key`); the admin uploads the certificate
in ABM under the MDM server; ABM envelopes the server token to that certificate and the admin
downloads it (a `.p7m`); `decrypt_server_token` opens it. What the opened token says (the OAuth
credentials and their expiry) is enrollment's to read (enrollment/dep_tokens.py): certs knows
keys and CMS only.

The `.p7m` is an S/MIME message: MIME headers (`Content-Type: application/pkcs7-mime;
smime-type=enveloped-data`, base64 transfer encoding) around a CMS EnvelopedData with RSA key
transport to our certificate. It is parsed here rather than by cryptography's
pkcs7_decrypt_smime, for two reasons: a file that is not a token gets a message a person can
act on rather than "Not an S/MIME enveloped message", and cryptography reads DER only, while
S/MIME writers commonly stream BER (indefinite lengths, the OpenSSL `-stream` form). asn1crypto
reads either and re-encodes it as DER for cryptography's pkcs7_decrypt_der, which does the
decryption for AES-128-CBC and AES-256-CBC. For the S/MIME ciphers it does not do (AES-192-CBC,
and 3DES, the S/MIME default of older writers), and for a recipient named by subject key
identifier (which pkcs7_decrypt_der cannot find), the same two steps are done here with
cryptography's RSA and cipher primitives, as certs/scep_envelope.py does for SCEP. No test can
reach Apple to learn which of these ABM writes, so each is accepted and tested.
"""

import datetime as dt
import email
import email.policy
from email.message import Message

from asn1crypto import cms as asn1_cms
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives import hashes, padding, serialization
from cryptography.hazmat.primitives.asymmetric import padding as asym_padding
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.serialization import pkcs7
from cryptography.x509.oid import NameOID

from .ca import key_usage, load_stored_key, private_key_pem, sha256_hex
from .cms import identifies
from .models import DepTokenKey

# ABM uses the certificate only to encrypt the token to its key: nothing verifies a chain or
# trusts it for anything else, so a long life costs nothing, and it spares the admin a new
# upload in ABM at every yearly token renewal (the token is renewed, the key stays).
TOKEN_KEY_VALIDITY = dt.timedelta(days=3650)
COMMON_NAME_PREFIX = "MDM portal ADE token"
# A server token is a few kilobytes; a file far larger is something else, not read in full.
MAX_TOKEN_BYTES = 256 * 1024

# Content encryption: what cryptography's pkcs7_decrypt_der decrypts, and what is decrypted
# here (cipher, key length, block size in bits).
PKCS7_DECRYPT_CIPHERS = {"aes128_cbc", "aes256_cbc"}
OWN_CIPHERS = {
    "aes128_cbc": (algorithms.AES, 16, 128),
    "aes192_cbc": (algorithms.AES, 24, 128),
    "aes256_cbc": (algorithms.AES, 32, 128),
    "tripledes_3key": (TripleDES, 24, 64),
}
SMIME_TYPES = {"application/pkcs7-mime", "application/x-pkcs7-mime"}

NOT_A_TOKEN = (
    "this file is not a server token: Apple Business Manager gives an S/MIME file ending in "
    ".p7m (MIME headers, then base64); download the server token again and import that file"
)
DAMAGED = (
    "this server token is damaged (its encrypted content cannot be read): download it again "
    "in Apple Business Manager"
)
WRONG_CERTIFICATE = (
    "this server token was encrypted to another certificate: download it again in Apple "
    "Business Manager from the MDM server whose certificate you uploaded"
)


class DepTokenError(ValueError):
    """A server token cannot be read or used; the message says what to do."""


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def create_token_key(*, label: str = "") -> DepTokenKey:
    """A new RSA-2048 key (encrypted at rest) and the self-signed certificate to upload to ABM.

    `label` (the DEP server's name) goes into the common name, so the admin can tell the
    certificates of several servers apart in their downloads folder.
    """
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    suffix = label.strip() or str(DepTokenKey.objects.count() + 1)
    name = x509.Name(
        [x509.NameAttribute(NameOID.COMMON_NAME, f"{COMMON_NAME_PREFIX} {suffix}"[:64])]
    )
    now = _now()
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + TOKEN_KEY_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        # keyEncipherment: ABM encrypts the token's content key to this key (RSA key transport).
        .add_extension(key_usage(key_encipherment=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return DepTokenKey.objects.create(
        certificate_pem=certificate.public_bytes(serialization.Encoding.PEM).decode(),
        private_key_pem=private_key_pem(key),
        sha256=sha256_hex(certificate),
        not_after=certificate.not_valid_after_utc,
    )


def token_certificate(key: DepTokenKey) -> x509.Certificate:
    return x509.load_pem_x509_certificate(key.certificate_pem.encode())


def decrypt_server_token(key: DepTokenKey, p7m: bytes) -> bytes:
    """The decrypted content of a server token (.p7m) enveloped to `key`: a MIME entity
    (`Content-Type: text/plain`, then the `-----BEGIN MESSAGE-----` block) for enrollment to
    read. Raises DepTokenError with what to do when the file is not a token, is damaged, or
    was encrypted to another certificate.
    """
    content_info = _content_info(_smime_body(p7m))
    enveloped = content_info["content"]
    certificate = token_certificate(key)
    recipient = _recipient(enveloped, certificate)
    try:
        key_algorithm = recipient["key_encryption_algorithm"]["algorithm"].native
        encrypted = enveloped["encrypted_content_info"]
        cipher = encrypted["content_encryption_algorithm"]["algorithm"].native
    except (ValueError, TypeError, KeyError):
        raise DepTokenError(DAMAGED) from None
    if key_algorithm != "rsaes_pkcs1v15":
        raise DepTokenError(
            f"this server token uses key transport {key_algorithm!r}, which the "
            "portal does not read (RSA PKCS#1 v1.5 is what S/MIME uses)"
        )
    if cipher not in OWN_CIPHERS:
        raise DepTokenError(
            f"this server token is encrypted with {cipher!r}, which the portal "
            "does not read (AES-CBC or 3DES are what S/MIME uses)"
        )
    private_key = load_stored_key(key.private_key_pem)
    try:
        if cipher in PKCS7_DECRYPT_CIPHERS and recipient["rid"].name == "issuer_and_serial_number":
            # DER re-encoded from what asn1crypto parsed (BER or DER); [] keeps the bytes exact.
            return pkcs7.pkcs7_decrypt_der(
                content_info.dump(force=True), certificate, private_key, []
            )
        return _decrypt(recipient, encrypted, private_key, cipher)
    except (ValueError, TypeError, KeyError, UnsupportedAlgorithm):
        # Our recipient info is there, so this is a damaged file, not the wrong certificate
        # (cryptography says "No recipient found that matches the given certificate." then,
        # which _recipient has already told apart).
        raise DepTokenError(DAMAGED) from None


def _smime_body(p7m: bytes) -> bytes:
    """The CMS bytes inside the S/MIME message (base64 decoded)."""
    if not isinstance(p7m, bytes | bytearray | memoryview):
        raise DepTokenError(NOT_A_TOKEN)
    if len(p7m) > MAX_TOKEN_BYTES:
        raise DepTokenError(f"this file is too large to be a server token ({len(p7m)} bytes)")
    message: Message = email.message_from_bytes(bytes(p7m), policy=email.policy.compat32)
    if message.get_content_type() not in SMIME_TYPES or message.is_multipart():
        raise DepTokenError(NOT_A_TOKEN)
    smime_type = (message.get_param("smime-type") or "enveloped-data").lower()
    if smime_type != "enveloped-data":
        raise DepTokenError(
            f"this S/MIME file is {smime_type}, not an encrypted server token: "
            "download the server token in Apple Business Manager"
        )
    body = message.get_payload(decode=True)
    if not body:
        raise DepTokenError(DAMAGED)
    return body


def _content_info(der: bytes) -> asn1_cms.ContentInfo:
    """The ContentInfo of an EnvelopedData, parsed in full now (BER or DER)."""
    try:
        content_info = asn1_cms.ContentInfo.load(der)
        if content_info["content_type"].native != "enveloped_data":
            raise DepTokenError(NOT_A_TOKEN)
        content_info.native  # noqa: B018 - parse every field now, not on first use
        return content_info
    except DepTokenError:
        raise
    except (ValueError, TypeError, KeyError):
        raise DepTokenError(DAMAGED) from None


def _recipient(enveloped: asn1_cms.EnvelopedData, certificate: x509.Certificate):
    """The KeyTransRecipientInfo addressed to `certificate`, or the wrong-certificate error."""
    ours = asn1_x509.Certificate.load(certificate.public_bytes(serialization.Encoding.DER))
    for info in enveloped["recipient_infos"]:
        if info.name == "ktri" and identifies(info.chosen["rid"], ours):
            return info.chosen
    raise DepTokenError(WRONG_CERTIFICATE)


def _decrypt(recipient, encrypted, private_key: rsa.RSAPrivateKey, cipher_name: str) -> bytes:
    """RSA key transport and CBC content decryption, for what pkcs7_decrypt_der does not do."""
    cipher, key_length, block_bits = OWN_CIPHERS[cipher_name]
    content_key = private_key.decrypt(recipient["encrypted_key"].native, asym_padding.PKCS1v15())
    iv = encrypted["content_encryption_algorithm"]["parameters"].native
    ciphertext = encrypted["encrypted_content"].native
    if len(content_key) != key_length or not isinstance(iv, bytes) or len(iv) * 8 != block_bits:
        raise ValueError("bad key or IV")
    if not ciphertext:
        raise ValueError("no encrypted content")
    decryptor = Cipher(cipher(content_key), modes.CBC(iv)).decryptor()
    padded = decryptor.update(ciphertext) + decryptor.finalize()
    unpadder = padding.PKCS7(block_bits).unpadder()
    return unpadder.update(padded) + unpadder.finalize()
