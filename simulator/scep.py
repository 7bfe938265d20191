"""A small SCEP client (RFC 8894): the device simulator's, and the tests'.

It builds pkiMessages the way a device does (asn1crypto for the structures, cryptography for the
maths) and reads CertReps without any help from the server's code: the signature is checked
here, and the envelope is opened by cryptography's own PKCS#7 decryption.

    ca_cert, recipient = split_ca_certs(get_ca_cert_body, content_type)
    key = make_key()
    csr = make_scep_csr(key, "device", challenge)
    signer = self_signed(key, csr.subject)
    der = build_pkcs_req(csr, signer, key, recipient)
    status, fail_info, cert, recipient_nonce, tid = read_cert_rep(answer, signer, key, ca_cert)

`recipient` is the certificate requests are encrypted to: the RA when GetCACert returns one,
else the CA. A CertRep is accepted when signed by the CA or by a certificate the CA issued.
"""

import datetime as dt
import hashlib
import hmac
import os
import re
from dataclasses import dataclass

from asn1crypto import cms, core
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives import hashes, padding, serialization
from cryptography.hazmat.primitives.asymmetric import padding as asym_padding
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.serialization import pkcs7
from cryptography.x509.oid import AttributeOID, NameOID

# messageType
CERT_REP = 3
RENEWAL_REQ = 17
PKCS_REQ = 19
CERT_POLL = 20  # GetCertInitial

# pkiStatus
SUCCESS = 0
FAILURE = 2
PENDING = 3

# failInfo
BAD_ALG = 0
BAD_MESSAGE_CHECK = 1
BAD_REQUEST = 2
BAD_TIME = 3
BAD_CERT_ID = 4

OID_MESSAGE_TYPE = "2.16.840.1.113733.1.9.2"
OID_PKI_STATUS = "2.16.840.1.113733.1.9.3"
OID_FAIL_INFO = "2.16.840.1.113733.1.9.4"
OID_SENDER_NONCE = "2.16.840.1.113733.1.9.5"
OID_RECIPIENT_NONCE = "2.16.840.1.113733.1.9.6"
OID_TRANSACTION_ID = "2.16.840.1.113733.1.9.7"

# cipher -> (asn1crypto algorithm name, key bytes, block bytes)
CIPHERS = {
    "aes256": ("aes256_cbc", 32, 16),
    "aes128": ("aes128_cbc", 16, 16),
    # Single DES (OID 1.3.14.3.2.7): cryptography has no DES, but TripleDES with K1=K2=K3
    # (an 8-byte key) is single DES mathematically.
    "des": ("des", 8, 8),
    "des3": ("tripledes_3key", 24, 8),
}
DIGESTS = {"sha1": hashes.SHA1, "sha256": hashes.SHA256, "sha512": hashes.SHA512}


class ScepClientError(ValueError):
    """The CertRep is malformed or its signature does not verify."""


class ScepFailure(RuntimeError):
    """SCEP gave no certificate: an HTTP error, or a CertRep with a failure status."""


# The short names of an enrollment profile's SCEP Subject (Apple's Configuration Profile
# Reference: an array of RDNs, each an array of [name, value] pairs).
SUBJECT_NAMES = {
    "CN": NameOID.COMMON_NAME,
    "O": NameOID.ORGANIZATION_NAME,
    "OU": NameOID.ORGANIZATIONAL_UNIT_NAME,
    "C": NameOID.COUNTRY_NAME,
    "ST": NameOID.STATE_OR_PROVINCE_NAME,
    "L": NameOID.LOCALITY_NAME,
    "E": NameOID.EMAIL_ADDRESS,
    "DC": NameOID.DOMAIN_COMPONENT,
}


# ------------------------------------------------------------------ keys, CSRs, signer certs


def make_key(bits: int = 2048) -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


def subject_from_payload(subject: list) -> x509.Name:
    """The x509 Name of a SCEP or ACME payload's Subject, e.g. [[["CN", "x"]], [["O", "Org"]]]
    (a dotted number names its OID: [["2.5.4.5", "serial"]])."""
    rdns = []
    for rdn in subject:
        attributes = [x509.NameAttribute(_subject_oid(str(n)), str(v)) for n, v in rdn]
        rdns.append(x509.RelativeDistinguishedName(attributes))
    return x509.Name(rdns)


