"""CMS (PKCS#7): signing and encrypting (cryptography's builders), and reading a SignedData.

cryptography cannot verify a SignedData it did not make the way we need (a detached
Mdm-Signature, a SCEP pkiMessage whose signed attributes carry the protocol's fields), so the
one reader of a one-signer SignedData is here: `read_signed_data` parses it, `signer_of` finds
the signer's certificate in it, `verify_signer` checks the messageDigest and the signature.
verify_detached (Mdm-Signature), signed_content (signed profiles), verify_signed_data (a
device's statement, such as its MachineInfo, whose signer must lead to trusted roots) and the
SCEP codec all go through it. asn1crypto parses the structure (DER, or the BER with indefinite
lengths devices write); cryptography does the hashing and the RSA/ECDSA maths.
"""

import hmac
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

from asn1crypto import cms as asn1_cms
from asn1crypto import core
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, padding, rsa
from cryptography.hazmat.primitives.ciphers import algorithms
from cryptography.hazmat.primitives.serialization import pkcs7

# SHA-1 stays accepted because older devices sign Mdm-Signature with it; MD5 never is.
HASHES = {
    "sha1": hashes.SHA1,
    "sha224": hashes.SHA224,
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
}

OID_CONTENT_TYPE = "1.2.840.113549.1.9.3"
OID_MESSAGE_DIGEST = "1.2.840.113549.1.9.4"
_DIGEST_ATTRIBUTES = frozenset({OID_CONTENT_TYPE, OID_MESSAGE_DIGEST})


class CMSError(ValueError):
    """The CMS structure is malformed or its signature does not verify."""


class BadSignature(CMSError):
    """A well-formed SignedData whose signature does not verify over its content."""


class UntrustedSigner(CMSError):
    """The signature verifies, but the signer's certificate does not lead to a trusted root."""


def _digest(algorithm: hashes.HashAlgorithm, data: bytes) -> bytes:
    hasher = hashes.Hash(algorithm)
    hasher.update(data)
    return hasher.finalize()


def _hash_for(name: str) -> hashes.HashAlgorithm:
    try:
        return HASHES[name]()
    except KeyError:
        raise CMSError(f"unsupported digest algorithm {name!r}") from None


@dataclass(frozen=True)
class SignedDataParts:
    """A CMS SignedData with exactly one signer, parsed; nothing in it is verified yet."""

    signed_data: asn1_cms.SignedData
    signer_info: asn1_cms.SignerInfo
    content: bytes | None  # the encapsulated content; None or b"" when detached
    digest_algorithm: str  # asn1crypto's name, e.g. "sha256"

    def signed_attributes(self, wanted: frozenset[str] | None = None) -> dict[str, core.Asn1Value]:
        """The signed attributes by dotted OID, each with its first value (only the `wanted`
        ones: a device request needs two, and reading each costs)."""
        values = {}
        for attribute in self.signer_info["signed_attrs"]:
            oid = _dotted(attribute["type"])
            if wanted is None or oid in wanted:
                values[oid] = attribute["values"][0]
        return values


# OIDs by their DER contents: asn1crypto decodes `.dotted` at every access.
_DOTTED: dict[bytes, str] = {}


def _dotted(oid: core.ObjectIdentifier) -> str:
    contents = oid.contents
    dotted = _DOTTED.get(contents)
    if dotted is None:
        dotted = oid.dotted
        if len(_DOTTED) < 1024:  # signers choose their OIDs: keep the table bounded
            _DOTTED[contents] = dotted
    return dotted


