"""Enrollment profiles, the OTA enrollment page and `mdm_enrollment`."""

import datetime as dt
import plistlib
import subprocess
from io import StringIO

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID
from django.core.management import CommandError, call_command
from django.utils import timezone

from certs.ca import active_ca, ca_certificate
from certs.challenges import consume_challenge
from certs.models import IssuedCertificate, PushCertificate
from devices.identities import bound_device_id
from devices.models import DeviceGroup
from enrollment.links import enrollment_of
from enrollment.mobileconfig import (
    EnrollmentUnavailable,
    build_enrollment_profile,
    enrollment_profile_bytes,
)
from enrollment.models import Enrollment
from enrollment.profiles import load_profile
from mdm_portal.models import AuditEntry

pytestmark = pytest.mark.django_db

TOPIC = "com.apple.mgmt.External.x"
PUBLIC_URL = "https://mdm.example.org"


@pytest.fixture(autouse=True)
def public_url(settings):
    settings.MDM_PUBLIC_URL = PUBLIC_URL
    settings.MDM_ORGANIZATION = "Example Org"
    settings.MDM_TLS_CERT_FILE = ""


@pytest.fixture
def push(db):
    return PushCertificate.objects.create(
        topic=TOPIC,
        certificate_pem="-",
        private_key_pem=b"k",
        not_after=timezone.now() + dt.timedelta(days=300),
    )


@pytest.fixture
def enrollment(ca, push):
    return Enrollment.objects.create(name="Staff iPhones", access_rights=8191)


def openssl_content(signed: bytes, tmp_path) -> bytes:
    path = tmp_path / "enroll.mobileconfig"
    path.write_bytes(signed)
    out = subprocess.run(
        ["openssl", "smime", "-verify", "-inform", "DER", "-noverify", "-in", str(path)],
        capture_output=True,
        check=True,
    )
    return out.stdout


def payloads_by_type(profile: dict) -> dict[str, list[dict]]:
    found: dict[str, list[dict]] = {}
    for payload in profile["PayloadContent"]:
        found.setdefault(payload["PayloadType"], []).append(payload)
    return found


def download(client, enrollment):
    return client.get(f"/enroll/{enrollment.token}/profile")


# --- the profile ---------------------------------------------------------------------------


def test_signed_profile_verifies_with_openssl_and_holds_only_the_basics(enrollment, tmp_path):
    signed = enrollment_profile_bytes(enrollment)
    profile = plistlib.loads(openssl_content(signed, tmp_path))
    assert load_profile(signed) == profile
    assert profile["PayloadType"] == "Configuration"
    assert profile["PayloadVersion"] == 1
    assert profile["PayloadOrganization"] == "Example Org"
    for key in ("PayloadIdentifier", "PayloadUUID", "PayloadDisplayName", "PayloadDescription"):
        assert profile[key]
    # Trust, identity, MDM: nothing else, certificate payloads before the MDM payload.
    types = [p["PayloadType"] for p in profile["PayloadContent"]]
    assert types == ["com.apple.security.root", "com.apple.security.scep", "com.apple.mdm"]
    root = profile["PayloadContent"][0]["PayloadContent"]
    assert x509.load_der_x509_certificate(root) == ca_certificate(active_ca())
    uuids = [p["PayloadUUID"] for p in profile["PayloadContent"]] + [profile["PayloadUUID"]]
    assert len(set(uuids)) == len(uuids)
    for payload in profile["PayloadContent"]:
        assert payload["PayloadVersion"] == 1
        assert payload["PayloadIdentifier"].startswith(profile["PayloadIdentifier"] + ".")


def test_mdm_payload(enrollment):
    enrollment.sign_message = True
    enrollment.check_out_when_removed = False
    enrollment.access_rights = 1 | 2 | 16
    enrollment.save()
    profile = build_enrollment_profile(enrollment)
    found = payloads_by_type(profile)
    (mdm,) = found["com.apple.mdm"]
    (scep,) = found["com.apple.security.scep"]
    assert mdm["IdentityCertificateUUID"] == scep["PayloadUUID"]
    assert mdm["Topic"] == TOPIC
    assert mdm["ServerURL"] == PUBLIC_URL + "/mdm/connect"
    assert mdm["CheckInURL"] == PUBLIC_URL + "/mdm/checkin"
    assert mdm["AccessRights"] == 19
    assert mdm["SignMessage"] is True
    assert mdm["CheckOutWhenRemoved"] is False
    assert mdm["ServerCapabilities"] == ["com.apple.mdm.bootstraptoken"]
    assert "UseDevelopmentAPNS" not in mdm


