"""ACME orders for device identities (certs/acme_orders.py): the ClientIdentifier spent by
newOrder, device-attest-01, finalize with the attested key, the issued certificate; and each
refusal with its error type, writing nothing (no certificate issued)."""

import datetime as dt

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from django.utils import timezone

from certs.models import AcmeOrder, IssuedCertificate, ScepChallenge
from certs.signals import certificate_issued
from mdm_portal.models import AuditEntry
from simulator.attestation import AttestationCA, attestation_object, freshness_code
from tests.acme_support import b64, client_identifier, problem_type

pytestmark = pytest.mark.django_db


def public_der(key) -> bytes:
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def states(acme, order: dict, challenge: dict) -> tuple[str, str, str]:
    """(order, authorization, challenge) status, as the client reads them."""
    order_url = order["finalize"].removesuffix("/finalize")
    return (
        acme.get(order_url).json()["status"],
        acme.get(order["authorizations"][0]).json()["status"],
        acme.get(challenge["url"]).json()["status"],
    )


def assert_attestation_refused(acme, order, challenge, answer, words: str) -> None:
    """The answer makes the challenge, authorization and order invalid (badAttestationStatement
    in the challenge and the order); finalize then finds the order not ready; nothing issued."""
    response = acme.post(challenge["url"], answer)
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "invalid"
    assert body["error"]["type"] == "urn:ietf:params:acme:error:badAttestationStatement"
    assert words in body["error"]["detail"]
    assert states(acme, order, challenge) == ("invalid", "invalid", "invalid")
    order_url = order["finalize"].removesuffix("/finalize")
    assert acme.get(order_url).json()["error"]["type"].endswith(":badAttestationStatement")
    late = acme.finalize(order, b"\x30\x00")
    assert late.status_code == 403 and problem_type(late) == "orderNotReady"
    assert IssuedCertificate.objects.count() == 0
    assert AuditEntry.objects.filter(action="acme.attestation_refused").count() == 1


def test_an_attested_device_gets_its_identity(acme, apple_device, ca):
    text, record = client_identifier()
    announced = []

    def receiver(sender, certificate, challenge, renews, **kwargs):
        announced.append((certificate, challenge, renews))

    certificate_issued.connect(receiver, dispatch_uid="test-acme-issued")
    try:
        order, challenge = acme.start_order(text)
        assert order["identifiers"] == [{"type": "permanent-identifier", "value": text}]
        response = acme.post(challenge["url"], {"attObj": apple_device.att_obj(challenge["token"])})
        assert response.json()["status"] == "valid" and "validated" in response.json()
        up = order["authorizations"][0]
        assert response["Link"].endswith(f'<{up}>;rel="up"')
        assert states(acme, order, challenge) == ("ready", "valid", "valid")
        done = acme.finalize(order, apple_device.csr_der())
    finally:
        certificate_issued.disconnect(dispatch_uid="test-acme-issued")

    assert done.status_code == 200 and done.json()["status"] == "valid"
    assert done["Location"] == order["finalize"].removesuffix("/finalize")
    chain = acme.get(done.json()["certificate"])
    assert chain["Content-Type"] == "application/pem-certificate-chain"
    leaf, issuer = x509.load_pem_x509_certificates(chain.content)
    ca_certificate = x509.load_pem_x509_certificate(ca.certificate_pem.encode())
    assert issuer == ca_certificate
    leaf.verify_directly_issued_by(ca_certificate)
    assert public_der(leaf.public_key()) == public_der(apple_device.key.public_key())
    issued = IssuedCertificate.objects.get()
    assert issued.authority == ca and issued.serial == format(leaf.serial_number, "x")
    assert issued.delivery == "acme"
    assert (issued.attested_udid, issued.attested_serial) == (
        apple_device.udid,
        apple_device.serial,
    )
    # The ClientIdentifier's record goes out with the certificate: enrollment links it.
    assert announced == [(issued, record, None)]
    assert AcmeOrder.objects.get().challenge == record
    actions = set(AuditEntry.objects.values_list("action", flat=True))
    assert {"acme.account_created", "acme.order_created", "acme.issued"} <= actions
    assert "certificate.issued" in actions


def test_a_chain_to_another_root_is_refused(acme, attestation_ca, ca):
    text, _ = client_identifier()
    order, challenge = acme.start_order(text)
    stranger = AttestationCA.create(name="Not Apple")
    key = ec.generate_private_key(ec.SECP384R1())
    att_obj = stranger.attestation_object(
        key.public_key(), udid="U", serial="S", token=challenge["token"]
    )
    assert_attestation_refused(acme, order, challenge, {"attObj": b64(att_obj)}, "trusted root")


def test_a_wrong_nonce_in_the_attestation_is_refused(acme, apple_device, ca):
    text, _ = client_identifier()
    order, challenge = acme.start_order(text)
    # An attestation made for another challenge (an old one replayed, say).
    answer = {"attObj": apple_device.att_obj("another-challenge-token")}
    assert_attestation_refused(acme, order, challenge, answer, "nonce")