def read_signed_data(der: bytes, *, strict: bool = False) -> SignedDataParts:
    """Parse a one-signer CMS SignedData (ContentInfo); `strict` refuses trailing bytes."""
    try:
        info = asn1_cms.ContentInfo.load(der, strict=strict)
        if info["content_type"].native != "signed_data":
            raise CMSError("not a CMS SignedData")
        signed_data = info["content"]
        signer_infos = signed_data["signer_infos"]
        if len(signer_infos) != 1:
            raise CMSError(f"expected one signer, found {len(signer_infos)}")
        signer_info = signer_infos[0]
        return SignedDataParts(
            signed_data=signed_data,
            signer_info=signer_info,
            content=signed_data["encap_content_info"]["content"].native,
            digest_algorithm=signer_info["digest_algorithm"]["algorithm"].native,
        )
    except CMSError:
        raise
    except (ValueError, TypeError, KeyError) as exc:
        raise CMSError(f"malformed CMS signature: {exc}") from None


def identifies(identifier, certificate: asn1_x509.Certificate) -> bool:
    """Whether a SignerIdentifier or RecipientIdentifier names `certificate`."""
    if identifier.name == "issuer_and_serial_number":
        wanted = identifier.chosen
        if certificate.serial_number != wanted["serial_number"].native:
            return False
        issuer = certificate["tbs_certificate"]["issuer"]
        # The same bytes are the same name; only otherwise compare the way X.500 does
        # (asn1crypto's normalised comparison, many times slower: every device request
        # signed with Mdm-Signature comes through here).
        return issuer.dump() == wanted["issuer"].dump() or issuer == wanted["issuer"]
    return (
        identifier.name == "subject_key_identifier"
        and certificate.key_identifier == identifier.chosen.native
    )


# Certificates by their DER: a device sends the same one with every request.
_PARSED: OrderedDict[bytes, x509.Certificate] = OrderedDict()
PARSED_MAX = 4096


def _parsed(der: bytes) -> x509.Certificate:
    certificate = _PARSED.get(der)
    if certificate is None:
        certificate = x509.load_der_x509_certificate(der)
        _PARSED[der] = certificate
        if len(_PARSED) > PARSED_MAX:
            _PARSED.popitem(last=False)
    return certificate


def _signer_named(sid, certificate: x509.Certificate, parsed: asn1_x509.Certificate) -> bool:
    """identifies(), on the cryptography object first (the same answer, without asn1crypto
    decoding the certificate): serial and issuer bytes, or the subject key identifier."""
    if sid.name == "issuer_and_serial_number":
        wanted = sid.chosen
        if certificate.serial_number != wanted["serial_number"].native:
            return False
        return certificate.issuer.public_bytes() == wanted["issuer"].dump() or identifies(
            sid, parsed
        )
    return identifies(sid, parsed)


def signer_of(parts: SignedDataParts) -> x509.Certificate:
    """The certificate the signer info names, from the SignedData's certificates (not trusted)."""
    sid = parts.signer_info["sid"]
    for choice in parts.signed_data["certificates"] or []:
        if choice.name != "certificate":
            continue
        certificate = _parsed(choice.chosen.dump())
        if _signer_named(sid, certificate, choice.chosen):
            return certificate
    raise CMSError("the signer's certificate is not in the signature")


def _signed_bytes(
    parts: SignedDataParts, content: bytes, digest_algo: hashes.HashAlgorithm
) -> bytes:
    """The bytes the signature covers: the signed attributes if any, else the content itself."""
    signed_attrs = parts.signer_info["signed_attrs"]
    if not signed_attrs:
        return content
    attributes = parts.signed_attributes(_DIGEST_ATTRIBUTES)
    message_digest = attributes.get(OID_MESSAGE_DIGEST)
    content_type = attributes.get(OID_CONTENT_TYPE)
    if content_type is None or content_type.native != "data":
        raise CMSError("the signed content type is not 'data'")
    if message_digest is None:
        raise CMSError("the signed attributes carry no message digest")
    if not hmac.compare_digest(message_digest.native, _digest(digest_algo, content)):
        raise CMSError("the message digest does not match the body")
    # The signature covers the attributes DER-encoded as a SET OF, not with the [0] tag.
    return b"\x31" + signed_attrs.dump()[1:]


