"""What people see of a declaration (the declaration page, `mdm_declaration show`): the
declaration as a device gets it, with the text under secret keys masked, while the keys that
name assets stay readable. The device itself gets the declaration whole."""

import io

import pytest
from django.core.management import call_command

from declarations.store import save_declaration
from mdm_portal.masking import MASKED
from mdm_portal.roles import OPERATOR, VIEWER
from tests.declarative_support import declarative, give, json_of

pytestmark = pytest.mark.django_db

IDENTITY_TOKEN = "eyJhbGciOi-org-proof-3f9a1c"
ORGANIZATION = {
    "Type": "com.apple.management.organization-info",
    "Identifier": "org",
    "Payload": {"Name": "Example Corp", "Proof": {"IdentityToken": IDENTITY_TOKEN}},
}
CERTIFICATE = {
    "Type": "com.apple.configuration.security.certificate",
    "Identifier": "root-cert",
    "Payload": {"CredentialAssetReference": "root-cert-asset"},
}


def test_people_see_secrets_masked_and_asset_references_whole(staff, enrolled):
    give(enrolled, ORGANIZATION)
    save_declaration(CERTIFICATE, by="tests")
    page = staff[VIEWER].get("/declarations/org/").text
    assert IDENTITY_TOKEN not in page and MASKED in page
    assert "root-cert-asset" in staff[VIEWER].get("/declarations/root-cert/").text
    out = io.StringIO()
    call_command("mdm_declaration", "show", "org", stdout=out)
    assert IDENTITY_TOKEN not in out.getvalue() and MASKED in out.getvalue()
    # The device is given the real value.
    sent = json_of(declarative(enrolled, "declaration/management/org"))
    assert sent["Payload"]["Proof"]["IdentityToken"] == IDENTITY_TOKEN


def test_the_api_masks_for_viewers_and_gives_operators_what_they_change(api, enrolled):
    give(enrolled, ORGANIZATION)
    shown = api[VIEWER].get("/api/v1/declarations/org/").json()["Payload"]
    assert shown["Proof"]["IdentityToken"] == MASKED and shown["Name"] == "Example Corp"
    listed = api[VIEWER].get("/api/v1/declarations/").json()["results"]
    assert IDENTITY_TOKEN not in str(listed)
    stored = api[OPERATOR].get("/api/v1/declarations/org/").json()["Payload"]
    assert stored == ORGANIZATION["Payload"]
