"""POST /dep/enroll: a device in Setup Assistant sends its MachineInfo, signed with its device
identity, and gets the enrollment profile of the DEP profile assigned to its serial number.
Real CMS (made by the simulator's test device CA, by openssl, or by hand with SHA-1 the way
Apple's device CA signs), real plists, Django's whole request handling; every refusal leaves
nothing but its audit entry."""

import plistlib
import shutil
import subprocess
from pathlib import Path

import pytest
from asn1crypto import cms as asn1_cms
from asn1crypto import core
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from django.conf import settings

from certs.cms import signed_content
from certs.models import IssuedCertificate, ScepChallenge
from enrollment.dep_enroll import MAX_MACHINE_INFO_BYTES, dep_device_for
from enrollment.enrollments import EnrollmentSpec, create_enrollment
from enrollment.models import Enrollment, EnrollmentChallenge
from mdm_portal.models import AuditEntry
from simulator.device_ca import DeviceCA, sign_machine_info, sign_statement
from tests.dep_enroll_support import DEP, SERIAL, info_for
from tests.legacy_certs import apple_like_chain

ADDRESS = "203.0.113.9"
APPLE_DEVICE_CA_SHA256 = "76f27d00e1333bc88de0e2916c38c9a7f2b75774c25a794c092a80e3c4c66cce"


def post(client, body: bytes, content_type: str = "application/pkcs7-signature"):
    return client.post("/dep/enroll", body, content_type=content_type, REMOTE_ADDR=ADDRESS)


def payloads(response) -> dict[str, dict]:
    """The served profile's payloads by type, its CMS signature verified."""
    profile = plistlib.loads(signed_content(response.content))
    return {p["PayloadType"]: p for p in profile["PayloadContent"]}


def recorded() -> tuple:
    """What serving a profile leaves behind, apart from the audit log."""
    return (
        ScepChallenge.objects.count(),
        EnrollmentChallenge.objects.count(),
        IssuedCertificate.objects.count(),
        list(Enrollment.objects.values_list("uses", flat=True)),
    )


def test_a_device_of_ours_gets_its_enrollment_profile(client, setup_dep: DEP):
    setup_dep.device()
    info = info_for()

    response = post(client, setup_dep.signed(info))

    assert response.status_code == 200, response.content
    assert response["Content-Type"] == "application/x-apple-aspen-config"
    assert response["Cache-Control"] == "no-store, private"
    found = payloads(response)
    scep = found["com.apple.security.scep"]["PayloadContent"]
    assert scep["URL"] == "https://mdm.example.org/scep" and scep["Challenge"]
    mdm = found["com.apple.mdm"]
    assert mdm["ServerURL"] == "https://mdm.example.org/mdm/connect"
    assert mdm["IdentityCertificateUUID"] == found["com.apple.security.scep"]["PayloadUUID"]
    setup_dep.enrollment.refresh_from_db()
    assert setup_dep.enrollment.uses == 1
    # The one-time challenge belongs to the DEP profile's enrollment, like a link's.
    assert EnrollmentChallenge.objects.get().enrollment == setup_dep.enrollment
    entry = AuditEntry.objects.get(action="enrollment.profile_issued")
    assert (entry.actor, entry.address, entry.target) == ("dep", ADDRESS, "DEP iPhones")
    assert entry.details["dep_serial"] == SERIAL
    assert entry.details["dep_udid"] == info["UDID"]
    assert entry.details["dep_profile"] == setup_dep.profile.name
    assert not AuditEntry.objects.filter(action="dep.enroll_refused").exists()