def test_development_push_certificate_uses_development_apns(enrollment, push):
    push.development = True
    push.save()
    (mdm,) = payloads_by_type(build_enrollment_profile(enrollment))["com.apple.mdm"]
    assert mdm["UseDevelopmentAPNS"] is True


def test_scep_payload_carries_a_fresh_one_time_challenge(enrollment):
    (scep,) = payloads_by_type(build_enrollment_profile(enrollment))["com.apple.security.scep"]
    content = scep["PayloadContent"]
    assert content["URL"] == PUBLIC_URL + "/scep"
    assert content["Name"] == "MDM Portal"
    assert content["Keysize"] == 2048
    assert content["Key Type"] == "RSA"
    assert content["Key Usage"] == 5
    (cn,), (org,) = content["Subject"]
    assert cn[0] == "CN" and cn[1].startswith("MDM Identity ")
    assert org == ["O", "Example Org"]
    accepted, record = consume_challenge(content["Challenge"])
    assert accepted and record.enrollment_link.enrollment == enrollment
    assert consume_challenge(content["Challenge"])[0] is False


def test_two_downloads_get_different_challenges_and_count_two_uses(client, enrollment):
    challenges = []
    for _ in range(2):
        response = download(client, enrollment)
        assert response.status_code == 200
        profile = load_profile(response.content)
        (scep,) = payloads_by_type(profile)["com.apple.security.scep"]
        challenges.append(scep["PayloadContent"]["Challenge"])
    assert challenges[0] != challenges[1]
    enrollment.refresh_from_db()
    assert enrollment.uses == 2
    for challenge in challenges:
        assert consume_challenge(challenge)[0]


def test_each_profile_is_audited_without_secrets(enrollment):
    profile = build_enrollment_profile(enrollment, client="192.0.2.7")
    (scep,) = payloads_by_type(profile)["com.apple.security.scep"]
    entry = AuditEntry.objects.get(action="enrollment.profile_issued")
    assert entry.target == enrollment.name
    assert entry.details["enrollment"] == enrollment.pk
    assert entry.details["profile_uuid"] == profile["PayloadUUID"]
    assert entry.details["client"] == "192.0.2.7"
    assert scep["PayloadContent"]["Challenge"] not in str(entry.details)


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _certificate(subject, issuer, issuer_key, key, *, ca: bool) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .sign(issuer_key, hashes.SHA256())
    )


def test_tls_chain_payloads_when_the_setting_points_to_a_pem_file(enrollment, settings, tmp_path):
    root_key, mid_key, leaf_key = (
        rsa.generate_private_key(public_exponent=65537, key_size=2048) for _ in range(3)
    )
    root = _certificate("TLS Root", "TLS Root", root_key, root_key, ca=True)
    mid = _certificate("TLS Intermediate", "TLS Root", root_key, mid_key, ca=True)
    leaf = _certificate("mdm.example.org", "TLS Intermediate", mid_key, leaf_key, ca=False)
    chain = tmp_path / "chain.pem"
    chain.write_bytes(
        b"".join(c.public_bytes(serialization.Encoding.PEM) for c in (leaf, mid, root))
    )
    settings.MDM_TLS_CERT_FILE = str(chain)
    profile = build_enrollment_profile(enrollment)
    types = [p["PayloadType"] for p in profile["PayloadContent"]]
    assert types == [
        "com.apple.security.root",  # our CA
        "com.apple.security.root",  # the TLS root
        "com.apple.security.pkcs1",  # the TLS intermediate
        "com.apple.security.scep",
        "com.apple.mdm",
    ]
    certs = [
        x509.load_der_x509_certificate(p["PayloadContent"]) for p in profile["PayloadContent"][:3]
    ]
    assert certs == [ca_certificate(active_ca()), root, mid]  # the leaf is the server's to show


