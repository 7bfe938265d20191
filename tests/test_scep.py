"""The SCEP server (RFC 8894) through Django's full request handling, with simulator/scep.py."""

import base64
import datetime as dt
from dataclasses import dataclass
from io import StringIO
from urllib.parse import quote

import pytest
from asn1crypto import cms
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from django.core.management import CommandError, call_command
from django.test import Client

from certs.ca import ca_certificate, ensure_ca, revoke, sha256_hex
from certs.challenges import issue_challenge
from certs.models import CertificateAuthority, IssuedCertificate, ScepChallenge, ScepRequest
from devices.models import Device
from enrollment.links import (
    enrollment_of,
    issue_enrollment_challenge,
    link_certificate,
    scep_request_enrollment,
)
from enrollment.models import Enrollment
from mdm_portal.models import AuditEntry
from simulator import scep as sc
from tests.conftest import new_identity
from tests.simulator import sign_detached

pytestmark = pytest.mark.django_db

PKI = "application/x-pki-message"


@dataclass
class Server:
    """Our SCEP server as a client sees it after GetCACert."""

    client: Client
    ca_cert: x509.Certificate  # the trust anchor
    recipient: x509.Certificate  # what requests are encrypted to (the RA)

    def post(self, der: bytes):
        return self.client.post("/scep?operation=PKIOperation", der, content_type=PKI)

    def get(self, der: bytes):
        message = base64.b64encode(der).decode()
        return self.client.get("/scep", {"operation": "PKIOperation", "message": message})


@dataclass
class Requester:
    key: object
    csr: x509.CertificateSigningRequest
    signer: x509.Certificate

    def pkcs_req(self, server: Server, **kwargs) -> bytes:
        return sc.build_pkcs_req(self.csr, self.signer, self.key, server.recipient, **kwargs)

    def poll(self, server: Server, transaction_id: str) -> bytes:
        return sc.build_cert_poll(
            self.csr.subject,
            self.signer,
            self.key,
            server.recipient,
            transaction_id=transaction_id,
        )

    def read(self, server: Server, response):
        assert response.status_code == 200, response.content
        assert response["Content-Type"] == PKI
        return sc.read_cert_rep(response.content, self.signer, self.key, server.ca_cert)


@pytest.fixture
def server(ca, client) -> Server:
    response = client.get("/scep", {"operation": "GetCACert"})
    ca_cert, recipient = sc.split_ca_certs(response.content, response["Content-Type"])
    return Server(client, ca_cert, recipient)


@pytest.fixture
def enrollment() -> Enrollment:
    return Enrollment.objects.create(name="Staff")


def requester(challenge: str | None, common_name: str = "device") -> Requester:
    key = sc.make_key()
    csr = sc.make_scep_csr(key, common_name, challenge)
    return Requester(key, csr, sc.signer_for(key, csr))


def public_der(key_or_cert) -> bytes:
    public_key = getattr(key_or_cert, "public_key", lambda: key_or_cert)()
    return public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def issued_count() -> int:
    return IssuedCertificate.objects.count()


# ------------------------------------------------------------------ GetCACaps, GetCACert


def test_get_ca_caps_advertises_exactly_what_is_implemented(server):
    response = server.client.get("/scep", {"operation": "GetCACaps"})
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    caps = response.content.decode().split()
    assert set(caps) == {"POSTPKIOperation", "Renewal", "SHA-256", "SHA-512", "AES", "SCEPStandard"}
    assert len(caps) == len(set(caps))
    assert not {"SHA-1", "DES3", "DES"} & set(caps)


def test_get_ca_cert_is_our_ca_and_an_ra_it_issued(server, ca):
    response = server.client.get("/scep", {"operation": "GetCACert", "message": "0"})
    assert response.status_code == 200
    assert response["Content-Type"] == "application/x-x509-ca-ra-cert"
    assert server.ca_cert == ca_certificate(ca)
    ra = server.recipient
    assert ra != server.ca_cert
    ra.verify_directly_issued_by(server.ca_cert)
    usage = ra.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.digital_signature and usage.key_encipherment and not usage.key_cert_sign
    assert not ra.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    # The RA is a server identity, never a device identity.
    assert not IssuedCertificate.objects.filter(sha256=sha256_hex(ra)).exists()
    # Stable across calls: the same RA answers the next client.
    again = server.client.get("/scep", {"operation": "GetCACert"})
    assert again.content == response.content


