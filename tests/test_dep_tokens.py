"""ADE server tokens: the key pair and certificate for ABM, reading the .p7m ABM gives, storing
its credentials encrypted, refusals that change nothing, renewal, several servers side by side.

The tokens are made as ABM makes them (tests/dep_tokens_support.py), with real CMS and X.509.
"""

import base64
import datetime as dt
import json

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import pkcs7
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from django.db import connection
from django.utils import timezone

from certs.ca import load_stored_key
from certs.dep_keys import WRONG_CERTIFICATE, create_token_key, decrypt_server_token
from enrollment.dep_models import DepDevice, DepProfile, DepServer
from enrollment.dep_tokens import (
    DepTokenError,
    create_server,
    find_server,
    import_token,
    oauth_credentials,
    token_certificate_pem,
)
from enrollment.enrollments import EnrollmentSpec, create_enrollment
from mdm_portal.models import AuditEntry
from tests.dep_tokens_support import (
    envelope,
    make_server_token,
    message_entity,
    openssl_available,
    openssl_token,
    token_json,
)

pytestmark = pytest.mark.django_db

SECRETS = {"consumer_secret": "CS_secret-one", "access_secret": "AS_secret-two"}


@pytest.fixture
def server() -> DepServer:
    return create_server("Main ABM", actor="tests")


def token_for(server: DepServer, **fields) -> bytes:
    return make_server_token(token_certificate_pem(server), **{**SECRETS, **fields})


def raw_column(table: str, column: str, pk: int) -> bytes:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {column} FROM {table} WHERE id = %s", [pk])  # noqa: S608
        (value,) = cursor.fetchone()
    return bytes(value)


def state(server: DepServer) -> dict:
    """Everything an import may change, as stored."""
    fresh = DepServer.objects.get(pk=server.pk)
    fields = ("consumer_key", "consumer_secret", "access_token", "access_secret")
    return {
        **{name: getattr(fresh, name) for name in fields},
        "expiry": fresh.access_token_expiry,
        "imported_at": fresh.token_imported_at,
        "session": fresh.session_token,
    }


def imports_audited() -> int:
    return AuditEntry.objects.filter(action="dep.token_imported").count()


# --- the key pair and its certificate ----------------------------------------------------------


def test_a_server_gets_its_own_rsa_key_and_a_certificate_abm_can_encrypt_to(server):
    certificate = x509.load_pem_x509_certificate(token_certificate_pem(server).encode())
    key = load_stored_key(server.key.private_key_pem)
    assert isinstance(key, rsa.RSAPrivateKey) and key.key_size == 2048
    assert certificate.public_key().public_numbers() == key.public_key().public_numbers()
    certificate.verify_directly_issued_by(certificate)  # self-signed
    (common_name,) = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    assert common_name.value == "MDM portal ADE token Main ABM"
    usage = certificate.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.key_encipherment
    assert not certificate.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    lifetime = certificate.not_valid_after_utc - certificate.not_valid_before_utc
    assert dt.timedelta(days=3649) < lifetime < dt.timedelta(days=3651)
    assert server.key.sha256 == certificate.fingerprint(hashes.SHA256()).hex()
    assert server.key.not_after == certificate.not_valid_after_utc
    # The private key is encrypted at rest: the column holds no PEM.
    assert b"PRIVATE KEY" not in raw_column("certs_deptokenkey", "private_key_pem", server.key_id)
    entry = AuditEntry.objects.get(action="dep.server_created")
    assert entry.target == "Main ABM" and entry.details["certificate_sha256"] == server.key.sha256


def test_a_key_made_alone_is_numbered():
    first, second = create_token_key(), create_token_key()
    names = [
        x509.load_pem_x509_certificate(k.certificate_pem.encode())
        .subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0]
        .value
        for k in (first, second)
    ]
    assert names == ["MDM portal ADE token 1", "MDM portal ADE token 2"]
    assert first.sha256 != second.sha256