def test_a_self_signed_server_certificate_is_trusted_as_a_root(enrollment, settings, tmp_path):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    server = _certificate("mdm.example.org", "mdm.example.org", key, key, ca=False)
    chain = tmp_path / "server.pem"
    chain.write_bytes(server.public_bytes(serialization.Encoding.PEM))
    settings.MDM_TLS_CERT_FILE = str(chain)
    roots = payloads_by_type(build_enrollment_profile(enrollment))["com.apple.security.root"]
    assert x509.load_der_x509_certificate(roots[1]["PayloadContent"]) == server


def test_an_unreadable_tls_chain_file_gives_no_profile(client, enrollment, settings, tmp_path):
    settings.MDM_TLS_CERT_FILE = str(tmp_path / "missing.pem")
    with pytest.raises(EnrollmentUnavailable) as raised:
        build_enrollment_profile(enrollment)
    assert raised.value.reason == EnrollmentUnavailable.MISCONFIGURED
    response = download(client, enrollment)
    assert response.status_code == 503
    assert response["Content-Type"].startswith("text/html")
    enrollment.refresh_from_db()
    assert enrollment.uses == 0


# --- PKCS#12 -------------------------------------------------------------------------------


@pytest.mark.parametrize("encryption", ["compat", "aes"])
def test_pkcs12_identity(enrollment, settings, encryption, tmp_path):
    settings.MDM_PKCS12_ENCRYPTION = encryption
    enrollment.identity = Enrollment.Identity.PKCS12
    enrollment.save()
    signed = enrollment_profile_bytes(enrollment)
    profile = plistlib.loads(openssl_content(signed, tmp_path))
    found = payloads_by_type(profile)
    assert "com.apple.security.scep" not in found
    (identity,) = found["com.apple.security.pkcs12"]
    (mdm,) = found["com.apple.mdm"]
    assert mdm["IdentityCertificateUUID"] == identity["PayloadUUID"]
    key, certificate, extra = pkcs12.load_key_and_certificates(
        identity["PayloadContent"], identity["Password"].encode()
    )
    assert extra == []  # Apple: only one certificate in the PKCS#12 payload
    assert key.key_size == 2048
    assert key.public_key().public_numbers() == certificate.public_key().public_numbers()
    record = IssuedCertificate.objects.get(sha256=certificate.fingerprint(hashes.SHA256()).hex())
    assert enrollment_of(record) == enrollment
    assert bound_device_id(record) is None
    certificate.verify_directly_issued_by(ca_certificate(active_ca()))
    with pytest.raises(ValueError):
        pkcs12.load_key_and_certificates(identity["PayloadContent"], b"wrong")
    p12 = tmp_path / "identity.p12"
    p12.write_bytes(identity["PayloadContent"])
    info = subprocess.run(
        ["openssl", "pkcs12", "-in", str(p12), "-info", "-noout"]
        + ["-passin", "pass:" + identity["Password"]]
        + (["-legacy"] if encryption == "compat" else []),
        capture_output=True,
        text=True,
    )
    expected = "TripleDES" if encryption == "compat" else "AES-256-CBC"
    assert expected in info.stderr


# --- refusals ------------------------------------------------------------------------------


@pytest.mark.parametrize("rights", [0, 2, 128, 8192])
def test_invalid_access_rights_are_refused(client, enrollment, rights):
    enrollment.access_rights = rights
    enrollment.save()
    with pytest.raises(EnrollmentUnavailable) as raised:
        build_enrollment_profile(enrollment)
    assert "AccessRights" in str(raised.value)
    response = download(client, enrollment)
    assert response.status_code == 503
    assert not response.content.startswith(b"\x30")
    assert "Content-Disposition" not in response
    assert client.get(f"/enroll/{enrollment.token}/").status_code == 503
    enrollment.refresh_from_db()
    assert enrollment.uses == 0


def _expire(enrollment):
    enrollment.expires_at = timezone.now() - dt.timedelta(minutes=1)
    enrollment.save()


def _use_up(enrollment):
    enrollment.max_uses = 3
    enrollment.uses = 3
    enrollment.save()


def _deactivate(enrollment):
    enrollment.active = False
    enrollment.save()