def test_the_ra_follows_the_active_ca(server, ca):
    CertificateAuthority.objects.update(active=False)
    new_ca, created = ensure_ca(actor="tests")
    assert created
    response = server.client.get("/scep", {"operation": "GetCACert"})
    ca_cert, ra = sc.split_ca_certs(response.content, response["Content-Type"])
    assert ca_cert == ca_certificate(new_ca) != server.ca_cert
    ra.verify_directly_issued_by(ca_cert)
    assert AuditEntry.objects.filter(action="scep.ra_created").count() == 2


# ------------------------------------------------------------------ PKCSReq


def assert_issued(server, req, response, transaction_id, nonce, enrollment=None):
    status, fail_info, certificate, recipient_nonce, tid = req.read(server, response)
    assert (status, fail_info) == (sc.SUCCESS, None)
    assert tid == transaction_id
    assert recipient_nonce == nonce
    assert public_der(certificate) == public_der(req.csr)
    assert certificate.subject == req.csr.subject
    certificate.verify_directly_issued_by(server.ca_cert)
    record = IssuedCertificate.objects.get(sha256=sha256_hex(certificate))
    assert enrollment_of(record) == enrollment
    return certificate, record


def test_pkcs_req_by_post_issues_a_recorded_certificate(server, enrollment):
    challenge = issue_enrollment_challenge(enrollment)
    req = requester(challenge)
    request = sc.build_request(
        req.csr.public_bytes(serialization.Encoding.DER), req.signer, req.key, server.recipient
    )
    response = server.post(request.der)
    _certificate, record = assert_issued(
        server, req, response, request.transaction_id, request.sender_nonce, enrollment
    )
    assert issued_count() == 1
    scep_request = ScepRequest.objects.get(transaction_id=request.transaction_id)
    assert scep_request.status == ScepRequest.Status.ISSUED
    assert scep_request.certificate == record
    assert scep_request_enrollment(scep_request) == enrollment
    assert ScepChallenge.objects.get().used_at is not None
    assert AuditEntry.objects.filter(action="scep.issued", target=record.subject).exists()
    assert AuditEntry.objects.filter(action="certificate.issued", actor="scep").exists()


def test_pkcs_req_by_get_issues_a_certificate(server, enrollment):
    req = requester(issue_enrollment_challenge(enrollment))
    der = req.pkcs_req(server, transaction_id="get-1")
    response = server.get(der)
    assert_issued(server, req, response, "get-1", sc.sender_nonce_of(der), enrollment)
    assert issued_count() == 1


def test_pkcs_req_by_get_with_unencoded_or_twice_encoded_base64(server):
    for number, encode in enumerate((lambda b: b, lambda b: quote(quote(b, safe=""), safe=""))):
        req = requester(issue_challenge())
        der = req.pkcs_req(server)
        raw = base64.b64encode(der).decode()
        # A '+' left unencoded arrives as ' '; a twice-encoded one as '%2B'. Both are repaired.
        response = server.client.get(f"/scep?operation=PKIOperation&message={encode(raw)}")
        status, *_ = req.read(server, response)
        assert status == sc.SUCCESS
        assert issued_count() == number + 1


def test_aes128_requests_are_accepted(server):
    req = requester(issue_challenge())
    status, *_ = req.read(server, server.post(req.pkcs_req(server, cipher="aes128")))
    assert status == sc.SUCCESS


def test_a_resent_request_gets_the_same_certificate_again(server):
    req = requester(issue_challenge())
    der = req.pkcs_req(server, transaction_id="resend")
    first = req.read(server, server.post(der))[2]
    # The same request again (the challenge is used up by now): the first answer, not a new one.
    second = req.read(server, server.post(req.pkcs_req(server, transaction_id="resend")))[2]
    assert first == second
    assert issued_count() == 1
    # GetCertInitial for the completed transaction returns it too.
    status, _, third, *_ = req.read(server, server.post(req.poll(server, "resend")))
    assert (status, third) == (sc.SUCCESS, first)


def test_a_challenge_bound_to_a_device_binds_the_certificate(server, enrollment):
    device = Device.objects.create(udid="RENEWING-DEVICE")
    req = requester(issue_enrollment_challenge(enrollment, device=device))
    status, _, certificate, *_ = req.read(server, server.post(req.pkcs_req(server)))
    assert status == sc.SUCCESS
    record = IssuedCertificate.objects.get(sha256=sha256_hex(certificate))
    assert record.binding.device == device and record.binding.bound_at is not None


