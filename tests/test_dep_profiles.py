"""DEP profiles against the stand-in over real HTTP: the profile Apple gets (url, anchor_certs
for a private TLS chain only, settings), validation, per-serial assignment results, editing
(a new profile, assigned again) and auto-assignment of the devices a sync adds."""

import base64
import datetime as dt

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from certs import server_tls
from enrollment.dep_client import DepError
from enrollment.dep_models import DepDevice, DepProfile, DepServer
from enrollment.dep_profiles import (
    DepProfileError,
    assign_profile,
    profile_url,
    save_profile,
    set_auto_assign,
)
from enrollment.dep_sync import sync_server
from enrollment.models import Enrollment
from mdm_portal.models import AuditEntry
from tests.dep_support import make_server

pytestmark = pytest.mark.django_db

SETTINGS = {
    "is_supervised": True,
    "await_device_configured": True,
    "is_mdm_removable": False,
    "department": "IT",
    "support_phone_number": "+1 555 0199",
    "support_email_address": "help@example.org",
    "skip_setup_items": ["AppleID", "Siri", "Location"],
}


def certificate(name: str, issuer: str, key, issuer_key, *, ca: bool) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=90))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .sign(issuer_key, hashes.SHA256())
    )


@pytest.fixture
def tls_root(settings, tmp_path) -> x509.Certificate:
    """The server's TLS chain in MDM_TLS_CERT_FILE: a leaf and the root that issued it."""
    root_key, leaf_key = (
        ec.generate_private_key(ec.SECP256R1()),
        ec.generate_private_key(ec.SECP256R1()),
    )
    root = certificate("Private TLS Root", "Private TLS Root", root_key, root_key, ca=True)
    leaf = certificate("mdm.example.org", "Private TLS Root", leaf_key, root_key, ca=False)
    chain = tmp_path / "chain.pem"
    chain.write_bytes(b"".join(c.public_bytes(serialization.Encoding.PEM) for c in (leaf, root)))
    settings.MDM_TLS_CERT_FILE = str(chain)
    settings.MDM_PUBLIC_URL = "https://mdm.example.org"
    return root


@pytest.fixture
def enrollment(db) -> Enrollment:
    return Enrollment.objects.create(name="Staff iPads")


@pytest.fixture
def profile(dep_server, enrollment, tls_root) -> DepProfile:
    return save_profile(
        dep_server, name="Staff", enrollment=enrollment, settings=SETTINGS, actor="tests"
    )


def defined(dep) -> dict:
    return [r.body for r in dep.requests if r.path == "/profile"][-1]


def test_a_private_tls_chain_goes_into_anchor_certs(dep, profile, tls_root):
    sent = defined(dep)
    assert sent["profile_name"] == "Staff"
    assert sent["url"] == profile_url() == "https://mdm.example.org/dep/enroll"
    assert {k: sent[k] for k in SETTINGS} == SETTINGS
    root_der = tls_root.public_bytes(serialization.Encoding.DER)
    assert [base64.b64decode(c) for c in sent["anchor_certs"]] == [root_der]
    assert profile.profile_uuid in dep.profiles and profile.defined_at is not None
    stored = DepProfile.objects.get(pk=profile.pk)
    assert stored.settings["skip_setup_items"] == ["AppleID", "Siri", "Location"]
    assert "url" not in stored.settings and "anchor_certs" not in stored.settings
    entry = AuditEntry.objects.get(action="dep.profile.define")
    assert entry.details["profile_uuid"] == profile.profile_uuid


def test_a_public_tls_chain_sends_no_anchor_certs(
    dep, dep_server, enrollment, tls_root, monkeypatch
):
    monkeypatch.setattr(server_tls, "_public_roots", lambda: (tls_root,))
    save_profile(dep_server, name="Public", enrollment=enrollment, settings={}, actor="tests")
    sent = defined(dep)
    assert "anchor_certs" not in sent
    # Apple's defaults the portal states: supervised, removable, not waiting for the MDM.
    assert (sent["is_supervised"], sent["is_mdm_removable"], sent["await_device_configured"]) == (
        True,
        True,
        False,
    )