def _subject_oid(name: str) -> x509.ObjectIdentifier:
    if re.fullmatch(r"[0-2](\.\d+)+", name):
        return x509.ObjectIdentifier(name)
    return SUBJECT_NAMES.get(name.upper(), NameOID.COMMON_NAME)


def make_scep_csr(
    key, subject: str | x509.Name, challenge: str | None = None
) -> x509.CertificateSigningRequest:
    """A CSR as a device sends it: its subject (a Name, or a common name), and the
    challengePassword attribute."""
    if isinstance(subject, x509.Name):
        name = subject
    else:
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    builder = x509.CertificateSigningRequestBuilder().subject_name(name)
    if challenge is not None:
        builder = builder.add_attribute(AttributeOID.CHALLENGE_PASSWORD, challenge.encode())
    return builder.sign(key, hashes.SHA256())


def self_signed(key, subject: x509.Name) -> x509.Certificate:
    """The throwaway self-signed certificate a requester signs its first PKCSReq with."""
    now = dt.datetime.now(dt.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )


def signer_for(key, csr: x509.CertificateSigningRequest) -> x509.Certificate:
    """The self-signed signer certificate for a CSR's key (same subject, same key)."""
    return self_signed(key, csr.subject)


def split_ca_certs(body: bytes, content_type: str) -> tuple[x509.Certificate, x509.Certificate]:
    """(CA, recipient) from a GetCACert answer: one DER certificate, or CA + RA as PKCS#7."""
    if content_type.split(";")[0].strip() == "application/x-x509-ca-cert":
        certificate = x509.load_der_x509_certificate(body)
        return certificate, certificate
    certificates = pkcs7.load_der_pkcs7_certificates(body)
    ca = next(c for c in certificates if c.issuer == c.subject)
    others = [c for c in certificates if c is not ca]
    # The RA is the certificate the CA issued with keyEncipherment (what requests go to).
    for certificate in others:
        usage = certificate.extensions.get_extension_for_class(x509.KeyUsage).value
        if usage.key_encipherment:
            return ca, certificate
    return ca, ca


# ------------------------------------------------------------------ building requests