def _verify_signature(
    certificate: x509.Certificate,
    signer_info,
    data: bytes,
    digest_algo: hashes.HashAlgorithm,
) -> None:
    public_key = certificate.public_key()
    signature = signer_info["signature"].native
    algo = signer_info["signature_algorithm"].signature_algo
    try:
        if isinstance(public_key, rsa.RSAPublicKey):
            if algo == "rsassa_pss":
                params = signer_info["signature_algorithm"]["parameters"]
                pss_hash = _hash_for(params["hash_algorithm"]["algorithm"].native)
                pad = padding.PSS(
                    mgf=padding.MGF1(pss_hash), salt_length=params["salt_length"].native
                )
                public_key.verify(signature, data, pad, pss_hash)
            elif algo == "rsassa_pkcs1v15":
                public_key.verify(signature, data, padding.PKCS1v15(), digest_algo)
            else:
                raise CMSError(f"signature algorithm {algo!r} does not fit an RSA key")
        elif isinstance(public_key, ec.EllipticCurvePublicKey):
            if algo != "ecdsa":
                raise CMSError(f"signature algorithm {algo!r} does not fit an EC key")
            public_key.verify(signature, data, ec.ECDSA(digest_algo))
        else:
            raise CMSError("unsupported signer key type")
    except InvalidSignature:
        raise CMSError("the signature does not verify over the body") from None


def verify_signer(parts: SignedDataParts, content: bytes) -> x509.Certificate:
    """Check the signature of `parts` over `content`; return the signer's certificate.

    With signed attributes, their messageDigest must be that of `content` and the signature
    covers them; without, the signature covers `content`. Whether the certificate is trusted
    is the caller's job.
    """
    try:
        digest_algo = _hash_for(parts.digest_algorithm)
        certificate = signer_of(parts)
        data = _signed_bytes(parts, content, digest_algo)
        _verify_signature(certificate, parts.signer_info, data, digest_algo)
        return certificate
    except CMSError:
        raise
    except (ValueError, TypeError, KeyError) as exc:
        raise CMSError(f"malformed CMS signature: {exc}") from None


def verify_detached(signature_der: bytes, content: bytes) -> x509.Certificate:
    """Verify a CMS detached signature over `content`; return the signer's certificate.

    Only the signature is checked here; whether the certificate is trusted is the caller's job.
    """
    parts = read_signed_data(signature_der)
    if parts.content not in (None, b"") and parts.content != content:
        raise CMSError("the signature carries content other than the body")
    return verify_signer(parts, content)


def sign(content: bytes, certificate: x509.Certificate, key, chain=()) -> bytes:
    """A DER CMS SignedData holding `content` (as a signed .mobileconfig is)."""
    builder = pkcs7.PKCS7SignatureBuilder().set_data(content)
    builder = builder.add_signer(certificate, key, hashes.SHA256())
    for extra in chain:
        builder = builder.add_certificate(extra)
    # Binary: the exact bytes, no S/MIME line-ending canonicalisation.
    return builder.sign(serialization.Encoding.DER, [pkcs7.PKCS7Options.Binary])


def encrypt_for(content: bytes, recipient: x509.Certificate) -> bytes:
    """A DER CMS EnvelopedData of `content` that only `recipient`'s private key opens."""
    return (
        pkcs7.PKCS7EnvelopeBuilder()
        .set_data(content)
        .set_content_encryption_algorithm(algorithms.AES256)
        .add_recipient(recipient)
        .encrypt(serialization.Encoding.DER, [pkcs7.PKCS7Options.Binary])
    )


def signed_content(der: bytes) -> bytes:
    """The content of a CMS SignedData whose signature verifies (the signer is not judged)."""
    parts = read_signed_data(der)
    content = parts.content
    if not content:
        raise CMSError("the signature carries no content")
    verify_signer(parts, content)
    return content


# Certificates a chain may have between the signer's and a root (Apple's device identities
# have none: the Apple iPhone Device CA issues them directly).
MAX_INTERMEDIATES = 4


def _is_ca(certificate: x509.Certificate) -> bool:
    try:
        return certificate.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        return False