@pytest.mark.parametrize(
    ("name", "message"),
    [("", "needs a name"), ("   ", "needs a name"), ("x" * 151, "150 characters")],
)
def test_a_server_needs_a_fitting_name(name, message):
    with pytest.raises(DepTokenError, match=message):
        create_server(name, actor="tests")
    assert not DepServer.objects.exists()


def test_a_server_name_is_taken_once(server):
    with pytest.raises(DepTokenError, match="already exists"):
        create_server("Main ABM", actor="tests")
    assert DepServer.objects.count() == 1


# --- importing ---------------------------------------------------------------------------------


def test_import_stores_the_credentials_with_the_secrets_encrypted(server):
    DepServer.objects.filter(pk=server.pk).update(session_token=b"old session")
    expiry = dt.datetime(2031, 12, 1, 14, 0, tzinfo=dt.UTC)
    p7m = token_for(server, consumer_key="CK_abc", access_token="AT_def", expiry=expiry)
    assert p7m.startswith(b"MIME-Version: 1.0") and b"application/pkcs7-mime" in p7m

    imported = import_token(server, p7m, actor="tests")

    assert imported.pk == server.pk
    assert oauth_credentials(DepServer.objects.get(pk=server.pk)) == {
        "consumer_key": "CK_abc",
        "consumer_secret": "CS_secret-one",
        "access_token": "AT_def",
        "access_secret": "AS_secret-two",
    }
    stored = DepServer.objects.get(pk=server.pk)
    assert stored.access_token_expiry == expiry
    assert stored.token_imported_at is not None and stored.session_token is None
    for column, secret in (("consumer_secret", b"CS_secret-one"), ("access_secret", b"AS_")):
        raw = raw_column("enrollment_depserver", column, server.pk)
        assert raw and secret not in raw
    entry = AuditEntry.objects.get(action="dep.token_imported")
    assert entry.target == "Main ABM" and entry.details["renewal"] is False
    assert entry.details["access_token_expiry"] == expiry.isoformat()
    assert "secret" not in json.dumps(entry.details).lower()


def test_decrypting_gives_the_mime_entity_abm_wrote(server):
    content = message_entity(token_json(**SECRETS))
    p7m = envelope(token_certificate_pem(server), content)
    assert decrypt_server_token(server.key, p7m) == content


def test_a_token_enveloped_to_another_certificate_is_refused_clearly(server):
    other = create_server("Other ABM", actor="tests")
    before = state(server)
    with pytest.raises(DepTokenError) as refused:
        import_token(server, token_for(other), actor="tests")
    assert str(refused.value) == WRONG_CERTIFICATE
    assert "another certificate" in str(refused.value)
    # A certificate that is no server's either.
    stranger = create_token_key(label="stranger")
    with pytest.raises(DepTokenError, match="encrypted to another certificate"):
        import_token(server, make_server_token(stranger.certificate_pem), actor="tests")
    assert state(server) == before and imports_audited() == 0


def _signed_smime(server) -> bytes:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "signer")])
    now = timezone.now()
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), False)
        .sign(key, hashes.SHA256())
    )
    return (
        pkcs7.PKCS7SignatureBuilder()
        .set_data(message_entity(token_json()))
        .add_signer(certificate, key, hashes.SHA256())
        .sign(serialization.Encoding.SMIME, [])
    )


def _damaged(server) -> bytes:
    """A token whose ciphertext was altered: the recipient is ours, the content unreadable."""
    head, body = token_for(server).split(b"\n\n", 1)
    der = bytearray(base64.b64decode(body))
    der[-5] ^= 0xFF  # in the last cipher block: the padding no longer checks
    return head + b"\n\n" + base64.encodebytes(bytes(der))


def _content(server, text: str) -> bytes:
    return envelope(token_certificate_pem(server), text.encode())