@pytest.mark.parametrize(
    ("spoil", "words"),
    [(_expire, "expired"), (_use_up, "used up"), (_deactivate, "turned off")],
)
@pytest.mark.parametrize("page", ["", "profile"])
def test_unusable_links_get_a_410_page_and_no_profile(client, enrollment, spoil, words, page):
    spoil(enrollment)
    uses = enrollment.uses
    response = client.get(f"/enroll/{enrollment.token}/{page}")
    assert response.status_code == 410
    assert response["Content-Type"].startswith("text/html")
    assert "Content-Disposition" not in response
    assert words in response.content.decode()
    enrollment.refresh_from_db()
    assert enrollment.uses == uses


@pytest.mark.parametrize("page", ["", "profile"])
def test_unknown_token_gets_a_404_page(client, enrollment, page):
    token = "not-a-token-" + "x" * 20
    response = client.get(f"/enroll/{token}/{page}")
    assert response.status_code == 404
    body = response.content.decode()
    assert "not valid" in body
    assert token not in body
    assert "Content-Disposition" not in response


def test_the_last_use_goes_to_one_download_only(client, enrollment):
    enrollment.max_uses = 1
    enrollment.save()
    assert download(client, enrollment).status_code == 200
    second = download(client, enrollment)
    assert second.status_code == 410
    enrollment.refresh_from_db()
    assert enrollment.uses == 1
    with pytest.raises(EnrollmentUnavailable) as raised:
        build_enrollment_profile(enrollment)
    assert raised.value.reason == EnrollmentUnavailable.USED_UP


@pytest.mark.parametrize("page", ["", "profile"])
def test_no_push_certificate_gets_a_503_page(client, ca, page):
    enrollment = Enrollment.objects.create(name="Early", access_rights=8191)
    response = client.get(f"/enroll/{enrollment.token}/{page}")
    assert response.status_code == 503
    assert "this portal has no push certificate yet" in response.content.decode().lower()
    assert "Content-Disposition" not in response
    with pytest.raises(EnrollmentUnavailable) as raised:
        build_enrollment_profile(enrollment)
    assert raised.value.reason == EnrollmentUnavailable.NO_PUSH_CERTIFICATE
    enrollment.refresh_from_db()
    assert enrollment.uses == 0


@pytest.mark.parametrize("method", ["post", "put", "delete", "head"])
@pytest.mark.parametrize("page", ["", "profile"])
def test_only_get(client, enrollment, method, page):
    response = getattr(client, method)(f"/enroll/{enrollment.token}/{page}")
    assert response.status_code == 405
    enrollment.refresh_from_db()
    assert enrollment.uses == 0


# --- the OTA page and the download ---------------------------------------------------------


def test_the_page_explains_the_rights_in_words_and_links_to_the_profile(client, enrollment):
    enrollment.access_rights = 1 | 8 | 16
    enrollment.save()
    response = client.get(f"/enroll/{enrollment.token}/")
    assert response.status_code == 200
    assert response["Cache-Control"].startswith("no-store")
    assert response["Referrer-Policy"] == "no-referrer"
    body = response.content.decode()
    assert f'href="/enroll/{enrollment.token}/profile"' in body
    assert "Erase the device" in body
    assert "See which configuration profiles are installed" in body
    assert "serial number" in body
    assert "Install, manage and remove apps" not in body
    assert "Lock the device" not in body
    assert "trust certificate" in body.lower()
    assert "device identity" in body.lower()
    assert "never leaves" in body  # SCEP: the key stays on the device
    assert "https://" not in body.replace(PUBLIC_URL, "")  # nothing external: no CDN
    enrollment.refresh_from_db()
    assert enrollment.uses == 0  # viewing the page hands out nothing


def test_the_profile_download_is_an_apple_configuration_attachment(client, enrollment):
    enrollment.name = 'Staff "iPhones" / 2025'
    enrollment.save()
    response = download(client, enrollment)
    assert response.status_code == 200
    assert response["Content-Type"] == "application/x-apple-aspen-config"
    assert (
        response["Content-Disposition"] == 'attachment; filename="Staff-iPhones-2025.mobileconfig"'
    )
    assert response["Cache-Control"].startswith("no-store")
    assert load_profile(response.content)["PayloadType"] == "Configuration"