def test_an_attestation_without_its_intermediate_is_refused(acme, apple_device, ca):
    text, _ = client_identifier()
    order, challenge = acme.start_order(text)
    leaf = apple_device.attestation.leaf(
        apple_device.key.public_key(),
        udid=apple_device.udid,
        serial=apple_device.serial,
        nonce=freshness_code(challenge["token"]),
    )
    answer = {"attObj": b64(attestation_object([leaf]))}
    assert_attestation_refused(acme, order, challenge, answer, "trusted root")


def test_a_reused_client_identifier_is_rejected(acme, apple_device, ca):
    text, _ = client_identifier()
    acme.start_order(text)
    again = acme.new_order(text)
    assert again.status_code == 400 and problem_type(again) == "rejectedIdentifier"
    assert AcmeOrder.objects.count() == 1
    refusal = AuditEntry.objects.get(action="acme.order_refused")
    assert refusal.details["reason"] == "expired or already used"
    assert text not in str(refusal.details)  # the secret is never written down


def test_an_expired_client_identifier_is_rejected(acme, ca):
    text, record = client_identifier()
    ScepChallenge.objects.filter(pk=record.pk).update(
        expires_at=timezone.now() - dt.timedelta(seconds=1)
    )
    response = acme.new_order(text)
    assert response.status_code == 400 and problem_type(response) == "rejectedIdentifier"
    assert AcmeOrder.objects.count() == 0
    assert ScepChallenge.objects.get().used_at is None


@pytest.mark.parametrize("purpose", ["unknown", "scep"])
def test_a_client_identifier_that_is_none_of_ours_is_rejected(acme, ca, purpose):
    from certs.challenges import create_challenge

    text = create_challenge()[0] if purpose == "scep" else "no-such-identifier"
    response = acme.new_order(text)
    assert response.status_code == 400 and problem_type(response) == "rejectedIdentifier"
    assert AcmeOrder.objects.count() == 0


def permanent(value) -> dict:
    return {"type": "permanent-identifier", "value": value}


@pytest.mark.parametrize(
    "identifiers, error",
    [
        (lambda text: [{"type": "dns", "value": "device.example.org"}], "unsupportedIdentifier"),
        (lambda text: [{"type": "hardware-module", "value": text}], "unsupportedIdentifier"),
        (lambda text: permanent(text), "malformed"),  # not a list
        (lambda text: [], "malformed"),
        (lambda text: [text], "malformed"),
        (lambda text: [permanent(text), permanent(text)], "malformed"),
        (lambda text: [permanent(5)], "malformed"),
        (lambda text: [permanent("")], "malformed"),
    ],
)
def test_orders_name_one_permanent_identifier(acme, ca, identifiers, error):
    text, _ = client_identifier()
    response = acme.post(acme.url("/acme/new-order"), {"identifiers": identifiers(text)})
    assert response.status_code == 400 and problem_type(response) == error
    assert ScepChallenge.objects.get().used_at is None  # nothing spent
    assert AcmeOrder.objects.count() == 0


def test_an_order_with_validity_dates_is_refused(acme, ca):
    text, _ = client_identifier()
    identifiers = [{"type": "permanent-identifier", "value": text}]
    response = acme.post(
        acme.url("/acme/new-order"),
        {"identifiers": identifiers, "notAfter": "2030-01-01T00:00:00Z"},
    )
    assert response.status_code == 400 and problem_type(response) == "malformed"
    assert ScepChallenge.objects.get().used_at is None


def test_a_csr_whose_key_is_not_the_attested_one_is_refused(acme, apple_device, ca):
    text, _ = client_identifier()
    order, challenge = acme.start_order(text)
    acme.post(challenge["url"], {"attObj": apple_device.att_obj(challenge["token"])})
    other_key = ec.generate_private_key(ec.SECP384R1())
    refused = acme.finalize(order, apple_device.csr_der(other_key))
    assert refused.status_code == 400 and problem_type(refused) == "badCSR"
    assert "attest" in refused.json()["detail"]
    assert IssuedCertificate.objects.count() == 0
    assert AuditEntry.objects.filter(action="acme.finalize_refused").count() == 1
    # RFC 8555 section 7.4: the order stays ready for a corrected CSR.
    assert states(acme, order, challenge)[0] == "ready"
    assert acme.finalize(order, apple_device.csr_der()).json()["status"] == "valid"
    assert IssuedCertificate.objects.count() == 1


def test_finalize_before_the_order_is_ready_is_refused(acme, apple_device, ca):
    text, _ = client_identifier()
    order, challenge = acme.start_order(text)
    response = acme.finalize(order, apple_device.csr_der())
    assert response.status_code == 403 and problem_type(response) == "orderNotReady"
    assert IssuedCertificate.objects.count() == 0
    assert states(acme, order, challenge) == ("pending", "pending", "pending")