MALFORMED = {
    "not S/MIME": (lambda s: b"\x00\x01 random bytes", "not a server token"),
    "a PEM certificate": (lambda s: token_certificate_pem(s).encode(), "not a server token"),
    "empty": (lambda s: b"", "not a server token"),
    "signed, not enveloped": (_signed_smime, "not a server token|not an encrypted server token"),
    "S/MIME around no CMS": (
        lambda s: (
            b"Content-Type: application/pkcs7-mime; smime-type=enveloped-data\n"
            b"Content-Transfer-Encoding: base64\n\naGVsbG8gd29ybGQ=\n"
        ),
        "damaged",
    ),
    "damaged ciphertext": (_damaged, "damaged"),
    "no MESSAGE block": (
        lambda s: _content(s, "Content-Type: text/plain\r\n\r\n" + json.dumps(token_json())),
        "no -----BEGIN MESSAGE----- block",
    ),
    "MESSAGE not JSON": (
        lambda s: envelope(token_certificate_pem(s), message_entity("consumer_key=CK_1")),
        "not JSON",
    ),
    "MESSAGE a JSON list": (
        lambda s: envelope(token_certificate_pem(s), message_entity("[1, 2]")),
        "not a JSON object",
    ),
    "missing access_secret": (
        lambda s: envelope(
            token_certificate_pem(s), message_entity(token_json(access_secret=None))
        ),
        "lacks access_secret",
    ),
    "consumer_key not a string": (
        lambda s: envelope(token_certificate_pem(s), message_entity(token_json(consumer_key=7))),
        "consumer_key is not a non-empty string",
    ),
    "empty access_token": (
        lambda s: envelope(token_certificate_pem(s), message_entity(token_json(access_token=""))),
        "access_token is not a non-empty string",
    ),
    "bad expiry": (
        lambda s: envelope(
            token_certificate_pem(s),
            message_entity({**token_json(), "access_token_expiry": "next December"}),
        ),
        "access_token_expiry 'next December' is not a date",
    ),
    "expiry not a string": (
        lambda s: envelope(
            token_certificate_pem(s),
            message_entity({**token_json(), "access_token_expiry": 1893456000}),
        ),
        "access_token_expiry is not a date",
    ),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_a_malformed_token_is_refused_clearly_and_changes_nothing(server, case):
    import_token(server, token_for(server), actor="tests")  # a working token stays in place
    before = state(server)
    make, message = MALFORMED[case]
    with pytest.raises(DepTokenError, match=message):
        import_token(server, make(server), actor="tests")
    assert state(server) == before and imports_audited() == 1


def test_an_expired_token_is_refused(server):
    expiry = timezone.now() - dt.timedelta(hours=1)
    with pytest.raises(DepTokenError, match=r"expired on .*download a new server token"):
        import_token(server, token_for(server, expiry=expiry), actor="tests")
    assert state(server)["imported_at"] is None and imports_audited() == 0


def test_an_older_token_than_the_imported_one_is_refused(server):
    newer = timezone.now() + dt.timedelta(days=300)
    import_token(server, token_for(server, expiry=newer, access_token="AT_new"), actor="tests")
    before = state(server)
    older = token_for(server, expiry=newer - dt.timedelta(days=30), access_token="AT_old")
    with pytest.raises(DepTokenError, match="older than the one imported"):
        import_token(server, older, actor="tests")
    assert state(server) == before and before["access_token"] == "AT_new"


def test_a_json_wrapped_over_lines_reads_the_same(server):
    text = json.dumps(token_json(**SECRETS), separators=(",", ":"))
    wrapped = "\r\n".join(text[i : i + 40] for i in range(0, len(text), 40))
    import_token(
        server, envelope(token_certificate_pem(server), message_entity(wrapped)), actor="t"
    )
    assert (
        oauth_credentials(DepServer.objects.get(pk=server.pk))["access_secret"] == "AS_secret-two"
    )


@pytest.mark.skipif(not openssl_available(), reason="needs the openssl command")
@pytest.mark.parametrize(
    ("cipher", "keyid"),
    [("aes-256-cbc", False), ("aes-128-cbc", False), ("aes-192-cbc", False), ("des3", False),
     ("aes-256-cbc", True)],
)  # fmt: skip
def test_tokens_from_a_streaming_smime_writer_are_read(server, cipher, keyid):
    """BER with indefinite lengths (OpenSSL -stream), the ciphers S/MIME writers use, and a
    recipient named by subject key identifier (OpenSSL -keyid)."""
    content = message_entity(token_json(**SECRETS, access_token=f"AT_{cipher}"))
    p7m = openssl_token(token_certificate_pem(server), content, cipher, keyid=keyid)
    body = base64.b64decode(p7m.split(b"\n\n", 1)[1])
    assert body[:2] == b"\x30\x80"  # indefinite length: BER, which cryptography alone refuses
    assert decrypt_server_token(server.key, p7m) == content
    import_token(server, p7m, actor="tests")
    assert oauth_credentials(DepServer.objects.get(pk=server.pk))["access_token"] == f"AT_{cipher}"


# --- renewal and several servers ---------------------------------------------------------------


def test_renewal_keeps_the_server_its_devices_profiles_and_cursor(server):
    import_token(server, token_for(server, access_token="AT_first"), actor="tests")
    enrollment = create_enrollment(EnrollmentSpec("ADE"), by="tests")
    profile = DepProfile.objects.create(server=server, name="Staff", enrollment=enrollment)
    DepDevice.objects.create(server=server, serial_number="C02ABC", assigned_profile=profile)
    DepServer.objects.filter(pk=server.pk).update(
        cursor="MTIzNDU2",
        server_uuid="UUID-1",
        session_token=b"session",
        auto_assign_profile=profile,
    )
    later = timezone.now() + dt.timedelta(days=400)
    renewed = import_token(
        server,
        token_for(server, access_token="AT_second", access_secret="AS_renewed", expiry=later),
        actor="tests",
    )
    stored = DepServer.objects.get(pk=server.pk)
    assert renewed.pk == server.pk and DepServer.objects.count() == 1
    assert stored.key_id == server.key_id  # the same key: no new upload in ABM
    assert (stored.cursor, stored.server_uuid) == ("MTIzNDU2", "UUID-1")
    assert stored.auto_assign_profile_id == profile.pk and stored.session_token is None
    assert DepDevice.objects.get().assigned_profile_id == profile.pk
    assert oauth_credentials(stored)["access_token"] == "AT_second"
    assert oauth_credentials(stored)["access_secret"] == "AS_renewed"
    assert stored.access_token_expiry == later.replace(microsecond=0)
    latest = AuditEntry.objects.filter(action="dep.token_imported").latest("pk")
    assert latest.details["renewal"] is True


def test_two_servers_side_by_side_each_with_its_own_key_and_token(server):
    other = create_server("Schools ASM", actor="tests")
    assert other.key_id != server.key_id
    assert token_certificate_pem(other) != token_certificate_pem(server)
    import_token(server, token_for(server, consumer_key="CK_main"), actor="tests")
    import_token(
        other, token_for(other, consumer_key="CK_schools", access_secret="AS_s"), actor="t"
    )
    main, schools = (DepServer.objects.get(pk=s.pk) for s in (server, other))
    assert oauth_credentials(main)["consumer_key"] == "CK_main"
    assert oauth_credentials(schools)["consumer_key"] == "CK_schools"
    assert oauth_credentials(schools)["access_secret"] == "AS_s"
    assert oauth_credentials(main)["access_secret"] == "AS_secret-two"
    assert find_server("Schools ASM").pk == other.pk
    with pytest.raises(DepTokenError, match="several DEP servers: name one"):
        find_server()
    with pytest.raises(DepTokenError, match="no DEP server named 'nope'"):
        find_server("nope")


def test_oauth_credentials_say_what_to_do_without_a_usable_token(server):
    with pytest.raises(DepTokenError, match="no server token imported.*import-token"):
        oauth_credentials(server)
    import_token(server, token_for(server), actor="tests")
    DepServer.objects.filter(pk=server.pk).update(
        access_token_expiry=timezone.now() - dt.timedelta(days=1)
    )
    with pytest.raises(DepTokenError, match="expired on"):
        oauth_credentials(DepServer.objects.get(pk=server.pk))