@pytest.mark.parametrize(
    ("identity", "payload_type"),
    [
        (Enrollment.Identity.ACME, "com.apple.security.acme"),
        (Enrollment.Identity.PKCS12, "com.apple.security.pkcs12"),
    ],
)
def test_the_identity_comes_as_the_enrollment_delivers_it(
    client, setup_dep, identity, payload_type
):
    spec = EnrollmentSpec(name=f"DEP {identity}", identity=identity)
    setup_dep.profile.enrollment = create_enrollment(spec, by="tests")
    setup_dep.profile.save()
    setup_dep.device()

    response = post(client, setup_dep.signed())

    assert response.status_code == 200, response.content
    found = payloads(response)
    assert found["com.apple.mdm"]["IdentityCertificateUUID"] == found[payload_type]["PayloadUUID"]
    assert "com.apple.security.scep" not in found


def test_the_serial_is_matched_without_regard_to_case_and_dep_device_for_finds_it(
    client, setup_dep
):
    dep_device = setup_dep.device()
    response = post(client, setup_dep.signed(info_for(SERIAL.lower())))
    assert response.status_code == 200, response.content

    class Enrolled:  # what dep_device_for reads of a Device
        serial_number = SERIAL

    assert dep_device_for(Enrolled()) == dep_device
    Enrolled.serial_number = "C02UNKNOWN00"
    assert dep_device_for(Enrolled()) is None


def _resign(body: bytes, change) -> bytes:
    """The SignedData with `change(signer_info)` applied, re-encoded."""
    info = asn1_cms.ContentInfo.load(body)
    change(info["content"]["signer_infos"][0])
    return info.dump(force=True)


def _flip_signature(signer_info) -> None:
    signature = bytearray(signer_info["signature"].native)
    signature[-1] ^= 0x01
    signer_info["signature"] = core.OctetString(bytes(signature))


def _another_root(dep: DEP) -> bytes:
    return DeviceCA.create(name="Someone Else's Device CA").signed_machine_info(info_for())


def _same_name_other_key(dep: DEP) -> bytes:
    # A CA that calls itself what the trusted root calls itself: its key is not trusted.
    impostor = DeviceCA.create()
    assert impostor.root.subject == dep.authority.root.subject
    return impostor.signed_machine_info(info_for())


def _another_key(dep: DEP) -> bytes:
    _key, certificate = dep.authority.device_identity()
    return sign_machine_info(info_for(), ec.generate_private_key(ec.SECP256R1()), certificate)


def _tampered(dep: DEP) -> bytes:
    dep.device("F2LDEP0002AB")  # the serial it is changed to is one of ours too
    body = dep.signed(info_for())
    assert body.count(SERIAL.encode()) == 1
    return body.replace(SERIAL.encode(), b"F2LDEP0002AB")


def _bad_signature(dep: DEP) -> bytes:
    return _resign(dep.signed(), _flip_signature)


def _signed_by_the_ca_itself(dep: DEP) -> bytes:
    authority = dep.authority
    return sign_machine_info(info_for(), authority.root_key, authority.root)


UNTRUSTED = [
    ("another root", _another_root, "does not lead to a trusted root"),
    ("same name, other key", _same_name_other_key, "does not lead to a trusted root"),
    ("signed with another key", _another_key, "the signature does not verify"),
    ("tampered content", _tampered, "the message digest does not match"),
    ("bad signature", _bad_signature, "the signature does not verify"),
    ("signed by a CA", _signed_by_the_ca_itself, "a CA certificate, not a device's"),
]


@pytest.mark.parametrize(("case", "make", "reason"), UNTRUSTED, ids=[c[0] for c in UNTRUSTED])
def test_a_machine_info_not_proven_by_a_trusted_device_is_refused(
    client, setup_dep, case, make, reason
):
    setup_dep.device()
    body = make(setup_dep)
    before = recorded()

    response = post(client, body)

    assert response.status_code == 403, response.content
    assert reason in response.content.decode()
    assert recorded() == before
    entry = AuditEntry.objects.get(action="dep.enroll_refused")
    assert entry.details["status"] == 403 and reason in entry.details["reason"]
    # Nothing a sender we cannot trust wrote names the refusal.
    assert entry.target == "" and "udid" not in entry.details
    assert entry.address == ADDRESS
    assert not AuditEntry.objects.filter(action="enrollment.profile_issued").exists()


