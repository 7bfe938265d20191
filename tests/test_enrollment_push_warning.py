"""Creating an enrollment while no push certificate from Apple is imported (none, or only the
demo one) warns, with what to do, and still creates it: `mdm_enrollment create` on stderr, the
enrollment form as a banner."""

from io import StringIO

import pytest
from django.core.management import call_command

from certs import pushcert
from certs.pushcert_demo import ensure_demo_push_certificate
from enrollment.models import Enrollment
from mdm_portal.roles import OPERATOR
from tests.apns_fixtures import shared_pki
from tests.ui_support import make_user

pytestmark = pytest.mark.django_db

FORM = {"name": "Staff", "access_rights": [1, 4, 8], "identity": "scep"}


def demo_certificate() -> None:
    ensure_demo_push_certificate(orphaned_devices=lambda topic: 0)


def apple_certificate() -> None:
    certificate_pem, key_pem = shared_pki().issue_push_certificate()
    pushcert.import_push_certificate(certificate_pem, key_pem, orphaned_devices=lambda t: 0)


def create(name: str) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("mdm_enrollment", "create", "--name", name, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


@pytest.mark.parametrize(
    "setup, words",
    [(lambda: None, "no push certificate is imported"),
     (demo_certificate, "only the demo push certificate is active")],
)  # fmt: skip
def test_the_command_warns_and_creates_the_enrollment(setup, words):
    setup()
    out, err = create("Staff")
    assert "enrollment created: Staff" in out and "/enroll/" in out
    assert Enrollment.objects.filter(name="Staff").exists()
    assert err.startswith("WARNING: ") and words in err
    # What to do: the README's section and Apple's portal.
    assert "step 4 'The push certificate'" in err and "https://identity.apple.com/pushcert" in err


def test_no_warning_with_a_certificate_from_apple():
    apple_certificate()
    out, err = create("Staff")
    assert "enrollment created: Staff" in out and err == ""


@pytest.mark.parametrize("setup", [lambda: None, demo_certificate])
def test_the_form_shows_the_warning_and_still_creates(client, setup):
    setup()
    client.force_login(make_user("operator", OPERATOR))
    page = client.get("/enrollments/new/").content.decode()
    assert 'id="push-certificate-warning"' in page and "No push certificate from Apple" in page
    assert 'href="/certificates/push/#steps"' in page
    response = client.post("/enrollments/new/", FORM)
    assert response.status_code == 302
    assert Enrollment.objects.filter(name="Staff").exists()


def test_the_form_has_no_warning_with_a_certificate_from_apple(client):
    apple_certificate()
    client.force_login(make_user("operator", OPERATOR))
    assert "push-certificate-warning" not in client.get("/enrollments/new/").content.decode()
