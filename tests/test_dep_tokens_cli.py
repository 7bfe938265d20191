"""ADE server tokens through their public surfaces: `mdm_dep token-certificate|import-token|
tokens`, and each token's expiry in the expiry sweep, the dashboard, the Certificates page and
the certificates API."""

import datetime as dt
from io import StringIO

import pytest
from cryptography import x509
from django.core.management import CommandError, call_command
from django.utils import timezone

from certs.ca import load_stored_key
from certs.expiry import certificate_inventory
from commands.tasks import certificate_expiry_sweep
from enrollment.dep_models import DepServer
from enrollment.dep_tokens import create_server, import_token, oauth_credentials
from mdm_portal.alerts import open_alerts
from mdm_portal.roles import VIEWER
from tests.dep_tokens_support import make_server_token

pytestmark = pytest.mark.django_db


def run(*args) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("mdm_dep", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def certificate_of(server: DepServer) -> x509.Certificate:
    return x509.load_pem_x509_certificate(server.key.certificate_pem.encode())


# --- token-certificate --------------------------------------------------------------------------


def test_token_certificate_writes_a_pem_whose_key_is_the_stored_one(tmp_path):
    target = tmp_path / "abm.pem"
    out, _ = run("token-certificate", "--name", "Main ABM", "--out", str(target))
    server = DepServer.objects.get(name="Main ABM")
    certificate = x509.load_pem_x509_certificate(target.read_bytes())
    stored_key = load_stored_key(server.key.private_key_pem)
    assert certificate.public_key().public_numbers() == stored_key.public_key().public_numbers()
    assert f"written to {target}" in out and "created" in out
    assert "Your MDM Servers" in out and "import-token FILE.p7m --name 'Main ABM'" in out
    # Again: the same server and key, so what was uploaded in ABM stays valid.
    out, _ = run("token-certificate", "--name", "Main ABM", "--out", str(target))
    assert "kept (same key as before)" in out
    assert DepServer.objects.count() == 1
    assert x509.load_pem_x509_certificate(target.read_bytes()) == certificate


def test_token_certificate_prints_the_pem_alone_on_stdout():
    create_server("Only", actor="tests")
    out, err = run("token-certificate")  # the only server: no name needed
    assert x509.load_pem_x509_certificate(out.encode()) == certificate_of(DepServer.objects.get())
    assert out.startswith("-----BEGIN CERTIFICATE-----") and out.strip().endswith("-----")
    assert "upload this certificate" in err


def test_token_certificate_needs_a_name_for_the_first_server_and_to_choose():
    with pytest.raises(CommandError, match="no DEP server yet: name it with --name"):
        run("token-certificate")
    create_server("A", actor="tests")
    create_server("B", actor="tests")
    with pytest.raises(CommandError, match="several DEP servers"):
        run("token-certificate")
    assert DepServer.objects.count() == 2


# --- import-token -------------------------------------------------------------------------------


def test_import_token_through_the_cli_then_renewal(tmp_path):
    run("token-certificate", "--name", "Main ABM", "--out", str(tmp_path / "abm.pem"))
    pem = (tmp_path / "abm.pem").read_text()
    expiry = dt.datetime(2031, 3, 4, 5, 6, tzinfo=dt.UTC)
    token = tmp_path / "Main_Token_smime.p7m"
    token.write_bytes(make_server_token(pem, access_secret="AS_cli-secret", expiry=expiry))

    out, _ = run("import-token", str(token))  # one server: no --name

    assert out.strip() == (
        "server token imported for DEP server 'Main ABM': valid until 2031-03-04 05:06 UTC"
    )
    server = DepServer.objects.get()
    assert oauth_credentials(server)["access_secret"] == "AS_cli-secret"
    assert "AS_cli-secret" not in out
    token.write_bytes(make_server_token(pem, expiry=expiry + dt.timedelta(days=365)))
    out, _ = run("import-token", str(token), "--name", "Main ABM")
    assert "renewed" in out and "devices, profiles and sync cursor kept" in out
    assert DepServer.objects.get().pk == server.pk


def test_import_token_refusals_are_command_errors(tmp_path):
    first = create_server("First", actor="tests")
    second = create_server("Second", actor="tests")
    token = tmp_path / "token.p7m"
    token.write_bytes(make_server_token(second.key.certificate_pem))
    with pytest.raises(CommandError, match="several DEP servers: name one"):
        run("import-token", str(token))
    with pytest.raises(CommandError, match="encrypted to another certificate"):
        run("import-token", str(token), "--name", "First")
    with pytest.raises(CommandError, match="cannot read the server token"):
        run("import-token", str(tmp_path / "missing.p7m"), "--name", "First")
    token.write_text("not a token")
    with pytest.raises(CommandError, match="not a server token"):
        run("import-token", str(token), "--name", "Second")
    token.write_bytes(b"x" * (10 * 1024 * 1024))
    with pytest.raises(CommandError, match="too large to be a server token"):
        run("import-token", str(token), "--name", "Second")
    assert DepServer.objects.filter(token_imported_at__isnull=False).count() == 0
    assert first.pk != second.pk


# --- tokens -------------------------------------------------------------------------------------


def test_tokens_lists_each_server_with_its_expiry_and_last_sync():
    assert "no DEP server yet" in run("tokens")[0]
    main = create_server("Main ABM", actor="tests")
    create_server("Waiting", actor="tests")
    expiry = timezone.now() + dt.timedelta(days=20, hours=1)
    import_token(main, make_server_token(main.key.certificate_pem, expiry=expiry), actor="t")
    DepServer.objects.filter(pk=main.pk).update(
        last_sync_at=timezone.now(),
        last_sync_ok=False,
        last_sync_result="Apple answered 503\nretrying",
    )
    out, _ = run("tokens")
    header, *lines = out.splitlines()
    for column in ("NAME", "TOKEN EXPIRES (UTC)", "DAYS", "IMPORTED AT", "LAST SYNC", "RESULT"):
        assert column in header
    main_line = next(line for line in lines if line.startswith("Main ABM"))
    assert f"{expiry:%Y-%m-%d}" in main_line and " 20 " in main_line
    assert main_line.endswith("failed: Apple answered 503")
    waiting = next(line for line in lines if line.startswith("Waiting"))
    assert "no token" in waiting and waiting.endswith("never synced")
    assert "CS_" not in out and "AS_" not in out  # never a secret


# --- expiry: sweep, dashboard, Certificates page, API -------------------------------------------


@pytest.fixture
def expiring():
    """A DEP server whose token expires in 5 days."""
    server = create_server("Main ABM", actor="tests")
    soon = timezone.now() + dt.timedelta(days=5, hours=1)
    import_token(server, make_server_token(server.key.certificate_pem, expiry=soon), actor="t")
    return server


def test_the_inventory_lists_each_token_with_its_expiry(expiring):
    waiting = create_server("Waiting", actor="tests")  # no token: nothing to expire
    entries = [e for e in certificate_inventory() if e["kind"] == "dep-token"]
    assert [e["name"] for e in entries] == ["Main ABM"]
    (entry,) = entries
    assert entry["label"] == "ADE server token" and entry["subject"] == "Main ABM"
    # Once a sync has told Apple's names, the entry says them too.
    DepServer.objects.filter(pk=expiring.pk).update(server_name="MDM-1", org_name="Acme Inc")
    (entry,) = [e for e in certificate_inventory() if e["kind"] == "dep-token"]
    assert entry["subject"] == "Main ABM (in ABM: MDM-1, Acme Inc)"
    assert entry["days_left"] == 5 and entry["severity"] == "warning" and entry["threshold"] == 7
    assert entry["not_after"] == DepServer.objects.get(pk=expiring.pk).access_token_expiry
    assert waiting.name not in {e["name"] for e in certificate_inventory()}
    # Not per device: the dashboard's and the Certificates page's inventory list it too.
    assert any(e["kind"] == "dep-token" for e in certificate_inventory(per_device=False))


def test_the_expiry_sweep_warns_then_alerts_once_expired_and_a_renewal_resolves(expiring):
    assert certificate_expiry_sweep() == {"alerts": 1}
    alert = open_alerts().get(key="expiry:dep-token:Main ABM")
    assert alert.severity == "warning"
    assert alert.message.startswith("ADE server token Main ABM expires in 5 day(s)")
    assert "download a new server token in Apple Business Manager" in alert.message
    DepServer.objects.filter(pk=expiring.pk).update(
        access_token_expiry=timezone.now() - dt.timedelta(days=2, hours=1)
    )
    certificate_expiry_sweep()
    alert = open_alerts().get(key="expiry:dep-token:Main ABM")
    assert alert.severity == "critical" and "expired 3 day(s) ago" in alert.message
    renewed = timezone.now() + dt.timedelta(days=365)
    token = make_server_token(expiring.key.certificate_pem, expiry=renewed)
    import_token(DepServer.objects.get(pk=expiring.pk), token, actor="tests")
    certificate_expiry_sweep()
    assert not open_alerts().filter(key__startswith="expiry:dep-token:").exists()


def test_the_dashboard_and_the_certificates_page_show_the_expiring_token(expiring, staff):
    page = staff[VIEWER].get("/").content.decode()
    assert "Certificates and tokens that need attention" in page
    assert "ADE server token <code>Main ABM</code>" in page and "expires in 5 day(s)" in page
    assert "mdm_dep import-token" in page
    page = staff[VIEWER].get("/certificates/").content.decode()
    assert "ADE server token <code>Main ABM</code>" in page


def test_the_certificates_api_lists_the_token(expiring, api):
    response = api[VIEWER].get("/api/v1/certificates/", {"kind": "dep-token"})
    assert response.status_code == 200
    (entry,) = response.json()["results"]
    assert entry["name"] == "Main ABM" and entry["label"] == "ADE server token"
    assert entry["days_left"] == 5 and entry["severity"] == "warning"
    assert "secret" not in str(entry).lower()
