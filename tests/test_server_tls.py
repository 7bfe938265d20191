"""The server's TLS chain: the portal's own (a server-TLS CA apart from the device CA, and a
certificate for the host of MDM_PUBLIC_URL) or the administrator's file; what profiles carry,
what the expiry inventory lists, what mdm_tls exports and warns about."""

import datetime as dt
import os
import ssl
import stat
from io import StringIO

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID
from django.core.management import CommandError, call_command

from certs import server_tls
from certs.ca import active_ca, ca_certificate
from certs.expiry import certificate_inventory
from certs.identity import IdentityError, verify_certificate
from certs.models import ServerIdentity
from enrollment.mobileconfig import trust_payloads

pytestmark = pytest.mark.django_db

HOST = "mdm.example.org"


@pytest.fixture(autouse=True)
def https(settings):
    settings.MDM_PUBLIC_URL = f"https://{HOST}"
    settings.MDM_TLS_CERT_FILE = ""


def test_no_chain_of_its_own_for_an_http_url(ca, settings):
    settings.MDM_PUBLIC_URL = "http://127.0.0.1:8000"
    assert server_tls.ensure_server_tls() == ("http", None)
    assert server_tls.served_chain() == []
    assert not ServerIdentity.objects.filter(purpose__in=server_tls.TLS_PURPOSES).exists()


def test_the_portal_makes_a_constrained_ca_and_a_server_certificate_for_its_host(ca):
    state, identity = server_tls.ensure_server_tls()
    assert state == "created"
    leaf, tls_ca = server_tls.served_chain()
    assert server_tls.names_host(leaf, HOST)
    assert not server_tls.names_host(leaf, "other.example.org")
    usage = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usage) == [ExtendedKeyUsageOID.SERVER_AUTH]
    assert (leaf.not_valid_after_utc - leaf.not_valid_before_utc).days <= 398
    leaf.verify_directly_issued_by(tls_ca)
    constraints = tls_ca.extensions.get_extension_for_class(x509.NameConstraints).value
    assert constraints.permitted_subtrees == [x509.DNSName(HOST)]
    # Not the device-identity CA, and never a device identity.
    assert tls_ca != ca_certificate(active_ca())
    with pytest.raises(IdentityError, match="does not chain"):
        verify_certificate(leaf)
    assert identity.not_after == leaf.not_valid_after_utc
    # Idempotent.
    assert server_tls.ensure_server_tls()[0] == "present"
    assert server_tls.served_chain() == [leaf, tls_ca]


def test_renewed_close_to_expiry_and_replaced_for_a_new_host(ca, settings):
    server_tls.ensure_server_tls()
    first_leaf, first_ca = server_tls.served_chain()
    soon = first_leaf.not_valid_after_utc - dt.timedelta(days=server_tls.RENEW_WITHIN_DAYS - 1)
    row = ServerIdentity.objects.get(purpose=server_tls.SERVER_TLS)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(server_tls, "_now", lambda: soon)
        assert server_tls.ensure_server_tls()[0] == "renewed (close to expiry)"
    renewed_leaf, same_ca = server_tls.served_chain()
    assert same_ca == first_ca and renewed_leaf != first_leaf
    assert ServerIdentity.objects.get(pk=row.pk).not_after == renewed_leaf.not_valid_after_utc

    settings.MDM_PUBLIC_URL = "https://10.1.2.3:8443"
    assert server_tls.ensure_server_tls()[0] == "renewed (new server-TLS CA)"
    leaf, new_ca = server_tls.served_chain()
    assert new_ca != first_ca
    assert server_tls.names_host(leaf, "10.1.2.3")
    constraints = new_ca.extensions.get_extension_for_class(x509.NameConstraints).value
    assert [str(n.value) for n in constraints.permitted_subtrees] == ["10.1.2.3/32"]