def test_static_challenge(server, settings):
    settings.MDM_SCEP_STATIC_CHALLENGE = "static-secret"
    for _ in range(2):  # not used up
        req = requester("static-secret")
        status, *_ = req.read(server, server.post(req.pkcs_req(server)))
        assert status == sc.SUCCESS
    assert issued_count() == 2
    assert IssuedCertificate.objects.filter(enrollment_link__isnull=True).count() == 2


# ------------------------------------------------------------------ refusals: FAILURE + failInfo


def assert_refused(server, req, response, fail_info, issued_before=0):
    status, actual, certificate, recipient_nonce, _tid = req.read(server, response)
    assert (status, actual) == (sc.FAILURE, fail_info)
    assert certificate is None
    assert recipient_nonce  # still echoes the request's senderNonce
    assert issued_count() == issued_before
    assert AuditEntry.objects.filter(action="scep.refused").exists()


def test_a_reused_challenge_is_refused(server):
    challenge = issue_challenge()
    first = requester(challenge, "first")
    assert first.read(server, server.post(first.pkcs_req(server)))[0] == sc.SUCCESS
    second = requester(challenge, "second")
    assert_refused(server, second, server.post(second.pkcs_req(server)), sc.BAD_REQUEST, 1)


def test_a_wrong_challenge_is_refused(server):
    issue_challenge()
    req = requester("not-the-challenge")
    assert_refused(server, req, server.post(req.pkcs_req(server)), sc.BAD_REQUEST)
    assert ScepRequest.objects.count() == 0


def test_an_expired_challenge_is_refused(server):
    challenge = issue_challenge(ttl=dt.timedelta(hours=1))
    ScepChallenge.objects.update(expires_at=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1))
    req = requester(challenge)
    assert_refused(server, req, server.post(req.pkcs_req(server)), sc.BAD_REQUEST)


def test_a_missing_challenge_is_refused(server):
    req = requester(None)
    assert_refused(server, req, server.post(req.pkcs_req(server)), sc.BAD_REQUEST)


def _tamper(der: bytes, field: str) -> bytes:
    info = cms.ContentInfo.load(der)
    signed_data = info["content"]
    if field == "signature":
        signer_info = signed_data["signer_infos"][0]
        signature = bytearray(signer_info["signature"].native)
        signature[-1] ^= 0x01
        signer_info["signature"] = bytes(signature)
    else:  # the encapsulated envelope: the messageDigest no longer matches
        content = bytearray(signed_data["encap_content_info"]["content"].native)
        content[-1] ^= 0x01
        signed_data["encap_content_info"]["content"] = bytes(content)
    return cms.ContentInfo({"content_type": "signed_data", "content": signed_data}).dump(force=True)


@pytest.mark.parametrize("field", ["signature", "content"])
def test_a_tampered_message_fails_the_message_check(server, field):
    challenge = issue_challenge()
    req = requester(challenge)
    response = server.post(_tamper(req.pkcs_req(server), field))
    assert_refused(server, req, response, sc.BAD_MESSAGE_CHECK)
    # The challenge was not used up by the refused request.
    assert req.read(server, server.post(req.pkcs_req(server)))[0] == sc.SUCCESS


@pytest.mark.parametrize(
    ("options", "why"),
    [
        ({"cipher": "des"}, "single DES"),
        ({"cipher": "des3"}, "3DES is not advertised"),
        ({"digest": "sha1"}, "SHA-1 is not advertised"),
    ],
)
def test_unsupported_algorithms_are_refused_with_bad_alg(server, options, why):
    req = requester(issue_challenge())
    assert_refused(server, req, server.post(req.pkcs_req(server, **options)), sc.BAD_ALG)
    assert ScepChallenge.objects.get().used_at is None, why


def test_malformed_inner_content_is_a_bad_request(server):
    req = requester(issue_challenge())
    request = sc.build_request(b"not a CSR", req.signer, req.key, server.recipient)
    assert_refused(server, req, server.post(request.der), sc.BAD_REQUEST)


