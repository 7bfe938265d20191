"""Choosing the identity delivery when an enrollment is made: `mdm_enrollment create --identity
acme [--acme-without-attestation]`, the enrollment form and `POST /api/v1/enrollments/` all
call enrollment.enrollments, so they accept and refuse the same things; `list`, `show`, the
enrollment's page and the API say which delivery it is, and warn when ACME is allowed without
attestation."""

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from enrollment.models import Enrollment
from mdm_portal.models import AuditEntry
from mdm_portal.roles import OPERATOR, VIEWER
from tests.library_support import audited, field_errors, post

pytestmark = pytest.mark.django_db

ALL_BITS = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096]
NOT_ACME = "only an acme identity can do without attestation"
NEEDS_16 = "acme with attestation needs the right to read device information (16)"


def run(*args) -> str:
    out = StringIO()
    call_command("mdm_enrollment", *args, stdout=out)
    return out.getvalue()


# --- mdm_enrollment -----------------------------------------------------------------------------


def test_create_acme_with_and_without_attestation_then_list_and_show(db):
    run("create", "--name", "Attested", "--identity", "acme")
    run("create", "--name", "Old Macs", "--identity", "acme", "--acme-without-attestation")
    attested, old = Enrollment.objects.get(name="Attested"), Enrollment.objects.get(name="Old Macs")
    assert (attested.identity, attested.acme_attestation) == ("acme", True)
    assert (old.identity, old.acme_attestation) == ("acme", False)
    out = run("list")
    attested_line = out.split("Attested  ", 1)[1].split("\n", 2)[1]
    old_line = out.split("Old Macs  ", 1)[1].split("\n", 2)[1]
    assert "identity=acme " in attested_line and "without attestation" not in attested_line
    assert "identity=acme (without attestation)" in old_line
    shown = run("show", old.token)
    assert "identity:" in shown and "acme (without attestation)" in shown
    assert "WARNING: ACME without attestation" in shown and old.token in shown
    shown = run("show", str(attested.pk))
    assert "acme (ACME)" in shown and "WARNING" not in shown
    with pytest.raises(CommandError, match="no enrollment"):
        run("show", "no-such-token")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--identity", "scep", "--acme-without-attestation"], NOT_ACME),
        (["--identity", "pkcs12", "--acme-without-attestation"], NOT_ACME),
        (["--identity", "acme", "--access-rights", "15"], NEEDS_16),
    ],
)
def test_create_refuses_what_cannot_work(db, args, message):
    with pytest.raises(CommandError) as raised:
        run("create", "--name", "Bad", *args)
    assert message in str(raised.value).lower()
    assert not Enrollment.objects.exists()


def test_acme_without_attestation_needs_no_device_information_right(db):
    run("create", "--name", "Kiosk", "--identity", "acme", "--acme-without-attestation",
        "--access-rights", "15")  # fmt: skip
    assert Enrollment.objects.get().access_rights == 15


# --- the API ------------------------------------------------------------------------------------


def test_the_api_creates_and_shows_acme_without_attestation(api):
    created = api[OPERATOR].post(
        "/api/v1/enrollments/",
        {"name": "Old Macs", "identity": "acme", "acme_attestation": False},
        format="json",
    )
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["identity"] == "acme" and body["acme_attestation"] is False
    enrollment = Enrollment.objects.get()
    assert (enrollment.identity, enrollment.acme_attestation) == ("acme", False)
    shown = api[VIEWER].get(f"/api/v1/enrollments/{enrollment.pk}/").json()
    assert shown["identity"] == "acme" and shown["acme_attestation"] is False
    entry = AuditEntry.objects.get(action="enrollment.created", target="Old Macs")
    assert entry.details["identity"] == "acme" and entry.details["acme_attestation"] is False
    default = api[OPERATOR].post(
        "/api/v1/enrollments/", {"name": "Phones", "identity": "acme"}, format="json"
    )
    assert default.status_code == 201 and default.json()["acme_attestation"] is True
    scep = api[OPERATOR].post("/api/v1/enrollments/", {"name": "Old"}, format="json").json()
    assert scep["identity"] == "scep" and scep["acme_attestation"] is True


@pytest.mark.parametrize(
    ("fields", "key", "message"),
    [
        ({"identity": "scep", "acme_attestation": False}, "acme_attestation", NOT_ACME),
        ({"identity": "pkcs12", "acme_attestation": False}, "acme_attestation", NOT_ACME),
        ({"identity": "acme", "access_rights": 15}, "access_rights", NEEDS_16),
        ({"identity": "acme", "acme_attestation": "maybe"}, "acme_attestation", "valid boolean"),
    ],
)
def test_the_api_refuses_with_a_clear_400(api, fields, key, message):
    response = api[OPERATOR].post("/api/v1/enrollments/", {"name": "Bad", **fields}, format="json")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error.startswith(key) and message in error.lower(), error
    assert not Enrollment.objects.exists()


# --- the UI -------------------------------------------------------------------------------------


def create(client, **fields):
    data = {
        "name": "Lab Macs",
        "access_rights": ALL_BITS,
        "identity": "acme",
        "check_out_when_removed": "on",
        **fields,
    }
    return post(client, "/enrollments/new/", data)


def test_the_form_explains_when_to_choose_which(staff):
    html = staff[OPERATOR].get("/enrollments/new/").text
    for value in ("acme", "scep", "pkcs12"):
        assert f'name="identity" value="{value}"' in html
    assert 'name="acme_without_attestation"' in html
    assert "ACME for iOS and iPadOS 16, macOS 13.1, tvOS 16 and later" in html
    assert "SCEP for older OS versions" in html
    assert "PKCS#12 only when neither works" in html
    assert "Macs before macOS 14" in html


def test_create_acme_without_attestation_and_see_the_warning(settings, staff):
    response = create(staff[OPERATOR], acme_without_attestation="on")
    enrollment = Enrollment.objects.get()
    assert response.status_code == 302, response.content
    assert (enrollment.identity, enrollment.acme_attestation) == ("acme", False)
    entry = audited("enrollment.created")
    assert entry.details["acme_attestation"] is False
    page = staff[VIEWER].get(f"/enrollments/{enrollment.pk}/").text
    identity = page.split('<dd id="identity">', 1)[1].split("</dd>", 1)[0]
    assert "ACME" in identity
    assert '<span class="badge warning"' in identity and "without attestation" in identity
    assert "Requested over ACME without hardware attestation" in identity
    listed = staff[VIEWER].get("/enrollments/").text
    assert "without attestation" in listed


def test_an_attested_acme_enrollment_shows_no_warning(staff):
    assert create(staff[OPERATOR]).status_code == 302
    enrollment = Enrollment.objects.get()
    assert (enrollment.identity, enrollment.acme_attestation) == ("acme", True)
    page = staff[VIEWER].get(f"/enrollments/{enrollment.pk}/").text
    identity = page.split('<dd id="identity">', 1)[1].split("</dd>", 1)[0]
    assert "ACME" in identity and "badge warning" not in identity
    assert "the hardware attests which device it is." in identity


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"identity": "scep", "acme_without_attestation": "on"}, "acme_without_attestation",
         NOT_ACME),
        ({"access_rights": [1, 2, 4, 8]}, "access_rights", NEEDS_16),
    ],
)  # fmt: skip
def test_the_form_refuses_next_to_the_field(staff, fields, field, message):
    response = create(staff[OPERATOR], **fields)
    assert response.status_code == 400
    assert message in field_errors(response.text, field)
    assert not Enrollment.objects.exists()
