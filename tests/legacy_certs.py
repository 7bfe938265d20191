"""Certificates the way Apple's device CA makes them, for the tests: RSA-1024 keys, SHA-1
signatures and dates long past. cryptography's CertificateBuilder no longer signs with SHA-1,
so the TBSCertificate is put together with asn1crypto and signed with the key directly."""

import datetime as dt
import secrets

from asn1crypto import keys as asn1_keys
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa


def rsa_1024() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=1024)


def name(common_name: str) -> asn1_x509.Name:
    return asn1_x509.Name.build(
        {
            "country_name": "US",
            "organization_name": "Apple Inc.",
            "organizational_unit_name": "Apple iPhone",
            "common_name": common_name,
        }
    )


def _time(moment: dt.datetime) -> asn1_x509.Time:
    return asn1_x509.Time({"utc_time": moment})


def sha1_certificate(
    *,
    subject: asn1_x509.Name,
    key: rsa.RSAPrivateKey,
    issuer: asn1_x509.Name,
    issuer_key: rsa.RSAPrivateKey,
    ca: bool,
    not_before: dt.datetime,
    not_after: dt.datetime,
) -> x509.Certificate:
    """A v3 certificate signed sha1WithRSAEncryption by `issuer_key`."""
    public = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    usage = {"key_cert_sign", "crl_sign", "digital_signature"} if ca else {"digital_signature"}
    tbs = asn1_x509.TbsCertificate(
        {
            "version": "v3",
            "serial_number": secrets.randbits(63),
            "signature": {"algorithm": "sha1_rsa"},
            "issuer": issuer,
            "validity": {"not_before": _time(not_before), "not_after": _time(not_after)},
            "subject": subject,
            "subject_public_key_info": asn1_keys.PublicKeyInfo.load(public),
            "extensions": [
                {"extn_id": "basic_constraints", "critical": True, "extn_value": {"ca": ca}},
                {"extn_id": "key_usage", "critical": True, "extn_value": usage},
            ],
        }
    )
    signature = issuer_key.sign(tbs.dump(), padding.PKCS1v15(), hashes.SHA1())  # noqa: S303
    certificate = asn1_x509.Certificate(
        {
            "tbs_certificate": tbs,
            "signature_algorithm": {"algorithm": "sha1_rsa"},
            "signature_value": signature,
        }
    )
    return x509.load_der_x509_certificate(certificate.dump())


def apple_like_chain():
    """(device CA, its key, device certificate, device key): an "iPhone Device CA" valid
    2007-2014 and a device identity it issued, valid 2013-2014, all SHA-1 and RSA-1024."""
    utc = dt.UTC
    ca_key, device_key = rsa_1024(), rsa_1024()
    ca_name = name("Test iPhone Device CA")
    authority = sha1_certificate(
        subject=ca_name,
        key=ca_key,
        issuer=ca_name,
        issuer_key=ca_key,
        ca=True,
        not_before=dt.datetime(2007, 4, 16, tzinfo=utc),
        not_after=dt.datetime(2014, 4, 16, tzinfo=utc),
    )
    device = sha1_certificate(
        subject=asn1_x509.Name.build({"common_name": "9E01AD5B-75A0-457C-A236-EE503C7225CE"}),
        key=device_key,
        issuer=ca_name,
        issuer_key=ca_key,
        ca=False,
        not_before=dt.datetime(2013, 1, 1, tzinfo=utc),
        not_after=dt.datetime(2014, 1, 1, tzinfo=utc),
    )
    return authority, ca_key, device, device_key