@pytest.mark.parametrize(
    ("changes", "says"),
    [
        ({"skip_setup_items": ["AppleID", "Siri Setup"]}, "Siri Setup"),
        ({"support_email_address": "not an address"}, "not an email address"),
        ({"is_supervised": "yes"}, "is_supervised must be true or false"),
        ({"colour": "red"}, "unknown settings: colour"),
    ],
)
def test_a_wrong_setting_is_refused_before_apple_is_asked(
    dep, dep_server, enrollment, tls_root, changes, says
):
    with pytest.raises(DepProfileError, match=says):
        save_profile(
            dep_server,
            name="Bad",
            enrollment=enrollment,
            settings={**SETTINGS, **changes},
            actor="tests",
        )
    assert "POST /profile" not in dep.paths() and not DepProfile.objects.exists()


def test_a_plain_http_public_url_is_refused(dep, dep_server, enrollment, settings):
    settings.MDM_PUBLIC_URL = "http://127.0.0.1:8000"
    with pytest.raises(DepProfileError, match="https"):
        save_profile(dep_server, name="P", enrollment=enrollment, settings={}, actor="tests")


def test_an_inactive_enrollment_and_a_taken_name_are_refused(dep, profile, enrollment):
    with pytest.raises(DepProfileError, match="already has a profile"):
        save_profile(
            profile.server, name="Staff", enrollment=enrollment, settings={}, actor="tests"
        )
    enrollment.active = False
    enrollment.save()
    with pytest.raises(DepProfileError, match="cannot be used"):
        save_profile(
            profile.server, name="Other", enrollment=enrollment, settings={}, actor="tests"
        )


def test_apples_refusal_saves_nothing(dep, dep_server, enrollment, tls_root):
    dep.fail(400, "CONFIG_URL_INVALID", path="/profile")
    with pytest.raises(DepError) as refused:
        save_profile(dep_server, name="P", enrollment=enrollment, settings={}, actor="tests")
    assert refused.value.code == "CONFIG_URL_INVALID" and not DepProfile.objects.exists()


def test_an_assignment_is_recorded_per_serial_as_apple_answers(dep, profile):
    for serial in ("C01", "C02"):
        dep.add_device(serial)
    sync_server(profile.server, actor="tests")
    dep.assign_results = {"C02": "NOT_ACCESSIBLE"}
    results = assign_profile(profile, ["C01", "C02", "ELSEWHERE1"], actor="tests")
    assert results == {"C01": "SUCCESS", "C02": "NOT_ACCESSIBLE", "ELSEWHERE1": "NOT_ACCESSIBLE"}
    assert dep.requests[-1].body == {
        "profile_uuid": profile.profile_uuid,
        "devices": ["C01", "C02", "ELSEWHERE1"],
    }
    c01, c02 = (
        DepDevice.objects.get(serial_number="C01"),
        DepDevice.objects.get(serial_number="C02"),
    )
    assert (c01.assigned_profile, c01.assign_result, c01.profile_status) == (
        profile,
        "SUCCESS",
        "assigned",
    )
    assert (c02.assigned_profile, c02.assign_result) == (None, "NOT_ACCESSIBLE")
    assert c01.assign_result_at and c02.assign_result_at
    sync_server(DepServer.objects.get(pk=profile.server_id), actor="tests")
    c01.refresh_from_db()
    assert c01.profile_uuid == profile.profile_uuid  # Apple's view, from the sync
    entry = AuditEntry.objects.get(action="dep.profile.assign")
    assert entry.details["results"] == {"SUCCESS": 1, "NOT_ACCESSIBLE": 2}


