"""Asset data the portal serves (GET /mdm/assets/<id>): uploaded data and per-device ACME and
SCEP credential documents, to the device whose manifest holds the asset, authenticated as
check-in is."""

import hashlib
import json

import pytest

from certs.challenges import consume_challenge
from certs.models import ScepChallenge
from declarations.assets import serve_credential, serve_data
from declarations.models import ServedAsset
from declarations.schema import CREDENTIALS, DeclarationError, validate_payload
from declarations.sets import assign, create_set
from devices.models import Device
from mdm_portal.models import AuditEntry
from tests.declarative_support import declarative, download, json_of

pytestmark = pytest.mark.django_db


def give_declarations(device, *declarations):
    declaration_set = create_set("assets", by="tests")
    declaration_set.declarations.add(*declarations)
    assign(declaration_set, devices=Device.objects.filter(udid=device.udid), by="tests")


def fetched_reference(device, identifier: str) -> dict:
    declaration = json_of(declarative(device, f"declaration/asset/{identifier}"))
    assert declaration["Payload"]["Authentication"] == {"Type": "MDM"}
    return declaration["Payload"]["Reference"]


def test_uploaded_data_is_served_to_its_device_only(client, enrolled, make_device):
    content = b"<config>hello</config>"
    asset = serve_data("config-file", content, "application/xml", by="tests")
    give_declarations(enrolled, asset)
    reference = fetched_reference(enrolled, "config-file")
    assert reference["Size"] == len(content)
    assert reference["Hash-SHA-256"] == hashlib.sha256(content).hexdigest()
    response = download(client, enrolled, reference["DataURL"])
    assert response.status_code == 200
    assert response.content == content
    assert response["Content-Type"] == "application/xml"
    assert download(client, enrolled, reference["DataURL"], signed=False).status_code == 403
    other = make_device()
    other.enroll()
    assert download(client, other, reference["DataURL"]).status_code == 404
    assert ServedAsset.objects.get(public_id=reference["DataURL"].rsplit("/", 1)[1]).downloads == 1


def test_new_data_is_a_new_server_token(enrolled):
    first = serve_data("config-file", b"one", "text/plain", by="tests")
    second = serve_data("config-file", b"two", "text/plain", by="tests")
    assert first.pk == second.pk
    assert first.server_token != second.server_token


def test_data_is_encrypted_at_rest(enrolled):
    from django.db import connection

    serve_data("secret-file", b"top-secret-bytes", "text/plain", by="tests")
    with connection.cursor() as cursor:
        cursor.execute("SELECT content FROM declarations_servedasset")
        (raw,) = cursor.fetchone()
    assert b"top-secret-bytes" not in bytes(raw)


def test_a_credential_document_is_checked_against_apples_schema():
    with pytest.raises(DeclarationError, match="Password"):
        serve_data(
            "login",
            json.dumps({"UserName": "a", "Password": 5}).encode(),
            "application/json",
            declaration_type="com.apple.asset.credential.userpassword",
        )
    with pytest.raises(DeclarationError, match="application/json"):
        serve_data(
            "login",
            b"{}",
            "text/plain",
            declaration_type="com.apple.asset.credential.userpassword",
        )


@pytest.mark.parametrize("source", ["acme", "scep"])
def test_a_credential_is_made_per_device_with_a_one_time_secret(client, enrolled, source):
    asset = serve_credential(f"{source}-identity", source, by="tests")
    give_declarations(enrolled, asset)
    reference = fetched_reference(enrolled, f"{source}-identity")
    first = download(client, enrolled, reference["DataURL"])
    second = download(client, enrolled, reference["DataURL"])
    assert first.status_code == second.status_code == 200
    document, again = json.loads(first.content), json.loads(second.content)
    validate_payload(CREDENTIALS[f"com.apple.credential.{source}"], document)
    secret_key = "ClientIdentifier" if source == "acme" else "Challenge"
    assert document[secret_key] != again[secret_key]
    purpose = ScepChallenge.Purpose.ACME if source == "acme" else ScepChallenge.Purpose.SCEP
    assert consume_challenge(document[secret_key], purpose=purpose)[0]
    assert not consume_challenge(document[secret_key], purpose=purpose)[0]  # one time
    served = AuditEntry.objects.filter(action="declaration.credential_served")
    assert served.count() == 2
    assert document[secret_key] not in json.dumps(list(served.values_list("details", flat=True)))


def test_acme_credential_options_are_checked():
    with pytest.raises(DeclarationError, match="KeySize"):
        serve_credential("acme-identity", "acme", {"KeySize": "big"})
    with pytest.raises(DeclarationError, match="HardwareBound"):
        serve_credential("acme-identity", "acme", {"HardwareBound": False, "Attest": True})
