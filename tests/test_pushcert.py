"""The APNs push certificate: import (PEM, PKCS#12), its refusals, and the vendor-CSR flow.

Every certificate here comes from a fake "Apple" CA made with cryptography; none is Apple's.
"""

import base64
import datetime as dt
import plistlib
import uuid
from dataclasses import dataclass
from io import StringIO

import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID
from django.core.management import CommandError, call_command
from django.db import connection

from certs import pushcert, pushcert_csr
from certs.models import PushCertificate, PushCertificateRequest
from devices.models import Device
from mdm_portal.models import AuditEntry

pytestmark = pytest.mark.django_db


def run(*args) -> str:
    out = StringIO()
    call_command("mdm_pushcert", *args, stdout=out, stderr=StringIO())
    return out.getvalue()


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def key_pem(key, password: bytes | None = None) -> bytes:
    encryption = (
        serialization.BestAvailableEncryption(password)
        if password
        else serialization.NoEncryption()
    )
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    )


def cert_pem(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(serialization.Encoding.PEM)


@dataclass
class FakeApple:
    """A stand-in for Apple's CA: a root and the intermediate that issues push certificates."""

    root: x509.Certificate
    intermediate: x509.Certificate
    intermediate_key: rsa.RSAPrivateKey

    def issue_push(
        self,
        public_key,
        *,
        topic: str | None = None,
        days: int = 365,
        start: dt.datetime | None = None,
        marker: str | None = "production",
    ) -> x509.Certificate:
        """A push certificate shaped like identity.apple.com's (UID topic, CN APSP:<uuid>)."""
        ident = str(uuid.uuid4())
        topic = topic or f"com.apple.mgmt.External.{ident}"
        start = start or now() - dt.timedelta(hours=1)
        builder = (
            x509.CertificateBuilder()
            .subject_name(
                x509.Name(
                    [
                        x509.NameAttribute(NameOID.USER_ID, topic),
                        x509.NameAttribute(NameOID.COMMON_NAME, f"APSP:{ident}"),
                        x509.NameAttribute(NameOID.COUNTRY_NAME, "US"),
                    ]
                )
            )
            .issuer_name(self.intermediate.subject)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(start + dt.timedelta(days=days))
        )
        if marker is not None:
            oid = {
                "production": pushcert.OID_APNS_PRODUCTION,
                "development": pushcert.OID_APNS_DEVELOPMENT,
            }[marker]
            builder = builder.add_extension(
                x509.UnrecognizedExtension(oid, b"\x05\x00"), critical=False
            )
        return builder.sign(self.intermediate_key, hashes.SHA256())

    def issue_for_csr(self, csr_pem: str, **kwargs) -> x509.Certificate:
        csr = x509.load_pem_x509_csr(csr_pem.encode())
        return self.issue_push(csr.public_key(), **kwargs)


def _ca(name: str, issuer_name=None, issuer_key=None, key=None):
    key = key or new_key()
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name or subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now() - dt.timedelta(days=1))
        .not_valid_after(now() + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(issuer_key or key, hashes.SHA256())
    )
    return certificate, key


@pytest.fixture(scope="module")
def apple() -> FakeApple:
    root, root_key = _ca("Fake Apple Root CA")
    intermediate, intermediate_key = _ca(
        "Fake Apple Application Integration 2 Certification Authority", root.subject, root_key
    )
    return FakeApple(root, intermediate, intermediate_key)


@pytest.fixture
def push(apple):
    """A push certificate and its key."""
    key = new_key()
    return apple.issue_push(key.public_key()), key


def write(tmp_path, name: str, data: bytes) -> str:
    path = tmp_path / name
    path.write_bytes(data)
    return str(path)


def import_pem(tmp_path, certificate, key, *extra) -> str:
    return run(
        "import",
        "--cert",
        write(tmp_path, f"{uuid.uuid4()}.pem", cert_pem(certificate)),
        "--key",
        write(tmp_path, f"{uuid.uuid4()}.key", key_pem(key)),
        *extra,
    )


def topic_of(certificate) -> str:
    return certificate.subject.get_attributes_for_oid(NameOID.USER_ID)[0].value


def enroll_devices(count: int, topic: str) -> None:
    for _ in range(count):
        Device.objects.create(udid=str(uuid.uuid4()).upper(), state="enrolled", topic=topic)


# -- import --------------------------------------------------------------------------------------