def test_an_envelope_for_someone_else_is_a_bad_request(server):
    req = requester(issue_challenge())
    stranger = sc.self_signed(sc.make_key(), req.csr.subject)
    response = server.post(sc.build_pkcs_req(req.csr, req.signer, req.key, stranger))
    assert_refused(server, req, response, sc.BAD_REQUEST)


def test_a_csr_the_ca_refuses_leaves_the_challenge_unused(server):
    challenge = issue_challenge()
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    csr = sc.make_scep_csr(weak, "weak", challenge)
    req = Requester(weak, csr, sc.signer_for(weak, csr))
    assert_refused(server, req, server.post(req.pkcs_req(server)), sc.BAD_REQUEST)
    good = requester(challenge)
    assert good.read(server, server.post(good.pkcs_req(server)))[0] == sc.SUCCESS


def test_an_unserved_message_type_is_a_bad_request(server):
    req = requester(issue_challenge())
    response = server.post(req.pkcs_req(server, message_type=21))  # GetCert
    assert_refused(server, req, response, sc.BAD_REQUEST)


# ------------------------------------------------------------------ not SCEP at all: HTTP errors


@pytest.mark.parametrize(
    ("method", "url", "body", "status", "text"),
    [
        ("post", "/scep?operation=PKIOperation", b"garbage", 400, "not a SCEP message"),
        ("post", "/scep?operation=PKIOperation", b"", 400, "DER pkiMessage"),
        ("get", "/scep?operation=PKIOperation&message=%%%not-base64", None, 400, "base64"),
        ("get", "/scep?operation=PKIOperation&message=Z2FyYmFnZQ==", None, 400, "SCEP"),
        ("get", "/scep?operation=PKIOperation", None, 400, "'message'"),
        ("get", "/scep", None, 400, "missing 'operation'"),
        ("get", "/scep?operation=Frobnicate", None, 400, "unknown operation"),
        ("put", "/scep?operation=PKIOperation", b"x", 405, "not allowed"),
        ("delete", "/scep?operation=GetCACaps", None, 405, "not allowed"),
        ("post", "/scep?operation=GetCACaps", b"x", 405, "does not accept POST"),
    ],
)
def test_what_is_not_scep_gets_a_clear_http_error(server, method, url, body, status, text):
    kwargs = {"content_type": "application/octet-stream"} if body is not None else {}
    args = (body,) if body is not None else ()
    response = getattr(server.client, method)(url, *args, **kwargs)
    assert response.status_code == status
    assert text in response.content.decode()
    if status == 405:
        assert response["Allow"]
    assert issued_count() == 0
    assert not AuditEntry.objects.filter(action="scep.refused").exists()


def test_a_signed_message_without_scep_attributes_is_a_400(server):
    key = sc.make_key()
    csr = sc.make_scep_csr(key, "plain")
    signer = sc.signer_for(key, csr)
    der = base64.b64decode(sign_detached(b"hello", signer, key))
    response = server.post(der)
    assert response.status_code == 400
    assert "lacks transactionID" in response.content.decode()


def test_without_a_ca_scep_is_unavailable(db, client):
    assert not CertificateAuthority.objects.exists()
    response = client.get("/scep", {"operation": "GetCACert"})
    assert response.status_code == 503
    assert "mdm_init" in response.content.decode()


# ------------------------------------------------------------------ manual approval


def run(*args) -> str:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


@pytest.fixture
def manual(settings):
    settings.MDM_SCEP_MANUAL_APPROVAL = True


def test_manual_approval_pending_then_approved(server, manual, enrollment):
    req = requester(issue_enrollment_challenge(enrollment))
    der = req.pkcs_req(server, transaction_id="wait-for-me")
    status, fail_info, certificate, *_ = req.read(server, server.post(der))
    assert (status, fail_info, certificate) == (sc.PENDING, None, None)
    assert issued_count() == 0
    assert "wait-for-me" in run("mdm_scep", "list")
    # Polling while pending: still PENDING.
    assert req.read(server, server.post(req.poll(server, "wait-for-me")))[0] == sc.PENDING

    out = run("mdm_scep", "approve", "wait-for-me", "--by", "alice")
    assert "approved" in out
    assert issued_count() == 1
    poll = req.poll(server, "wait-for-me")
    response = server.post(poll)
    certificate, record = assert_issued(
        server, req, response, "wait-for-me", sc.sender_nonce_of(poll), enrollment
    )
    request = ScepRequest.objects.get(transaction_id="wait-for-me")
    assert request.status == ScepRequest.Status.ISSUED and request.decided_by == "alice"
    assert AuditEntry.objects.filter(action="scep.approved", actor="alice").exists()
    assert "no pending SCEP requests" in run("mdm_scep", "list")
    assert "wait-for-me" in run("mdm_scep", "list", "--all")