def _not_cms(dep: DEP) -> bytes:
    return plistlib.dumps(info_for())  # the plist itself, unsigned


def _missing_keys(dep: DEP) -> bytes:
    info = info_for()
    del info["PRODUCT"], info["VERSION"]
    return dep.signed(info)


def _wrong_type(dep: DEP) -> bytes:
    return dep.signed(info_for(SERIAL=12345))


def _not_a_plist(dep: DEP) -> bytes:
    key, certificate = dep.authority.device_identity()
    return sign_statement(b"UDID=1234 SERIAL=" + SERIAL.encode(), key, certificate)


def _detached(dep: DEP) -> bytes:
    body = dep.signed()
    info = asn1_cms.ContentInfo.load(body)
    info["content"]["encap_content_info"] = {"content_type": "data"}
    return info.dump(force=True)


def _array(dep: DEP) -> bytes:
    key, certificate = dep.authority.device_identity()
    return sign_machine_info([SERIAL], key, certificate)


MALFORMED = [
    ("empty body", lambda dep: b"", 400, "empty body"),
    ("not CMS", _not_cms, 400, "malformed CMS signature"),
    ("no content", _detached, 400, "carries no content"),
    ("missing keys", _missing_keys, 400, "required key PRODUCT is missing"),
    ("wrong type", _wrong_type, 400, "key SERIAL must be <string>"),
    ("not a plist", _not_a_plist, 400, "not a property list"),
    ("not a dictionary", _array, 400, "not a dictionary"),
    ("too large", lambda dep: b"0" * (MAX_MACHINE_INFO_BYTES + 1), 413, "limit"),
]


@pytest.mark.parametrize(
    ("case", "make", "status", "reason"), MALFORMED, ids=[c[0] for c in MALFORMED]
)
def test_a_body_that_is_not_a_machine_info_is_refused(
    client, setup_dep, case, make, status, reason
):
    setup_dep.device()
    before = recorded()

    response = post(client, make(setup_dep))

    assert response.status_code == status, response.content
    assert reason in response.content.decode()
    assert response["Content-Type"].startswith("text/plain")
    assert recorded() == before
    entry = AuditEntry.objects.get(action="dep.enroll_refused")
    assert entry.details["status"] == status


def _unknown(dep: DEP) -> None:
    dep.device("C02OTHER0001")


def _removed(dep: DEP) -> None:
    dep.device(removed=True)


def _no_profile(dep: DEP) -> None:
    dep.device(profile=None)


def _enrollment_off(dep: DEP) -> None:
    dep.device()
    Enrollment.objects.filter(pk=dep.enrollment.pk).update(active=False)


NOT_OURS = [
    ("unknown serial", _unknown, "is not a device of this portal's DEP servers"),
    ("removed device", _removed, "was removed from this portal's DEP server 'ABM test'"),
    ("no DEP profile", _no_profile, "has no DEP profile assigned in this portal"),
    ("enrollment turned off", _enrollment_off, "this enrollment has been turned off"),
]


@pytest.mark.parametrize(("case", "setup", "reason"), NOT_OURS, ids=[c[0] for c in NOT_OURS])
def test_a_device_we_do_not_enroll_is_refused(client, setup_dep, case, setup, reason):
    setup(setup_dep)
    info = info_for()
    before = recorded()

    response = post(client, setup_dep.signed(info))

    assert response.status_code == 403, response.content
    assert reason in response.content.decode()
    assert recorded() == before
    entry = AuditEntry.objects.get(action="dep.enroll_refused")
    # A verified MachineInfo names its device in the refusal.
    assert entry.target == SERIAL and entry.details["udid"] == info["UDID"]
    assert not AuditEntry.objects.filter(action="enrollment.profile_issued").exists()


