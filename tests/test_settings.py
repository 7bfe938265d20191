"""Settings that follow MDM_PUBLIC_URL (the host checks, secure cookies), and the client
address from the TLS proxy's header (MDM_REAL_IP_HEADER)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from django.test.client import RequestFactory

from mdm_portal.proxy import RealClientAddressMiddleware

ROOT = Path(__file__).resolve().parent.parent
SHOW = (
    "import json, django; django.setup(); from django.conf import settings as s; "
    "print(json.dumps([s.ALLOWED_HOSTS, s.CSRF_TRUSTED_ORIGINS, s.SESSION_COOKIE_SECURE, "
    "s.MDM_TLS_CERT_FILE]))"
)


def settings_under(tmp_path, **env) -> list:
    base = {"PATH": "/usr/bin:/bin", "DJANGO_SETTINGS_MODULE": "mdm_portal.settings"}
    base["MDM_DATA_DIR"] = str(tmp_path)
    out = subprocess.run(
        [sys.executable, "-c", SHOW], cwd=ROOT, env={**base, **env}, capture_output=True
    )
    assert out.returncode == 0, out.stderr.decode()
    return json.loads(out.stdout)


def test_host_checks_follow_the_public_url(tmp_path):
    hosts, origins, secure, _ = settings_under(
        tmp_path, MDM_PUBLIC_URL="https://mdm.example.org:8443"
    )
    assert hosts[0] == "mdm.example.org" and "127.0.0.1" in hosts and "localhost" in hosts
    assert origins == ["https://mdm.example.org:8443"]
    assert secure is True
    hosts, origins, secure, _ = settings_under(tmp_path, MDM_PUBLIC_URL="https://[2001:db8::5]")
    assert hosts[0] == "[2001:db8::5]" and origins == ["https://[2001:db8::5]"]


def test_the_defaults_and_explicit_values(tmp_path):
    hosts, origins, secure, _ = settings_under(tmp_path)
    assert "127.0.0.1" in hosts and origins == ["http://127.0.0.1:8000"] and secure is False
    hosts, origins, _, _ = settings_under(
        tmp_path,
        MDM_PUBLIC_URL="https://mdm.example.org",
        ALLOWED_HOSTS="a.example.org",
        CSRF_TRUSTED_ORIGINS="https://a.example.org",
    )
    assert (hosts, origins) == (["a.example.org"], ["https://a.example.org"])


def test_the_former_name_of_the_tls_chain_setting_still_works(tmp_path):
    assert settings_under(tmp_path, MDM_TLS_CHAIN_FILE="/etc/old.pem")[3] == "/etc/old.pem"
    both = settings_under(tmp_path, MDM_TLS_CHAIN_FILE="/etc/old.pem", MDM_TLS_CERT_FILE="/n.pem")
    assert both[3] == "/n.pem"


@pytest.mark.parametrize("header", ["", "X-Real-Ip"])
def test_the_client_address_comes_from_the_proxy_header_only_when_told(settings, header):
    settings.MDM_REAL_IP_HEADER = header
    seen = {}

    def view(request):
        seen["addr"] = request.META["REMOTE_ADDR"]

    request = RequestFactory().get("/", headers={"X-Real-Ip": "203.0.113.9"})
    RealClientAddressMiddleware(view)(request)
    assert seen["addr"] == ("203.0.113.9" if header else "127.0.0.1")