def test_a_failed_assignment_request_marks_its_serials_and_raises(dep, profile):
    dep.add_device("C01")
    sync_server(profile.server, actor="tests")
    dep.fail(500, times=3, path="/profile/devices")
    with pytest.raises(DepError):
        assign_profile(profile, ["C01"], actor="tests")
    device = DepDevice.objects.get(serial_number="C01")
    assert (device.assign_result, device.assigned_profile) == ("ERROR", None)


def test_editing_defines_a_new_profile_and_assigns_it_again(dep, profile, enrollment):
    dep.add_device("C01")
    dep.add_device("C02")
    sync_server(profile.server, actor="tests")
    assign_profile(profile, ["C01"], actor="tests")
    old_uuid = profile.profile_uuid
    edited = save_profile(
        profile.server,
        name="Staff (no Siri)",
        enrollment=enrollment,
        settings={**SETTINGS, "skip_setup_items": ["Siri"]},
        actor="tests",
        profile=profile,
    )
    assert edited.pk == profile.pk and edited.profile_uuid != old_uuid
    assert defined(dep)["skip_setup_items"] == ["Siri"]
    assert dep.requests[-1].body == {"profile_uuid": edited.profile_uuid, "devices": ["C01"]}
    assert DepDevice.objects.get(serial_number="C01").profile_uuid == edited.profile_uuid
    assert DepDevice.objects.get(serial_number="C02").assigned_profile is None


def test_added_devices_get_the_auto_assign_profile_with_their_results(dep, profile):
    server = profile.server
    set_auto_assign(server, profile, actor="tests")
    dep.assign_results = {"C03": "NOT_ACCESSIBLE"}
    for serial in ("C01", "C02", "C03"):
        dep.add_device(serial)
    outcome = sync_server(DepServer.objects.get(pk=server.pk), actor="tests")
    assert outcome.assigned == {"C01": "SUCCESS", "C02": "SUCCESS", "C03": "NOT_ACCESSIBLE"}
    assert "2 of 3 took" in outcome.message
    shown = {
        d.serial_number: (d.assign_result, d.assigned_profile_id) for d in DepDevice.objects.all()
    }
    assert shown == {
        "C01": ("SUCCESS", profile.pk),
        "C02": ("SUCCESS", profile.pk),
        "C03": ("NOT_ACCESSIBLE", None),
    }
    dep.add_device("C04")
    outcome = sync_server(DepServer.objects.get(pk=server.pk), actor="tests")
    assert outcome.assigned == {"C04": "SUCCESS"}  # only what was added
    assert dep.paths().count("PUT /profile/devices") == 2


def test_an_auto_assignment_that_failed_is_tried_again_at_the_next_sync(dep, profile):
    server = profile.server
    set_auto_assign(server, profile, actor="tests")
    dep.add_device("C01")
    dep.fail(503, times=3, path="/profile/devices")
    outcome = sync_server(DepServer.objects.get(pk=server.pk), actor="tests")
    assert outcome.ok and outcome.added == 1 and "auto-assign" in outcome.message
    assert DepDevice.objects.get(serial_number="C01").assign_result == "ERROR"
    outcome = sync_server(DepServer.objects.get(pk=server.pk), actor="tests")
    assert outcome.assigned == {"C01": "SUCCESS"}
    assert DepDevice.objects.get(serial_number="C01").assigned_profile == profile


def test_auto_assign_takes_only_a_defined_profile_of_the_same_server(dep, profile):
    other = make_server(dep, "other")
    with pytest.raises(DepProfileError, match="another DEP server"):
        set_auto_assign(other, profile, actor="tests")
    set_auto_assign(profile.server, profile, actor="tests")
    assert DepServer.objects.get(pk=profile.server_id).auto_assign_profile == profile
    set_auto_assign(profile.server, None, actor="tests")
    assert DepServer.objects.get(pk=profile.server_id).auto_assign_profile is None
    assert AuditEntry.objects.filter(action="dep.profile.auto_assign").count() == 2