def test_enrollment_profiles_carry_the_private_server_ca(ca):
    server_tls.ensure_server_tls()
    _leaf, tls_ca = server_tls.served_chain()
    payloads = trust_payloads("org.example.mdm.enrollment")
    assert [p["PayloadType"] for p in payloads] == ["com.apple.security.root"] * 2
    certificates = [x509.load_der_x509_certificate(p["PayloadContent"]) for p in payloads]
    assert certificates == [ca_certificate(active_ca()), tls_ca]


def test_a_chain_to_a_public_root_needs_no_trust_payload(ca, monkeypatch):
    server_tls.ensure_server_tls()
    _leaf, tls_ca = server_tls.served_chain()
    monkeypatch.setattr(server_tls, "_public_roots", lambda: (tls_ca,))
    assert server_tls.is_public(server_tls.served_chain())
    assert len(trust_payloads("org.example.mdm.enrollment")) == 1  # our device CA only


def test_expiry_inventory_lists_the_served_chain_once(ca):
    server_tls.ensure_server_tls()
    call_command("mdm_init", stdout=StringIO())  # the profile-signing identity too
    entries = certificate_inventory()
    tls = [e for e in entries if e["kind"] == "tls"]
    assert [e["name"] for e in tls] == ["server-tls#0", "server-tls#1"]
    identities = [e["name"] for e in entries if e["kind"] == "server-identity"]
    assert identities == ["profile-signing"]


def test_warnings_private_chain_wrong_host_and_expiry(ca):
    server_tls.ensure_server_tls()
    chain = server_tls.served_chain()
    warnings = server_tls.chain_warnings(chain, HOST, 30)
    assert len(warnings) == 1 and "private" in warnings[0]
    later = chain[0].not_valid_after_utc - dt.timedelta(days=3)
    warnings = server_tls.chain_warnings(chain, "other.example.org", 30, now=later)
    assert any("does not name other.example.org" in w for w in warnings)
    assert any("expires in 3 days" in w for w in warnings)
    assert server_tls.chain_warnings(chain[:1], HOST, 30)[-1].startswith(
        "the private chain does not include its root"
    )
    assert "no server TLS certificate" in server_tls.chain_warnings([], HOST, 30)[0]


def test_mdm_init_reports_it_and_mdm_tls_exports_what_nginx_needs(ca, tmp_path):
    out = StringIO()
    call_command("mdm_init", stdout=out)
    assert f"server TLS certificate for {HOST} created" in out.getvalue()
    chain, key, client_ca = tmp_path / "chain.pem", tmp_path / "key.pem", tmp_path / "ca.pem"
    call_command(
        "mdm_tls",
        "export",
        "--chain",
        str(chain),
        "--key",
        str(key),
        "--client-ca",
        str(client_ca),
        stdout=StringIO(),
    )
    for path in (chain, key, client_ca):
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(chain, key)  # the key matches the chain's first certificate
    assert x509.load_pem_x509_certificates(client_ca.read_bytes()) == [ca_certificate(active_ca())]
    shown = StringIO()
    call_command("mdm_tls", "show", stdout=shown)
    assert "chain:   private" in shown.getvalue()
    assert "warning: the server TLS chain is private" in shown.getvalue()


def test_with_a_chain_file_the_portal_makes_none_and_exports_no_key(ca, settings, tmp_path):
    server_tls.ensure_server_tls()
    own = server_tls.served_chain()
    path = tmp_path / "fullchain.pem"
    path.write_bytes(own[0].public_bytes(serialization.Encoding.PEM))
    settings.MDM_TLS_CERT_FILE = str(path)
    assert server_tls.ensure_server_tls() == ("file", None)
    assert server_tls.served_chain() == own[:1]
    with pytest.raises(CommandError, match="MDM_TLS_CERT_FILE"):
        call_command("mdm_tls", "export", "--key", str(tmp_path / "k.pem"))
    settings.MDM_TLS_CERT_FILE = str(tmp_path / "missing.pem")
    with pytest.raises(CommandError, match="cannot be read"):
        call_command("mdm_tls", "check", stdout=StringIO())
