"""Credential assets end to end: a simulated device activates a configuration whose
credential asset the portal serves (com.apple.asset.credential.acme / .scep), downloads the
credential document made for it, and obtains its certificate from the portal's own ACME
server (with a device attestation from the test attestation CA the portal trusts) or SCEP
endpoint. The portal's registry of issued certificates then holds it, and the device reports
the asset active; without an attestation CA the device reports it failed."""

import json
import plistlib
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from certs.models import IssuedCertificate
from commands.models import QueuedCommand
from commands.queue import enqueue
from declarations.assets import serve_credential
from declarations.models import DeclarationState
from declarations.sets import add_declarations, assign, create_set
from declarations.states import device_rows
from declarations.store import save_declaration
from devices.models import Device
from simulator.attestation import AttestationCA
from simulator.device import NO_ATTESTATION_CA

pytestmark = pytest.mark.django_db(transaction=True)

IDENTITY = {
    "Type": "com.apple.configuration.security.identity",
    "Identifier": "wifi-identity",
    "Payload": {"CredentialAssetReference": "credential"},
}
ACTIVATION = {
    "Type": "com.apple.activation.simple",
    "Identifier": "activate-identity",
    "Payload": {"StandardConfigurations": ["wifi-identity"]},
}


@pytest.fixture
def attestation_folder(tmp_path, settings) -> Path:
    """A test attestation CA the portal's ACME server trusts."""
    folder = tmp_path / "attestation-ca"
    settings.MDM_ACME_ATTESTATION_ROOTS = str(AttestationCA.create().save(folder))
    return folder


def enrolled_with_credential(portal, tmp_path, source: str) -> tuple[str, Device]:
    state = tmp_path / "fleet.json"
    assert not portal.run(devices=1, state=str(state)).failed
    device = Device.objects.get()
    serve_credential("credential", source, by="tests")
    save_declaration(IDENTITY, by="tests")
    declaration_set = create_set("identities", by="tests")
    add_declarations(declaration_set, [save_declaration(ACTIVATION, by="tests")[0]], by="tests")
    assign(declaration_set, devices=Device.objects.filter(pk=device.pk), by="tests")
    return str(state), device


def asset_outcome(state: str) -> dict:
    [device] = json.loads(Path(state).read_text())["devices"]
    return device["declarative"]["assets"]["credential"]


@pytest.mark.parametrize("source", ["acme", "scep"])
def test_a_credential_asset_gets_its_certificate_from_the_portal(
    portal, tmp_path, attestation_folder, source
):
    state, device = enrolled_with_credential(portal, tmp_path, source)
    issued_before = set(IssuedCertificate.objects.values_list("pk", flat=True))

    stats = portal.run(devices=1, state=state, attestation_ca=str(attestation_folder))

    assert not stats.failed, stats.as_dict()
    assert stats.credentials == {source: 1} and stats.assets_downloaded == 1
    assert stats.requests_by_kind[source] > 0
    [record] = IssuedCertificate.objects.exclude(pk__in=issued_before)
    assert record.delivery == source
    held = asset_outcome(state)
    assert held["valid"] and record.certificate_pem.strip() == held["certificate_pem"].strip()
    certificate = x509.load_pem_x509_certificate(held["certificate_pem"].encode())
    assert device.serial_number in certificate.subject.rfc4514_string()
    if source == "acme":
        # The key is hardware-bound and attested: the attestation named this device.
        assert (record.attested_udid, record.attested_serial) == (device.udid, device.serial_number)
        assert certificate.public_key().curve.name == "secp384r1"
    assert {row.identifier: row.state for row in device_rows(device)} == {
        "activate-identity": "active",
        "credential": "active",
        "wifi-identity": "active",
    }
    # The device lists the certificate among its identities.
    listing = enqueue(device, "CertificateList")
    assert not portal.run(devices=1, state=state, attestation_ca=str(attestation_folder)).failed
    answered = QueuedCommand.objects.get(device=device, command=listing)
    entries = plistlib.loads(answered.result)["CertificateList"]
    der = certificate.public_bytes(serialization.Encoding.DER)
    assert [e["IsIdentity"] for e in entries if e["Data"] == der] == [True]


def test_an_attested_acme_credential_without_an_attestation_ca_is_reported_failed(
    portal, tmp_path, attestation_folder
):
    state, device = enrolled_with_credential(portal, tmp_path, "acme")
    issued_before = IssuedCertificate.objects.count()

    stats = portal.run(devices=1, state=state)  # no --attestation-ca: it cannot attest

    assert stats.errors[NO_ATTESTATION_CA] == 1 and stats.failed
    assert stats.credentials == {}
    assert IssuedCertificate.objects.count() == issued_before
    [reason] = DeclarationState.objects.get(device=device, identifier="credential").reasons
    assert reason["code"] == "Error.AssetCannotBeDownloaded"
    assert "attestation" in reason["details"]["Error"]
    states = {row.identifier: row.state for row in device_rows(device)}
    assert states["credential"] == states["wifi-identity"] == "failed"