def issued_by(certificate: x509.Certificate, issuer: x509.Certificate) -> bool:
    """Whether `issuer` issued `certificate`: its subject is the certificate's issuer and its
    key made the certificate's signature.

    The signature is checked with the issuer's public key directly, not with cryptography's
    `verify_directly_issued_by`, which refuses SHA-1: Apple still signs device identities with
    SHA-1 and RSA-1024 (the Apple iPhone Device CA), and they must verify.
    """
    if certificate.issuer != issuer.subject:
        return False
    key = issuer.public_key()
    data, signature = certificate.tbs_certificate_bytes, certificate.signature
    try:
        if isinstance(key, rsa.RSAPublicKey):
            key.verify(
                signature,
                data,
                certificate.signature_algorithm_parameters,
                certificate.signature_hash_algorithm,
            )
        elif isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(signature, data, certificate.signature_algorithm_parameters)
        elif isinstance(key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
            key.verify(signature, data)
        else:
            return False
    except (InvalidSignature, UnsupportedAlgorithm, ValueError, TypeError):
        return False
    return True


def _path_to_root(
    signer: x509.Certificate, carried: list[x509.Certificate], roots: Sequence[x509.Certificate]
) -> None:
    """UntrustedSigner unless `signer` leads to one of `roots`, directly or through CA
    certificates the SignedData carries. A root is a trust anchor: its key is what is trusted
    (a carried copy of it, or a certificate of the same name under another key, is not)."""
    current, left = signer, [c for c in carried if c != signer]
    for _ in range(MAX_INTERMEDIATES + 1):
        if any(issued_by(current, root) for root in roots):
            return
        issuer = next((c for c in left if _is_ca(c) and issued_by(current, c)), None)
        if issuer is None:
            break
        left.remove(issuer)
        current = issuer
    raise UntrustedSigner(
        f"the signer's certificate ({signer.subject.rfc4514_string()[:200]}, issued by "
        f"{signer.issuer.rfc4514_string()[:200]}) does not lead to a trusted root"
    )


def carried_certificates(parts: SignedDataParts) -> list[x509.Certificate]:
    """The certificates the SignedData carries (none of them trusted by that)."""
    return [
        _parsed(choice.chosen.dump())
        for choice in parts.signed_data["certificates"] or []
        if choice.name == "certificate"
    ]


def verify_signed_data(
    der: bytes, roots: Sequence[x509.Certificate]
) -> tuple[bytes, x509.Certificate]:
    """(content, signer's certificate) of a one-signer SignedData that carries its content,
    whose signature verifies and whose signer leads to one of `roots`.

    What a device signs with the identity its maker gave it (an Apple device's MachineInfo) is
    checked this way. The signer must be an end entity (not a CA) whose key usage, when it
    has one, allows signatures. Validity dates are not checked, on any certificate of the
    path: Apple's device identities chain to the Apple iPhone Device CA, expired since 2014,
    and Apple's profile-service guide says that when certificates signed by it are evaluated
    "their validity dates should be ignored". CMSError when the body is not such a SignedData,
    BadSignature when its signature does not verify (content changed, another key),
    UntrustedSigner when the signer does not lead to a root.
    """
    parts = read_signed_data(der, strict=True)
    content = parts.content
    if not isinstance(content, bytes) or not content:
        raise CMSError("the signature carries no content (a detached signature)")
    try:
        signer = verify_signer(parts, content)
    except CMSError as exc:
        raise BadSignature(str(exc)) from None
    if _is_ca(signer):
        raise UntrustedSigner("the signer's certificate is a CA certificate, not a device's")
    try:
        usage = signer.extensions.get_extension_for_class(x509.KeyUsage).value
        if not usage.digital_signature:
            raise UntrustedSigner("the signer's certificate does not allow signatures")
    except x509.ExtensionNotFound:
        pass
    _path_to_root(signer, carried_certificates(parts), roots)
    return content, signer
