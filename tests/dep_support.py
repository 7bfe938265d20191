"""Fixtures for the DEP tests: a running stand-in of Apple's DEP API (tests/dep_standin.py) that
MDM_DEP_URL points at, and DEP servers holding its OAuth credentials.

tests/conftest.py registers the fixtures `dep` and `dep_server`.
Retry waits are recorded in `dep.waits` instead of being slept.
"""

import datetime as dt
import hashlib

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from django.utils import timezone

from certs.dep_models import DepTokenKey
from enrollment.dep_models import DepServer
from tests.dep_standin import DepStandIn


def token_key() -> DepTokenKey:
    """A key pair record like the one the server token is enveloped to."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "DEP token key (tests)")])
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=365))
        .sign(key, hashes.SHA256())
    )
    return DepTokenKey.objects.create(
        certificate_pem=certificate.public_bytes(serialization.Encoding.PEM).decode(),
        private_key_pem=key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
        sha256=hashlib.sha256(certificate.public_bytes(serialization.Encoding.DER)).hexdigest(),
        not_after=certificate.not_valid_after_utc,
    )


def make_server(standin: DepStandIn | None, name: str = "ABM", **overrides) -> DepServer:
    """A DEP server whose token holds the stand-in's credentials (None: no token imported)."""
    fields = {}
    if standin is not None:
        credentials = standin.credentials
        fields = {
            "consumer_key": credentials["consumer_key"],
            "consumer_secret": credentials["consumer_secret"].encode(),
            "access_token": credentials["access_token"],
            "access_secret": credentials["access_secret"].encode(),
            "access_token_expiry": timezone.now() + dt.timedelta(days=365),
            "token_imported_at": timezone.now(),
        }
    fields.update(overrides)
    return DepServer.objects.create(name=name, key=token_key(), **fields)


@pytest.fixture
def dep(settings, monkeypatch):
    """A running stand-in; MDM_DEP_URL points at it and retry waits land in `dep.waits`."""
    import enrollment.dep_client

    standin = DepStandIn().start()
    settings.MDM_DEP_URL = standin.url
    settings.MDM_DEP_RETRIES = 2
    standin.waits = []
    monkeypatch.setattr(enrollment.dep_client, "sleep", standin.waits.append)
    yield standin
    standin.stop()


@pytest.fixture
def dep_server(db, dep) -> DepServer:
    return make_server(dep)
