"""An enrollment whose devices get their identity over ACME: the signed profile from the link
carries a `com.apple.security.acme` payload (Apple's keys, a one-time ClientIdentifier stored
only hashed, with or without attestation), renewal profiles ask ACME again, and the pages that
show a profile's payloads hide the ClientIdentifier."""

import datetime as dt
import hashlib
import plistlib

import pytest
from django.utils import timezone

from certs.challenges import consume_challenge
from certs.cms import signed_content
from certs.models import PushCertificate, ScepChallenge
from commands.models import QueuedCommand
from devices.models import Device
from enrollment.library import upload_profile
from enrollment.links import link_certificate
from enrollment.mobileconfig import build_enrollment_profile
from enrollment.models import Enrollment, EnrollmentChallenge
from enrollment.renewal import renew_identity
from mdm_portal.masking import is_secret_key
from mdm_portal.models import AuditEntry
from mdm_portal.roles import VIEWER
from tests.apple_payload_schema import payload_problems
from tests.conftest import new_identity
from tests.simulator import TOPIC, SimulatedDevice
from tests.test_enrollment_profiles import openssl_content, payloads_by_type

pytestmark = pytest.mark.django_db

PUBLIC_URL = "https://mdm.example.org"
ACME_KEYS = {
    "PayloadType",
    "PayloadVersion",
    "PayloadIdentifier",
    "PayloadUUID",
    "PayloadDisplayName",
    "PayloadDescription",
    "DirectoryURL",
    "ClientIdentifier",
    "KeyType",
    "KeySize",
    "HardwareBound",
    "Attest",
    "Subject",
    "UsageFlags",
}


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


def acme_enrollment(attestation: bool = True) -> Enrollment:
    return Enrollment.objects.create(
        name="Staff iPhones", identity=Enrollment.Identity.ACME, acme_attestation=attestation
    )


def downloaded_profile(client, enrollment, tmp_path) -> dict:
    """The profile the link hands out, its CMS signature checked and taken off by openssl."""
    response = client.get(f"/enroll/{enrollment.token}/profile")
    assert response.status_code == 200, response.content
    assert response["Content-Type"] == "application/x-apple-aspen-config"
    return plistlib.loads(openssl_content(response.content, tmp_path))


def stored_secrets() -> list[str]:
    """Every text column of every one-time secret, to look for a secret in clear."""
    return [str(value) for row in ScepChallenge.objects.values() for value in row.values()]


@pytest.mark.parametrize("attestation", [True, False])
def test_the_profile_carries_an_acme_payload_with_a_one_time_client_identifier(
    client, ca, push, tmp_path, attestation
):
    enrollment = acme_enrollment(attestation)
    profile = downloaded_profile(client, enrollment, tmp_path)
    types = [p["PayloadType"] for p in profile["PayloadContent"]]
    assert types == ["com.apple.security.root", "com.apple.security.acme", "com.apple.mdm"]
    found = payloads_by_type(profile)
    (acme,) = found["com.apple.security.acme"]
    (mdm,) = found["com.apple.mdm"]
    assert set(acme) == ACME_KEYS
    assert mdm["IdentityCertificateUUID"] == acme["PayloadUUID"]
    assert acme["PayloadIdentifier"] == profile["PayloadIdentifier"] + ".identity"
    assert acme["PayloadDisplayName"] == "Device identity (ACME)"
    assert acme["DirectoryURL"] == PUBLIC_URL + "/acme/directory"
    assert acme["KeyType"] == "ECSECPrimeRandom" and acme["KeySize"] == 384
    assert acme["HardwareBound"] is attestation and acme["Attest"] is attestation
    assert acme["UsageFlags"] == 1
    (cn,), (org,) = acme["Subject"]
    assert cn[0] == "CN" and cn[1].startswith("MDM Identity ")
    assert org == ["O", "Example Org"]
    # The profile says which delivery it uses.
    assert "ACME" in profile["PayloadDescription"]
    assert ("attests" in profile["PayloadDescription"]) is attestation

    # The ClientIdentifier: stored only as its hash, for ACME, bound to the enrollment.
    identifier = acme["ClientIdentifier"]
    assert len(identifier) >= 32
    assert not any(identifier in value for value in stored_secrets())
    record = ScepChallenge.objects.get(
        challenge_sha256=hashlib.sha256(identifier.encode()).hexdigest()
    )
    assert record.purpose == ScepChallenge.Purpose.ACME
    assert record.attestation_required is attestation
    link = EnrollmentChallenge.objects.get(challenge=record)
    assert link.enrollment == enrollment and link.device is None
    # Only ACME takes it, and only once.
    assert consume_challenge(identifier)[0] is False  # not a SCEP challenge
    assert consume_challenge(identifier, purpose=ScepChallenge.Purpose.ACME)[0] is True
    assert consume_challenge(identifier, purpose=ScepChallenge.Purpose.ACME)[0] is False
    enrollment.refresh_from_db()
    assert enrollment.uses == 1
    entry = AuditEntry.objects.get(action="enrollment.profile_issued")
    assert entry.details["identity"] == "acme"
    assert entry.details["acme_attestation"] is attestation
    assert identifier not in str(entry.details)


