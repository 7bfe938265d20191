"""Opening a SCEP pkcsPKIEnvelope, and reading what it holds: a CSR or an IssuerAndSubject.

The envelope is a CMS EnvelopedData encrypted to our RA (some clients, micromdm's, address the
CA too) by RSA key transport, AES-CBC content encryption. asn1crypto reads what is in the
clear: which recipient info is ours and which algorithms it uses. cryptography's
pkcs7_decrypt_der decrypts AES-128-CBC and AES-256-CBC; AES-192-CBC, which we accept too, it
does not do, so that one is decrypted here with cryptography's RSA and AES primitives.

Refusals are ScepFailures: badAlg for an algorithm we do not accept (decided from clear data,
before any decryption), badRequest for everything else, and one and the same badRequest for
every decryption failure, so that the answer is no padding oracle.
"""

from asn1crypto import cms as asn1_cms
from asn1crypto import core
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import padding, serialization
from cryptography.hazmat.primitives.asymmetric import padding as asym_padding
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.serialization import pkcs7
from cryptography.x509.oid import AttributeOID

from .cms import identifies
from .scep_codec import FailInfo, ScepFailure, ScepKeys

# Content-encryption algorithms accepted in a request's envelope: name -> key length.
ACCEPTED_CIPHERS = {"aes128_cbc": 16, "aes192_cbc": 24, "aes256_cbc": 32}
# Those pkcs7_decrypt_der decrypts (it raises UnsupportedAlgorithm for AES-192 and DES).
PKCS7_DECRYPT_CIPHERS = {"aes128_cbc", "aes256_cbc"}


class IssuerAndSubject(core.Sequence):
    """The content of a CertPoll (GetCertInitial): which request the client polls for."""

    _fields = [("issuer", asn1_x509.Name), ("subject", asn1_x509.Name)]


def _enveloped_data(envelope: bytes) -> asn1_cms.EnvelopedData:
    """The EnvelopedData, wrapped in a ContentInfo (RFC 8894) or, as some clients send, bare."""
    try:
        info = asn1_cms.ContentInfo.load(envelope, strict=True)
        if info["content_type"].native == "enveloped_data":
            return info["content"]
    except (ValueError, TypeError, KeyError):
        pass
    try:
        enveloped = asn1_cms.EnvelopedData.load(envelope, strict=True)
        enveloped["encrypted_content_info"]  # noqa: B018 - force the parse now
        return enveloped
    except (ValueError, TypeError, KeyError):
        raise ScepFailure(FailInfo.BAD_REQUEST, "the content is not a CMS EnvelopedData") from None


def _asn1_certificate(certificate: x509.Certificate) -> asn1_x509.Certificate:
    return asn1_x509.Certificate.load(certificate.public_bytes(serialization.Encoding.DER))


def _recipient_for(enveloped: asn1_cms.EnvelopedData, keys: ScepKeys):
    """(KeyTransRecipientInfo, our certificate it names) of the recipient info addressed to us."""
    for recipient in enveloped["recipient_infos"]:
        if recipient.name != "ktri":
            continue
        for certificate in keys.recipients():
            if identifies(recipient.chosen["rid"], _asn1_certificate(certificate)):
                return recipient.chosen, certificate
    raise ScepFailure(FailInfo.BAD_REQUEST, "the envelope is not encrypted to this server")


def open_envelope(envelope: bytes, keys: ScepKeys) -> bytes:
    """Decrypt the pkcsPKIEnvelope (RSA key transport, AES-CBC content) with the RA/CA key."""
    enveloped = _enveloped_data(envelope)
    try:
        content_info = enveloped["encrypted_content_info"]
        algorithm = content_info["content_encryption_algorithm"]
        cipher_name = algorithm["algorithm"].native
    except (ValueError, TypeError, KeyError):
        raise ScepFailure(FailInfo.BAD_REQUEST, "the EnvelopedData is malformed") from None
    # Algorithm checks come first and are told apart (badAlg): they read clear data only.
    if cipher_name not in ACCEPTED_CIPHERS:
        raise ScepFailure(FailInfo.BAD_ALG, f"content encryption {cipher_name!r} is not accepted")
    recipient, certificate = _recipient_for(enveloped, keys)
    key = keys.key_for(certificate)
    key_algorithm = recipient["key_encryption_algorithm"]["algorithm"].native
    if key_algorithm != "rsaes_pkcs1v15":
        raise ScepFailure(FailInfo.BAD_ALG, f"key transport {key_algorithm!r} is not accepted")
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ScepFailure(FailInfo.BAD_ALG, "the envelope is encrypted to a key that is not RSA")
    # From here every failure reads the same (badRequest, one message): different answers for
    # a bad RSA padding, a bad key length or a bad AES padding would be a decryption oracle.
    try:
        if cipher_name in PKCS7_DECRYPT_CIPHERS:
            der = _as_pkcs7_decrypt_reads_it(recipient, certificate, content_info, cipher_name)
            return pkcs7.pkcs7_decrypt_der(der, certificate, key, [])  # [] keeps bytes exact
        return _decrypt(recipient, content_info, key, ACCEPTED_CIPHERS[cipher_name])
    except (ValueError, TypeError, KeyError, UnsupportedAlgorithm):
        raise ScepFailure(FailInfo.BAD_REQUEST, "the envelope could not be decrypted") from None