def test_import_pem_makes_it_the_active_certificate_with_its_key_encrypted(tmp_path, push):
    certificate, key = push
    out = import_pem(tmp_path, certificate, key)
    topic = topic_of(certificate)
    assert f"imported push certificate {topic} (production)" in out

    record = PushCertificate.objects.get(active=True)
    assert record.topic == topic
    assert record.development is False
    assert record.not_after == certificate.not_valid_after_utc
    assert record.sha256 == certificate.fingerprint(hashes.SHA256()).hex()
    assert f"UID={topic}" in record.subject and "CN=APSP:" in record.subject
    assert pushcert.active_topic() == topic
    assert pushcert.active_push_certificate() == record

    stored = serialization.load_pem_private_key(bytes(record.private_key_pem), None)
    assert pushcert.public_key_sha256(stored) == pushcert.public_key_sha256(key)
    with connection.cursor() as cursor:
        cursor.execute("SELECT private_key_pem FROM certs_pushcertificate")
        (raw,) = cursor.fetchone()
    assert b"PRIVATE KEY" not in bytes(raw)

    entry = AuditEntry.objects.get(action="pushcert.imported")
    assert entry.target == topic
    assert entry.details["renewal"] is False
    assert entry.details["source"] == "pem"


def test_import_pkcs12_with_password_and_wrong_password_refused(tmp_path, push):
    certificate, key = push
    p12 = pkcs12.serialize_key_and_certificates(
        b"push", key, certificate, None, serialization.BestAvailableEncryption(b"s3cret")
    )
    path = write(tmp_path, "push.p12", p12)
    with pytest.raises(CommandError, match="wrong password"):
        run("import", "--p12", path, "--password", "nope")
    with pytest.raises(CommandError, match="wrong password"):
        run("import", "--p12", path)
    assert not PushCertificate.objects.exists()

    run("import", "--p12", path, "--password", "s3cret")
    record = PushCertificate.objects.get(active=True)
    assert record.topic == topic_of(certificate)
    assert AuditEntry.objects.get(action="pushcert.imported").details["source"] == "pkcs12"


def test_certificate_and_key_in_one_pem_file(tmp_path, push):
    certificate, key = push
    run("import", "--cert", write(tmp_path, "both.pem", cert_pem(certificate) + key_pem(key)))
    assert pushcert.active_topic() == topic_of(certificate)


def test_encrypted_key_needs_its_password(tmp_path, push):
    certificate, key = push
    cert_path = write(tmp_path, "c.pem", cert_pem(certificate))
    key_path = write(tmp_path, "k.pem", key_pem(key, b"pw"))
    with pytest.raises(CommandError, match="encrypted"):
        run("import", "--cert", cert_path, "--key", key_path)
    run("import", "--cert", cert_path, "--key", key_path, "--password", "pw")
    assert PushCertificate.objects.filter(active=True).count() == 1


def test_key_of_another_certificate_is_refused(tmp_path, push):
    certificate, _ = push
    with pytest.raises(CommandError, match="does not belong to this certificate"):
        import_pem(tmp_path, certificate, new_key())
    assert not PushCertificate.objects.exists()


def test_expired_certificate_is_refused(tmp_path, apple):
    key = new_key()
    expired = apple.issue_push(key.public_key(), start=now() - dt.timedelta(days=400), days=365)
    with pytest.raises(CommandError, match="expired on"):
        import_pem(tmp_path, expired, key)
    assert not PushCertificate.objects.exists()


@pytest.mark.parametrize("topic", ["com.example.app", "com.apple.mgmtX.External.1"])
def test_topic_outside_com_apple_mgmt_is_refused(tmp_path, apple, topic):
    key = new_key()
    with pytest.raises(CommandError, match="does not start with 'com.apple.mgmt.'"):
        import_pem(tmp_path, apple.issue_push(key.public_key(), topic=topic), key)


def test_certificate_without_uid_is_refused(tmp_path, apple):
    key = new_key()
    vendor = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "MDM Vendor: Acme")]))
        .issuer_name(apple.intermediate.subject)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now() - dt.timedelta(days=1))
        .not_valid_after(now() + dt.timedelta(days=30))
        .sign(apple.intermediate_key, hashes.SHA256())
    )
    with pytest.raises(CommandError, match="no UID"):
        import_pem(tmp_path, vendor, key)


def test_certificate_without_key_or_matching_request_is_refused(tmp_path, push):
    certificate, _ = push
    with pytest.raises(CommandError, match="no private key"):
        run("import", "--cert", write(tmp_path, "c.pem", cert_pem(certificate)))


@pytest.mark.parametrize(
    ("marker", "development"),
    [("production", False), ("development", True), (None, False)],
)
def test_production_or_development(tmp_path, apple, marker, development):
    key = new_key()
    certificate = apple.issue_push(key.public_key(), marker=marker)
    import_pem(tmp_path, certificate, key)
    assert PushCertificate.objects.get(active=True).development is development
    kind = "development" if development else "production"
    assert f"kind:       {kind}" in run("show")


