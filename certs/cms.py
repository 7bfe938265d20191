"""CMS (PKCS#7) that cryptography cannot do alone: verifying a detached signature.

asn1crypto parses the structure; cryptography does the hashing and the RSA/ECDSA maths.
"""

import hmac

from asn1crypto import cms as asn1_cms
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
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


class CMSError(ValueError):
    """The CMS structure is malformed or its signature does not verify."""


def _digest(algorithm: hashes.HashAlgorithm, data: bytes) -> bytes:
    hasher = hashes.Hash(algorithm)
    hasher.update(data)
    return hasher.finalize()


def _hash_for(name: str) -> hashes.HashAlgorithm:
    try:
        return HASHES[name]()
    except KeyError:
        raise CMSError(f"unsupported digest algorithm {name!r}") from None


def _signer_certificate(signed_data, signer_info) -> x509.Certificate:
    sid = signer_info["sid"]
    for choice in signed_data["certificates"] or []:
        if choice.name != "certificate":
            continue
        cert = choice.chosen
        if sid.name == "issuer_and_serial_number":
            wanted = sid.chosen
            if (
                cert.issuer == wanted["issuer"]
                and cert.serial_number == wanted["serial_number"].native
            ):
                return x509.load_der_x509_certificate(cert.dump())
        elif sid.name == "subject_key_identifier" and cert.key_identifier == sid.chosen.native:
            return x509.load_der_x509_certificate(cert.dump())
    raise CMSError("the signer's certificate is not in the signature")


def _signed_bytes(signer_info, content: bytes, digest_algo: hashes.HashAlgorithm) -> bytes:
    """The bytes the signature covers: the signed attributes if any, else the content itself."""
    signed_attrs = signer_info["signed_attrs"]
    if not signed_attrs:
        return content
    message_digest = None
    content_type = None
    for attr in signed_attrs:
        kind = attr["type"].native
        if kind == "message_digest":
            message_digest = attr["values"][0].native
        elif kind == "content_type":
            content_type = attr["values"][0].native
    if content_type != "data":
        raise CMSError("the signed content type is not 'data'")
    if message_digest is None:
        raise CMSError("the signed attributes carry no message digest")
    if not hmac.compare_digest(message_digest, _digest(digest_algo, content)):
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


def verify_detached(signature_der: bytes, content: bytes) -> x509.Certificate:
    """Verify a CMS detached signature over `content`; return the signer's certificate.

    Only the signature is checked here; whether the certificate is trusted is the caller's job.
    """
    try:
        info = asn1_cms.ContentInfo.load(signature_der)
        if info["content_type"].native != "signed_data":
            raise CMSError("not a CMS SignedData")
        signed_data = info["content"]
        signer_infos = signed_data["signer_infos"]
        if len(signer_infos) != 1:
            raise CMSError(f"expected one signer, found {len(signer_infos)}")
        encapsulated = signed_data["encap_content_info"]["content"].native
        if encapsulated not in (None, b"") and encapsulated != content:
            raise CMSError("the signature carries content other than the body")
        signer_info = signer_infos[0]
        digest_algo = _hash_for(signer_info["digest_algorithm"]["algorithm"].native)
        certificate = _signer_certificate(signed_data, signer_info)
        data = _signed_bytes(signer_info, content, digest_algo)
        _verify_signature(certificate, signer_info, data, digest_algo)
        return certificate
    except CMSError:
        raise
    except (ValueError, TypeError, KeyError) as exc:
        raise CMSError(f"malformed CMS signature: {exc}") from None


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
    try:
        info = asn1_cms.ContentInfo.load(der)
        if info["content_type"].native != "signed_data":
            raise CMSError("not a CMS SignedData")
        content = info["content"]["encap_content_info"]["content"].native
    except (ValueError, TypeError, KeyError) as exc:
        raise CMSError(f"malformed CMS: {exc}") from None
    if not content:
        raise CMSError("the signature carries no content")
    verify_detached(der, content)
    return content