def _as_pkcs7_decrypt_reads_it(
    recipient, certificate: x509.Certificate, content_info, cipher_name: str
) -> bytes:
    """The envelope as pkcs7_decrypt_der reads it: DER, in a ContentInfo, one recipient info.

    pkcs7_decrypt_der parses DER only, wants the ContentInfo, finds its recipient by issuer and
    serial number only, and cannot parse the other kinds of recipient info; clients may send BER
    (indefinite lengths), a bare EnvelopedData, subject key identifiers, and an info for each
    GetCACert certificate (micromdm). So the fields it needs are copied into a DER envelope
    whose one recipient info names `certificate` (the one `recipient` named) by issuer and
    serial number.
    """
    ktri = {
        "version": "v0",
        "rid": {
            "issuer_and_serial_number": {
                "issuer": _asn1_certificate(certificate).issuer,
                "serial_number": certificate.serial_number,
            }
        },
        "key_encryption_algorithm": {"algorithm": "rsaes_pkcs1v15"},
        "encrypted_key": recipient["encrypted_key"].native,
    }
    encrypted = {
        "content_type": content_info["content_type"].native,
        "content_encryption_algorithm": {
            "algorithm": cipher_name,
            "parameters": content_info["content_encryption_algorithm"]["parameters"].native,
        },
        "encrypted_content": content_info["encrypted_content"].native,
    }
    enveloped = asn1_cms.EnvelopedData(
        {
            "version": "v0",
            "recipient_infos": [asn1_cms.RecipientInfo({"ktri": ktri})],
            "encrypted_content_info": encrypted,
        }
    )
    # Built from plain values (and our certificate's DER issuer), so it encodes as DER.
    return asn1_cms.ContentInfo({"content_type": "enveloped_data", "content": enveloped}).dump()


def _decrypt(recipient, content_info, key: rsa.RSAPrivateKey, key_length: int) -> bytes:
    """AES-CBC with an RSA-transported key, for the ciphers pkcs7_decrypt_der does not do."""
    content_key = key.decrypt(recipient["encrypted_key"].native, asym_padding.PKCS1v15())
    iv = content_info["content_encryption_algorithm"]["parameters"].native
    ciphertext = content_info["encrypted_content"].native
    if len(content_key) != key_length or not isinstance(iv, bytes) or len(iv) != 16:
        raise ValueError("bad key or IV")
    if not ciphertext:
        raise ValueError("no encrypted content")
    decryptor = Cipher(algorithms.AES(content_key), modes.CBC(iv)).decryptor()
    padded = decryptor.update(ciphertext) + decryptor.finalize()
    unpadder = padding.PKCS7(128).unpadder()
    return unpadder.update(padded) + unpadder.finalize()


def load_csr(content: bytes) -> x509.CertificateSigningRequest:
    """The PKCS#10 CSR of a PKCSReq or RenewalReq envelope, its self-signature checked."""
    try:
        csr = x509.load_der_x509_csr(content)
        valid = csr.is_signature_valid
    except (ValueError, TypeError):
        raise ScepFailure(
            FailInfo.BAD_REQUEST, "the envelope does not hold a PKCS#10 CSR"
        ) from None
    if not valid:
        raise ScepFailure(FailInfo.BAD_REQUEST, "the CSR's signature does not verify")
    return csr


def challenge_password(csr: x509.CertificateSigningRequest) -> str:
    """The CSR's challengePassword attribute, or '' when it has none."""
    try:
        value = csr.attributes.get_attribute_for_oid(AttributeOID.CHALLENGE_PASSWORD).value
    except x509.AttributeNotFound:
        return ""
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        raise ScepFailure(FailInfo.BAD_REQUEST, "the challengePassword is not text") from None


def load_issuer_and_subject(content: bytes) -> IssuerAndSubject:
    """The IssuerAndSubject of a CertPoll (GetCertInitial) envelope."""
    try:
        ias = IssuerAndSubject.load(content, strict=True)
        ias["subject"].native  # noqa: B018 - force the parse now
        return ias
    except (ValueError, TypeError, KeyError):
        raise ScepFailure(
            FailInfo.BAD_REQUEST, "the envelope does not hold an IssuerAndSubject"
        ) from None