def test_show(tmp_path, push):
    with pytest.raises(CommandError, match="no push certificate yet"):
        run("show")
    certificate, key = push
    import_pem(tmp_path, certificate, key)
    out = run("show")
    assert f"topic:      {topic_of(certificate)}" in out
    assert "days left:  364" in out
    assert f"{certificate.not_valid_after_utc:%Y-%m-%d}" in out


# -- replacing the certificate -------------------------------------------------------------------


def test_other_topic_refused_while_devices_are_enrolled_unless_forced(tmp_path, apple, push):
    certificate, key = push
    import_pem(tmp_path, certificate, key)
    old_topic = topic_of(certificate)
    enroll_devices(3, old_topic)
    Device.objects.create(udid="PENDING-1", state="pending", topic=old_topic)  # not counted

    other_key = new_key()
    other = apple.issue_push(other_key.public_key())
    with pytest.raises(CommandError) as refused:
        import_pem(tmp_path, other, other_key)
    message = str(refused.value)
    assert "REFUSED" in message
    assert "3 enrolled device(s)" in message
    assert old_topic in message and topic_of(other) in message
    assert "--force" in message
    assert pushcert.active_topic() == old_topic
    assert PushCertificate.objects.count() == 1

    import_pem(tmp_path, other, other_key, "--force")
    assert pushcert.active_topic() == topic_of(other)
    assert PushCertificate.objects.filter(active=True).count() == 1
    entry = AuditEntry.objects.filter(action="pushcert.imported").first()
    assert entry.details["forced"] is True
    assert entry.details["orphaned_devices"] == 3
    assert entry.details["previous_topic"] == old_topic


def test_same_topic_is_a_renewal(tmp_path, apple, push):
    certificate, key = push
    import_pem(tmp_path, certificate, key)
    topic = topic_of(certificate)
    enroll_devices(2, topic)

    new = new_key()
    renewed = apple.issue_push(new.public_key(), topic=topic, days=400)
    out = import_pem(tmp_path, renewed, new)
    assert "renewal of" in out
    active = PushCertificate.objects.get(active=True)
    assert active.sha256 == renewed.fingerprint(hashes.SHA256()).hex()
    assert PushCertificate.objects.count() == 2
    assert AuditEntry.objects.filter(action="pushcert.imported").first().details["renewal"]


def test_other_topic_without_enrolled_devices_needs_no_force(tmp_path, apple, push):
    certificate, key = push
    import_pem(tmp_path, certificate, key)
    Device.objects.create(udid="GONE", state="checked_out", topic=topic_of(certificate))
    other_key = new_key()
    other = apple.issue_push(other_key.public_key())
    import_pem(tmp_path, other, other_key)
    assert pushcert.active_topic() == topic_of(other)
    assert PushCertificate.objects.filter(active=True).count() == 1


def test_check_in_takes_the_imported_topic(tmp_path, apple, make_device):
    key = new_key()
    certificate = apple.issue_push(key.public_key())
    import_pem(tmp_path, certificate, key)
    topic = topic_of(certificate)
    assert pushcert.active_topic() == topic

    stranger = make_device(topic="com.apple.mgmt.External.someone-else")
    response = stranger.authenticate()
    assert response.status == 400
    assert b"push certificate" in response.body
    assert make_device(topic=topic).authenticate().status == 200


# -- the vendor-CSR flow -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def vendor(apple):
    """The MDM vendor's 'MDM CSR' signing certificate, issued by the fake Apple."""
    key = new_key()
    certificate = (
        x509.CertificateBuilder()
        .subject_name(
            x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "MDM Vendor: Example Corp")])
        )
        .issuer_name(apple.intermediate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now() - dt.timedelta(days=1))
        .not_valid_after(now() + dt.timedelta(days=365))
        .sign(apple.intermediate_key, hashes.SHA256())
    )
    return certificate, key


def test_csr_keeps_the_key_encrypted_in_the_portal(tmp_path):
    out_path = tmp_path / "push.csr"
    out = run("csr", "--out", str(out_path), "--country", "us", "--email", "it@example.com")
    assert "CSR written" in out
    request = PushCertificateRequest.objects.get()
    assert out_path.read_text() == request.csr_pem
    csr = x509.load_pem_x509_csr(out_path.read_bytes())
    assert csr.is_signature_valid
    assert csr.public_key().key_size == 2048
    assert pushcert.public_key_sha256(csr.public_key()) == request.public_key_sha256
    assert csr.subject.get_attributes_for_oid(NameOID.COUNTRY_NAME)[0].value == "US"
    assert request.completed_at is None

    with connection.cursor() as cursor:
        cursor.execute("SELECT private_key_pem FROM certs_pushcertificaterequest")
        (raw,) = cursor.fetchone()
    assert b"PRIVATE KEY" not in bytes(raw)
    assert b"PRIVATE KEY" in bytes(request.private_key_pem)
    assert "PRIVATE KEY" not in out
    assert AuditEntry.objects.filter(action="pushcert.csr_created").exists()