def test_manual_approval_rejected(server, manual):
    req = requester(issue_challenge())
    req.read(server, server.post(req.pkcs_req(server, transaction_id="no-thanks")))
    assert "rejected" in run("mdm_scep", "reject", "no-thanks", "--reason", "unknown device")
    status, fail_info, certificate, *_ = req.read(
        server, server.post(req.poll(server, "no-thanks"))
    )
    assert (status, fail_info, certificate) == (sc.FAILURE, sc.BAD_REQUEST, None)
    assert issued_count() == 0
    assert AuditEntry.objects.filter(action="scep.rejected").exists()
    with pytest.raises(CommandError, match="rejected, not pending"):
        run("mdm_scep", "approve", "no-thanks")
    assert issued_count() == 0


def test_approving_an_unknown_request_fails(db):
    with pytest.raises(CommandError, match="no SCEP request"):
        run("mdm_scep", "approve", "nope")


def test_polls_for_unknown_transactions_or_from_another_key(server, manual):
    req = requester(issue_challenge())
    req.read(server, server.post(req.pkcs_req(server, transaction_id="mine")))
    unknown = req.read(server, server.post(req.poll(server, "never-sent")))
    assert unknown[:2] == (sc.FAILURE, sc.BAD_CERT_ID)
    thief = requester(None)
    stolen = thief.read(server, server.post(thief.poll(server, "mine")))
    assert stolen[:2] == (sc.FAILURE, sc.BAD_MESSAGE_CHECK)


# ------------------------------------------------------------------ RenewalReq


def renewal_for(certificate: x509.Certificate, key) -> Requester:
    """A RenewalReq requester: a new key, the same subject, signed by the current identity."""
    new_key = sc.make_key()
    csr = sc.make_scep_csr(new_key, certificate.subject.rfc4514_string().removeprefix("CN="))
    return Requester(key, csr, certificate)


def test_renewal_req_issues_a_certificate_bound_to_the_same_device(server, enrollment):
    device = Device.objects.create(udid="DEVICE-RENEW-1")
    old_cert, old_key, old_record = new_identity("renew-me", device=device)
    link_certificate(old_record, enrollment)
    req = renewal_for(old_cert, old_key)
    der = req.pkcs_req(server, message_type=sc.RENEWAL_REQ, transaction_id="renew-1")
    certificate, record = assert_issued(
        server, req, server.post(der), "renew-1", sc.sender_nonce_of(der), enrollment
    )
    assert record.binding.device == device and record.binding.bound_at is not None
    assert record.pk != old_record.pk
    assert public_der(certificate) == public_der(req.csr) != public_der(old_cert)
    request = ScepRequest.objects.get(transaction_id="renew-1")
    assert request.renewal_of == old_record and request.message_type == "RenewalReq"


def test_renewal_req_signed_by_a_certificate_not_ours_is_refused(server):
    stranger_key = sc.make_key()
    stranger = sc.self_signed(stranger_key, sc.make_scep_csr(stranger_key, "stranger").subject)
    req = renewal_for(stranger, stranger_key)
    response = server.post(req.pkcs_req(server, message_type=sc.RENEWAL_REQ))
    assert_refused(server, req, response, sc.BAD_MESSAGE_CHECK)


def test_renewal_req_signed_by_a_revoked_certificate_is_refused(server):
    old_cert, old_key, old_record = new_identity("revoked")
    revoke(old_record, reason="lost")
    req = renewal_for(old_cert, old_key)
    response = server.post(req.pkcs_req(server, message_type=sc.RENEWAL_REQ))
    assert_refused(server, req, response, sc.BAD_MESSAGE_CHECK, issued_before=1)


def test_renewal_req_may_not_change_the_subject(server):
    old_cert, old_key, _ = new_identity("original")
    new_key = sc.make_key()
    req = Requester(old_key, sc.make_scep_csr(new_key, "someone-else"), old_cert)
    response = server.post(req.pkcs_req(server, message_type=sc.RENEWAL_REQ))
    assert_refused(server, req, response, sc.BAD_REQUEST, issued_before=1)