@pytest.mark.parametrize("attestation", [True, False])
def test_the_acme_payload_is_valid_against_apples_schema(ca, push, attestation):
    profile = build_enrollment_profile(acme_enrollment(attestation))
    (acme,) = payloads_by_type(profile)["com.apple.security.acme"]
    assert payload_problems(acme) == []
    # The rules Apple states in words: a hardware-bound key is P-256 or P-384, and an
    # attestation needs a hardware-bound key.
    assert not acme["HardwareBound"] or (acme["KeyType"], acme["KeySize"]) in {
        ("ECSECPrimeRandom", 256),
        ("ECSECPrimeRandom", 384),
    }
    assert not acme["Attest"] or acme["HardwareBound"]


def test_the_schema_check_finds_what_apple_does_not_allow(ca, push):
    """The check itself can fail: a missing required key, an unknown one, a wrong type."""
    (acme,) = payloads_by_type(build_enrollment_profile(acme_enrollment()))[
        "com.apple.security.acme"
    ]
    broken = {**acme, "KeySize": "384", "Colour": "blue", "KeyType": "DSA"}
    del broken["DirectoryURL"]
    problems = "\n".join(payload_problems(broken))
    for words in ("DirectoryURL is missing", "Colour is not a key", "KeySize", "'DSA'"):
        assert words in problems


def test_two_downloads_get_different_client_identifiers(client, ca, push, tmp_path):
    enrollment = acme_enrollment()
    identifiers = {
        payloads_by_type(downloaded_profile(client, enrollment, tmp_path))[
            "com.apple.security.acme"
        ][0]["ClientIdentifier"]
        for _ in range(2)
    }
    assert len(identifiers) == 2
    assert ScepChallenge.objects.filter(purpose="acme").count() == 2


def test_the_ota_page_says_the_key_is_made_in_the_hardware(client, ca, push):
    enrollment = acme_enrollment()
    body = client.get(f"/enroll/{enrollment.token}/").content.decode()
    assert "in its\n    hardware, which never leaves it" in body
    assert "the hardware proves to the server which device it is" in body and "(ACME)" in body
    Enrollment.objects.filter(pk=enrollment.pk).update(acme_attestation=False)
    body = client.get(f"/enroll/{enrollment.token}/").content.decode()
    assert "own key, which never leaves it (ACME)" in body
    assert "hardware proves" not in body and "key in its" not in body


def test_a_renewal_profile_of_an_acme_enrollment_asks_acme_for_that_device(ca, push, send):
    enrollment = acme_enrollment(attestation=False)
    certificate, key, record = new_identity(kind="ec")
    link_certificate(record, enrollment)
    sim = SimulatedDevice(send=send, certificate=certificate, key=key)
    sim.enroll()
    QueuedCommand.objects.filter(device__udid=sim.udid).delete()
    device = Device.objects.get(udid=sim.udid)
    renew_identity(device)
    command = sim.idle().plist()["Command"]
    assert command["RequestType"] == "InstallProfile"
    profile = plistlib.loads(signed_content(command["Payload"]))  # EC identity: not encrypted
    found = payloads_by_type(profile)
    assert "com.apple.security.scep" not in found
    (acme,) = found["com.apple.security.acme"]
    assert acme["HardwareBound"] is False and acme["Attest"] is False
    accepted, challenge = consume_challenge(
        acme["ClientIdentifier"], purpose=ScepChallenge.Purpose.ACME
    )
    assert accepted and challenge.attestation_required is False
    assert challenge.enrollment_link.device == device
    assert challenge.enrollment_link.enrollment == enrollment
    enrollment.refresh_from_db()
    assert enrollment.uses == 0  # a renewal counts no use of the link


def test_the_client_identifier_is_hidden_where_a_profile_is_shown(ca, push, staff):
    assert is_secret_key("ClientIdentifier")
    assert not is_secret_key("PayloadIdentifier")
    profile = build_enrollment_profile(acme_enrollment())
    (acme,) = payloads_by_type(profile)["com.apple.security.acme"]
    stored = upload_profile(plistlib.dumps(profile), uploaded_by="tests")
    html = staff[VIEWER].get(f"/profiles/{stored.pk}/").text
    assert "com.apple.security.acme" in html and "ClientIdentifier" in html
    assert "ECSECPrimeRandom" in html and PUBLIC_URL + "/acme/directory" in html
    assert acme["ClientIdentifier"] not in html