@pytest.mark.parametrize(
    "csr, error",
    [(b64(b"not a CSR"), "badCSR"), ("not base64url!", "malformed"), (None, "malformed")],
)
def test_a_csr_that_cannot_be_read_is_refused(acme, apple_device, ca, csr, error):
    text, _ = client_identifier()
    order, challenge = acme.start_order(text)
    acme.post(challenge["url"], {"attObj": apple_device.att_obj(challenge["token"])})
    response = acme.post(order["finalize"], {"csr": csr} if csr else {})
    assert response.status_code == 400 and problem_type(response) == error
    assert IssuedCertificate.objects.count() == 0


def test_without_attestation_only_when_the_enrollment_allows_it(acme, apple_device, ca):
    # The default: an answer without attObj is a failed attestation.
    required, _ = client_identifier()
    order, challenge = acme.start_order(required)
    assert_attestation_refused(acme, order, challenge, {}, "no attObj")
    # Attestation optional: the authorization is valid from the start, the order ready.
    optional, _ = client_identifier(attestation_required=False)
    response = acme.new_order(optional)
    assert response.status_code == 201 and response.json()["status"] == "ready"
    order = response.json()
    authz = acme.get(order["authorizations"][0]).json()
    assert authz["status"] == "valid" and authz["challenges"] == []
    done = acme.finalize(order, apple_device.csr_der())
    assert done.json()["status"] == "valid"
    issued = IssuedCertificate.objects.get()
    assert (issued.delivery, issued.attested_udid, issued.attested_serial) == ("acme", "", "")


def test_an_attobj_that_is_no_base64url_changes_nothing(acme, apple_device, ca):
    text, _ = client_identifier()
    order, challenge = acme.start_order(text)
    for answer in ({"attObj": "not base64url!"}, {"attObj": 12}):
        response = acme.post(challenge["url"], answer)
        assert response.status_code == 400 and problem_type(response) == "malformed"
    assert states(acme, order, challenge) == ("pending", "pending", "pending")
    good = acme.post(challenge["url"], {"attObj": apple_device.att_obj(challenge["token"])})
    assert good.json()["status"] == "valid"


def test_an_answer_to_a_decided_challenge_changes_nothing(acme, apple_device, ca):
    text, _ = client_identifier()
    order, challenge = acme.start_order(text)
    acme.post(challenge["url"], {"attObj": apple_device.att_obj("wrong")})
    again = acme.post(challenge["url"], {"attObj": apple_device.att_obj(challenge["token"])})
    assert again.status_code == 200 and again.json()["status"] == "invalid"
    assert states(acme, order, challenge) == ("invalid", "invalid", "invalid")


def test_unreadable_attestation_roots_leave_the_challenge_pending(acme, apple_device, settings, ca):
    text, _ = client_identifier()
    order, challenge = acme.start_order(text)
    roots = settings.MDM_ACME_ATTESTATION_ROOTS
    settings.MDM_ACME_ATTESTATION_ROOTS = "/nonexistent/roots.pem"
    answer = {"attObj": apple_device.att_obj(challenge["token"])}
    response = acme.post(challenge["url"], answer)
    assert response.status_code == 500 and problem_type(response) == "serverInternal"
    assert states(acme, order, challenge) == ("pending", "pending", "pending")
    settings.MDM_ACME_ATTESTATION_ROOTS = roots
    assert acme.post(challenge["url"], answer).json()["status"] == "valid"


def test_an_expired_order_becomes_invalid(acme, apple_device, ca):
    text, _ = client_identifier()
    order, challenge = acme.start_order(text)
    AcmeOrder.objects.update(expires_at=timezone.now() - dt.timedelta(seconds=1))
    response = acme.post(challenge["url"], {"attObj": apple_device.att_obj(challenge["token"])})
    assert response.json()["status"] == "pending"  # not judged any more
    assert states(acme, order, challenge) == ("invalid", "expired", "pending")
    late = acme.finalize(order, apple_device.csr_der())
    assert problem_type(late) == "orderNotReady"


def test_an_authorization_can_be_deactivated(acme, ca):
    text, _ = client_identifier()
    order, challenge = acme.start_order(text)
    url = order["authorizations"][0]
    bad = acme.post(url, {"status": "valid"})
    assert bad.status_code == 400 and problem_type(bad) == "malformed"
    response = acme.post(url, {"status": "deactivated"})
    assert response.json()["status"] == "deactivated"
    assert states(acme, order, challenge)[:2] == ("invalid", "deactivated")


def test_the_order_lifetime_is_a_setting(acme, settings, ca):
    settings.MDM_ACME_ORDER_LIFETIME_MINUTES = 5
    text, _ = client_identifier()
    acme.start_order(text)
    left = AcmeOrder.objects.get().expires_at - timezone.now()
    assert dt.timedelta(minutes=4) < left <= dt.timedelta(minutes=5)