def _der(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(serialization.Encoding.DER)


def _issuer_and_serial(certificate: x509.Certificate) -> cms.IssuerAndSerialNumber:
    parsed = asn1_x509.Certificate.load(_der(certificate))
    return cms.IssuerAndSerialNumber(
        {"issuer": parsed.issuer, "serial_number": parsed.serial_number}
    )


def _encrypt(cipher: str, key: bytes, iv: bytes, data: bytes) -> bytes:
    padder = padding.PKCS7(len(iv) * 8).padder()
    padded = padder.update(data) + padder.finalize()
    if cipher.startswith("aes"):
        algorithm = algorithms.AES(key)
    else:  # K1=K2=K3 for single DES
        algorithm = TripleDES(key * 3 if len(key) == 8 else key)
    encryptor = Cipher(algorithm, modes.CBC(iv)).encryptor()
    return encryptor.update(padded) + encryptor.finalize()


def envelope(content: bytes, recipient: x509.Certificate, cipher: str = "aes256") -> bytes:
    """A CMS EnvelopedData (in its ContentInfo) of `content` for `recipient`'s RSA key."""
    name, key_size, block_size = CIPHERS[cipher]
    key, iv = os.urandom(key_size), os.urandom(block_size)
    encrypted_key = recipient.public_key().encrypt(key, asym_padding.PKCS1v15())
    recipient_info = cms.KeyTransRecipientInfo(
        {
            "version": "v0",
            "rid": cms.RecipientIdentifier(
                {"issuer_and_serial_number": _issuer_and_serial(recipient)}
            ),
            "key_encryption_algorithm": {"algorithm": "rsaes_pkcs1v15"},
            "encrypted_key": encrypted_key,
        }
    )
    enveloped = cms.EnvelopedData(
        {
            "version": "v0",
            "recipient_infos": [cms.RecipientInfo({"ktri": recipient_info})],
            "encrypted_content_info": {
                "content_type": "data",
                "content_encryption_algorithm": {
                    "algorithm": name,
                    "parameters": core.OctetString(iv),
                },
                "encrypted_content": _encrypt(cipher, key, iv, content),
            },
        }
    )
    return cms.ContentInfo({"content_type": "enveloped_data", "content": enveloped}).dump()


def _scep_attribute(oid: str, value) -> cms.CMSAttribute:
    return cms.CMSAttribute({"type": oid, "values": [value]})


def sign_pki_message(
    content: bytes,
    signer_cert: x509.Certificate,
    signer_key,
    *,
    message_type: int,
    transaction_id: str,
    sender_nonce: bytes,
    digest: str = "sha256",
) -> bytes:
    """A pkiMessage: SignedData over `content` with SCEP's signed attributes."""
    hash_algorithm = DIGESTS[digest]()
    hasher = hashes.Hash(hash_algorithm)
    hasher.update(content)
    attributes = cms.CMSAttributes(
        [
            cms.CMSAttribute({"type": "content_type", "values": ["data"]}),
            cms.CMSAttribute({"type": "message_digest", "values": [hasher.finalize()]}),
            _scep_attribute(OID_TRANSACTION_ID, core.PrintableString(transaction_id)),
            _scep_attribute(OID_MESSAGE_TYPE, core.PrintableString(str(message_type))),
            _scep_attribute(OID_SENDER_NONCE, core.OctetString(sender_nonce)),
        ]
    )
    signature = signer_key.sign(attributes.dump(), asym_padding.PKCS1v15(), hash_algorithm)
    signer_info = cms.SignerInfo(
        {
            "version": "v1",
            "sid": cms.SignerIdentifier(
                {"issuer_and_serial_number": _issuer_and_serial(signer_cert)}
            ),
            "digest_algorithm": {"algorithm": digest},
            "signed_attrs": attributes,
            "signature_algorithm": {"algorithm": "rsassa_pkcs1v15"},
            "signature": signature,
        }
    )
    signed_data = cms.SignedData(
        {
            "version": "v1",
            "digest_algorithms": [{"algorithm": digest}],
            "encap_content_info": {"content_type": "data", "content": content},
            "certificates": [asn1_x509.Certificate.load(_der(signer_cert))],
            "signer_infos": [signer_info],
        }
    )
    return cms.ContentInfo({"content_type": "signed_data", "content": signed_data}).dump()


def transaction_id_for(key) -> str:
    """A transactionID as many clients make it: a hash of the public key (hex)."""
    spki = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(spki).hexdigest()


@dataclass(frozen=True)
class Request:
    der: bytes
    transaction_id: str
    sender_nonce: bytes


def build_request(
    content: bytes,
    signer_cert: x509.Certificate,
    signer_key,
    ca_cert: x509.Certificate,
    *,
    transaction_id: str | None = None,
    message_type: int = PKCS_REQ,
    cipher: str = "aes256",
    digest: str = "sha256",
) -> Request:
    """Envelope `content` to the CA and sign it: the pkiMessage, with what the answer echoes."""
    transaction_id = transaction_id or os.urandom(16).hex()
    nonce = os.urandom(16)
    der = sign_pki_message(
        envelope(content, ca_cert, cipher),
        signer_cert,
        signer_key,
        message_type=message_type,
        transaction_id=transaction_id,
        sender_nonce=nonce,
        digest=digest,
    )
    return Request(der, transaction_id, nonce)


def build_pkcs_req(
    csr: x509.CertificateSigningRequest,
    signer_cert: x509.Certificate,
    signer_key,
    ca_cert: x509.Certificate,
    *,
    transaction_id: str | None = None,
    message_type: int = PKCS_REQ,
    cipher: str = "aes256",
    digest: str = "sha256",
) -> bytes:
    """A PKCSReq (or RenewalReq, message_type=17) pkiMessage carrying `csr`, as DER."""
    return build_request(
        csr.public_bytes(serialization.Encoding.DER),
        signer_cert,
        signer_key,
        ca_cert,
        transaction_id=transaction_id,
        message_type=message_type,
        cipher=cipher,
        digest=digest,
    ).der


class IssuerAndSubject(core.Sequence):
    _fields = [("issuer", asn1_x509.Name), ("subject", asn1_x509.Name)]


def issuer_and_subject(ca_cert: x509.Certificate, subject: x509.Name) -> bytes:
    """The content of a GetCertInitial: SEQUENCE { issuer Name, subject Name }."""
    return IssuerAndSubject(
        {
            "issuer": asn1_x509.Name.load(ca_cert.subject.public_bytes()),
            "subject": asn1_x509.Name.load(subject.public_bytes()),
        }
    ).dump()


def build_cert_poll(
    subject: x509.Name,
    signer_cert: x509.Certificate,
    signer_key,
    ca_cert: x509.Certificate,
    *,
    transaction_id: str,
    cipher: str = "aes256",
) -> bytes:
    """A GetCertInitial (CertPoll) pkiMessage for an earlier transaction, as DER."""
    return build_request(
        issuer_and_subject(ca_cert, subject),
        signer_cert,
        signer_key,
        ca_cert,
        transaction_id=transaction_id,
        message_type=CERT_POLL,
        cipher=cipher,
    ).der


# ------------------------------------------------------------------ reading the CertRep


def _attributes(signer_info) -> dict[str, core.Any]:
    return {a["type"].dotted: a["values"][0] for a in signer_info["signed_attrs"]}


def _signer_certificate(signed_data, signer_info, ca_cert: x509.Certificate) -> x509.Certificate:
    """The CertRep's signer: the CA itself, or a certificate in the CertRep the CA issued."""
    sid = signer_info["sid"].chosen
    for choice in signed_data["certificates"] or []:
        candidate = choice.chosen
        if (
            candidate.issuer == sid["issuer"]
            and candidate.serial_number == sid["serial_number"].native
        ):
            certificate = x509.load_der_x509_certificate(candidate.dump())
            if certificate == ca_cert:
                return certificate
            try:
                certificate.verify_directly_issued_by(ca_cert)
            except Exception as exc:  # InvalidSignature, ValueError, TypeError
                raise ScepClientError(f"the CertRep signer is not from our CA: {exc!r}") from None
            return certificate
    raise ScepClientError("the CertRep does not carry its signer's certificate")


def _verify(signed_data, signer_info, ca_cert: x509.Certificate) -> None:
    """The CertRep must be signed by our CA or its RA: digest of the content, then signature."""
    content = signed_data["encap_content_info"]["content"].native or b""
    digest_name = signer_info["digest_algorithm"]["algorithm"].native
    hash_algorithm = DIGESTS[digest_name]()
    hasher = hashes.Hash(hash_algorithm)
    hasher.update(content)
    digest = hasher.finalize()
    signed_attrs = signer_info["signed_attrs"]
    carried = next(a for a in signed_attrs if a["type"].native == "message_digest")
    if not hmac.compare_digest(carried["values"][0].native, digest):
        raise ScepClientError("the CertRep's messageDigest does not match its content")
    data = b"\x31" + signed_attrs.dump()[1:]
    signer = _signer_certificate(signed_data, signer_info, ca_cert)
    try:
        signer.public_key().verify(
            signer_info["signature"].native, data, asym_padding.PKCS1v15(), hash_algorithm
        )
    except Exception as exc:  # InvalidSignature, or a key that is not RSA
        raise ScepClientError(f"the CertRep's signature does not verify: {exc!r}") from None


def read_cert_rep(
    der: bytes, signer_cert: x509.Certificate, signer_key, ca_cert: x509.Certificate
) -> tuple[int, int | None, x509.Certificate | None, bytes, str]:
    """(pki_status, fail_info, certificate, recipient_nonce, transaction_id) of a CertRep."""
    info = cms.ContentInfo.load(der)
    if info["content_type"].native != "signed_data":
        raise ScepClientError("the CertRep is not a SignedData")
    signed_data = info["content"]
    signer_info = signed_data["signer_infos"][0]
    _verify(signed_data, signer_info, ca_cert)
    attributes = _attributes(signer_info)
    message_type = int(attributes[OID_MESSAGE_TYPE].parse(core.PrintableString).native)
    if message_type != CERT_REP:
        raise ScepClientError(f"messageType {message_type} is not CertRep")
    status = int(attributes[OID_PKI_STATUS].parse(core.PrintableString).native)
    fail_info = None
    if OID_FAIL_INFO in attributes:
        fail_info = int(attributes[OID_FAIL_INFO].parse(core.PrintableString).native)
    recipient_nonce = attributes[OID_RECIPIENT_NONCE].parse(core.OctetString).native
    transaction_id = attributes[OID_TRANSACTION_ID].parse(core.PrintableString).native
    certificate = None
    if status == SUCCESS:
        enveloped = signed_data["encap_content_info"]["content"].native
        # cryptography's own CMS decryption: an independent check of the server's envelope.
        degenerate = pkcs7.pkcs7_decrypt_der(enveloped, signer_cert, signer_key, [])
        certificate = pkcs7.load_der_pkcs7_certificates(degenerate)[0]
    return status, fail_info, certificate, recipient_nonce, transaction_id


def sender_nonce_of(der: bytes) -> bytes:
    """The senderNonce of a pkiMessage (to compare with the answer's recipientNonce)."""
    signer_info = cms.ContentInfo.load(der)["content"]["signer_infos"][0]
    return _attributes(signer_info)[OID_SENDER_NONCE].parse(core.OctetString).native


def transaction_id_of(der: bytes) -> str:
    signer_info = cms.ContentInfo.load(der)["content"]["signer_infos"][0]
    return _attributes(signer_info)[OID_TRANSACTION_ID].parse(core.PrintableString).native


# ------------------------------------------------------------------ a device's enrollment


def pkcs_req_for(scep: dict, key, recipient: x509.Certificate) -> tuple[bytes, x509.Certificate]:
    """(PKCSReq DER, signer certificate) for an enrollment profile's SCEP payload: the
    payload's Subject and Challenge, with the device's own `key`."""
    csr = make_scep_csr(key, subject_from_payload(scep.get("Subject") or []), scep.get("Challenge"))
    signer = signer_for(key, csr)
    return build_pkcs_req(csr, signer, key, recipient), signer


def issued_certificate(
    reply: bytes, signer: x509.Certificate, key, ca_cert: x509.Certificate
) -> x509.Certificate:
    """The certificate in a CertRep; ScepFailure when the CA refused or left it pending."""
    pki_status, fail_info, certificate, _nonce, _tid = read_cert_rep(reply, signer, key, ca_cert)
    if pki_status != SUCCESS or certificate is None:
        raise ScepFailure(f"CertRep pkiStatus {pki_status}, failInfo {fail_info}")
    return certificate


def over_httpx(http):
    """The `get` and `post` of enroll_with_payload, sent with the httpx client `http`."""

    def get(params):
        answer = http.get("/scep", params=params)
        return answer.status_code, answer.headers["content-type"], answer.content

    def post(params, body):
        answer = http.post("/scep", params=params, content=body)
        return answer.status_code, answer.headers["content-type"], answer.content

    return get, post


def enroll_with_payload(
    get, post, scep: dict, key=None
) -> tuple[x509.Certificate, rsa.RSAPrivateKey]:
    """What a device does with an enrollment profile's SCEP payload: GetCACert, then PKCSReq
    with its own key (`key`, else a new one) and the payload's challenge. `get(params)` and
    `post(params, body)` send to the payload's URL, over any transport, and return
    (status, content type, body). Raises ScepFailure."""
    status, content_type, body = get({"operation": "GetCACert", "message": scep["Name"]})
    if status != 200:
        raise ScepFailure(f"GetCACert: HTTP {status}: {body[:200]!r}")
    ca_cert, recipient = split_ca_certs(body, content_type)
    key = key or make_key(int(scep.get("Keysize") or 2048))
    request, signer = pkcs_req_for(scep, key, recipient)
    status, _type, reply = post({"operation": "PKIOperation"}, request)
    if status != 200:
        raise ScepFailure(f"PKIOperation: HTTP {status}: {reply[:200]!r}")
    return issued_certificate(reply, signer, key, ca_cert), key