def test_no_push_certificate_is_the_portals_503(client, setup_dep):
    from certs.models import PushCertificate

    setup_dep.device()
    PushCertificate.objects.all().delete()
    before = recorded()
    response = post(client, setup_dep.signed())
    assert response.status_code == 503
    assert "no push certificate" in response.content.decode()
    assert recorded() == before


def test_unreadable_device_roots_are_the_portals_503(client, setup_dep, settings, tmp_path):
    setup_dep.device()
    settings.MDM_DEP_DEVICE_ROOTS = str(tmp_path / "missing.pem")
    response = post(client, setup_dep.signed())
    assert response.status_code == 503
    assert "MDM_DEP_DEVICE_ROOTS" in response.content.decode()


def test_only_post_is_accepted(client, setup_dep):
    assert client.get("/dep/enroll").status_code == 405


def test_a_chain_through_an_intermediate_the_device_carries_is_trusted(client, setup_dep, settings):
    # The trusted root issues a device CA, which issues the device identity; the SignedData
    # carries the device CA (as Apple's carry the Apple iPhone Device CA).
    root = setup_dep.authority
    middle = DeviceCA.create(name="Test iPhone Device Sub CA")
    middle_cert = (
        x509.CertificateBuilder()
        .subject_name(middle.root.subject)
        .issuer_name(root.root.subject)
        .public_key(middle.root_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(middle.root.not_valid_before_utc)
        .not_valid_after(middle.root.not_valid_after_utc)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(root.root_key, hashes.SHA256())
    )
    middle = DeviceCA(middle_cert, middle.root_key)
    key, certificate = middle.device_identity()
    setup_dep.device()

    carried = sign_machine_info(info_for(), key, certificate, chain=[middle_cert])
    assert post(client, carried).status_code == 200
    bare = sign_machine_info(info_for(), key, certificate)  # without the intermediate
    assert post(client, bare).status_code == 403


@pytest.mark.skipif(not shutil.which("openssl"), reason="needs the openssl command")
def test_an_apple_style_machine_info_verifies(client, setup_dep, settings, tmp_path):
    """What a Mac sends: BER with indefinite lengths (openssl -stream), SHA-1, no signed
    attributes, signed by an RSA-1024 SHA-1 device identity from a CA that expired in 2014:
    Apple says the dates of certificates from its device CA are to be ignored."""
    authority, _ca_key, device, device_key = apple_like_chain()
    roots = tmp_path / "apple-like.pem"
    roots.write_bytes(authority.public_bytes(serialization.Encoding.PEM))
    settings.MDM_DEP_DEVICE_ROOTS = str(roots)
    (tmp_path / "device.pem").write_bytes(device.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "device.key").write_bytes(
        device_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    (tmp_path / "info.plist").write_bytes(plistlib.dumps(info_for()))
    command = ["openssl", "cms", "-sign", "-binary", "-nodetach", "-stream", "-noattr"]
    command += ["-md", "sha1", "-outform", "DER", "-in", "info.plist"]
    command += ["-signer", "device.pem", "-inkey", "device.key"]
    body = subprocess.run(command, cwd=tmp_path, capture_output=True, check=True).stdout
    assert body[1] == 0x80  # indefinite length, as devices write it
    setup_dep.device()

    response = post(client, body)

    assert response.status_code == 200, response.content


def test_the_default_roots_are_apples_iphone_device_ca():
    path = Path(settings.MDM_DEP_DEVICE_ROOTS)
    assert path == settings.BASE_DIR / "certs" / "data" / "apple-iphone-device-ca.pem"
    (root,) = x509.load_pem_x509_certificates(path.read_bytes())
    assert root.fingerprint(hashes.SHA256()).hex() == APPLE_DEVICE_CA_SHA256
    assert root.subject.rfc4514_string() == (
        "CN=Apple iPhone Device CA,OU=Apple iPhone,O=Apple Inc.,C=US"
    )