def test_renewal_under_manual_approval_binds_on_approval(server, manual):
    device = Device.objects.create(udid="DEVICE-RENEW-2")
    old_cert, old_key, _ = new_identity("renew-later", device=device)
    req = renewal_for(old_cert, old_key)
    der = req.pkcs_req(server, message_type=sc.RENEWAL_REQ, transaction_id="renew-2")
    assert req.read(server, server.post(der))[0] == sc.PENDING
    run("mdm_scep", "approve", "renew-2")
    status, _, certificate, *_ = req.read(server, server.post(req.poll(server, "renew-2")))
    assert status == sc.SUCCESS
    assert IssuedCertificate.objects.get(sha256=sha256_hex(certificate)).binding.device == device


def test_pkcs_req_signed_by_a_current_identity_is_a_renewal(server, enrollment):
    """The drafts' (and certmonger's) renewal: a PKCSReq signed by the current certificate."""
    device = Device.objects.create(udid="DEVICE-RENEW-3")
    old_cert, old_key, old_record = new_identity("draft-renewal", device=device)
    req = renewal_for(old_cert, old_key)  # no challenge in the CSR
    status, _, certificate, *_ = req.read(server, server.post(req.pkcs_req(server)))
    assert status == sc.SUCCESS
    record = IssuedCertificate.objects.get(sha256=sha256_hex(certificate))
    assert record.binding.device == device
    assert ScepRequest.objects.get(certificate=record).renewal_of == old_record


def test_a_pkcs_req_signed_by_a_revoked_identity_still_needs_its_challenge(server):
    old_cert, old_key, old_record = new_identity("lapsed")
    revoke(old_record, reason="superseded")
    new_key = sc.make_key()
    req = Requester(old_key, sc.make_scep_csr(new_key, "lapsed"), old_cert)
    assert_refused(server, req, server.post(req.pkcs_req(server)), sc.BAD_REQUEST, 1)
    req.csr = sc.make_scep_csr(new_key, "lapsed", issue_challenge())
    assert req.read(server, server.post(req.pkcs_req(server)))[0] == sc.SUCCESS


def test_a_transaction_id_reused_by_its_requester_after_completion(server):
    """certmonger keeps its transactionID when it renews: a new request, the row is reused."""
    req = requester(issue_challenge(), "reuse")
    first = req.read(server, server.post(req.pkcs_req(server, transaction_id="tx")))[2]
    first_record = IssuedCertificate.objects.get(sha256=sha256_hex(first))
    renewal = Requester(req.key, req.csr, first)  # same key and CSR, signed by the new cert
    second = renewal.read(server, server.post(renewal.pkcs_req(server, transaction_id="tx")))[2]
    assert second is not None and second != first
    request = ScepRequest.objects.get(transaction_id="tx")
    assert request.renewal_of == first_record
    assert request.certificate.sha256 == sha256_hex(second)
    status, _, polled, *_ = renewal.read(server, server.post(renewal.poll(server, "tx")))
    assert (status, polled) == (sc.SUCCESS, second)


def test_a_transaction_id_is_not_taken_over_by_another_key(server):
    owner = requester(issue_challenge(), "same-subject")
    owner.read(server, server.post(owner.pkcs_req(server, transaction_id="taken")))
    other = requester(issue_challenge(), "same-subject")
    response = server.post(other.pkcs_req(server, transaction_id="taken"))
    assert_refused(server, other, response, sc.BAD_REQUEST, issued_before=1)


def test_a_pkcs_req_for_another_subject_from_a_current_identity_needs_a_challenge(server):
    old_cert, old_key, _ = new_identity("first-name")
    new_key = sc.make_key()
    req = Requester(old_key, sc.make_scep_csr(new_key, "second-name"), old_cert)
    assert_refused(server, req, server.post(req.pkcs_req(server)), sc.BAD_REQUEST, 1)
    req.csr = sc.make_scep_csr(new_key, "second-name", issue_challenge())
    status, _, certificate, *_ = req.read(server, server.post(req.pkcs_req(server)))
    assert status == sc.SUCCESS
    record = IssuedCertificate.objects.get(sha256=sha256_hex(certificate))
    assert ScepRequest.objects.get(certificate=record).renewal_of is None