def test_csr_to_stdout_is_the_pem():
    out = run("csr")
    assert out.startswith("-----BEGIN CERTIFICATE REQUEST-----")
    assert "PRIVATE KEY" not in out


@pytest.mark.parametrize(
    ("digest_args", "algorithm"),
    [
        ((), hashes.SHA256),
        (("--digest", "sha256"), hashes.SHA256),
        (("--digest", "sha1"), hashes.SHA1),
    ],
)
def test_sign_csr_makes_the_push_cert_web_request(tmp_path, apple, vendor, digest_args, algorithm):
    vendor_cert, vendor_key = vendor
    csr_path = tmp_path / "push.csr"
    run("csr", "--out", str(csr_path))
    out_path = tmp_path / "request.b64"
    run(
        "sign-csr",
        "--csr",
        str(csr_path),
        "--vendor-cert",
        write(tmp_path, "vendor.pem", cert_pem(vendor_cert)),
        "--vendor-key",
        write(tmp_path, "vendor.key", key_pem(vendor_key)),
        "--chain",
        write(tmp_path, "chain.pem", cert_pem(apple.intermediate) + cert_pem(apple.root)),
        "--out",
        str(out_path),
        *digest_args,
    )
    plist = plistlib.loads(base64.b64decode(out_path.read_bytes(), validate=True))
    assert set(plist) == {"PushCertRequestCSR", "PushCertCertificateChain", "PushCertSignature"}

    csr_der = base64.b64decode(plist["PushCertRequestCSR"])
    csr = x509.load_pem_x509_csr(csr_path.read_bytes())
    assert csr_der == csr.public_bytes(serialization.Encoding.DER)

    chain = x509.load_pem_x509_certificates(plist["PushCertCertificateChain"].encode())
    assert chain == [vendor_cert, apple.intermediate, apple.root]

    signature = base64.b64decode(plist["PushCertSignature"])
    vendor_cert.public_key().verify(signature, csr_der, padding.PKCS1v15(), algorithm())
    other = hashes.SHA1() if algorithm is hashes.SHA256 else hashes.SHA256()
    with pytest.raises(InvalidSignature):
        vendor_cert.public_key().verify(signature, csr_der, padding.PKCS1v15(), other)
    assert pushcert_csr.verify_push_request(out_path.read_bytes())["digest"] == algorithm.name


def test_sign_csr_refuses_a_vendor_key_of_another_certificate(tmp_path, vendor):
    vendor_cert, _ = vendor
    csr_path = tmp_path / "push.csr"
    run("csr", "--out", str(csr_path))
    with pytest.raises(CommandError, match="vendor key does not belong"):
        run(
            "sign-csr",
            "--csr",
            str(csr_path),
            "--vendor-cert",
            write(tmp_path, "vendor.pem", cert_pem(vendor_cert)),
            "--vendor-key",
            write(tmp_path, "other.key", key_pem(new_key())),
        )


def test_sign_csr_accepts_apples_der_vendor_certificate(tmp_path, vendor):
    vendor_cert, vendor_key = vendor
    request = pushcert_csr.create_push_csr()
    content = pushcert_csr.sign_push_csr(
        request.csr_pem,
        vendor_cert.public_bytes(serialization.Encoding.DER),  # mdm.cer as downloaded
        key_pem(vendor_key, b"vendor-pw"),
        vendor_key_password="vendor-pw",
    )
    assert pushcert_csr.verify_push_request(content)["digest"] == "sha256"


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(CommandError, match="cannot read the certificate"):
        run("import", "--cert", str(tmp_path / "missing.pem"))


def test_apple_certificate_for_the_csr_pairs_with_the_kept_key(tmp_path, apple):
    csr_path = tmp_path / "push.csr"
    run("csr", "--out", str(csr_path))
    request = PushCertificateRequest.objects.get()
    issued = apple.issue_for_csr(csr_path.read_text())

    out = run("import", "--cert", write(tmp_path, "MDM_Example_Certificate.pem", cert_pem(issued)))
    assert "paired with the key of the portal's own CSR" in out
    record = PushCertificate.objects.get(active=True)
    assert record.topic == topic_of(issued)
    assert bytes(record.private_key_pem) == bytes(request.private_key_pem)
    request.refresh_from_db()
    assert request.completed_at is not None
    audit = AuditEntry.objects.get(action="pushcert.imported")
    assert audit.details["request"] == request.public_key_sha256