# --- mdm_enrollment ------------------------------------------------------------------------


def run(*args) -> str:
    out = StringIO()
    call_command("mdm_enrollment", *args, stdout=out)
    return out.getvalue()


def test_create_prints_the_link_and_audits(db):
    out = run("create", "--name", "Lab iPads", "--access-rights", "4095", "--max-uses", "5")
    enrollment = Enrollment.objects.get(name="Lab iPads")
    assert f"{PUBLIC_URL}/enroll/{enrollment.token}/" in out
    assert enrollment.access_rights == 4095
    assert enrollment.max_uses == 5
    assert enrollment.identity == "scep"
    assert enrollment.check_out_when_removed is True
    assert enrollment.sign_message is False
    assert enrollment.expires_at is None
    entry = AuditEntry.objects.get(action="enrollment.created")
    assert entry.details["enrollment"] == enrollment.pk
    assert enrollment.token not in str(entry.details)


def test_create_with_every_option_creates_the_group(db):
    run(
        "create",
        "--name",
        "Macs",
        "--identity",
        "pkcs12",
        "--sign-message",
        "--no-checkout-when-removed",
        "--group",
        "Design",
        "--expires-days",
        "7",
    )
    enrollment = Enrollment.objects.get(name="Macs")
    assert enrollment.group == DeviceGroup.objects.get(name="Design")
    assert enrollment.identity == "pkcs12"
    assert enrollment.sign_message is True
    assert enrollment.check_out_when_removed is False
    remaining = enrollment.expires_at - timezone.now()
    assert dt.timedelta(days=6, hours=23) < remaining <= dt.timedelta(days=7)
    run("create", "--name", "More Macs", "--group", "Design")  # the existing group is reused
    assert DeviceGroup.objects.filter(name="Design").count() == 1


@pytest.mark.parametrize(
    ("rights", "message"),
    [("0", "between 1"), ("2", "requires 1"), ("128", "requires 64"), ("8192", "between 1")],
)
def test_create_refuses_invalid_access_rights(db, rights, message):
    with pytest.raises(CommandError, match=message):
        run("create", "--name", "Bad", "--access-rights", rights)
    assert not Enrollment.objects.exists()


def test_list_shows_link_identity_rights_uses_expiry_and_state(db):
    run("create", "--name", "Open", "--max-uses", "10")
    run("create", "--name", "Old", "--access-rights", "17")
    Enrollment.objects.filter(name="Old").update(expires_at=timezone.now() - dt.timedelta(days=1))
    out = run("list")
    open_, old = Enrollment.objects.get(name="Open"), Enrollment.objects.get(name="Old")
    assert f"{PUBLIC_URL}/enroll/{open_.token}/" in out
    assert f"{PUBLIC_URL}/enroll/{old.token}/" in out
    open_line = out.split("Open  ", 1)[1].split("\n", 2)[1]
    assert "identity=scep" in open_line and "rights=8191" in open_line
    assert "uses=0/10" in open_line and "expires=never" in open_line
    assert "state=active" in open_line
    old_line = out.split("Old  ", 1)[1].split("\n", 2)[1]
    assert "rights=17" in old_line and "state=expired" in old_line


def test_deactivate(client, enrollment):
    out = run("deactivate", enrollment.token)
    assert "deactivated" in out
    enrollment.refresh_from_db()
    assert enrollment.active is False
    assert download(client, enrollment).status_code == 410
    with pytest.raises(CommandError):
        run("deactivate", "no-such-token")


def test_a_push_certificate_without_an_mdm_topic_gives_no_profile(client, enrollment, push):
    push.topic = "com.example.app"
    push.save()
    with pytest.raises(EnrollmentUnavailable, match="not an MDM topic"):
        build_enrollment_profile(enrollment)
    assert download(client, enrollment).status_code == 503


def test_a_link_token_never_starts_with_a_dash(monkeypatch):
    """A token like "-Xy..." would be read as an option by `mdm_enrollment deactivate`."""
    from enrollment import models

    draws = iter(["-looks-like-an-option", "fine-token"])
    monkeypatch.setattr(models.secrets, "token_urlsafe", lambda n: next(draws))
    assert models.new_token() == "fine-token"
